"""Per-CPU arrays of cells made as a run reaches them, for the models of the resilient locks.

``struct rqspinlock_held`` (include/asm-generic/rqspinlock.h) is a count and RES_NR_HELD = 31
entries per CPU; the queued lock has Q_MAX_NODES = 4 MCS nodes per CPU (one per context level).
Most runs nest two or three acquisitions on a CPU and use its first node only; making every
entry and node of every CPU up front took a fifth of an rqspinlock campaign's time. So the
cells of a ``CellArray`` are made on first use, in order: an entry never made reads as 0 (NULL,
unlocked, no successor), which is what it would hold. Each cell made joins the watches the
model counts its deadlock checks' inputs with (``Machine.extend_watch``), where it has any.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

from lockfuzz import Cell, Machine

__all__ = ["RES_NR_HELD", "CellArray", "held_table"]

RES_NR_HELD = 31


class CellArray:
    """``size`` cells named ``name(i)``: ``array[i]`` is cell ``i`` (made, with the cells before
    it, if need be); iterating yields the cells made so far."""

    __slots__ = ("cells", "machine", "name", "size", "watches")

    def __init__(self, machine: Machine, name: Callable[[int], str], size: int, watches: Sequence[Cell] = ()) -> None:
        self.machine, self.name, self.size, self.watches = machine, name, size, watches
        self.cells: list[Cell] = []

    def __getitem__(self, i: int | slice) -> Any:
        cells = self.cells
        if type(i) is int and 0 <= i < len(cells):  # made already: the usual case, first
            return cells[i]
        if isinstance(i, slice):  # array[:3], as on the list it stands for (making what it names)
            return [self[k] for k in range(*i.indices(self.size))]
        if not 0 <= i < self.size:
            raise IndexError(f"cell {i} of {self.size}")
        while len(cells) <= i:
            cell = self.machine.cell(self.name(len(cells)))
            for derived in self.watches:
                self.machine.extend_watch(derived, (cell,))
            cells.append(cell)
        return cells[i]

    def __iter__(self) -> Iterator[Cell]:
        return iter(self.cells)


def held_table(machine: Machine, cpu: int, watches: Sequence[Cell]) -> CellArray:
    """CPU ``cpu``'s held-locks entries, ``cpu{cpu}.held[i]``, joining ``watches``."""
    return CellArray(machine, lambda i: f"cpu{cpu}.held[{i}]", RES_NR_HELD, watches)
