"""The only module of lockfuzz that touches trio's private internals.

The trio driver (``_driver``) makes trio's run loop run one task of its choosing per pass,
so that every checkpoint of every context is a scheduling decision (DESIGN.md, "How data
flows"). Everything else it does goes through trio's public API: a ``trio.abc.Clock`` for
virtual time, ``trio.lowlevel.start_guest_run`` to host the run, ``wait_task_rescheduled``/
``reschedule`` to park and wake tasks, ``Nursery.start_soon`` and ``Nursery.child_tasks`` to make
and know the tasks. This module holds what has no public API: the run queue (points 1-2), two
optimisations with public fallbacks (3-4), and sharing a thread with another trio run (5).

What it relies on (read in trio's ``_core/_run.py`` of 0.22.2 and 0.35.0; tests/fast/
test_trio_driver.py passes on every trio release from 0.22.0, the oldest pyproject.toml allows,
to 0.35.0, the newest at the time of writing: 0.22.0, 0.22.2, 0.23.2, 0.24.0, 0.25.1, 0.26.2,
0.27.0, 0.28.0, 0.29.0, 0.30.0, 0.31.0, 0.32.0, 0.33.0, 0.34.0, 0.35.0; tox.ini's ``trio-oldest``
and ``trio-newest`` environments keep checking both ends):

1. ``trio._core._run.GLOBAL_RUN_CONTEXT`` is the thread-local run context: while ``trio.run``
   runs, ``.runner`` is the ``Runner``, and ``.task`` is set only while a task is being stepped
   (the run loop deletes it after each step).
2. ``runner.runq`` is a ``collections.deque`` of runnable tasks, looked up as an attribute at
   each use: ``Runner.reschedule`` appends to it; the run loop tests its length, and takes each
   pass's batch, outside any task, with exactly ``batch = list(runner.runq)`` followed by
   ``runner.runq.clear()``; nothing else iterates or clears it.

3. (Only an optimisation, with a public fallback.) ``runner.deadlines.next_deadline()`` is the
   earliest registered cancel-scope deadline (``inf`` if none), the one the run loop's
   ``runner.deadlines.expire(now)`` compares with ``deadline <= now`` between passes. The
   fallback is ``trio.lowlevel.current_statistics().seconds_to_next_deadline``, a few times
   slower. With no deadline due, no I/O, no task in ``trio.testing.wait_all_tasks_blocked``
   (``runner.waiting_for_idle``, which the pass would wake when nothing else can run; if the
   attribute is missing the driver assumes there is one) and nothing but contexts queued, the
   run loop's next pass changes nothing a context could see before it takes its batch: that is
   what lets the driver decide a step inside the running task (``TrioEngine._decide_in_task``,
   ``TrioEngine._jump_in_task``).

4. (Only an optimisation, with a public fallback.) ``trio.lowlevel.cancel_shielded_checkpoint()``
   is a coroutine that yields one message to the run loop, which answers it by queueing the task
   again at once and resuming it with ``outcome.Value(None)``; yielding that same message
   directly (``shielded_checkpoint_trap``) is the same checkpoint without making a coroutine
   object each time. If the message cannot be captured, the public coroutine is used.

5. A guest run (``trio.lowlevel.start_guest_run``, public) keeps its ``Runner`` in
   ``GLOBAL_RUN_CONTEXT.runner`` from its start to its end, and ``setup_runner`` refuses to start
   one in a thread whose ``GLOBAL_RUN_CONTEXT`` already has a runner. ``GuestRun`` moves that
   thread-local state (``runner``; ``task`` while a task steps) in and out around each use, so
   that a long-lived guest run, ticked only while an engine run needs it, shares its thread with
   the caller, even when the caller runs inside ``trio.run`` (a campaign) or later starts one.
   The rest of what a run makes global is public and moved the same way: the async generator
   hooks (``sys.get_asyncgen_hooks``), the ``SIGINT`` handler (put back at once), and the signal
   wake-up fd (left alone: ``host_uses_signal_set_wakeup_fd=True``).

So ``steer_run_queue`` replaces ``runner.runq`` by a deque subclass whose iteration, when the run
loop takes a batch, yields only the tasks a callback selects and whose ``clear()`` removes only
those: the other tasks stay queued, runnable, for a later pass (and keep the run loop from
sleeping). If trio changes point 1, 2 or 5, ``steer_run_queue`` or ``GuestRun`` raises
``UnsupportedTrio``, or tests/fast/test_trio_driver.py fails (the differential test, the test that
deciding inside a task changes no trace, the tests of runs inside and after ``trio.run``); the tox
environments for the oldest and the newest supported trio exist to see that at once.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections import deque
from typing import Any, Callable, List

import outcome
import trio

try:
    # The C functions under ``signal.signal``/``signal.getsignal``, without the conversion of
    # every handler and signal number to an enum that the ``signal`` module adds: 0.4 us a call
    # instead of 3-4, and ``until`` makes three of them every phase of every run.
    from _signal import getsignal as _getsignal
    from _signal import signal as _setsignal
except ImportError:  # pragma: no cover - an interpreter without CPython's _signal
    _getsignal, _setsignal = signal.getsignal, signal.signal

__all__ = [
    "MIN_TRIO", "GuestRun", "UnsupportedTrio", "deadline_due", "idle_waiters", "is_shielded_checkpoint",
    "queued_tasks", "shielded_checkpoint_answer", "shielded_checkpoint_trap", "steer_run_queue",
    "trio_version",
]

#: The oldest trio release this module was checked against (pyproject says ``trio>=0.22``).
MIN_TRIO = (0, 22, 0)


class UnsupportedTrio(RuntimeError):
    """The installed trio does not have the internals the trio driver relies on."""


def trio_version() -> tuple[int, ...]:
    out = []
    for part in trio.__version__.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


_RUN_CONTEXT: Any
try:  # trio >= 0.22: GLOBAL_RUN_CONTEXT lives in _core._run (re-exported from _run_context later)
    from trio._core import _run as _trio_run

    _RUN_CONTEXT = _trio_run.GLOBAL_RUN_CONTEXT
except (ImportError, AttributeError):  # pragma: no cover - a trio that moved it
    _RUN_CONTEXT = None

Select = Callable[[List[Any]], List[Any]]


class _SteeredRunq(deque):  # type: ignore[type-arg]
    """trio's run queue, handing the run loop only the tasks ``select`` picks (see module doc)."""

    __slots__ = ("_batch", "_select")

    def __init__(self, tasks: Any, select: Select) -> None:
        super().__init__(tasks)
        self._select = select
        self._batch: list[Any] | None = None

    def __iter__(self) -> Any:
        if hasattr(_RUN_CONTEXT, "task"):
            # Iterated from inside a task (a debugger, a statistics helper): the plain queue.
            return deque.__iter__(self)
        batch = self._select([*deque.__iter__(self)])
        self._batch = batch
        return iter(batch)

    def clear(self) -> None:
        batch = self._batch
        self._batch = None
        if batch is None or len(batch) == len(self):
            deque.clear(self)
            return
        for task in batch:
            self.remove(task)  # tasks compare by identity


