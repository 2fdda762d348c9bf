"""The per-CPU table of held locks that the resilient locks keep (``struct rqspinlock_held`` in
include/asm-generic/rqspinlock.h: a count and RES_NR_HELD = 31 entries), for their models.

The entries' cells are made on first use, in order: an entry never made reads as NULL (0), which
is what it would hold. Most runs nest two or three acquisitions on a CPU; making all 31 entries
of every CPU's table up front took a fifth of an rqspinlock campaign's time. Each cell made joins
the watches the model counts its deadlock checks' inputs with (``Machine.extend_watch``).
"""

from __future__ import annotations

from typing import Any, Iterator

from lockfuzz import Cell, Machine

__all__ = ["RES_NR_HELD", "HeldTable"]

RES_NR_HELD = 31


class HeldTable:
    """One CPU's entries: ``table[i]`` is entry ``i``'s cell (made if need be); iterating
    yields the entries made so far."""

    __slots__ = ("cells", "cpu", "machine", "watches")

    def __init__(self, machine: Machine, cpu: int, watches: list[Cell]) -> None:
        self.machine, self.cpu, self.watches = machine, cpu, watches
        self.cells: list[Cell] = []

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):  # table[:3], as on the list it stands for (making what it names)
            return [self[k] for k in range(*i.indices(RES_NR_HELD))]
        cells = self.cells
        while len(cells) <= i:
            cell = self.machine.cell(f"cpu{self.cpu}.held[{len(cells)}]")
            for derived in self.watches:
                self.machine.extend_watch(derived, (cell,))
            cells.append(cell)
        return cells[i]

    def __iter__(self) -> Iterator[Cell]:
        return iter(self.cells)
