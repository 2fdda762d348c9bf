"""Waiting: a context blocks on a cell, a set of cells or a deadline, and is woken.

A wait wakes on a change of value (``_wake``: a write that stores the value a cell already holds
wakes nobody), on its deadline (the heap ``Engine._heap``, shared by both drivers), or, for a
parked spinner (``_spinning``), on a change of any cell it read. When no context can run the
clock jumps to the earliest deadline (``_jump_clock``), as ``trio.testing.MockClock`` with
``autojump_threshold=0`` does. The ground truth's waiting clocks (``GroundTruth.retime``) are
restarted whenever a context blocks or wakes: who sleeps decides whether a lock is free for a
waiter.

``Waiting`` is a part of ``Engine`` (a mixin, so that the hot loop in ``_run`` reads alone).
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any, Callable

from ._events import CLOCK
from ._machine import WAIT_CELLS, Cell

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from .._oracles._truth import GroundTruth
    from ._context import Context
    from ._machine import Machine

__all__ = ["Waiting"]


class Waiting:
    """Blocking, waking and deadlines of ``Engine`` (module doc)."""

    # What it uses of the engine (declared for the type checker; ``Engine`` defines them).
    machine: Machine
    truth: GroundTruth
    events: list[tuple[Any, ...]]
    _heap: list[tuple[int, int, int, Context]]
    _seq: int
    _dirty: bool
    log: Callable[[Context | None, int, int, int], None]
    _hang: Callable[[], None]
    _spin_round: Callable[[bool], bool]

    def _block(self, ctx: Context, cell: Cell | None, deadline: int | None) -> None:
        ctx.blocked = True
        ctx.slept = self.machine.now  # when this wait began (``Context.end_wait``)
        ctx.token += 1
        ctx.waiting_on = cell
        if cell is not None:
            cell.waiters.append(ctx)
        if ctx.reads:  # a wait is not a spin: what it read before does not count
            ctx.reads = []
            ctx.last = {}
        self._deadline(ctx, deadline)

    def _deadline(self, ctx: Context, deadline: int | None) -> None:
        """``ctx`` has just blocked: note its deadline, if any."""
        ctx.deadline = deadline
        if deadline is not None:
            self._seq += 1
            heapq.heappush(self._heap, (deadline, self._seq, ctx.token, ctx))
        self._dirty = True
        if ctx.wait_hook is not None:  # on a timed deadlock cycle (``Context.wait_hook``)
            ctx.wait_hook(ctx)
        self.truth.waiter_moved(ctx)  # a waiter may now sleep on a free lock

    def _wait_cells(self, ctx: Context, req: tuple[Any, ...], now: int) -> bool:
        """A ``Machine.wait_until`` step: log it; block unless the predicate holds or the
        deadline passed (True if it blocked)."""
        cells, predicate, deadline = req[1], req[2], req[3]
        holds = bool(predicate(*[c.value for c in cells]))
        self.events.append((now, ctx.index, WAIT_CELLS, cells[0].index, int(holds)))
        if holds or (deadline is not None and now >= deadline):
            return False
        self._block(ctx, None, deadline)
        ctx.watching = cells
        for c in cells:
            c.waiters.append(ctx)
        return True

    def _unblock(self, ctx: Context) -> None:
        if ctx.expiry is not None:  # a marked timeout clock is armed (``Context.end_wait``)
            ctx.end_wait(self.machine.now)
        ctx.blocked = False
        ctx.woken_ns = self.machine.now
        ctx.deadline = None
        cell = ctx.waiting_on
        if cell is not None:
            ctx.waiting_on = None
            try:
                cell.waiters.remove(ctx)
            except ValueError:  # pragma: no cover - already removed by a wake
                pass
        if ctx.watching:
            for c in ctx.watching:
                c.waiters.remove(ctx)
            ctx.watching = ()
        ctx.spinning = False
        self._dirty = True
        if ctx.wait_hook is not None:
            ctx.wait_hook(ctx)
        self.truth.waiter_moved(ctx)

    def _wake(self, cell: Cell) -> None:
        """``cell`` changed value: bump its watches (each bump a change of the watch, which
        wakes its own waiters), then wake the waiters whose condition now holds."""
        for derived in cell.watches:
            derived.value = (derived.value + 1) & derived.mask
            if derived.waiters or derived.watches:
                self._wake(derived)
        if not cell.waiters:
            return
        value = cell.value
        woken: list[Context] = []
        for w in cell.waiters:
            if w.spinning:
                if value != w.seen[cell.index]:
                    woken.append(w)
            elif w.watching:
                if w.pending[2](*[c.value for c in w.watching]):
                    woken.append(w)
            elif w.pending[2](value):
                woken.append(w)
        for w in woken:
            if w.spinning:  # it sees something new: its earlier reads are no spin
                w.reads = []
                w.last = {}
                w.probes = 0
                w.probe_at = None
            self._unblock(w)

    def _expire(self) -> None:
        heap = self._heap
        now = self.machine.now
        while heap and heap[0][0] <= now:
            _, _, token, ctx = heapq.heappop(heap)
            if ctx.blocked and ctx.token == token:
                self._unblock(ctx)

    def _jump_clock(self) -> None:
        heap = self._heap
        while heap:
            deadline, _, token, ctx = heap[0]
            if ctx.blocked and ctx.token == token:
                break
            heapq.heappop(heap)
        if self._spin_round(bool(heap)):
            return
        if not heap:
            self._hang()
        self._jump_to(deadline)
        self._expire()

    def _jump_to(self, deadline: int) -> None:
        """No context can run: move the clock to ``deadline`` (if it is ahead), count the jump as
        the lock's own time (``Machine.jumped``) and log it. Both drivers jump only through here."""
        machine = self.machine
        if deadline > machine.now:
            machine.jumped += deadline - machine.now
            machine.now = deadline
            self.log(None, CLOCK, 0, deadline)

