"""Lamport's bakery lock for N processes, written as the paper writes it.

Source: L. Lamport, "A new solution of Dijkstra's concurrent programming problem", CACM 17(8),
1974. Process ``i`` (here: CPU ``i``) of ``N``::

    choosing[i] = 1;
    number[i] = 1 + max(number[0], ..., number[N-1]);     // the doorway
    choosing[i] = 0;
    for (j = 0; j < N; j++) {
        while (choosing[j]) ;                              // wait while j picks its number
        while (number[j] != 0 && (number[j], j) < (number[i], i)) ;
    }
    ... critical section ...
    number[i] = 0;

One ``choosing`` and one ``number`` array per lock, so that locks nest; every read and write is
one step, and the waits are the paper's plain loops.

Promises: mutual exclusion and first-come-first-served: a process that has stored its number
(``choosing = 1``, N reads, the store: N + 2 steps) is never passed by one that starts later,
which reads that number and so takes a larger one (ties go to the lower CPU). The declared
doorway is exactly that (``doorway_steps = N + 2``, set per run from the number of CPUs; the
class-level value is for 3). No timeouts, no deadlock detection, no interrupt handlers (a handler
would be another process sharing CPU i's slot).
"""

from __future__ import annotations

from lockfuzz import Capabilities, Cell, Context, Fairness, Machine, Status, Target

__all__ = ["BakeryLock", "capabilities_for"]


def capabilities_for(n_cpus: int) -> Capabilities:
    """FIFO after the doorway: the ``choosing`` store, ``n_cpus`` reads of ``number``, its store."""
    return Capabilities(fairness=Fairness(overtakes=0, doorway_steps=n_cpus + 2), interrupts=False)


class BakeryLock(Target):
    """Lamport's bakery: take a number one above every number seen, wait for every smaller one."""

    capabilities = capabilities_for(3)

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        n = machine.n_cpus
        self.n = n
        self.capabilities = capabilities_for(n)  # type: ignore[misc] # the doorway's length is the machine's
        self.choosing: list[list[Cell]] = [
            [machine.cell(f"L{lock}.choosing[{i}]") for i in range(n)] for lock in range(machine.n_locks)
        ]
        self.number: list[list[Cell]] = [
            [machine.cell(f"L{lock}.number[{i}]") for i in range(n)] for lock in range(machine.n_locks)
        ]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        i = ctx.cpu
        choosing, number = self.choosing[lock], self.number[lock]
        await choosing[i].store(1)
        highest = 0
        for j in range(self.n):
            highest = max(highest, await number[j].load())
        mine = highest + 1
        await number[i].store(mine)
        await choosing[i].store(0)
        for j in range(self.n):
            if j == i:
                continue
            while await choosing[j].load():
                pass
            while True:
                theirs = await number[j].load()
                if theirs == 0 or (mine, i) < (theirs, j):
                    break
        return Status.OK

    async def release(self, ctx: Context, lock: int) -> None:
        await self.number[lock][ctx.cpu].store(0)

    def check(self) -> list[str]:
        problems = []
        for lock in range(len(self.number)):
            for i in range(self.n):
                if self.number[lock][i].value or self.choosing[lock][i].value:
                    problems.append(f"L{lock}: CPU {i} still has a number or is still choosing")
        return problems
