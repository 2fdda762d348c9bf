"""Peterson's lock for two processes, written as the textbook writes it.

Source: G. L. Peterson, "Myths about the mutual exclusion problem", Information Processing
Letters 12(3), 1981. Process ``i`` (here: CPU ``i``, 0 or 1) and the other, ``j = 1 - i``::

    flag[i] = true; turn = j;              // the doorway: say you want in, then defer
    while (flag[j] && turn == j) ;          // busy-wait: a plain loop of two loads
    ... critical section ...
    flag[i] = false;

One ``flag`` pair and one ``turn`` word per lock, so that locks nest. The wait is the plain loop
of the paper (the engine parks a loop that re-reads unchanged cells: it costs a few steps).

Promises: mutual exclusion for two CPUs, and bounded waiting in its strongest form: once a
process has finished its two-step doorway, the other cannot enter ahead of it (FIFO after two
steps). No timeouts, no deadlock detection. Written for two processes with one context each:
``max_cpus=2``, and no interrupt handlers (a handler on CPU i would be a third process using
process i's flag).
"""

from __future__ import annotations

from lockfuzz import Capabilities, Cell, Context, Fairness, Machine, Status, Target

__all__ = ["PetersonLock"]


class PetersonLock(Target):
    """Peterson's two-process lock over cells: ``flag[i] = 1; turn = j; while flag[j] and turn == j``."""

    capabilities = Capabilities(
        # After flag[i] and turn are stored, the other process reads turn == i once it stores
        # turn itself, so it waits: FIFO after the two stores, and not after one (a process that
        # has set its flag but not yet deferred can still be passed: tests/fast/test_tight_promises.py).
        fairness=Fairness(overtakes=0, doorway_steps=2),
        interrupts=False,
        max_cpus=2,
    )

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.flag: list[list[Cell]] = [
            [machine.cell(f"L{lock}.flag[{i}]") for i in range(2)] for lock in range(machine.n_locks)
        ]
        self.turn = [machine.cell(f"L{lock}.turn") for lock in range(machine.n_locks)]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        i, j = ctx.cpu, 1 - ctx.cpu
        flag, turn = self.flag[lock], self.turn[lock]
        await flag[i].store(1)
        await turn.store(j)
        while await flag[j].load() and await turn.load() == j:
            pass
        return Status.OK

    async def release(self, ctx: Context, lock: int) -> None:
        await self.flag[lock][ctx.cpu].store(0)

    def check(self) -> list[str]:
        return [
            f"L{lock}: flag[{i}] is still set"
            for lock, flags in enumerate(self.flag)
            for i, f in enumerate(flags)
            if f.value
        ]
