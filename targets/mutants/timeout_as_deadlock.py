"""Mutant of ``targets/resilient_tas.py``: a wait that times out is reported as a deadlock.

Broken: the periodic deadlock check is replaced by its own timer. Once a wait has lasted more
than the 1 ms re-check interval, the acquisition returns EDEADLK without reading any held-locks
table: deadlock "detection" by timeout, so every wait longer than a millisecond is blamed on a
deadlock. A waiter behind a holder that merely keeps the lock for a few milliseconds gets EDEADLK
with no deadlock anywhere. No preemption needed: the holder's critical section does it.
Caught by: **edeadlk-sound**.
"""

from __future__ import annotations

from typing import Literal

from lockfuzz.targets.resilient_tas import ResilientTasLock

from lockfuzz import Status


class TimeoutAsDeadlockLock(ResilientTasLock):
    """Resilient TAS whose 1 ms deadlock re-check reports EDEADLK without looking."""

    async def _check_abba(self, cpu: int, lock: int) -> Status | Literal[0]:
        return Status.EDEADLK  # BUG: "still waiting after 1 ms" taken for a deadlock
