"""The trio driver: each context is a trio task, and every trio checkpoint is a decision.

DESIGN.md, "How data flows": one scheduling core, two ways to drive contexts, same decisions and
same events. ``Engine`` steps coroutines directly; ``TrioEngine`` runs the same program
interpreter (``_interpreter.run_line``) with each context as a trio task, so that targets written
over trio itself (``trio.Lock``, ``anyio.Lock``, a user's own lock with ``trio.move_on_after``)
can be fuzzed. A target class says which driver it needs with ``driver = "trio"``;
``make_engine`` picks the engine from that.

How a decision is made. trio's run loop, at each pass, takes the runnable tasks as a batch.
``_internals.steer_run_queue`` makes it take only the tasks ``TrioEngine._select`` returns:
tasks that are not contexts (the driver's own, helpers a target spawns) one at a time, in the
order trio queued them; otherwise exactly one context, chosen under the Engine's contract (module
doc of ``_engine``): the runnable contexts are the tops of the CPU stacks whose tasks are in
trio's run queue; option ``0`` keeps the current one, ``1 .. r-1`` switch in CPU order, the next
fire interrupt handlers, and the last ones (``Settings.cancels``) cancel a call into the target
(``call``, ``_cancel``: one per context inside ``acquire``/``release`` stopped at a trio
checkpoint, runnable or waiting in trio); when no context can run, option ``0`` jumps the
virtual clock to the earliest deadline (trio's cancel-scope deadlines and the contexts' own waits
alike), and with none the run hangs. The chosen context's task then runs one *step*: from the
checkpoint where it stopped to its next one. A cancellation runs no step: the next pass decides
again, and the cancelled task learns of it as trio delivers it (at once if it waits in trio, at
its next cancel point otherwise).

Foreign waits. A task that begins a wait only real time ends (``trio.to_thread.run_sync``, real
I/O: recognised by the module of the wait's abort function, ``_FOREIGN``) stops the run there
with ``target-fault/foreign-wait``, before the thread or the OS could answer: the finding does not
depend on their speed, so it replays.

What a step is. A context's task runs its line through ``_pump``, which passes trio's own
checkpoints to trio and keeps lockfuzz's requests (cell accesses, ``sleep_until``, the
interpreter's ``checkpoint``) for the engine: before each request the task yields to trio
(``cancel_shielded_checkpoint``), so the request waits for a decision exactly where the direct
engine makes one; once the context is chosen, the engine performs the request, atomically, as the
direct engine does, and the task runs on to its next request or checkpoint. So a trio checkpoint
is a step (logged as ``checkpoint``), a request is a step (logged as the access), and the first
step of a context is ``start``; for a target over cells the same decisions give the same trace
as the direct engine, event for event (the differential test, tests/fast/test_trio_driver.py).

Time is virtual. trio's clock (``VirtualClock``, a ``trio.abc.Clock``) reads the machine's clock
in nanoseconds, so ``trio.current_time()``, ``trio.move_on_after`` and ``trio.fail_after`` run on
it; it never sleeps, and the driver jumps it when every context waits, as
``trio.testing.MockClock(autojump_threshold=0)`` does. (``MockClock`` itself keeps time as a
float sum of jumps, and autojumps only when trio's whole run queue is empty: a context held back
below an interrupt handler is still queued, so it would never jump.) Each step adds
``Settings.step_ns``.

Interrupts are supported: firing a handler starts a task for it, and the context below it does
not run, even when trio could run it, until the handler returns.

What is the direct engine's. ``TrioEngine`` overrides only the stepping (``Engine._loop`` and
the helpers it uses: waits, clock jumps, firing and ending contexts): the rest (making the
target, starting the oracles, the final check, the result) is ``Engine.run``'s own code, so the
two drivers cannot drift apart there. The target is made outside any task, while sniffio says
trio (so an ``anyio.Lock()`` made there is trio's, even when the caller runs inside asyncio);
``acquire`` and ``release`` run in the contexts' trio tasks.

Where trio runs. ``trio.run`` costs about a millisecond to set up and tear down, more than a
small run itself, and it cannot nest in one thread (campaigns run inside ``trio.run``). So each
calling thread has one long-lived trio *guest* run (``_Host`` over
``_internals.GuestRun``), ticked by the caller itself only while a phase of an engine run
needs it: no thread, no hand-over, and the thread's own trio state (a campaign's ``trio.run``)
is put aside while it ticks and given back after. A phase's context tasks are started from
outside any task, in the nursery of the host's root task, and the phase is over when they have
all ended: no task of the driver's own runs in between. Nothing carries over from one run to the
next: each phase's tasks have ended (or, if a target blocks for ever in a shielded wait after a
violation, the host is retired and a fresh one serves the rest). Hosts are ended at exit.

Deciding inside the task. Most decisions keep the running context running. When nothing but
contexts is queued and no cancel-scope deadline is due, the decision the run loop's next pass
would make is made inside the running task instead (``_decide_in_task``): if it keeps that
context, its next step is done there and the task runs on, saving a pass; otherwise the task
yields and the next pass runs the context already chosen. Likewise, when a context's own step
blocks it (a sleep, a wait on a cell) and nothing else is queued, the next pass could only jump
the clock: the task jumps it itself (``_jump_in_task``), and if that wakes the context, its
wake-up step is decided in the task too; a sleep then costs no pass instead of two. The traces
are the same either way (tested, for trio's own locks, deadlines and interrupts included).

Violations raised while trio runs (by oracles, in a task or during the run loop's pass) are
recorded; the driver then cancels the run's tasks, lets them end, and raises the violation from
``_loop`` where the direct engine would have; the trace ends where the violation happened.
"""

from __future__ import annotations

