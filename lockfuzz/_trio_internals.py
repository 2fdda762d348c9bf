"""The only module of lockfuzz that touches trio's private internals.

The trio driver (``_trio_driver``) makes trio's run loop run one task of its choosing per pass,
so that every checkpoint of every context is a scheduling decision (DESIGN.md, "How data
flows"). Everything else it does goes through trio's public API: a ``trio.abc.Clock`` for
virtual time, ``trio.lowlevel.wait_task_rescheduled``/``reschedule`` to park and wake tasks,
``trio.lowlevel.current_statistics()`` for the next deadline, ``Nursery.start_soon`` and
``Nursery.child_tasks`` to make and know the tasks. This module holds the one thing that has no
public API.

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

3. (Only an optimisation, with a public fallback.) ``trio.lowlevel.cancel_shielded_checkpoint()``
   is a coroutine that yields one message to the run loop, which answers it by queueing the task
   again at once and resuming it with ``outcome.Value(None)``; yielding that same message
   directly (``shielded_checkpoint_trap``) is the same checkpoint without making a coroutine
   object each time. If the message cannot be captured, the public coroutine is used.

So ``steer_run_queue`` replaces ``runner.runq`` by a deque subclass whose iteration, when the run
loop takes a batch, yields only the tasks a callback selects and whose ``clear()`` removes only
those: the other tasks stay queued, runnable, for a later pass (and keep the run loop from
sleeping). If trio changes either point, ``steer_run_queue`` raises ``UnsupportedTrio`` or the
differential test in tests/fast/test_trio_driver.py fails; the tox environments for the oldest and
the newest supported trio exist to see that at once.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, List

import trio

__all__ = ["MIN_TRIO", "UnsupportedTrio", "shielded_checkpoint_trap", "steer_run_queue", "trio_version"]

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


try:  # trio >= 0.22: GLOBAL_RUN_CONTEXT lives in _core._run (re-exported from _run_context later)
    from trio._core._run import GLOBAL_RUN_CONTEXT as _RUN_CONTEXT
except ImportError:  # pragma: no cover - a trio that moved it
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


def shielded_checkpoint_trap() -> Any:
    """A generator to ``yield from`` in a ``types.coroutine``: a cancel-shielded checkpoint."""
    if _SHIELDED_TRAP is None:
        return (yield from trio.lowlevel.cancel_shielded_checkpoint().__await__())
    (yield _SHIELDED_TRAP).unwrap()
