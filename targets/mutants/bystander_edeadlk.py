"""Mutant of ``targets/resilient_tas.py``: EDEADLK for a waiter outside the deadlock.

Broken: besides its own AA and ABBA checks, each check of a waiter also asks whether the CPU that
holds its lock is deadlocked on itself, and reports EDEADLK if so: it finds the other CPU that has
the awaited lock below its top entry and runs the AA test on *that* CPU's table (is its top entry
also below its top?). "My holder is stuck, so waiting is hopeless" may sound helpful, but the
waiter is not on the cycle: a context that retakes a lock it holds deadlocks itself, not the
other CPU that merely waits for that lock, and the other CPU's waiter must wait (or time out), not
be told it deadlocked. It needs the waiter to arrive while the holder's AA stands, between the
holder's relock and its own EDEADLK a few steps later: one preemption.
Caught by: **innocent-bystander**. (A table cannot tell a held entry from an attempted one, so
the same test also fires when the other CPU's task is merely *attempting* the lock below a
handler that holds it: no cycle at all, which edeadlk-sound reports. The scenario, a relock,
shows only the bystander.)
"""

from __future__ import annotations

from typing import Literal

from lockfuzz.targets.resilient_tas import RES_NR_HELD, ResilientTasLock

from lockfuzz import Status


class BystanderEdeadlkLock(ResilientTasLock):
    """Resilient TAS that also returns EDEADLK when the CPU holding its lock is in an AA."""

    async def _check_aa(self, cpu: int, lock: int) -> Status | Literal[0]:
        return await super()._check_aa(cpu, lock) or await self._holder_deadlocked(cpu, lock)

    async def _check_abba(self, cpu: int, lock: int) -> Status | Literal[0]:
        return await super()._check_abba(cpu, lock) or await self._holder_deadlocked(cpu, lock)

    async def _holder_deadlocked(self, cpu: int, lock: int) -> Status | Literal[0]:
        """BUG: EDEADLK when another CPU has ``lock`` below its top entry (holds it, or
        attempts it below a nested attempt) and that top entry is also below its top: the
        holder's AA, blamed on this waiter."""
        for c in range(self.n_cpus):
            cnt = min(RES_NR_HELD, await self.cnt[c].load())
            if c == cpu or cnt < 2:
                continue
            theirs = self.slots[c]
            top = await theirs[cnt - 1].load()
            below = [await theirs[i].load() for i in range(cnt - 1)]
            if top and lock + 1 in below and top in below:
                return Status.EDEADLK
        return 0