import atexit
import heapq
import math
import os
import threading
import types
from typing import Any, Callable, Generator, Sequence

import sniffio
import trio

from . import _internals
from .._engine._run import STARVATION_STEPS, Context, DecisionSource, Engine, RunResult, Settings, run_on
from .._engine._spinning import target_frames
from .._model._errors import InvalidArgument, Violation
from .._engine._events import CANCEL
from .._engine._interpreter import CANCELLED, acquire_call, release_call
from .._engine._machine import CHECKPOINT, MEMORY_OPS, SLEEP, WAIT, WAIT_CELLS
from .._oracles.hang import hang_violation
from .._oracles.livelock import livelock_violation
from .._model._program import Program
from .._model._status import Mark

__all__ = ["DRIVERS", "TrioEngine", "VirtualClock", "driver_of", "make_engine", "run_trio"]

#: The values a target class may give its ``driver`` attribute (absent means ``"direct"``).
DRIVERS = ("direct", "trio")

_NONE: list[Context] = []  # no context to cancel (shared; never appended to)

# The pending "request" of a context stopped at one of trio's own checkpoints: its next step is
# logged as a checkpoint and performs nothing.
_TRIO_STEP = (CHECKPOINT, None, 0, 0)

# Passes of trio's run loop with nothing of a stopped run left to run before its tasks are given
# up for lost (a target blocked for ever in a shielded wait).
_ABANDON_AFTER = 20_000


def driver_of(target_cls: Any) -> str:
    """``"trio"`` for a target whose class says ``driver = "trio"``, else ``"direct"``."""
    driver = getattr(target_cls, "driver", None)
    if driver is None:
        return "direct"
    if driver not in DRIVERS:
        raise InvalidArgument(
            f"target {getattr(target_cls, '__qualname__', target_cls)!r}: driver={driver!r}, expected one of "
            f"{', '.join(map(repr, DRIVERS))}"
        )
    return str(driver)


def make_engine(
    target_cls: Callable[..., Any],
    program: Program,
    source: DecisionSource | None = None,
    settings: Settings | None = None,
    *,
    params: dict[str, Any] | None = None,
    oracles: Sequence[Any] | None = None,
) -> Engine:
    """The engine that drives ``target_cls``: a ``TrioEngine`` if its class says
    ``driver = "trio"``, else the direct ``Engine``. Same arguments as ``Engine``."""
    cls = TrioEngine if driver_of(target_cls) == "trio" else Engine
    return cls(target_cls, program, source, settings, params=params, oracles=oracles)


def run_trio(
    target: Any,
    program: Program,
    schedule: DecisionSource | Sequence[int] | None = None,
    *,
    settings: Settings | None = None,
    params: dict[str, Any] | None = None,
    oracles: Sequence[Any] | None = None,
) -> RunResult:
    """``lockfuzz.run`` on the trio driver, whatever the target's ``driver`` says (a target over
    cells runs on both: that is the differential test)."""
    return run_on(TrioEngine, target, program, schedule, settings=settings, params=params, oracles=oracles)


# -- the host: one long-lived trio run per calling thread ------------------------------------------
class VirtualClock(trio.abc.Clock):
    """trio's clock: the running engine's virtual time, in seconds. It never asks trio to sleep
    (the driver jumps the time instead, and between runs the host's guest run is not ticked)."""

    def __init__(self, host: _Host) -> None:
        self._host = host

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        engine = self._host.engine
        return engine.machine.now / 1e9 if engine is not None else 0.0

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return 0.0


class _Host:
    """A long-lived trio guest run (``_internals.GuestRun``) that runs the phases of
    ``TrioEngine`` runs one after another, in the caller's thread.

    ``call`` starts a phase's context tasks in the nursery of the host's root task (which only
    keeps that nursery open) and ticks the guest run until they have all ended. No thread, no
    hand-over, no task of the driver's own in between: a phase costs only the passes of trio's
    run loop its contexts need.
    """

    def __init__(self) -> None:
        self.engine: TrioEngine | None = None
        self.pid = os.getpid()
        self.retired = False
        self.root: Any = None  # the root task, parked until close()
        self.nursery: Any = None
        self.guest = _internals.GuestRun(self._root, clock=VirtualClock(self))

    def ready(self) -> _Host:
        """Tick the run until its root task has opened the nursery (once; a Ctrl-C in between
        leaves the host as it is, for the next call to finish)."""
        if self.root is None:
            self.guest.until(lambda: self.root is not None)
            self._check()
        return self

    async def _root(self) -> None:
        _internals.steer_run_queue(self._select)
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            self.root = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(_no_abort)  # close()

    def _select(self, tasks: list[Any]) -> list[Any]:
        engine = self.engine
        return engine._select(tasks) if engine is not None else tasks

    def _check(self) -> None:
        outcome = self.guest.outcome
        if outcome is not None:
            self.retired = True
            error = getattr(outcome, "error", None)
            cause = error
            while cause is not None and not isinstance(cause, KeyboardInterrupt):
                cause = cause.__cause__ or cause.__context__
            if cause is not None:
                raise KeyboardInterrupt from error  # Ctrl-C inside trio's run loop ended the run
            raise RuntimeError(f"lockfuzz: the trio host has ended ({error or outcome!r})") from error

    def call(self, engine: TrioEngine) -> None:
        """Run ``engine``'s phase on this host; return when it is done."""

        def start() -> None:
            self.engine = engine
            engine._t_host = self
            try:
                engine._start_phase()
            except BaseException as exc:  # noqa: BLE001 - recorded; never let it end the host
                engine._fail(exc)
                engine._t_running = engine._t_live > 0

        def over() -> bool:
            return not engine._t_running

        try:
            try:
                self.guest.until(over, first=start)
            except KeyboardInterrupt:
                if not over() and not self.guest.done:
                    # Raised between two ticks: stop the run's tasks, let them end, re-raise.
                    self.guest.until(over, first=engine._stop)
                raise
        except BaseException:
            if not over() or self.guest.done:
                self.retired = True  # left in the middle of a phase: never tick it again
            raise
        finally:
            self.engine = None
            if engine._t_abandoned:
                self.retired = True  # tasks of that run may still wake: serve no other run
        self._check()

    def close(self) -> None:
        """End the host's trio run (a host is otherwise kept for the process)."""
        if self.retired or self.guest.done:
            return
        self.ready()
        self.retired = True
        self.guest.until(lambda: False, first=lambda: trio.lowlevel.reschedule(self.root))


