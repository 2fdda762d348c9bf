"""Test-and-set spinlock: the smallest correct lock.

One word per lock; ``xchg(1)`` until it returns 0, waiting (not spinning step by step) while the
word is 1; release stores 0. Promises mutual exclusion only: no timeouts, no deadlock
detection, no fairness (a waiter may be overtaken forever).
"""

from __future__ import annotations

from lockfuzz import Capabilities, Context, Machine, Status, Target


class TasLock(Target):
    """Test-and-set spinlock over one cell per lock; promises mutual exclusion and nothing more."""

    capabilities = Capabilities()

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        word = self.words[lock]
        while await word.xchg(1):
            await word.wait_until(_is_zero)
        return Status.OK

    async def release(self, ctx: Context, lock: int) -> None:
        await self.words[lock].store(0)

    def check(self) -> list[str]:
        return [f"L{i} word is {w.value}, expected 0" for i, w in enumerate(self.words) if w.value]


def _is_zero(value: int) -> bool:
    return value == 0
