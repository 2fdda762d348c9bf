"""The engine: one run of (target, program, schedule) on a fresh machine.

Design rationale
----------------
The hot loop steps contexts directly with ``coro.send`` (DESIGN.md: "Measured costs"): a
context is a coroutine that yields one request per shared-memory access (see ``_machine``).
Between two accesses the engine asks its *decision source* what happens next, but only at a
*decision point*, where more than one thing could: another context could run, or an interrupt
could fire. Decision ``d`` at a point with ``n`` options means:

- ``0``: keep running the current context, fire nothing (when the current context cannot run,
  ``0`` is the next runnable context after it in CPU order, round robin);
- ``1 .. r-1``: switch to the other runnable contexts, in CPU order (``r`` = runnable count);
- ``r .. n-1``: fire an interrupt handler, in (CPU, handler) order, on a CPU whose current
  context runs at a lower level; the handler runs at once, its CPU's context waits for it.

When no context can run, option 0 lets the clock jump to the earliest deadline (as
``trio.testing.MockClock(autojump_threshold=0)`` does) and options ``1 ..`` fire handlers.
On the trio driver, with ``Settings.cancels``, the last options of a point cancel a call into
the target (one per context stopped at a trio checkpoint inside ``acquire`` or ``release``, in
context order): ``options()`` names them ``("cancel", name)``.

A source that returns ``None`` has run out: the engine's fair default then keeps the current
context for at most ``fair_slice`` consecutive steps, so that plain spinning ends too. Every
decision taken (the source's and the default's) is recorded: replaying that list gives the
same trace, which is how schedules are minimised and saved.

Spinning is waiting (DESIGN.md, "Oracles"). A context whose recent steps changed nothing
(loads, and read-modify-writes that left the value as it was) and repeat, step for step and value
for value, the ones just before them, twice (``SPIN_REPEATS``), is *spinning*: a plain ``while
await flag.load(): pass`` after its third load, a test-and-set loop after its third failed
``xchg``. The engine parks it, as if it waited on the cells it read: it runs again when one of
them changes, when its acquisition's time is up (its budget, or a fixed timeout's shortest wait,
then at doubling intervals, so that a spinner that reads the clock gives up on time), or when
nothing else can run: then every parked spinner gets one step (a *round*), because the engine
cannot see a context's local variables and a loop that re-reads memory may still be counting
towards its end. Only when a round changed nothing does the clock jump; with no deadline either,
a few more rounds (``SPIN_ROUNDS``), then the run hangs, and the hang report names what each
spinner re-reads. So a spinner behind a hold of any length costs a few steps, and the step limit
means a livelock: steps that change things, for ever.

Each run of the engine is a pure function of (target class and parameters, program,
decisions, settings): nothing reads the real clock, ``hash()`` or ``id()``.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from .._model._errors import InvalidArgument, Violation
from ._events import ACQUIRED, CANCEL, CLOCK, DONE, FINAL, IRQ_ENTER, IRQ_EXIT, MARK, Trace
from . import _watchdog
from ._interpreter import PASS_THROUGH, run_line
from .._oracles import default_oracles
from .._oracles._truth import GroundTruth
from ._machine import MEMORY_OPS, SLEEP, START, WAIT, WAIT_CELLS, Cell, Machine, Watch
from .._model._program import Handler, Lock, OnError, Program, Unlock
from .._model._status import Level, Mark, Status

__all__ = ["Context", "DecisionSource", "Engine", "RunResult", "Settings", "run"]


class DecisionSource(Protocol):
    """Where decisions come from (a schedule, a random walk, PCT, Hypothesis...).

    ``choose(n, engine)`` is called at each decision point with ``n >= 2`` options and returns
    an int in ``[0, n)`` (larger values are taken modulo ``n``) or ``None`` when the source has
    no more decisions, after which the engine's fair default decides. ``engine.options()``
    describes the options, for sources that care which is which (PCT does).
    """

    def choose(self, n: int, engine: Engine) -> int | None: ...  # pragma: no cover


class Schedule:
    """A decision source that replays a list of decisions, then lets the fair default run."""

    __slots__ = ("decisions", "position")

    def __init__(self, decisions: Sequence[int] = ()) -> None:
        self.decisions = list(decisions)
        for d in self.decisions:
            if not isinstance(d, int) or d < 0:
                raise InvalidArgument(f"schedule decision {d!r}: expected an int >= 0")
        self.position = 0

    def choose(self, n: int, engine: Engine) -> int | None:
        i = self.position
        if i < len(self.decisions):
            self.position = i + 1
            return self.decisions[i]
        return None


@dataclass(frozen=True)
class Settings:
    """Machine settings of a run (saved in failure files)."""

    step_ns: int = 1
    max_steps: int = 500_000
    fair_slice: int = 64
    final_check: bool = True
    final_budget_ns: int = 10_000_000_000
    #: Cancellation decisions (the trio driver only): at each of trio's checkpoints inside a
    #: target's ``acquire`` or ``release``, the schedule may cancel the call's scope, as a
    #: nursery being cancelled would. Failure files written before these decisions existed
    #: have no ``cancels`` key and replay with it off (``from_json``).
    cancels: bool = True

    def __post_init__(self) -> None:
        for name in ("step_ns", "max_steps", "fair_slice", "final_budget_ns"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (0 if name == "step_ns" else 1):
                raise InvalidArgument(f"{name}={v!r}: expected an int >= {0 if name == 'step_ns' else 1}")
        if not isinstance(self.cancels, bool):
            raise InvalidArgument(f"cancels={self.cancels!r}: expected True or False")

    def to_json(self) -> dict[str, Any]:
        keys = ("step_ns", "max_steps", "fair_slice", "final_check", "final_budget_ns", "cancels")
        return {k: getattr(self, k) for k in keys}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        return cls(**{"cancels": False, **data})  # older files: no cancellation decisions


_DEFAULT_SETTINGS = Settings()
_STATUS_CODES = tuple(int(s) for s in Status)
#: Rounds (every parked spinner one step) in a row that change nothing and have no deadline to
#: jump to, before the run is a hang: room for a loop that re-reads memory a bounded number of
#: times (a delay loop) to end, when nothing else can run.
SPIN_ROUNDS = 64
#: How many times in a row a context must go round the same loop of steps that change nothing
#: before it is parked as a spinner: three, so that code which merely reads a value twice (a
#: check that re-reads a word, a scan) runs on and is not parked in the middle of what it does.
SPIN_REPEATS = 3
#: A context's no-change steps kept for spin detection; a longer run of them starts afresh.
_MAX_READS = 512


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
        "blocked", "coro", "cpu", "deadline", "done", "engine", "handler", "index", "last", "level", "machine",
        "name", "park", "pending", "probes", "reads", "seen", "spin_at", "spinning", "steps", "token", "top",
        "waiting_on", "watching", "woken_ns",
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
        self.watching: tuple[Cell, ...] = ()  # the cells whose change wakes it (spin, wait_cells)
        self.park = 0  # the trio driver: a spin found in its step, to park it at its next request
        self.spin_at = -1  # the trio driver: parked at a trio checkpoint until ``changes`` moves

    @property
    def now(self) -> int:
        return self.machine.now

    @property
    def in_nmi(self) -> bool:
        return self.level == Level.NMI

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


class _Stop(Exception):
    """Internal: the run ended (every line finished)."""


class Engine:
    """One run. Use ``lockfuzz.run(...)``; the engine object is what sources and oracles see."""

    def __new__(cls, target_cls: Any = None, *args: Any, **kwargs: Any) -> Engine:
        # Targets written over trio itself (``driver = "trio"``) run on the trio driver, where
        # each trio checkpoint is a decision: same decisions, same events, same oracles.
        if cls is Engine and getattr(target_cls, "driver", None) == "trio":
            from .._trio._driver import TrioEngine

            cls = TrioEngine
        return super().__new__(cls)

    def __init__(
        self,
        target_cls: Any,
        program: Program,
        source: DecisionSource | None = None,
        settings: Settings | None = None,
        *,
        params: dict[str, Any] | None = None,
        oracles: Sequence[Any] | None = None,
    ) -> None:
        if not isinstance(program, Program):
            raise InvalidArgument(f"program={program!r}: expected a lockfuzz.Program")
        self.program = program
        self.settings = settings or _DEFAULT_SETTINGS
        self.source: DecisionSource = source if source is not None else Schedule()
        self.machine = Machine(
            n_cpus=program.n_cpus, n_locks=program.n_locks, step_ns=self.settings.step_ns, capacities=program.capacities
        )
        self.target_cls = target_cls
        self.params = dict(params or {})
        self.events: list[tuple[Any, ...]] = []
        self.decisions: list[int] = []
        self.branching: list[int] = []
        self.contexts: list[Context] = []
        self.stacks: list[list[Context]] = [[] for _ in program.cpus]
        self.unfired: list[list[int]] = [list(range(len(cp.handlers))) for cp in program.cpus]
        self.steps = 0
        #: Progress: changes of memory and non-step events. A spin round whose steps left it as
        #: it was changed nothing (module doc).
        self.changes = 0
        self._round_at = -1
        self._rounds = 0
        self.phase = "run"
        self._heap: list[tuple[int, int, int, Context]] = []
        self._seq = 0
        self._dirty = True
        self._runnable: list[Context] = []
        self._fireable: list[tuple[int, int]] = []
        #: The contexts the schedule may cancel at this decision (the trio driver's, after the
        #: fireable handlers in decision order; ``Settings.cancels``): always empty here.
        self._cancelable: list[Context] = []
        #: Whether the interpreter runs target calls in cancel scopes (the trio driver).
        self.cancels = False
        self.cur: Context | None = None
        self.run_len = 0
        if oracles is None:
            oracles = default_oracles()
        self.oracles = list(oracles)
        self.truth = GroundTruth(self)
        self._truth: list[Any] = [None] * (CANCEL + 1)
        for kind, method in self.truth.handlers().items():
            self._truth[kind] = method
        # Observers per event kind (a shared empty tuple until an oracle asks for the kind), and
        # per status for ACQUIRED, the most frequent event.
        self._dispatch: list[Any] = [()] * (CANCEL + 1)
        self._acquired: dict[int, list[Callable[..., None]]] = {s: [] for s in _STATUS_CODES}
        self.target: Any = None
        #: What the oracles hold the target to: the instance's, which may depend on its parameters.
        self.capabilities = target_cls.capabilities
        limit = getattr(self.capabilities, "max_cpus", None)
        if limit is not None and program.n_cpus > limit:
            raise InvalidArgument(
                f"the program has {program.n_cpus} CPUs; {target_cls.__name__} is written for at most "
                f"{limit} (Capabilities.max_cpus)"
            )

    # -- called by the interpreter and the oracles ----------------------------------------
    def log(self, ctx: Context | None, kind: int, obj: int, value: int) -> None:
        """Append a non-step event and show it to every oracle (which may raise Violation)."""
        events = self.events
        index = len(events)
        events.append((self.machine.now, ctx.index if ctx is not None else -1, kind, obj, value))
        self.changes += 1
        if ctx is not None and ctx.reads:
            ctx.reads = []  # its line moved on: what it read before is no spin
            ctx.last = {}
        truth = self._truth[kind]
        if truth is not None:
            truth(index, ctx, obj, value)
        for observe in self._acquired[value] if kind == ACQUIRED else self._dispatch[kind]:
            observe(self, index, ctx, kind, obj, value)

    def mark(self, ctx: Context, what: Mark, lock: int) -> None:
        """``Context.mark``: checked, then logged as a ``MARK`` event for the ground truth."""
        attempt = self.truth.attempts.get(ctx.index)
        if not isinstance(what, Mark) or attempt is None or attempt.lock != lock:
            raise Violation(
                "target-fault", "bad-mark",
                f"{ctx.name} marked {what!r} on L{lock}, but a mark must be a lockfuzz.Mark made inside an "
                f"acquisition of that lock ({'none' if attempt is None else f'it is acquiring L{attempt.lock}'})",
                contexts=(ctx.name,), locks=(lock,), time_ns=self.machine.now,
            )
        self.log(ctx, MARK, lock, int(what))

    async def call(
        self, ctx: Context, lock: int, budget_ns: int | None, shared: bool = False
    ) -> Any:  # pragma: no cover - trio's
        """A call into the target in a cancel scope (the trio driver's, when ``cancels``)."""
        raise NotImplementedError

    def cut(self, ctx: Context) -> bool:  # pragma: no cover - the trio driver's
        """Whether the schedule cancelled ``ctx``'s line (never, here)."""
        return False

    def options(self) -> list[tuple[Any, ...]]:
        """The options at the current decision point, in decision order (for sources)."""
        if self._dirty:
            self._refresh()
        cur = self.cur
        runnable = self._runnable
        if not runnable:
            ordered: list[tuple[Any, ...]] = [("wait",)]
        elif cur is not None and cur.top and not cur.blocked:
            ordered = [("run", cur.name)] + [("run", c.name) for c in runnable if c is not cur]
        else:
            ordered = [("run", c.name) for c in self._rotation(runnable)]
        for cpu, h in self._fireable:
            ordered.append(("fire", cpu, str(self.program.cpus[cpu].handlers[h].level), h))
        for c in self._cancelable:
            ordered.append(("cancel", c.name))
        return ordered

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> RunResult:
        with _watchdog.guard(self):  # a step that never yields is a finding (_watchdog)
            return self._run()

    def _run(self) -> RunResult:
        violation: Violation | None = None
        try:
            try:
                self.target = self._make_target()
            except PASS_THROUGH:
                raise
            except BaseException as exc:  # noqa: BLE001 - SystemExit included: the target's fault
                if isinstance(exc, _watchdog.NoYield):
                    raise _no_yield("the target's constructor", exc) from exc
                raise Violation(
                    "target-fault", f"raised-{type(exc).__name__}",
                    f"the target's constructor raised {type(exc).__name__}: {exc}",
                ) from exc
            self.capabilities = getattr(self.target, "capabilities", None) or self.target_cls.capabilities
            self._check_modes()
            self.truth.start()
            for oracle in self.oracles:
                oracle.start(self)
            for oracle in self.oracles:
                for kind in oracle.kinds:
                    if kind == ACQUIRED:
                        wanted = getattr(oracle, "statuses", None)
                        for status, observers in self._acquired.items():
                            if wanted is None or status in wanted:
                                observers.append(oracle.observe)
                    elif self._dispatch[kind]:
                        self._dispatch[kind].append(oracle.observe)
                    else:
                        self._dispatch[kind] = [oracle.observe]
            for cpu, cp in enumerate(self.program.cpus):
                self._push(self._new_context(cpu, Level.TASK, -1, cp.task))
            self._loop()
            for oracle in self.oracles:
                oracle.finish(self)
            if self.settings.final_check:
                self._final_check()
        except (Violation, _watchdog.NoYield) as exc:
            v = exc if isinstance(exc, Violation) else _no_yield("the run", exc)
            if v.event_index < 0:
                v.event_index = len(self.events) - 1
            if not v.time_ns:
                v.time_ns = self.machine.now
            violation = v
        finally:
            self._close_all()
        trace = Trace(
            events=self.events,
            contexts=[c.name for c in self.contexts],
            cells=[c.name for c in self.machine.cells],
        )
        features: dict[str, Any] = {}
        for oracle in self.oracles:
            features.update(getattr(oracle, "features", None) or {})
        return RunResult(trace, violation, self.decisions, self.branching, self.steps, self.machine.now, features)

    def _make_target(self) -> Any:
        return self.target_cls(self.machine, **self.params)

    def _check_modes(self) -> None:
        check_modes(self.program, self.capabilities, self.target_cls.__name__)

    def _new_context(
        self, cpu: int, level: Level, handler: int, ops: tuple[Any, ...], on_error: OnError | None = None
    ) -> Context:
        if handler < 0:
            name = f"cpu{cpu}.{'final' if self.phase == 'final' else 'task'}"
        else:
            name = f"cpu{cpu}.{level}#{handler}"
        ctx = Context(len(self.contexts), name, cpu, level, self.machine, handler)
        ctx.engine = self
        ctx.coro = run_line(self, ctx, ops, on_error or self.program.on_error)
        self.contexts.append(ctx)
        return ctx

    def _push(self, ctx: Context) -> None:
        stack = self.stacks[ctx.cpu]
        if stack:
            stack[-1].top = False
        stack.append(ctx)
        ctx.top = True
        self._dirty = True

    def _refresh(self) -> None:
        self._runnable = [s[-1] for s in self.stacks if s and not s[-1].blocked]
        fireable: list[tuple[int, int]] = []
        if self.phase == "run":
            cpus = self.program.cpus
            for cpu, stack in enumerate(self.stacks):
                if stack and self.unfired[cpu]:
                    level = stack[-1].level
                    handlers = cpus[cpu].handlers
                    fireable.extend((cpu, h) for h in self.unfired[cpu] if handlers[h].level > level)
        self._fireable = fireable
        self._dirty = False

    def _rotation(self, runnable: list[Context]) -> list[Context]:
        after = self.cur.cpu if self.cur is not None else -1
        for i, c in enumerate(runnable):
            if c.cpu > after:
                return runnable[i:] + runnable[:i]
        return runnable

    def _fair_default(self, cur_ok: bool, nr: int, run_len: int) -> int:
        if not cur_ok or run_len < self.settings.fair_slice or nr < 2:
            return 0
        # Switch to the next runnable context after the current one in CPU order.
        cur = self.cur
        others = [c for c in self._runnable if c is not cur]
        for i, c in enumerate(others):
            if c.cpu > cur.cpu:  # type: ignore[union-attr]
                return i + 1
        return 1

    def _loop(self) -> None:  # noqa: C901 - the hot loop is kept in one piece on purpose (speed)
        machine = self.machine
        append = self.events.append
        ops = MEMORY_OPS
        step_ns = self.settings.step_ns
        max_steps = self.settings.max_steps
        choose = self.source.choose
        decisions = self.decisions.append
        branching = self.branching.append
        heap = self._heap
        steps = self.steps
        run_len = self.run_len
        cur: Any = self.cur  # a Context once the first step is taken (typed loosely: hot loop)
        # What the decision depends on (runnable contexts, fireable handlers) only changes when
        # a context blocks, wakes, starts or ends (``_dirty``) or the current one changes.
        runnable: list[Context] = []
        fireable: list[tuple[int, int]] = []
        nr = n = 0
        d: Any = 0
        cur_ok = False
        stale = True
        try:
            while True:
                if stale or self._dirty:
                    if self._dirty:
                        self._refresh()
                    runnable = self._runnable
                    fireable = self._fireable
                    nr = len(runnable)
                    cur_ok = cur is not None and cur.top and not cur.blocked
                    n = (nr or 1) + len(fireable)
                    stale = False
                if n > 1:
                    d = choose(n, self)
                    if d is None:
                        d = self._fair_default(cur_ok, nr, run_len)
                    elif d >= n:
                        d %= n
                    decisions(d)
                    branching(n)
                else:
                    d = 0
                if nr == 0 or d >= nr:
                    if nr and d >= nr:
                        self._fire(*fireable[d - nr])
                    elif d:
                        self._fire(*fireable[d - 1])
                    elif not any(self.stacks):
                        return
                    else:
                        self._jump_clock()
                    cur = self.cur
                    run_len = 0
                    stale = True
                    continue
                if not cur_ok:
                    # Round robin from the CPU after the current one's (``_rotation``), without a list.
                    after = cur.cpu if cur is not None else -1
                    first = 0
                    while first < nr and runnable[first].cpu <= after:
                        first += 1
                    cur = runnable[(first + d) % nr]
                    self.cur = cur
                    run_len = 0
                    cur_ok = True  # it is runnable: nothing else about the decision point changed
                elif d:
                    i = d - 1
                    if i >= runnable.index(cur):
                        i += 1  # the options skip the current context
                    cur = runnable[i]
                    self.cur = cur
                    run_len = 0
                run_len += 1
                steps += 1
                if steps > max_steps:
                    self._livelock()
                # The step. TrioEngine._step performs the same step as a method, once per
                # decision; here it stays inlined: a method call would add about a tenth to a step's
                # cost. The differential test (tests/fast/test_trio_driver.py) keeps them equal.
                now = machine.now + step_ns
                machine.now = now
                if heap and heap[0][0] <= now:
                    self._expire()
                cur.steps += 1
                req = cur.pending
                op = req[0]
                spin = 0
                if op < WAIT:
                    cell = req[1]
                    old = cell.value
                    res = ops[op](cell, req[2], req[3])
                    append((now, cur.index, op, cell.index, cell.value if res is None else res))
                    if cell.value != old:  # a change: wake waiters, bump watches
                        self.changes += 1
                        if cell.waiters:
                            self._wake(cell)
                        if cur.reads:
                            cur.reads = []
                            cur.last = {}
                    else:  # it changed nothing: is the context going round in a loop?
                        key = (op, cell.index, old)
                        reads = cur.reads
                        j = cur.last.get(key)
                        cur.last[key] = len(reads)
                        reads.append(key)
                        if j is not None:
                            spin = self._repeats(cur, j)
                else:
                    if cur.reads:  # a wait, a sleep, a step of its line: what it read is no spin
                        cur.reads = []
                        cur.last = {}
                    if op == WAIT:
                        cell = req[1]
                        res = cell.value
                        append((now, cur.index, op, cell.index, res))
                        deadline = req[3]
                        if not req[2](res) and (deadline is None or now < deadline):
                            self._block(cur, cell, deadline)
                            continue
                    elif op == SLEEP:
                        res = None
                        append((now, cur.index, op, -1, req[2]))
                        if now < req[2]:
                            self._block(cur, None, req[2])
                            continue
                    elif op == WAIT_CELLS:
                        res = None  # the waiting coroutine reads the values itself (``wait_cells``)
                        if self._wait_cells(cur, req, now):
                            continue
                    else:  # START, CHECKPOINT
                        res = None
                        append((now, cur.index, op, -1, 0))
                try:
                    pending = cur.pending = cur.coro.send(res)
                except StopIteration:
                    self._finish(cur)
                    continue
                if type(pending) is not tuple:
                    self._foreign(cur)
                if spin:
                    self._park(cur, spin)
        finally:
            self.steps = steps

    # -- helpers off the hot path -------------------------------------------------------------
    def _foreign(self, ctx: Context) -> None:
        raise Violation(
            "target-fault", "foreign-await",
            f"the target awaited {ctx.pending!r}; a target over cells may only await lockfuzz cell "
            "operations and machine.sleep_until (use the trio driver for trio code)",
            contexts=(ctx.name,), time_ns=self.machine.now,
        )

    def _block(self, ctx: Context, cell: Cell | None, deadline: int | None) -> None:
        ctx.blocked = True
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
        if self.truth.attempts:
            self.truth.retime()  # an attempt may now sleep on a free lock

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

    # -- spinning (module doc) ---------------------------------------------------------------------
    @staticmethod
    def _repeats(ctx: Context, j: int) -> int:
        """The no-change step just taken occurred before at ``j``: if the steps since then
        repeat the ones before them, value for value, the length of that loop, else 0."""
        reads = ctx.reads
        i = len(reads) - 1
        p = i - j
        if j + 1 >= (SPIN_REPEATS - 1) * p:
            loop = reads[j + 1 :]
            if all(reads[j + 1 - k * p : i + 1 - k * p] == loop for k in range(1, SPIN_REPEATS)):
                return p
        if i >= _MAX_READS:
            ctx.reads = []
            ctx.last = {}
        return 0

    def _park(self, ctx: Context, period: int) -> None:
        """Park a spinner whose last ``period`` steps repeat: blocked until a cell it read in
        its loop changes, its acquisition's time is up, or a spin round (``_spin_round``)."""
        if len(ctx.reads) < SPIN_REPEATS * period:
            return  # its line moved on after that step (an event, a wait): no longer spinning
        seen = {index: value for _, index, value in ctx.reads[-period:] if index >= 0}
        cells = self.machine.cells
        if any(cells[i].value != v for i, v in seen.items()):
            return  # changed since it was read: it will see that at its next step
        ctx.blocked = True
        ctx.spinning = True
        ctx.token += 1
        ctx.seen = seen
        ctx.watching = tuple(cells[i] for i in seen)
        for c in ctx.watching:
            c.waiters.append(ctx)
        self._deadline(ctx, self._spin_deadline(ctx))

    def _spin_deadline(self, ctx: Context) -> int | None:
        """When a parked spinner must look at the clock again: when its acquisition may give up
        (its budget, or a fixed timeout's shortest wait), and past that at doubling intervals."""
        attempt = self.truth.attempts.get(ctx.index)
        timeouts = self.capabilities.timeouts
        if attempt is None or timeouts is None:
            return None
        due = attempt.start + (attempt.budget if timeouts.per_call else timeouts.min_ns)
        now = self.machine.now
        if due > now:
            return due
        ctx.probes += 1
        return now + (1 << min(ctx.probes, 62))

    def _spin_round(self, has_deadline: bool) -> bool:
        """Nothing can run. If spinners are parked and no round has been tried since the last
        progress, unpark them all for one step each (module doc): True. Once a round changed
        nothing, time may pass (False), or with no deadline, a few more rounds, then a hang."""
        parked = [s[-1] for s in self.stacks if s and s[-1].spinning]
        if not parked:
            return False
        if self._round_at == self.changes:
            if has_deadline:
                return False
            self._rounds += 1
            if self._rounds > SPIN_ROUNDS:
                return False
        else:
            self._rounds = 0
        self._round_at = self.changes
        for ctx in parked:
            self._unblock(ctx)  # its reads stay: one more repeat parks it again
        return True

    def _unblock(self, ctx: Context) -> None:
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
        if self.truth.attempts:
            self.truth.retime()

    def _wake(self, cell: Cell) -> None:
        """``cell`` changed value: bump its watches, wake the waiters whose condition now holds."""
        value = cell.value
        woken: list[Context] = []
        for w in cell.waiters:
            if isinstance(w, Watch):
                derived = w.derived
                derived.value = (derived.value + 1) & derived.mask
                if derived.waiters:
                    self._wake(derived)
            elif w.spinning:
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
        if deadline > self.machine.now:
            self.machine.now = deadline
            self.log(None, CLOCK, 0, deadline)
        self._expire()

    def _fire(self, cpu: int, h: int) -> None:
        handler: Handler = self.program.cpus[cpu].handlers[h]
        self.unfired[cpu].remove(h)
        ctx = self._new_context(cpu, handler.level, h, handler.ops)
        self._push(ctx)
        self.cur = ctx
        self.run_len = 0
        self.log(ctx, IRQ_ENTER, cpu, int(handler.level))

    def _finish(self, ctx: Context) -> None:
        ctx.done = True
        ctx.top = False
        stack = self.stacks[ctx.cpu]
        stack.pop()
        if stack:
            stack[-1].top = True
        self._dirty = True
        self.log(ctx, IRQ_EXIT if ctx.handler >= 0 else DONE, ctx.cpu, int(ctx.level))

    def blocked_contexts(self) -> list[Context]:
        return [c for s in self.stacks for c in s if c.blocked or not c.top]

    def _hang(self) -> None:
        from .._oracles.hang import hang_violation

        raise hang_violation(self)

    def _livelock(self) -> None:
        from .._oracles.livelock import livelock_violation

        raise livelock_violation(self)

    def _final_check(self) -> None:
        """A fresh context takes every lock at once; then the target's own invariants."""
        self.phase = "final"
        self.log(None, FINAL, 0, 0)
        budget = self.settings.final_budget_ns
        sharing = getattr(self.capabilities, "sharing", None)
        modes = sharing.modes if sharing is not None else ("exclusive",)
        ops: tuple[Any, ...] = ()
        # Every lock exclusively, then (a lock with shared holders) every lock shared: a reader
        # left counted, a permit not given back, shows in the mode it breaks.
        for shared in (False, True):
            if ("shared" if shared else "exclusive") not in modes:
                continue
            ops += tuple(Lock(i, budget, shared=shared) for i in range(self.program.n_locks)) + tuple(
                Unlock(i) for i in reversed(range(self.program.n_locks))
            )
        self._push(self._new_context(0, Level.TASK, -1, ops, OnError()))
        self.cur = None
        self.run_len = 0
        self._loop()
        try:
            problems = list(self.target.check() or ())
        except PASS_THROUGH:
            raise
        except BaseException as exc:  # noqa: BLE001 - SystemExit included: the target's fault
            if isinstance(exc, _watchdog.NoYield):
                raise _no_yield("check()", exc) from exc
            name = type(exc).__name__
            raise Violation("target-fault", f"raised-{name}", f"check() raised {name}: {exc}") from exc
        if problems:
            raise Violation("final-state", "invariant", "after every program unwound: " + "; ".join(map(str, problems)))

    def _close_all(self) -> None:
        for ctx in self.contexts:
            if ctx.coro is not None:
                try:
                    ctx.coro.close()
                except (Exception, _watchdog.NoYield):  # noqa: BLE001 - misbehaving on close changes nothing found
                    pass


def check_modes(program: Program, capabilities: Any, name: str) -> None:
    """Refuse, before any context runs, a program that asks for a mode the target does not
    declare (``Capabilities.sharing``): its acquisitions would call ``acquire`` with a keyword
    the target never promised to take, and every verdict would be about the wrong lock."""
    sharing = getattr(capabilities, "sharing", None)
    if program.capacities:
        _check_capacities(program.capacities, sharing, name)
    modes = sharing.modes if sharing is not None else ("exclusive",)
    if program.modes.issubset(modes):
        return  # every run checks this: a cached set, not a walk over the program's operations
    for mode, shared in (("shared", True), ("exclusive", False)):
        if mode in modes:
            continue
        where = program.first_lock(shared)
        if where is not None:
            declared = (
                "declares no sharing (Capabilities.sharing is None): it takes exclusive acquisitions only"
                if sharing is None
                else f"declares Sharing(exclusive={sharing.exclusive}): it takes {' and '.join(modes)} "
                "acquisitions only"
            )
            article = "an" if mode == "exclusive" else "a"
            raise InvalidArgument(
                f"the program asks for {article} {mode} acquisition at {where}, but {name} {declared}"
            )


def _check_capacities(capacities: tuple[int, ...], sharing: Any, name: str) -> None:
    """Refuse capacities the target is not built with: it would make each lock with its own, and
    the oracles would hold it to capacities it never had. Runs with every run of such a program:
    the message is built only when it refuses."""
    span = getattr(sharing, "capacity_range", None)
    if span is None:
        given = ", ".join(f"L{k} {c}" for k, c in enumerate(capacities))
        raise InvalidArgument(
            f"the program gives its locks capacities ({given}), but {name} takes none from programs "
            "(its Sharing.capacity_range is None): drop them from the program"
        )
    low, high = span
    for k, c in enumerate(capacities):
        if not low <= c <= high:
            raise InvalidArgument(
                f"the program gives L{k} capacity {c}, but {name} is built with capacities from {low} to {high} "
                "(Sharing.capacity_range)"
            )


def _no_yield(where: str, exc: BaseException) -> Violation:
    return Violation("target-fault", "no-yield", f"{where}: {exc}")


def run(
    target: Any,
    program: Program,
    schedule: DecisionSource | Sequence[int] | None = None,
    *,
    settings: Settings | None = None,
    params: dict[str, Any] | None = None,
    oracles: Sequence[Any] | None = None,
) -> RunResult:
    """Run ``program`` against ``target`` (a class, a bundled name or an import path) once.

    ``schedule`` is a list of decisions or a decision source; never raises ``Violation``: the
    result carries it. Raises ``ProgramError`` if the program misuses a lock.
    """
    return run_on(Engine, target, program, schedule, settings=settings, params=params, oracles=oracles)


def run_on(
    engine_cls: type[Engine],
    target: Any,
    program: Program,
    schedule: DecisionSource | Sequence[int] | None = None,
    *,
    settings: Settings | None = None,
    params: dict[str, Any] | None = None,
    oracles: Sequence[Any] | None = None,
) -> RunResult:
    """``run`` with the engine class given (``run_trio`` passes the trio driver's)."""
    from .._model._target import resolve_target

    target_cls = resolve_target(target)
    source: Any = Schedule(schedule or ()) if schedule is None or isinstance(schedule, (list, tuple)) else schedule
    return engine_cls(target_cls, program, source, settings, params=params, oracles=oracles).run()