def _no_abort(raise_cancel: Any) -> Any:
    return trio.lowlevel.Abort.FAILED


_hosts = threading.local()
#: Every host made in this process, ended at exit (so that no task is left to the garbage
#: collector, which would warn about it) and kept alive until then.
_all_hosts: list[_Host] = []


def _host() -> _Host:
    host = getattr(_hosts, "host", None)
    if host is None or host.retired or host.pid != os.getpid():  # a fork: its own host
        host = _hosts.host = _Host()
        _all_hosts.append(host)
    return host.ready()


@atexit.register
def _close_hosts() -> None:
    pid = os.getpid()
    for host in _all_hosts:
        if host.pid == pid:
            try:
                host.close()
            except BaseException:  # noqa: BLE001 - exiting anyway; a target that will not end
                pass


class _Stopped(BaseException):
    """Internal: the run has stopped (a violation); a context's task ends here."""


# -- the engine ----------------------------------------------------------------------------------
class TrioEngine(Engine):
    """One run with each context as a trio task; see the module doc. Same interface as
    ``Engine``: ``TrioEngine(target_cls, program, source, settings, params=..., oracles=...).run()``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._t_host: _Host | None = None
        self._t_context: Any = None  # the host's root task's contextvars, for the tasks it starts
        self._t_ctx_of: dict[Any, Context] = {}  # the live context of each trio task (by identity)
        self._t_task: list[Any] = []  # ctx.index -> its trio task
        self._t_scope: list[Any] = []  # ctx.index -> the cancel scope its task runs in
        self._t_res: list[Any] = []  # ctx.index -> what its last request returned
        self._t_live = 0  # context tasks not yet ended
        self._t_running = False  # a phase runs: some of its context tasks have not ended
        self._t_stopped = False
        self._t_stop_len = -1
        self._t_error: BaseException | None = None
        self._t_idle = 0
        self._t_free = 0
        self._t_abandoned = False
        self._t_handlers = any(cp.handlers for cp in self.program.cpus)
        self._t_next: Any = None  # the task the next pass runs, decided in a task (_decide_in_task)
        self._t_self: Context | None = None  # the context whose task jumps the clock (_jump_in_task)
        #: Run on a host (a trio guest run) of its own, made and ended for this run: what a
        #: trio.run per run costs, for bench/trio_engine.py to compare with.
        self._t_fresh_host = False
        # Cancellation decisions (``Settings.cancels``; ``call``, ``_cancel``).
        self.cancels = self.settings.cancels
        self._t_calls: dict[int, tuple[int, int]] = {}  # ctx.index -> (lock, 1 if release), during a call
        self._t_cut: set[int] = set()  # contexts whose line was cancelled
        self._t_trio_jump = False  # the last clock jump was to a trio deadline (_deadline_passed)
        # The target claims deadlock detection: a cycle's clock (edeadlk_complete) needs to know
        # which waits in trio a deadline can end, and when (``_pump``, ``_trio_wait_deadline``).
        self._t_timed = False

    # -- cancellation: a decision at each of trio's checkpoints inside a call into the target -------
    async def call(self, ctx: Context, lock: int, budget_ns: int | None, shared: bool = False) -> Any:
        """The interpreter's call into the target (``acquire`` with a budget, ``release`` with
        ``None``), which the schedule may cancel (``_cancel``) at any of trio's checkpoints inside
        it. A cancellation cancels the scope the context's task runs in, as a nursery's would:
        it stays cancelled, so every later call of the line (the releases that unwind it) runs
        cancelled too. Returns what ``acquire`` returned, or ``_interpreter.CANCELLED`` if the call
        raised the schedule's ``trio.Cancelled``. (No cancel scope per call: entering and leaving
        one costs more than the rest of a call's bookkeeping.)"""
        index = ctx.index
        cut = index in self._t_cut
        if not cut:
            self._t_calls[index] = (lock, 1 if budget_ns is None else 0)
        try:
            if budget_ns is None:
                return await release_call(self.target, ctx, lock, shared)
            return await acquire_call(self.target, ctx, lock, budget_ns, shared)
        except trio.Cancelled:
            if index not in self._t_cut or self._t_stopped:  # pragma: no cover - a stop closes tasks first
                raise  # the run is stopping, or a cancellation of the target's own making
            return CANCELLED
        finally:
            if not cut:
                self._t_calls.pop(index, None)

    def cut(self, ctx: Context) -> bool:
        """Whether the schedule has cancelled ``ctx``'s line (the interpreter then unwinds it)."""
        return ctx.index in self._t_cut

    def _cancelable_now(self) -> list[Context]:
        """The contexts the schedule may cancel now: inside a call into the target, stopped at
        one of trio's checkpoints (runnable or waiting in trio), top of their CPU, not yet
        cancelled; in context order."""
        contexts = self.contexts
        calls = self._t_calls
        out = []
        for index in sorted(calls):
            c = contexts[index]
            if c.pending is _TRIO_STEP and c.top and not c.done:
                out.append(c)
        return out

    def _cancel(self, ctx: Context) -> None:
        """The decision to cancel ``ctx``'s call: logged (``CANCEL``), then its scope cancelled,
        as a nursery's cancellation reaches a task: at its next checkpoint, or at once if it
        waits in trio."""
        lock, releasing = self._t_calls.pop(ctx.index)
        self._t_cut.add(ctx.index)
        self.log(ctx, CANCEL, lock, releasing)
        self._t_scope[ctx.index].cancel()

    # -- the run: Engine.run, with each phase run by trio tasks --------------------------------------
    def _unlink(self) -> None:
        """``Engine._unlink``, and the error that ended the run (it holds frames that point at
        the engine), with trio's tasks and cancel scopes behind it."""
        super()._unlink()
        self._t_error = None

    def _loop(self) -> None:
        """Run the contexts on the stacks as trio tasks, on the host, until every one has ended.

        ``Engine.run`` calls this for the run and ``Engine._final_check`` for the final check,
        so everything else about a run (the target, the oracles, the final check, the result)
        is the direct engine's own code."""
        try:
            self._run_host().call(self)
        finally:
            if self._t_stop_len >= 0:
                del self.events[self._t_stop_len :]  # the trace ends where the run stopped
        if self._t_error is not None:
            raise self._t_error

    def _run_host(self) -> _Host:
        if self._t_fresh_host:
            if self._t_host is None:
                self._t_host = _Host()
            return self._t_host.ready()
        return _host()

    def _make_target(self) -> Any:
        """The target, made while sniffio says trio (its ``thread_local``, which libraries set
        and which it reads first): a library that picks its backend when an object is made
        (anyio's ``Lock()`` does, when it finds a running event loop) picks trio, even when the
        caller runs inside asyncio."""
        previous, sniffio.thread_local.name = sniffio.thread_local.name, "trio"
        try:
            return Engine._make_target(self)
        finally:
            sniffio.thread_local.name = previous

    def _close_all(self) -> None:
        Engine._close_all(self)
        if self._t_fresh_host and self._t_host is not None:
            self._t_host.close()

    def _start_phase(self) -> None:
        """On the host, outside any task: start a task for each context on the stacks."""
        assert self._t_host is not None
        self._t_context = self._t_host.root.context
        self._t_timed = bool(self.capabilities.detection.classes)
        self._t_running = True
        for stack in self.stacks:
            for ctx in stack:
                self._spawn(ctx)
        self._t_running = self._t_live > 0

    def _spawn(self, ctx: Context) -> None:
        """Start the task that runs ``ctx``, in the host's nursery, outside any task or from a
        context's task (an interrupt firing)."""
        assert self._t_host is not None
        nursery = self._t_host.nursery
        scope = trio.CancelScope()
        if self._t_stopped:
            scope.cancel()
        before = nursery.child_tasks
        # A new task copies the current context's variables: make them the host's root task's
        # (sniffio's, so that anyio knows it runs on trio, among others), wherever it starts.
        self._t_context.run(nursery.start_soon, _context_task, self, ctx, scope, name=ctx.name)
        (task,) = nursery.child_tasks - before
        self._t_ctx_of[task] = ctx
        self._t_task.append(task)
        self._t_scope.append(scope)
        self._t_res.append(None)
        self._t_live += 1
        assert len(self._t_task) == ctx.index + 1, "contexts must be started in the order they are made"

    def _task_ended(self, ctx: Context) -> None:
        self._t_ctx_of.pop(self._t_task[ctx.index], None)
        self._t_live -= 1
        if self._t_live == 0:
            self._t_running = False

    # -- stopping -----------------------------------------------------------------------------
    def _fail(self, exc: BaseException) -> None:
        """Record what ends the run (the first thing), then stop."""
        if self._t_error is None and not self._t_stopped:
            if isinstance(exc, Violation):
                if exc.event_index < 0:
                    exc.event_index = len(self.events) - 1
                if not exc.time_ns:
                    exc.time_ns = self.machine.now
            self._t_error = exc
        self._stop()

    def _stop(self) -> None:
        if self._t_stopped:
            return
        self._t_stopped = True
        self._t_stop_len = len(self.events)
        for scope in self._t_scope:
            scope.cancel()

    def _task_error(self, ctx: Context, exc: BaseException) -> None:
        if not self._t_stopped:  # once stopped, what a task raises while it ends changes nothing
            self._fail(exc)

    # -- one pass of trio's run loop: the decision ------------------------------------------------
    def _select(self, tasks: list[Any]) -> list[Any]:
        """Called by trio's run loop (through the steered run queue) with the runnable tasks;
        returns the ones to run in this pass."""
        ctx_of = self._t_ctx_of
        if self._t_stopped:
            if any(task in ctx_of for task in tasks):
                self._t_idle = 0
            elif self._t_live:
                self._t_idle += 1
                if self._t_idle > _ABANDON_AFTER and not self._t_abandoned:
                    self._t_abandoned = True  # a task the cancellation cannot reach: give up on it
                    self._t_running = False
            return tasks
        for task in tasks:
            if task not in ctx_of:
                # Not a context (the driver's own task, helpers a target starts): it runs at
                # once, one at a time, in trio's order, without a decision or a step.
                self._t_free += 1
                if self._t_free > self.settings.max_steps:
                    self._fail(livelock_violation(self))  # a helper task that never blocks
                    return []
                return [task]
        self._t_free = 0
        if not self._t_running:
            return tasks  # pragma: no cover - no phase running
        nxt = self._t_next
        if nxt is not None:
            self._t_next = None
            if nxt in tasks:  # decided already, by the task that yielded (_decide_in_task)
                return [nxt]
        try:
            return self._decide(tasks)
        except BaseException as exc:  # noqa: BLE001 - recorded; the run stops
            self._fail(exc)
            return []

    def _decide(self, tasks: list[Any]) -> list[Any]:
        ctx_of = self._t_ctx_of
        queued = {ctx_of[task].index for task in tasks}
        changes = self.changes
        moved = False
        expired = self._t_trio_jump  # the clock just jumped to a trio deadline: it has expired
        woken: list[Context] = []
        # Began or ended a wait in trio with a marked clock armed or on a timed deadlock cycle:
        # seen to after the loop (a mark may raise; a cycle's clock reads every member's state).
        changed: list[Context] = []
        for stack in self.stacks:
            for c in stack:
                was = c.blocked
                waited = was and not c.spinning  # in trio, or on cells
                if c.spin_at >= 0 and c.spin_at != changes:
                    self._unblock(c)  # a spinner parked at a trio checkpoint: something moved
                c.blocked = c.index not in queued or c.spinning
                if waited and not c.blocked:
                    self.changes += 1  # woken by trio (an Event set, a lock handed over): progress
                    if expired and c.pending is _TRIO_STEP:
                        woken.append(c)
                    c.deadline = None  # its wait in trio is over (``_trio_wait_deadline``)
                    if c.expiry is not None or c.wait_hook is not None:
                        changed.append(c)
                elif c.blocked and not was:
                    c.slept = self.machine.now  # began a wait in trio (``_woken_in_trio``)
                    if c.wait_hook is not None:
                        changed.append(c)
                moved = moved or was != c.blocked
        if expired:
            self._t_trio_jump = False
            for c in woken:
                self._deadline_passed(c)
        for c in changed:
            if not c.blocked and c.expiry is not None:  # woken
                self._woken_in_trio(c)
        for c in changed:
            if c.wait_hook is not None:
                c.wait_hook(c)
        if moved:
            self.truth.retime()  # who sleeps changed: the free clocks of waiting depend on it
        runnable = [s[-1] for s in self.stacks if s and not s[-1].blocked]
        fireable: list[tuple[int, int]] = []
        if self.phase == "run" and self._t_handlers:
            cpus = self.program.cpus
            for cpu, stack in enumerate(self.stacks):
                if stack and self.unfired[cpu]:
                    level = stack[-1].level
                    handlers = cpus[cpu].handlers
                    fireable.extend((cpu, h) for h in self.unfired[cpu] if handlers[h].level > level)
        cancelable = self._cancelable_now() if self._t_calls and self.phase == "run" else _NONE
        self._runnable = runnable  # for Engine.options() and Engine._fair_default()
        self._fireable = fireable
        self._cancelable = cancelable
        self._dirty = False
        cur = self.cur
        nr = len(runnable)
        cur_ok = cur is not None and cur.top and not cur.blocked
        n = (nr or 1) + len(fireable) + len(cancelable)
        if n > 1:
            d = self.source.choose(n, self)
            if d is None:
                d = self._fair_default(cur_ok, nr, self.run_len)
            elif d >= n:
                d %= n
            self.decisions.append(d)
            self.branching.append(n)
        else:
            d = 0
        if cancelable and d >= n - len(cancelable):
            self.run_len = 0
            self._cancel(cancelable[d - n + len(cancelable)])
            return []
        if nr == 0 or d >= nr:
            self.run_len = 0
            if nr and d >= nr:
                self._fire(*fireable[d - nr])
            elif d:
                self._fire(*fireable[d - 1])
            elif any(self.stacks):
                self._jump_clock()
            return []
        if cur_ok:
            if d:
                cur = [c for c in runnable if c is not cur][d - 1]
                self.cur = cur
                self.run_len = 0
        else:
            cur = self._rotation(runnable)[d]
            self.cur = cur
            self.run_len = 0
        assert cur is not None
        if self.steps % STARVATION_STEPS == 0 and self.steps:
            other = self._starved(cur)
            if other is not None:  # it could run, and has not, for a whole window (``_engine._run``)
                cur = self.cur = other
                self.run_len = 0
        self.run_len += 1
        self.steps += 1
        if self.steps > self._step_cap:
            self._step_cap = self._step_limit(self.steps)  # a livelock, or time passes (``Engine._step_limit``)
        self._step(cur)
        return [self._t_task[cur.index]]

    def _decide_in_task(self, ctx: Context) -> bool:
        """Make, inside ``ctx``'s running task, the decision the run loop's next pass would make
        if the task yielded now, and perform the chosen step (``_internals``, point 3, says
        when the two are the same: nothing but contexts queued, no cancel-scope deadline due).

        True: ``ctx`` keeps running (the commonest decision) and its step is done, so its task
        runs on without a pass of trio's run loop. False: the task must yield; either nothing was
        decided (the next pass decides), or another context's step was done and ``_t_next`` is
        its task, for the next pass to run, or an interrupt fired."""
        if self._t_stopped or not self._t_running:
            return False
        ctx_of = self._t_ctx_of
        tasks = _internals.queued_tasks()
        for task in tasks:
            if task not in ctx_of:
                return False  # a helper task runs first, at the next pass (see _select)
        if _internals.deadline_due():
            return False
        mine = self._t_task[ctx.index]
        tasks.append(mine)
        try:
            chosen = self._decide(tasks)
        except BaseException as exc:  # noqa: BLE001 - recorded; the run stops
            self._fail(exc)
            return False
        if chosen and chosen[0] is mine:
            return True
        self._t_next = chosen[0] if chosen else None
        return False

    def _jump_in_task(self, ctx: Context) -> None:
        """``ctx``'s own step has just blocked it (a sleep, a wait on a cell). If the run loop's
        next pass would only find no context to run (nothing queued, no deadline due, nothing
        waiting for trio to go idle), make that pass's decision here, in ``ctx``'s task: jump
        the clock (or fire a handler), as ``_decide`` does with no task queued. Whoever the
        jump wakes is queued, except ``ctx`` itself, which is running: its ``blocked`` is simply
        cleared, and its wake-up step is the next decision. Saves the two passes a sleep costs
        otherwise (the one that jumps, the one that runs the woken task)."""
        if self._t_stopped or not self._t_running or self._t_next is not None:
            return
        if _internals.queued_tasks() or _internals.deadline_due() or _internals.idle_waiters():
            return
        self._t_self = ctx
        try:
            self._decide([])
        except BaseException as exc:  # noqa: BLE001 - recorded; the run stops
            self._fail(exc)
        finally:
            self._t_self = None

    def _step(self, cur: Context) -> None:
        """The chosen context's step, as the direct engine's: the clock advances, deadlines that
        passed wake their waiters, and a pending lockfuzz request is performed and logged."""
        machine = self.machine
        now = machine.now + self.settings.step_ns
        machine.now = now
        heap = self._heap
        if heap and heap[0][0] <= now:
            self._expire()
        cur.steps += 1
        if cur.opening is not None:  # the first step of an attempt: arrival is settled
            self.truth.opened(cur)
        req = cur.pending
        op = req[0]
        append = self.events.append
        if op < WAIT:
            cell = req[1]
            old = cell.value
            res = MEMORY_OPS[op](cell, req[2], req[3])
            append((now, cur.index, op, cell.index, cell.value if res is None else res))
            if cell.value != old:  # a change: bump watches, wake waiters (``_wake``)
                self.changes += 1
                if cell.waiters or cell.watches:
                    self._wake(cell)
                if cur.reads:
                    cur.reads = []
                    cur.last = {}
            else:  # no change: a spin parks the context at its next request (_pump)
                cur.park = self._read(cur, (op, cell.index, old))
        elif req is _TRIO_STEP:
            # One of trio's checkpoints: a task that only checkpoints while nothing changes
            # (``while self.held: await trio.sleep(0)``) spins; what it reads is invisible, so
            # it is parked until anything changes (``_decide``), its time is up, or a round.
            res = None
            append((now, cur.index, op, -1, 1))  # value 1: one of trio's checkpoints (the timeline shows it)
            period = self._read(cur, (op, -1, self.changes))
            if period:
                self._note_loop_state(cur, period)  # a loop that counts its checkpoints gets rounds
                cur.spinning = True
                cur.spin_at = self.changes
                cur.token += 1
                self._deadline(cur, self._spin_deadline(cur))
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
            elif op == SLEEP:
                res = None
                append((now, cur.index, op, -1, req[2]))
                if now < req[2]:
                    self._block(cur, None, req[2])
            elif op == WAIT_CELLS:
                res = None
                self._wait_cells(cur, req, now)
            else:  # START, CHECKPOINT
                res = None
                append((now, cur.index, op, -1, 0))
        self._t_res[cur.index] = res

    @staticmethod
    def _read(ctx: Context, key: tuple[int, int, int]) -> int:
        """A step that changed nothing (``Engine._loop`` inlines the same): the length of the
        loop it completes, if the context is going round one, else 0."""
        reads = ctx.reads
        j = ctx.last.get(key)
        ctx.last[key] = len(reads)
        reads.append(key)
        return Engine._repeats(ctx, j) if j is not None else 0

    # -- the engine's own waits (cells, sleep_until), over trio ------------------------------------
    # Blocking is the engine's own ``_block`` (its deadline heap, ``_heap``, serves both drivers);
    # waking differs: the context's task goes back into trio's run queue.
    def _unblock(self, ctx: Context, wake: bool = True) -> None:
        # Here a context also blocks in trio (its task out of trio's run queue), which sets
        # ``blocked`` too: the token alone says whether a heap entry is still its wait.
        ctx.token += 1
        queued = ctx.spin_at >= 0  # parked at a trio checkpoint: its task is in trio's queue already
        ctx.spin_at = -1
        Engine._unblock(self, ctx)
        if wake and not queued and ctx is not self._t_self:  # ctx's own task runs (_jump_in_task)
            trio.lowlevel.reschedule(self._t_task[ctx.index])

    def _expire(self) -> None:
        heap = self._heap
        now = self.machine.now
        while heap and heap[0][0] <= now:
            _, _, token, ctx = heapq.heappop(heap)
            if ctx.token == token:
                self._unblock(ctx)

    def _jump_clock(self) -> None:
        """No context can run: jump to the earliest deadline, the engine's or trio's."""
        heap = self._heap
        ours = None
        while heap:
            deadline, _, token, ctx = heap[0]
            if ctx.token == token:
                ours = deadline
                break
            heapq.heappop(heap)
        theirs = self._trio_deadline()
        if self._spin_round(ours is not None or theirs is not None):
            return
        if ours is None and theirs is None:
            raise hang_violation(self)
        target = min(d for d in (ours, theirs) if d is not None)
        self._jump_to(target)
        self._t_trio_jump = target == theirs
        self._expire()

    def _woken_in_trio(self, ctx: Context) -> None:
        """``ctx``, whose acquisition armed a marked timeout clock (``trio_budget``), was woken
        from a wait in trio. A timed wait (one a deadline could end: not shielded) that began
        before the clock's end and ended after it counts, from that end, as lateness in its own
        time (``Timeouts.late_ns``): the budget's deadline should have ended it then. Only timed
        waits count, as in the direct engine: a shielded wait waits for another context (an
        inner lock retaken on the way out after a cancellation, trio.Condition's shielded
        re-acquire). If the budget's scope has been cancelled, its deadline passed: the clock is
        found expired here, at the wake, not a step later when trio delivers it."""
        now = self.machine.now
        expiry = ctx.expiry
        assert expiry is not None
        if ctx.slept < expiry < now and not ctx.shielded:
            ctx.late += now - expiry
        scope = ctx.budget_scope
        if scope is not None and scope.cancel_called:
            attempt = self.truth.attempts.get(ctx.index)
            if attempt is not None and attempt.expired < 0:
                ctx.budget_scope = None
                self.mark(ctx, Mark.EXPIRED, attempt.lock)

    def _deadline_passed(self, ctx: Context) -> None:
        """``ctx``, waiting in trio inside a call into the target, was woken by the trio deadline
        the clock just jumped to: its cancel scope's deadline passed (a budget, or the target's
        own timeout). Shown on the timeline (a ``CANCEL`` event, value 2 or 3); the ground truth
        takes no note (a target's inner timeout need not end the attempt)."""
        call = self._t_calls.get(ctx.index)
        if call is not None:
            lock, releasing = call
        else:
            attempt = self.truth.attempts.get(ctx.index)
            if attempt is None:
                return
            lock, releasing = attempt.lock, 0
        self.log(ctx, CANCEL, lock, 2 + releasing)

    def _trio_deadline(self) -> int | None:
        """The first time (ns) at which trio's earliest cancel-scope deadline has passed."""
        machine = self.machine
        now = machine.now
        secs = trio.lowlevel.current_statistics().seconds_to_next_deadline
        if secs == math.inf:
            return None

        def passed(ns: int) -> bool:
            machine.now = ns
            return _internals.deadline_due()

        try:
            ns = now + max(0, round(secs * 1e9))
            while not passed(ns):
                ns += 1
            while ns > now and passed(ns - 1):
                ns -= 1
        finally:
            machine.now = now
        return ns

    # -- interrupts and the end of a line ---------------------------------------------------------
    def _fire(self, cpu: int, h: int) -> None:
        Engine._fire(self, cpu, h)  # pushes the handler's context and makes it current
        assert self.cur is not None
        self._spawn(self.cur)

    def _finish(self, ctx: Context) -> None:
        self._t_ctx_of.pop(self._t_task[ctx.index], None)
        Engine._finish(self, ctx)