def steer_run_queue(select: Select) -> None:
    """From inside ``trio.run``: from the next pass of the run loop on, run only the tasks that
    ``select(runnable)`` returns (a sub-list of the runnable tasks, in the order to run them)."""
    runner = getattr(_RUN_CONTEXT, "runner", None)
    runq = getattr(runner, "runq", None)
    if runner is None or type(runq) is not deque and not isinstance(runq, _SteeredRunq):
        raise UnsupportedTrio(
            f"trio {trio.__version__}: the run loop's queue is not where lockfuzz expects it "
            "(trio._core._run.GLOBAL_RUN_CONTEXT.runner.runq); the trio driver supports trio "
            f">= {'.'.join(map(str, MIN_TRIO))} with that layout"
        )
    runner.runq = _SteeredRunq(runq, select)


def queued_tasks() -> list[Any]:
    """From inside a task: the tasks in trio's run queue (the running task is not among them)."""
    return [*deque.__iter__(_RUN_CONTEXT.runner.runq)]


def deadline_due() -> bool:
    """From inside ``trio.run``: whether the run loop's next pass would expire a cancel-scope
    deadline (point 3 of the module doc)."""
    runner = _RUN_CONTEXT.runner
    deadlines = getattr(runner, "deadlines", None)
    if deadlines is not None and _HAS_NEXT_DEADLINE:
        return bool(deadlines.next_deadline() <= runner.clock.current_time())
    return bool(trio.lowlevel.current_statistics().seconds_to_next_deadline <= 0)


def idle_waiters() -> bool:
    """From inside ``trio.run``: whether a task waits in ``trio.testing.wait_all_tasks_blocked``
    (the run loop's next pass, finding nothing to run, would wake it: point 3)."""
    return bool(getattr(_RUN_CONTEXT.runner, "waiting_for_idle", True))


def _has_next_deadline() -> bool:
    try:
        from trio._core._run import Deadlines
    except ImportError:  # pragma: no cover - a trio that moved it
        return False
    return callable(getattr(Deadlines, "next_deadline", None))


_HAS_NEXT_DEADLINE = _has_next_deadline()


def _capture_trap() -> Any:
    coro = trio.lowlevel.cancel_shielded_checkpoint()
    try:
        msg = coro.send(None)
    except BaseException:  # noqa: BLE001 - no capturable message: use the public coroutine
        return None
    finally:
        coro.close()
    return msg if isinstance(msg, type) else None  # trio's traps of this kind are singletons


_SHIELDED_TRAP = _capture_trap()


def is_shielded_checkpoint(msg: Any) -> bool:
    """Whether ``msg``, yielded by a task, is trio's cancel-shielded checkpoint, which the run
    loop answers by queueing the task again at once with ``outcome.Value(None)``."""
    return _SHIELDED_TRAP is not None and msg is _SHIELDED_TRAP


