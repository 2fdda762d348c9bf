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

No source may starve a runnable context for ever: every ``STARVATION_STEPS`` steps (so the hot
loop pays nothing for it), a context that could run at the last such check and has taken no
step since gets the next step, whatever the source said (the first such after the current
context in CPU order). Real CPUs run side by side: one cannot be denied its next step for half a
million steps of another. Without the bound, PCT, whose priorities keep the highest-priority
context running, turned a correct Eisenberg-McGuire lock into a "livelock": the waiter's loop
writes its own flag, so it is never parked as a spinner, and the releaser's last store never ran.
The override is a pure function of the run so far, so a replay of the recorded decisions repeats it.

A context that spins (goes round a loop of steps that change nothing) is parked as a waiter
(``_spinning``); blocking, waking and the deadline heap are in ``_waiting``; the hot loop
(``_loop``) and the decision point stay here. What one run produced is a ``RunResult``
(``_context``), and the phase after the run is the final check (``_final_check``).


Each run of the engine is a pure function of (target class and parameters, program,
decisions, settings): nothing reads the real clock, ``hash()`` or ``id()``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from .._model._errors import InvalidArgument, Violation
from ._events import ACQUIRED, CANCEL, DONE, IRQ_ENTER, IRQ_EXIT, MARK, Trace
from . import _watchdog
from ._context import Context, RunResult
from ._final_check import check_modes, final_check, no_yield
from ._interpreter import PASS_THROUGH, run_line
from .._oracles import default_oracles
from .._oracles._truth import GroundTruth
from ._machine import MEMORY_OPS, SLEEP, WAIT, WAIT_CELLS, Machine
from .._model._program import Handler, OnError, Program
from ._schedules import DecisionSource, Schedule, Settings
from ._spinning import Spinning
from .._model._status import Level, Mark
from ._waiting import Waiting

#: The most steps in a row one context takes while another could run (module doc).
STARVATION_STEPS = 4096
#: How many times a run at its step limit may let time pass for waiters whose loops write
#: (``Engine._step_limit``), each time with ``Settings.max_steps`` more steps.
STEP_LIMIT_JUMPS = 4

__all__ = [
    "Context", "DecisionSource", "Engine", "RunResult", "Schedule", "Settings", "check_modes", "run", "run_on",
]  # fmt: skip

_DEFAULT_SETTINGS = Settings()


class _ByStatus(dict[int, list[Callable[..., None]]]):  # a dict for its lookups in C (``log``)
    """The observers of ``ACQUIRED`` events, by the status returned: each list made when its
    status first occurs (most runs see one or two of them), from ``wanting``: each observer with
    the statuses it wants (None: all), in oracle order."""

    __slots__ = ("wanting",)

    def __init__(self) -> None:
        super().__init__()
        self.wanting: list[tuple[Callable[..., None], Any]] = []

    def __missing__(self, status: int) -> list[Callable[..., None]]:
        observers = [observe for observe, wanted in self.wanting if wanted is None or status in wanted]
        self[status] = observers
        return observers