# -- waits outside lockfuzz's virtual time ----------------------------------------------------------
#: trio's modules whose waits (``wait_task_rescheduled`` with an abort function of theirs) only
#: real time ends, and what they are.
_FOREIGN: dict[Any, str] = {
    "trio._threads": "trio.to_thread.run_sync (a real thread)",
    "trio._core._io_epoll": "real I/O (trio.lowlevel.wait_readable/wait_writable: a socket, pipe or process)",
    "trio._core._io_kqueue": "real I/O (trio.lowlevel.wait_readable/wait_writable: a socket, pipe or process)",
    "trio._core._io_windows": "real I/O (an overlapped operation, socket or pipe)",
}


def _foreign_wait(engine: TrioEngine, ctx: Context, what: str) -> Violation:
    """The ``target-fault/foreign-wait`` finding for ``ctx``, which has begun to wait in
    ``what``: a wait outside the virtual clock and the schedule, so no run could be replayed."""
    where = _caller(ctx.coro)
    call = engine._t_calls.get(ctx.index)
    attempt = engine.truth.attempts.get(ctx.index)
    locks = (call[0],) if call is not None else (attempt.lock,) if attempt is not None else ()
    return Violation(
        "target-fault", "foreign-wait",
        f"{ctx.name} waits in {what}{where}: a wait that real time ends, outside lockfuzz's virtual clock and "
        "schedule, so no run of it could be replayed; the target must only wait on trio primitives, trio's "
        "sleeps and deadlines, or lockfuzz cells",
        contexts=(ctx.name,), locks=locks, time_ns=engine.machine.now,
    )


