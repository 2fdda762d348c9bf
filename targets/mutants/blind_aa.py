"""Mutant of ``targets/resilient_tas.py``: the AA check never sees the entry that matters.

Broken: the AA check's loop stops one entry short (``cnt - 2`` instead of ``cnt - 1``: it skips
the entry just below its own attempt as well as its own). A lock retaken by the context that
holds it, or by an interrupt handler above its holder, is then never reported: the waiter spins
until the 1 s timeout (the ABBA check only looks at other CPUs). Seen without any preemption
(an AA-type bug): the scenario relocks in one context. (Deeper AA, a lock taken twice with
another in between, is still found: the walk reaches that entry.)
Caught by: **edeadlk-complete** (an AA cycle outlives the declared latency).
"""

from __future__ import annotations

from typing import Literal

from lockfuzz.targets.resilient_tas import RES_NR_HELD, ResilientTasLock

from lockfuzz import Status


class BlindAaLock(ResilientTasLock):
    """Resilient TAS whose AA check skips the entry below the top: AA is never detected."""

    async def _check_aa(self, cpu: int, lock: int) -> Status | Literal[0]:
        cnt = min(RES_NR_HELD, await self.cnt[cpu].load())
        slots = self.slots[cpu]
        for i in range(cnt - 2):  # BUG: off by one
            if await slots[i].load() == lock + 1:
                return Status.EDEADLK
        return 0
