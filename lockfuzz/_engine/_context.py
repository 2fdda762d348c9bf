"""A context (a CPU's task, or an interrupt handler above it) and what one run produced.

A context is what targets see as ``ctx``: where it runs (``cpu``, ``level``), the virtual time,
and ``mark`` for the ground truth. The rest of its fields are the engine's bookkeeping: its
coroutine, what it waits on, and what spin detection (``_spinning``) has seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .._model._errors import Violation
from .._model._status import Level, Mark
from ._events import Trace
from ._machine import START, Cell, Machine

__all__ = ["Context", "RunResult"]


class Context:
    """A context on a CPU: its task, or an interrupt handler running above it.

    Targets read ``cpu``, ``level`` (a ``Level``), ``name``, ``now`` (the virtual time) and
    ``woken_ns``: when its last wait ended, i.e. the time of the write that made its condition
    hold, or of the deadline. It runs again at that time or later (other contexts may run first,
    or a handler above it), so ``now`` after a wait can be later than ``woken_ns``: a waiter that
    models a periodic poll (rqspinlock's deadlock checks) reads it to tell which of its polls
    came before the change and which after (see ``Machine.watch``).
    """

    __slots__ = (
        "blocked", "budget_scope", "coro", "cpu", "deadline", "done", "engine", "expiry", "handler", "index", "last",
        "late", "level", "looked", "machine", "name", "opening", "park", "pending", "probe_at", "probes", "reads",
        "seen", "shielded", "slept", "spin_at", "spinning", "states", "states_of", "steps", "still", "token", "top",
        "wait_hook", "waiting_on", "watching", "woken_ns",
    )  # fmt: skip

    def __init__(self, index: int, name: str, cpu: int, level: Level, machine: Machine, handler: int) -> None:
        self.index = index
        self.name = name
        self.cpu = cpu
        self.level = level
        self.machine = machine
        self.engine: Any = None  # the engine running it (set when the engine makes it)
        self.handler = handler  # index in its CPU's handlers, -1 for the task
        self.coro: Any = None
        self.pending: tuple[Any, ...] = (START, None, 0, 0)
        self.blocked = False
        self.done = False
        self.top = False
        self.steps = 0
        # Its attempt whose first step is still to come, where the ground truth settles arrival
        # there (``GroundTruth.opened``); None otherwise, so the hot loop tests one field.
        self.opening: Any = None
        self.token = 0  # invalidates stale deadline-heap entries
        self.deadline: int | None = None
        self.waiting_on: Cell | None = None
        self.woken_ns = 0  # when its last wait ended (class doc)
        # Spin detection (module doc): the keys (op, cell, value) of its steps that changed
        # nothing since it last made progress, and where each key last occurred.
        self.reads: list[tuple[int, int, int]] = []
        self.last: dict[tuple[int, int, int], int] = {}
        self.spinning = False  # parked: its last steps repeated, changing nothing
        self.seen: dict[int, int] = {}  # a spinner's cells (by index) and the values it read
        self.probes = 0  # a spinner past its acquisition's time: wake-ups at doubling intervals
        self.probe_at: int | None = None  # ... and when the next one is due
        # Its loop states at its parks (``_spinning``, "Counting loops"): (len(reads), state) for
        # the spin whose reads list is ``states_of``; ``still``: whether its loop leaves its state
        # as it was after a period (None: not seen a whole period yet).
        self.states: list[tuple[int, tuple[Any, ...]]] = []
        self.states_of: list[tuple[int, int, int]] | None = None
        self.still: bool | None = None
        self.watching: tuple[Cell, ...] = ()  # the cells whose change wakes it (spin, wait_cells)
        self.park = 0  # the trio driver: a spin found in its step, to park it at its next request
        # Own time past a marked timeout (``Timeouts.late_ns``): when the acquisition's armed clock
        # runs out (None: no armed clock), the lateness counted so far, and when its current wait
        # began. Kept when a wait ends (``end_wait``), so that nothing is done per step.
        self.expiry: int | None = None
        self.late = 0
        self.slept = 0
        # The step at which it first read the time (``now``) past its armed clock's end, or -1:
        # a check of its clock, which must give up at that step (``Timeouts.late_ns``).
        self.looked = -1
        self.spin_at = -1  # the trio driver: parked at a trio checkpoint until ``changes`` moves
        # The trio driver: the cancel scope of the acquisition's budget (``trio_budget``), until
        # its expiry is marked (at the wake its deadline caused, or on the way out).
        self.budget_scope: Any = None
        # The trio driver: its current wait in trio is out of every deadline's reach (a shield).
        self.shielded = False
        # Called with it whenever it blocks or wakes, while it is on a deadlock cycle that an
        # oracle times (``edeadlk_complete``: the cycle's clock runs only while all of it waits).
        self.wait_hook: Callable[[Context], None] | None = None

    @property
    def now(self) -> int:
        """The virtual time. Reading it is looking at the clock: a waiter with a marked timeout
        clock (``Mark.ARMED``) that reads a time past its end gives up at that step
        (``Mark.EXPIRED``), or it is late (``Timeouts.late_ns``); bookkeeping of a model that
        is no check of its clock reads ``machine.now``."""
        now = self.machine.now
        expiry = self.expiry
        if expiry is not None and now >= expiry and self.looked < 0:
            self.looked = self.steps
        return now

    @property
    def in_nmi(self) -> bool:
        return self.level == Level.NMI

    def end_wait(self, now: int) -> None:
        """A wait of this context, whose acquisition armed a marked timeout (``Mark.ARMED``), ends
        at ``now``: add to its lateness (``Timeouts.late_ns``) what of the wait, and of the step it
        polls with on waking, came after its clock ran out (``expiry``). Only a timed wait counts:
        one with no deadline waits for another context's write, and a parked spinner's deadline
        is the engine's, not the target's. Time it then spends runnable but not scheduled, or
        under a handler, is not counted: the poll's step is counted as if taken at once. Called by
        the engine when the wait ends (``_waiting``), so nothing is done per step."""
        expiry = self.expiry
        if self.deadline is None or self.spinning or expiry is None:
            return
        over = now + self.machine.step_ns - max(self.slept, expiry)
        if over > 0:
            self.late += over

    def mark(self, what: Mark, lock: int) -> None:
        """Tell the ground truth what the step just taken did (a ``Mark``: the lock taken, the
        pending bit set, the queue head reached), inside an acquisition of ``lock``. No step
        of its own; see ``Mark``."""
        self.engine.mark(self, what, lock)

    def __repr__(self) -> str:
        return f"<Context {self.name}>"


@dataclass
class RunResult:
    """What one run produced."""

    trace: Trace
    violation: Violation | None
    decisions: list[int]
    branching: list[int]  # the number of options at each decision point
    steps: int
    time_ns: int
    features: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.violation is None

    @property
    def preemptions(self) -> int:
        return sum(1 for d in self.decisions if d)