def _caller(coro: Any) -> str:
    """", called from <function> (<file>:<line>)": the innermost frame of ``coro``'s await chain
    that is neither trio's, anyio's nor lockfuzz's own (the target's code: ``target_frames``)."""
    frames = list(target_frames(coro))
    if not frames:
        return ""
    frame = frames[-1]
    code = frame.f_code
    name = getattr(code, "co_qualname", code.co_name)
    return f", called from {name} ({os.path.basename(code.co_filename)}:{frame.f_lineno})"


# -- the task of a context ------------------------------------------------------------------------
async def _context_task(engine: TrioEngine, ctx: Context, scope: Any) -> None:
    try:
        with scope:
            await _pump(engine, ctx)
    except GeneratorExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - recorded (or, once stopped, dropped)
        engine._task_error(ctx, exc)
    finally:
        engine._task_ended(ctx)


#: Yield to trio's run loop, queued again at once: wait for the next decision.
_turn = _internals.shielded_checkpoint_trap
_is_shielded = _internals.is_shielded_checkpoint


@types.coroutine
def _pump(engine: TrioEngine, ctx: Context) -> Generator[Any, Any, None]:
    """Run ``ctx``'s line: trio's checkpoints go to trio, lockfuzz requests wait for a decision
    and are performed by the engine (see the module doc). Each resumption is one step."""
    coro = ctx.coro
    results = engine._t_res
    index = ctx.index
    value: Any = None
    thrown: BaseException | None = None

    def abort(raise_cancel: Any) -> Any:
        # A trio cancellation reached a context in one of the engine's waits (a target mixing
        # cells with trio cancel scopes, or the run stopping): it stops waiting, and its next
        # step, a checkpoint, delivers the cancellation.
        engine._unblock(ctx, wake=False)
        ctx.pending = _TRIO_STEP
        return trio.lowlevel.Abort.SUCCEEDED

    try:
        while True:
            if engine._t_stopped:
                raise _Stopped
            try:
                msg = coro.send(value) if thrown is None else coro.throw(thrown)
            except StopIteration:
                engine._finish(ctx)
                return
            thrown = None
            if type(msg) is tuple:
                if len(msg) != 4:
                    raise Violation(
                        "target-fault", "foreign-await",
                        f"the target awaited {msg!r}, which is neither a lockfuzz request nor a trio checkpoint",
                        contexts=(ctx.name,), time_ns=engine.machine.now,
                    )
                ctx.pending = msg
                if ctx.park:  # its last step completed a spin (TrioEngine._step): park it now
                    engine._park(ctx, ctx.park)
                    ctx.park = 0
                if not ctx.blocked and not engine._decide_in_task(ctx):
                    yield from _turn()
                while ctx.blocked:
                    # Its step blocked it: the next pass may only have to jump the clock.
                    engine._jump_in_task(ctx)
                    if ctx.blocked or engine._t_stopped:
                        break
                    # Woken by that jump: its wake-up step (the request again) is the next
                    # decision, made as for any request.
                    if not engine._decide_in_task(ctx):
                        yield from _turn()
                while ctx.blocked:
                    if engine._t_stopped:
                        raise _Stopped
                    try:
                        yield from trio.lowlevel.wait_task_rescheduled(abort).__await__()
                    except trio.Cancelled as exc:
                        thrown = exc
                        break
                value = results[index]
            else:
                ctx.pending = _TRIO_STEP
                ctx.park = 0
                if _is_shielded(msg) and engine._decide_in_task(ctx):
                    value = _internals.shielded_checkpoint_answer()  # trio's, without the pass
                    continue
                if (ctx.expiry is not None or engine._t_timed) and not _is_shielded(msg):
                    _trio_wait_deadline(ctx, engine._t_timed)  # can a deadline end this wait, and when?
                foreign = _FOREIGN.get(getattr(getattr(msg, "abort_func", None), "__module__", None))
                if foreign is not None and not engine._t_stopped:
                    # A wait that only real time ends (a thread, the OS): refused where it begins,
                    # so that the finding does not depend on how fast the thread or the OS is.
                    engine._fail(_foreign_wait(engine, ctx, foreign))
                try:
                    value = yield msg
                except GeneratorExit:
                    raise
                except BaseException as exc:  # noqa: BLE001 - thrown in by trio: the target's to handle
                    thrown = exc
    except _Stopped:
        yield from _unwind(coro)
        raise