def shielded_checkpoint_answer() -> Any:
    """What the run loop resumes a task with after its cancel-shielded checkpoint (point 4)."""
    return outcome.Value(None)


def shielded_checkpoint_trap() -> Any:
    """A generator to ``yield from`` in a ``types.coroutine``: a cancel-shielded checkpoint."""
    if _SHIELDED_TRAP is None:
        return (yield from trio.lowlevel.cancel_shielded_checkpoint().__await__())
    (yield _SHIELDED_TRAP).unwrap()


class GuestRun:
    """A ``trio`` run in guest mode, hosted by the thread that makes it, that advances only
    inside ``until`` (module doc, point 5).

    Its host loop is ``self._soon``, a queue of callbacks that only ``until`` calls. The run's
    clock must never ask to sleep (``deadline_to_sleep_time`` returns 0): then every tick of the
    run queues the next one here, and trio never waits for I/O in a thread of its own. Between
    two ``until`` calls the next tick waits in the queue and the run costs nothing.

    Ctrl-C. Python raises ``KeyboardInterrupt`` wherever the main thread happens to be; inside
    trio's run loop that would wreck the run (trio reports ``TrioInternalError``). So while
    ``until`` ticks in the main thread with Python's default handler in place, a first ``SIGINT``
    is held and raised as ``KeyboardInterrupt`` between two ticks, where the run is whole; a
    second one, if the first is not seen (a tick that never ends), is raised at once.
    """

    def __init__(self, async_fn: Callable[..., Any], *args: Any, clock: Any) -> None:
        if _RUN_CONTEXT is None:  # pragma: no cover - a trio that moved it
            raise UnsupportedTrio(f"trio {trio.__version__}: no trio._core._run.GLOBAL_RUN_CONTEXT")
        self._soon: deque[Callable[[], Any]] = deque()
        self.outcome: Any = None  # set when the run has ended (``done``)
        self._state: dict[str, Any] = {}
        self._hooks: Any = (None, None)
        self._interrupted = False
        # Ctrl-C is held from the start: with a handler of ours in place, trio installs none of
        # its own (it does only over Python's default handler), which would take a SIGINT that
        # lands here into the run's root task, where nothing would ever raise it.
        main = threading.current_thread() is threading.main_thread()
        sigint = _getsignal(signal.SIGINT) if main else None
        hold = sigint is signal.default_int_handler
        if hold:
            _setsignal(signal.SIGINT, self._on_sigint)
        try:
            with self.entered():
                trio.lowlevel.start_guest_run(
                    async_fn, *args,
                    run_sync_soon_threadsafe=self._soon.append,  # deque.append is atomic
                    run_sync_soon_not_threadsafe=self._soon.append,
                    done_callback=self._done,
                    host_uses_signal_set_wakeup_fd=True,
                    clock=clock,
                )  # fmt: skip
        finally:
            if main and _getsignal(signal.SIGINT) is not sigint:
                # The caller's handler stays (a Ctrl-C held here is raised by the next ``until``).
                _setsignal(signal.SIGINT, sigint)

    @property
    def done(self) -> bool:
        return self.outcome is not None

    def _done(self, result: Any) -> None:
        self.outcome = result

    def entered(self) -> Any:
        """A context manager: the run's thread-local state in place of the caller's, inside."""
        return _Swap(self)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._interrupted:
            raise KeyboardInterrupt
        self._interrupted = True

    def until(self, finished: Callable[[], bool], *, first: Callable[[], Any] | None = None) -> None:
        """Call ``first()`` if given, then tick the run until ``finished()`` or the run has ended;
        both inside the run's state (``entered``) and with Ctrl-C held (see the class doc)."""
        soon = self._soon
        hold = (
            threading.current_thread() is threading.main_thread()
            and _getsignal(signal.SIGINT) is signal.default_int_handler
        )
        if hold:
            _setsignal(signal.SIGINT, self._on_sigint)
        try:
            with self.entered():
                if first is not None:
                    first()
                while not self._interrupted and not finished() and self.outcome is None:
                    soon.popleft()()
        finally:
            if hold:
                _setsignal(signal.SIGINT, signal.default_int_handler)
        if self._interrupted:  # held until now, between two ticks (or after the last one)
            self._interrupted = False
            raise KeyboardInterrupt


class _Swap:
    """Put a guest run's thread-local state in place, and the caller's back after."""

    __slots__ = ("_guest", "_saved", "_hooks")

    def __init__(self, guest: GuestRun) -> None:
        self._guest = guest

    def __enter__(self) -> None:
        here = _RUN_CONTEXT.__dict__
        self._saved = dict(here)
        self._hooks = sys.get_asyncgen_hooks()
        here.clear()
        here.update(self._guest._state)
        sys.set_asyncgen_hooks(*self._guest._hooks)

    def __exit__(self, *exc: Any) -> None:
        here = _RUN_CONTEXT.__dict__
        self._guest._state = dict(here)
        self._guest._hooks = sys.get_asyncgen_hooks()
        here.clear()
        here.update(self._saved)
        sys.set_asyncgen_hooks(*self._hooks)
