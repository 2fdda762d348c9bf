"""The simulated machine: cells of shared memory, per-CPU state and the virtual clock.

Why coroutines that yield requests, and not trio tasks: a target's every shared-memory access
must be a scheduling point, and the prototype measurements in DESIGN.md show that stepping
coroutines directly (``coro.send``) costs about 1.1 us a step while contexts as trio tasks cost
3.5-12x that. So an access is a tiny generator-based coroutine (``types.coroutine``) that yields
a request tuple ``(op, cell, a, b)`` up through the target's ``await`` chain to the engine, which
decides who runs next and only then performs the access, atomically, and sends the result back.
The same idea as ``trio.lowlevel.wait_task_rescheduled``: the yield *is* the checkpoint.

Sequential consistency: each access sees every earlier access in the one global order the
schedule makes (weak memory is a later extension, see the rqspinlock spec).
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any, Callable, Generator, Sequence

from .._model._errors import InvalidArgument

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only
    from ._run import Context

__all__ = ["Cell", "Machine", "OP_NAMES"]

# Request codes. Memory operations come first so that the engine can index ``_MEMORY_OPS``.
LOAD, STORE, CMPXCHG, XCHG, FETCH_ADD, FETCH_OR, FETCH_AND, STORE_FIELD, XCHG_FIELD = range(9)
WAIT = 9  # wait until predicate(cell.value) or deadline: one step per evaluation
SLEEP = 10  # block until the clock reaches a deadline (work, back-off): no memory access
START = 11  # the first step of a context: nothing is accessed
CHECKPOINT = 12  # a scheduling point with no access (the program's step before a release)
WAIT_CELLS = 13  # wait until predicate(*values of several cells) or deadline: one step per evaluation
OP_NAMES = (
    "load", "store", "cmpxchg", "xchg", "fetch_add", "fetch_or", "fetch_and",
    "store_field", "xchg_field", "wait", "sleep", "start", "checkpoint", "wait_cells",
)  # fmt: skip


class Cell:
    """One word of simulated shared memory.

    Every method is a coroutine: ``await cell.load()``. Each access is one step and one
    scheduling point: the context yields *before* the access, and the access is atomic.
    Values are unsigned integers of ``width`` bits; arithmetic wraps, as on hardware.
    """

    __slots__ = ("index", "mask", "name", "value", "waiters", "watches")

    def __init__(self, index: int, name: str, value: int, width: int) -> None:
        self.index = index
        self.name = name
        self.mask = (1 << width) - 1
        self.value = value & self.mask
        self.waiters: list[Context] = []  # the contexts waiting on it
        #: The cells that count its changes (``Machine.watch``): bumped, in this order, before its
        #: waiters are woken, on every change of its value.
        self.watches: list[Cell] = []

    def __repr__(self) -> str:
        return f"<Cell {self.name}={self.value:#x}>"

    @types.coroutine
    def load(self) -> Generator[Any, Any, int]:
        return (yield (LOAD, self, 0, 0))

    @types.coroutine
    def store(self, value: int) -> Generator[Any, Any, None]:
        yield (STORE, self, value, 0)

    @types.coroutine
    def cmpxchg(self, old: int, new: int) -> Generator[Any, Any, int]:
        """Compare and exchange: store ``new`` if the value is ``old``; return the value seen
        (the kernel's ``atomic_cmpxchg``: success is ``returned == old``)."""
        return (yield (CMPXCHG, self, old, new))

    @types.coroutine
    def xchg(self, value: int) -> Generator[Any, Any, int]:
        return (yield (XCHG, self, value, 0))

    @types.coroutine
    def fetch_add(self, value: int) -> Generator[Any, Any, int]:
        return (yield (FETCH_ADD, self, value, 0))

    @types.coroutine
    def fetch_or(self, value: int) -> Generator[Any, Any, int]:
        return (yield (FETCH_OR, self, value, 0))

    @types.coroutine
    def fetch_and(self, value: int) -> Generator[Any, Any, int]:
        return (yield (FETCH_AND, self, value, 0))

    @types.coroutine
    def store_field(self, shift: int, width: int, value: int) -> Generator[Any, Any, None]:
        """Store to the bit field ``[shift, shift + width)`` alone, as a byte or half-word store
        does (rqspinlock writes its locked byte and its low 16 bits this way)."""
        yield (STORE_FIELD, self, (shift, width), value)

    @types.coroutine
    def xchg_field(self, shift: int, width: int, value: int) -> Generator[Any, Any, int]:
        """Exchange the bit field ``[shift, shift + width)``; return the whole previous word
        (rqspinlock's ``xchg_tail`` swaps bits 16-31 this way)."""
        return (yield (XCHG_FIELD, self, (shift, width), value))

    @types.coroutine
    def wait_until(
        self, predicate: Callable[[int], bool], deadline_ns: int | None = None
    ) -> Generator[Any, Any, int]:
        """Wait until ``predicate(value)`` holds or the clock reaches ``deadline_ns``.

        Returns the value last seen (the caller tells which of the two happened). Waiting costs
        one step per evaluation: one now, then one each time a write *changes* the value so that
        the predicate holds, or the deadline passes, so a spin that would take millions of loads
        takes a few steps. ``predicate`` must be a pure function of the value. Over several
        cells, use ``Machine.wait_until``.
        """
        return (yield (WAIT, self, predicate, deadline_ns))


def _load(cell: Cell, a: Any, b: Any) -> int:
    return cell.value


def _store(cell: Cell, a: int, b: Any) -> None:
    cell.value = a & cell.mask


def _cmpxchg(cell: Cell, old: int, new: int) -> int:
    seen = cell.value
    if seen == old:
        cell.value = new & cell.mask
    return seen


def _xchg(cell: Cell, a: int, b: Any) -> int:
    seen = cell.value
    cell.value = a & cell.mask
    return seen


def _fetch_add(cell: Cell, a: int, b: Any) -> int:
    seen = cell.value
    cell.value = (seen + a) & cell.mask
    return seen


def _fetch_or(cell: Cell, a: int, b: Any) -> int:
    seen = cell.value
    cell.value = seen | (a & cell.mask)
    return seen


def _fetch_and(cell: Cell, a: int, b: Any) -> int:
    seen = cell.value
    cell.value = seen & a
    return seen


def _store_field(cell: Cell, field: tuple[int, int], value: int) -> None:
    shift, width = field
    fmask = ((1 << width) - 1) << shift
    cell.value = (cell.value & ~fmask) | ((value << shift) & fmask)


def _xchg_field(cell: Cell, field: tuple[int, int], value: int) -> int:
    seen = cell.value
    _store_field(cell, field, value)
    return seen


MEMORY_OPS = (_load, _store, _cmpxchg, _xchg, _fetch_add, _fetch_or, _fetch_and, _store_field, _xchg_field)


@types.coroutine
def sleep_until(deadline_ns: int) -> Generator[Any, Any, None]:
    """Block the running context until the virtual clock reaches ``deadline_ns``."""
    yield (SLEEP, None, deadline_ns, 0)


@types.coroutine
def wait_cells(
    cells: tuple[Cell, ...], predicate: Callable[..., bool], deadline_ns: int | None
) -> Generator[Any, Any, tuple[int, ...]]:
    """See ``Machine.wait_until``."""
    yield (WAIT_CELLS, cells, predicate, deadline_ns)
    return tuple(c.value for c in cells)


@types.coroutine
def checkpoint() -> Generator[Any, Any, None]:
    """One step that touches nothing: a point where the scheduler may switch or interrupt."""
    yield (CHECKPOINT, None, 0, 0)


class Machine:
    """The simulated computer of one run: CPUs, cells, and the virtual clock.

    A target receives it in its constructor and allocates its cells there::

        self.word = [machine.cell(f"L{i}.val") for i in range(machine.n_locks)]
        self.held = machine.per_cpu(lambda cpu: machine.cell(f"cpu{cpu}.cnt"))

    ``now`` is the virtual time in nanoseconds: it advances by ``step_ns`` per step and jumps to
    the earliest deadline when every context waits (``trio.testing.MockClock`` with autojump).
    Reading it is free and is not a step, like ``ktime_get_mono_fast_ns()``.
    """

    __slots__ = ("capacities", "cells", "jumped", "n_cpus", "n_locks", "now", "step_ns")

    def __init__(self, *, n_cpus: int, n_locks: int, step_ns: int = 1, capacities: tuple[int, ...] = ()) -> None:
        if not isinstance(n_cpus, int) or n_cpus < 1:
            raise InvalidArgument(f"n_cpus={n_cpus!r}: expected an int >= 1")
        if not isinstance(n_locks, int) or n_locks < 1:
            raise InvalidArgument(f"n_locks={n_locks!r}: expected an int >= 1")
        if not isinstance(step_ns, int) or step_ns < 0:
            raise InvalidArgument(f"step_ns={step_ns!r}: expected an int >= 0")
        self.n_cpus = n_cpus
        self.n_locks = n_locks
        self.step_ns = step_ns
        self.now = 0
        #: Virtual time the clock has jumped, in all: time that passed while no context could run
        #: (every one waiting), as opposed to time passed in steps. A lock's own time: what a
        #: quiet lock is judged by (``Timeouts.max_quiet_ns``, ``way_out_ns``).
        self.jumped = 0
        self.cells: list[Cell] = []
        #: The program's capacity for each lock (``Program.capacities``), or empty.
        self.capacities = tuple(capacities)

    def capacity(self, lock: int, default: int) -> int:
        """How many holders ``lock`` admits in this run's program (``Program.capacities``), or
        ``default`` when the program gives none: what a target built with a capacity per lock
        (``Sharing.capacity_range``) makes each lock with, e.g. ``trio.Semaphore(machine.capacity(i, 2))``."""
        return self.capacities[lock] if self.capacities else default

    def cell(self, name: str, value: int = 0, *, width: int = 32) -> Cell:
        """Allocate a cell of ``width`` bits holding ``value``."""
        if not isinstance(width, int) or not 1 <= width <= 64:
            raise InvalidArgument(f"width={width!r}: expected an int from 1 to 64")
        c = Cell(len(self.cells), name, value, width)
        self.cells.append(c)
        return c

    def wait_until(
        self, cells: Sequence[Cell], predicate: Callable[..., bool], deadline_ns: int | None = None
    ) -> Any:
        """``await machine.wait_until([a, b], lambda a, b: ...)``: wait until
        ``predicate(a.value, b.value, ...)`` holds or the clock reaches ``deadline_ns``.

        The wait over several cells that ``Cell.wait_until`` is over one: one step now, then one
        each time a write changes one of ``cells`` so that the predicate holds (or the deadline
        passes). Returns the values seen at that step, in the order of ``cells``. For example a
        Peterson-style waiter, which may enter when the other side is not interested *or* it is
        not its turn to wait::

            await machine.wait_until([flag[other], turn], lambda f, t: f == 0 or t != me)
        """
        cells = tuple(cells)
        if not cells or not all(isinstance(c, Cell) for c in cells):
            raise InvalidArgument(f"cells={cells!r}: expected one or more lockfuzz cells")
        return wait_cells(cells, predicate, deadline_ns)

    def watch(self, name: str, cells: Sequence[Cell]) -> Cell:
        """A cell that counts the changes of ``cells``: a modelling device, not memory.

        The engine adds 1 to it (wrapping at 32 bits) whenever a write changes the value of one
        of ``cells`` (a store of the value a cell already holds changes nothing and counts
        nothing), with no step of its own, and wakes whoever waits on it. Reading its ``value``
        directly is free, and so is the bookkeeping: a context that waits on it (``wait_until``,
        one step per wake-up) learns that something it depends on has changed. rqspinlock uses
        one to skip the deadlock checks whose inputs (the lock word, the held tables) did not
        change since the last check, and to sleep through them: such a check would read the same
        values and return the same, so its waiter waits on the watch, with its timeout as the
        deadline, and reads ``Context.woken_ns`` (when the change woke it) to place its next
        check where the kernel's polling loop would. Use it where a wait depends on more cells
        than a predicate should name; for a condition over a few cells, ``Machine.wait_until``
        says it directly.
        """
        derived = self.cell(name)
        self.extend_watch(derived, cells)
        return derived

    def extend_watch(self, derived: Cell, cells: Sequence[Cell]) -> None:
        """Count the changes of ``cells`` too in ``derived`` (a cell ``watch`` returned): for
        state made as a run needs it (rqspinlock's held-table entries)."""
        for c in cells:
            c.watches.append(derived)

    def per_cpu(self, factory: Callable[[int], Any]) -> list[Any]:
        """``[factory(cpu) for cpu in range(n_cpus)]``: per-CPU state, shared by the contexts of
        one CPU (and readable by other CPUs, as the kernel's per-CPU data is)."""
        return [factory(cpu) for cpu in range(self.n_cpus)]

    @staticmethod
    def sleep_until(deadline_ns: int) -> Any:
        """``await machine.sleep_until(t)``: block the running context until time ``t``."""
        return sleep_until(deadline_ns)