def _trio_wait_deadline(ctx: Context, to_ns: bool) -> None:
    """``ctx``'s task is about to wait in trio (it is running: trio's public
    ``current_effective_deadline`` answers for it): note whether a deadline can end the wait
    (``shielded``: none can, ``TrioEngine._woken_in_trio``) and, with ``to_ns``, when: the first
    nanosecond at which trio's clock (ns / 1e9) reaches it (``deadline``, as for the engine's own
    timed waits: a deadlock cycle's clock, ``edeadlk_complete``, runs while a checker sleeps in
    a timed wait, up to the first deadline of a member; only a target that claims detection
    needs it). Cleared when the wait ends (``_decide``)."""
    d = trio.current_effective_deadline()
    ctx.shielded = d == math.inf
    if not to_ns:
        return
    if d == math.inf or d == -math.inf:  # no deadline; or cancelled already: the wait ends at once
        ctx.deadline = None
        return
    ns = math.ceil(d * 1e9)
    while (ns - 1) / 1e9 >= d:
        ns -= 1
    while ns / 1e9 < d:
        ns += 1
    ctx.deadline = ns


#: Lockfuzz requests an unwinding target may still make (each refused with ``_Stopped``) before
#: its coroutine is closed instead.
_UNWIND_REQUESTS = 100


