"""Mutant of ``targets/tas.py``: the test-and-set is not atomic.

Broken: the lock is taken with a load that sees 0 followed by a separate store of 1, instead of
one ``xchg``. Two CPUs that both load 0 before either stores both return OK. It takes one
preemption between a waiter's load and its store. Caught by: **mutual-exclusion**.
"""

from __future__ import annotations

from lockfuzz.targets.tas import TasLock, _is_zero

from lockfuzz import Context, Status


class NonatomicTasLock(TasLock):
    """TAS whose test and set are two steps (load, then store): two contexts can both win."""

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        word = self.words[lock]
        while True:
            if await word.load() == 0:  # BUG: test ...
                await word.store(1)  # ... and set, with a window between them
                return Status.OK
            await word.wait_until(_is_zero)