class Engine(Waiting, Spinning):
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
        #: At the last starvation check, the contexts that could run and their step counts (``_starved``).
        self._could_run: dict[int, int] = {}
        self._limit_jumps = 0  # times the step limit let time pass (``_step_limit``)
        self._step_cap = self.settings.max_steps  # the step limit, raised by ``_step_limit``
        #: Progress: changes of memory and non-step events. A spin round whose steps left it as
        #: it was changed nothing (module doc).
        self.changes = 0
        self._round_at = -1
        self._rounds = 0
        self.phase = "run"
        self._heap: list[tuple[int, int, int, Context]] = []
        self._seq = 0
        self._dirty = True
        #: A stack changed (a context started or ended): the fireable handlers are recomputed
        #: too, which a block or a wake (``_dirty`` alone) leaves as they were.
        self._stacks_changed = True
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
        self._truth: Sequence[Any] = GroundTruth.HANDLERS  # called with the ground truth (``log``)
        # Observers per event kind (a shared empty tuple until an oracle asks for the kind), and
        # per status for ACQUIRED, the most frequent event.
        self._dispatch: list[Any] = [()] * (CANCEL + 1)
        self._acquired = _ByStatus()
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
        follow = self._truth[kind]
        if follow is not None:
            follow(self.truth, index, ctx, obj, value)
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
        try:
            with _watchdog.guard(self):  # a step that never yields is a finding (_watchdog)
                return self._run()
        finally:
            self._unlink()

    def _unlink(self) -> None:
        """Break the reference cycles a run makes (each context and the ground truth point back
        at the engine, which points at them; a context left waiting is in its cell's waiters), so
        that everything the run made is freed by reference counting as soon as the caller lets
        go of the engine and the result.

        Left in cycles, a run's objects (about 210 on ``bench/engine.py``'s program: its events,
        contexts, oracles, the ground truth) wait for Python's cyclic garbage collector, whose
        collections come more often the more such objects pile up, and whose oldest generation
        walks every object Hypothesis keeps; memory freed at once is reused while it is still in
        the processor's caches. Measured on that bench: a tenth fewer instructions (the
        collector's own) and 13-19% less wall time a run. After ``run()`` the engine's state
        stays readable (its trace, target, contexts, the ground truth's holders and attempts);
        what needs a running engine (``Context.mark``, the ground truth's updates) no longer
        works.
        tests/fast/test_engine_memory.py checks that a run leaves nothing to the collector."""
        for ctx in self.contexts:
            ctx.engine = None
            ctx.wait_hook = None  # an oracle timing a cycle it is on (``edeadlk_complete``)
            ctx.opening = None  # an attempt whose first step never came (its ``ctx`` is this context)
        self.truth.engine = None  # type: ignore[assignment]  # the run is over: nothing reads it again
        # A run cut short (a violation, a deadlocked program refused) leaves contexts waiting on
        # cells that their pending requests name.
        for cell in self.machine.cells:
            if cell.waiters:
                cell.waiters = []

    def _run(self) -> RunResult:
        violation: Violation | None = None
        try:
            try:
                self.target = self._make_target()
            except PASS_THROUGH:
                raise
            except BaseException as exc:  # noqa: BLE001 - SystemExit included: the target's fault
                if isinstance(exc, _watchdog.NoYield):
                    raise no_yield("the target's constructor", exc) from exc
                raise Violation(
                    "target-fault", f"raised-{type(exc).__name__}",
                    f"the target's constructor raised {type(exc).__name__}: {exc}",
                ) from exc
            self.capabilities = getattr(self.target, "capabilities", None) or self.target_cls.capabilities
            self._check_modes()
            self.truth.start()
            oracles = self.oracles
            for oracle in oracles:
                oracle.start(self)
            acquired, dispatch = self._acquired, self._dispatch
            for oracle in oracles:
                kinds = oracle.kinds  # as narrowed by ``start``: often none for this target
                if not kinds:
                    continue
                observe = oracle.observe
                for kind in kinds:
                    if kind == ACQUIRED:
                        acquired.wanting.append((observe, getattr(oracle, "statuses", None)))
                    elif dispatch[kind]:
                        dispatch[kind].append(observe)
                    else:
                        dispatch[kind] = [observe]
            for cpu, cp in enumerate(self.program.cpus):
                self._push(self._new_context(cpu, Level.TASK, -1, cp.task))
            self._loop()
            for oracle in self.oracles:
                oracle.finish(self)
            if self.settings.final_check:
                self._final_check()
        except (Violation, _watchdog.NoYield) as exc:
            v = exc if isinstance(exc, Violation) else no_yield("the run", exc)
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
            more = getattr(oracle, "features", None)
            if more:
                features.update(more)
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
        self._dirty = self._stacks_changed = True

    def _refresh(self) -> None:
        self._runnable = [s[-1] for s in self.stacks if s and not s[-1].blocked]
        self._dirty = False
        if not self._stacks_changed:
            # Which handlers may fire depends on the running level of each CPU, the handlers not
            # yet fired and the phase, which change only when a context starts or ends.
            return
        self._stacks_changed = False
        fireable: list[tuple[int, int]] = []
        if self.phase == "run":
            cpus = self.program.cpus
            for cpu, stack in enumerate(self.stacks):
                if stack and self.unfired[cpu]:
                    level = stack[-1].level
                    handlers = cpus[cpu].handlers
                    fireable.extend((cpu, h) for h in self.unfired[cpu] if handlers[h].level > level)
        self._fireable = fireable

    def _rotation(self, runnable: list[Context]) -> list[Context]:
        after = self.cur.cpu if self.cur is not None else -1
        for i, c in enumerate(runnable):
            if c.cpu > after:
                return runnable[i:] + runnable[:i]
        return runnable

    def _starved(self, cur: Context) -> Context | None:
        """At a starvation check (module doc): the context that takes the next step instead of
        ``cur``, if one could run at the last check and still can, and has taken no step since:
        the first such after ``cur`` in CPU order. None: nobody starves."""
        last = self._could_run
        self._could_run = {c.index: c.steps for c in self._runnable}
        starved = [c for c in self._runnable if c is not cur and last.get(c.index) == c.steps]
        if not starved:
            return None
        return next((c for c in starved if c.cpu > cur.cpu), starved[0])

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
        max_steps = self._step_cap  # the step limit, as ``_step_limit`` has raised it
        choose = self.source.choose
        decisions = self.decisions.append
        branching = self.branching.append
        heap = self._heap
        steps = self.steps
        # The next step count to look at: the step limit, or the next starvation check.
        check_at = min(max_steps, (steps // STARVATION_STEPS + 1) * STARVATION_STEPS)
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
                if steps > check_at:
                    if steps > max_steps:
                        max_steps = self._step_limit(steps)  # a livelock, or time passes (``_step_limit``)
                    # At every multiple of the window, as the trio driver checks (its step count + 1).
                    check_at = min(max_steps, (steps // STARVATION_STEPS + 1) * STARVATION_STEPS)
                    other = self._starved(cur)
                    if other is not None:  # it could run, and has not, for a whole window (module doc)
                        cur = self.cur = other
                        run_len = 1
                # The step. TrioEngine._step performs the same step as a method, once per
                # decision; here it stays inlined: a method call would add about a tenth to a step's
                # cost. The differential test (tests/fast/test_trio_driver.py) keeps them equal.
                now = machine.now + step_ns
                machine.now = now
                if heap and heap[0][0] <= now:
                    self._expire()
                cur.steps += 1
                if cur.opening is not None:  # the first step of an attempt: arrival is settled
                    self.truth.opened(cur)
                req = cur.pending
                op = req[0]
                spin = 0
                if op < WAIT:
                    cell = req[1]
                    old = cell.value
                    res = ops[op](cell, req[2], req[3])
                    append((now, cur.index, op, cell.index, cell.value if res is None else res))
                    if cell.value != old:  # a change: bump watches, wake waiters
                        self.changes += 1
                        if cell.watches or cell.waiters:
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

    # -- helpers off the hot path -------------------------------------------------------------
    def _foreign(self, ctx: Context) -> None:
        raise Violation(
            "target-fault", "foreign-await",
            f"the target awaited {ctx.pending!r}; a target over cells may only await lockfuzz cell "
            "operations and machine.sleep_until (use the trio driver for trio code)",
            contexts=(ctx.name,), time_ns=self.machine.now,
        )

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
        self._dirty = self._stacks_changed = True
        self.log(ctx, IRQ_EXIT if ctx.handler >= 0 else DONE, ctx.cpu, int(ctx.level))

    def blocked_contexts(self) -> list[Context]:
        return [c for s in self.stacks for c in s if c.blocked or not c.top]

    def _hang(self) -> None:
        from .._oracles.hang import hang_violation

        raise hang_violation(self)

    def _livelock(self) -> None:
        from .._oracles.livelock import livelock_violation

        raise livelock_violation(self)

    def _step_limit(self, steps: int) -> int:
        """The run has taken ``max_steps`` steps (or a multiple). A livelock, unless every context
        that can run is waiting for a lock while some context sleeps until a deadline: waiters
        whose loops write (a counter of failed tries, a reader's increment and undo) are never
        parked as spinners, so they keep the clock at ``step_ns`` a step, and a hold longer than
        the step limit's worth of steps would end the run before the holder wakes (two correct
        locks written by a newcomer were reported as livelocked behind a 1 ms hold). Then the
        clock jumps, as if the waiters had spun that long, to the sleeper's deadline, or to a
        waiter's own deadline if that comes first, and the run gets ``max_steps`` more steps, at
        most ``STEP_LIMIT_JUMPS`` times. Waiters fighting over a free lock, or a context
        churning outside an acquisition, are still a livelock. Returns the new limit."""
        if self._limit_jumps >= STEP_LIMIT_JUMPS or not self._runnable:
            self._livelock()
        attempts = self.truth.attempts
        if any(c.index not in attempts for c in self._runnable):
            self._livelock()  # something other than waiting for a lock keeps running
        now = self.machine.now
        sleeping = [d for d, _, token, ctx in self._heap if ctx.blocked and ctx.token == token and d > now]
        if not sleeping:
            self._livelock()  # nobody's wake-up can end it
        timeouts = self.capabilities.timeouts
        due = [min(sleeping)]
        if timeouts is not None:
            for c in self._runnable:
                a = attempts[c.index]
                end = a.start + (a.budget if timeouts.per_call else timeouts.min_ns)
                if end > now:
                    due.append(end)
        self._limit_jumps += 1
        self._jump_to(min(due) - self.settings.step_ns)  # the next step lands on it
        self._step_cap = steps + self.settings.max_steps
        return self._step_cap

    def _final_check(self) -> None:
        final_check(self)

    def _close_all(self) -> None:
        for ctx in self.contexts:
            if ctx.coro is not None:
                try:
                    ctx.coro.close()
                except (Exception, _watchdog.NoYield):  # noqa: BLE001 - misbehaving on close changes nothing found
                    pass


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