@types.coroutine
def _unwind(coro: Any) -> Generator[Any, Any, None]:
    """The run has stopped: end the target's coroutine inside its task, the way trio ends a
    cancelled one, so that its cancel scopes and ``finally`` blocks run in order. ``_Stopped`` is
    thrown in where it stopped, and again at every lockfuzz request it makes on its way out
    (the run performs nothing more); trio's own checkpoints and waits go to trio, which answers
    them (cancelled: ``_stop`` cancelled every context's scope). Not ``coro.close()``: a bare
    ``except:`` that awaits (``trio.Condition.wait`` retakes its lock, shielded, in one) would
    catch the ``GeneratorExit``, wait, and leave its shielded scope open on the task, which
    corrupts trio's run for every later run on the host. A target that keeps making requests
    (a loop that swallows ``_Stopped``) is closed after ``_UNWIND_REQUESTS``; one that waits
    for ever in a shielded wait is given up by the run loop (``_ABANDON_AFTER``)."""
    thrown: BaseException | None = _Stopped()
    value: Any = None
    requests = 0
    while True:
        try:
            msg = coro.throw(thrown) if thrown is not None else coro.send(value)
        except BaseException:  # noqa: BLE001 - ended: returned, let the stop through, or raised on its way out
            return
        thrown = None
        if type(msg) is tuple:  # a lockfuzz request: refused
            requests += 1
            if requests > _UNWIND_REQUESTS:
                try:
                    coro.close()
                except BaseException:  # noqa: BLE001 - a target misbehaving on close changes nothing found
                    pass
                return
            thrown = _Stopped()
            continue
        try:
            value = yield msg
        except BaseException as exc:  # noqa: BLE001 - trio's answer (a cancellation): the target's to handle
            thrown = exc
