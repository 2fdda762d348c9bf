"""The no-yield watchdog: a step that runs too long in real time is a finding, not a hang.

A target over cells (or over trio) is preempted only where it awaits. A Python loop that never
awaits would hold the engine, and the campaign, for ever: the step limit counts steps, and such
a loop takes no more of them. So while a run is in progress an interval timer (``SIGALRM``,
``signal.setitimer``) ticks a few times per bound; a tick that finds the run has made no progress
(no new event) for ``step_timeout`` seconds of real time raises ``NoYield`` where the code is,
and the run ends in a ``target-fault/no-yield`` violation, saved like any other.

Why a timer rather than a check in the engine's loop: the loop is not running while the target
loops; only a signal gets in. Why progress by events: every step the engine takes appends one,
so nothing is added to the hot loop; the timer is armed and disarmed once per run. Installing a
signal handler costs more than a short run's oracles (about 4 us, twice per run), so a campaign
installs it once for all its runs (``step_timeout``), and each run only arms the timer.

What it cannot interrupt (the manual's limits say so too): a target that catches
``BaseException`` and loops on; code blocked inside a C call that does not return to the
interpreter; a run outside the main thread (signals are only delivered there), on a platform
without ``setitimer`` (Windows), or in a program that uses ``SIGALRM`` itself: there the
watchdog is off.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

__all__ = ["DEFAULT_STEP_TIMEOUT", "NoYield", "guard", "step_timeout"]

#: Seconds of real time a step may run before it is a ``no-yield`` finding.
DEFAULT_STEP_TIMEOUT = 5.0
_TICKS = 4  # timer ticks per bound: a loop is caught between 1 and 1.25 bounds after it began

_timeout: float | None = DEFAULT_STEP_TIMEOUT
_engine: Any = None  # the run in progress
_serial = 0  # which run: an engine's id() may be reused by the next one
_mark: tuple[int, int, int] = (-1, -1, -1)
_since = 0.0


class NoYield(BaseException):
    """Raised by the watchdog inside a step that ran too long. A ``BaseException``, so that a
    target's own ``except Exception`` does not swallow it."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"a step ran for more than {seconds:g} s of real time without yielding")
        self.seconds = seconds


_installed = False  # ``_tick`` is SIGALRM's handler for a campaign's runs (``step_timeout``)


@contextmanager
def step_timeout(seconds: float | None) -> Iterator[None]:
    """Runs inside use ``seconds`` as their bound (None: no watchdog). Where the watchdog can
    run, its handler is installed once for every run inside, and restored after."""
    global _timeout, _installed
    previous, _timeout = _timeout, seconds
    install = seconds is not None and not _installed and _engine is None and _usable()
    if install:
        signal.signal(signal.SIGALRM, _tick)
        _installed = True
    try:
        yield
    finally:
        _timeout = previous
        if install:
            _installed = False
            signal.signal(signal.SIGALRM, signal.SIG_DFL)


def _progress(engine: Any) -> tuple[int, int, int]:
    # The trio driver runs helper tasks a target starts without a step (or an event): count
    # those passes too, so that a helper that yields often is never taken for one that does not.
    return _serial, len(engine.events), getattr(engine, "_t_free", 0)


def _tick(signum: int, frame: Any) -> None:
    global _mark, _since
    engine, timeout = _engine, _timeout
    if engine is None or timeout is None:
        return
    now = time.monotonic()
    mark = _progress(engine)
    if mark != _mark:
        _mark, _since = mark, now
    elif now - _since >= timeout:
        _since = now  # if the target catches it and loops on, once more a bound later
        raise NoYield(timeout)


def _usable() -> bool:
    """Signals reach the main thread only; and a program that uses ``SIGALRM`` itself (a handler
    of its own, or a timer running) keeps it: the watchdog stays off rather than disturb it."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return False
    return signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None) and not any(
        signal.getitimer(signal.ITIMER_REAL)
    )


@contextmanager
def guard(engine: Any) -> Iterator[None]:
    """Watch ``engine``'s run (``Engine.run``); a nested run is watched by the outer guard."""
    global _engine, _serial, _mark, _since
    timeout = _timeout
    if timeout is None or _engine is not None:
        yield
        return
    # Inside a campaign the handler is already ours (unless something replaced it meanwhile);
    # a run on its own installs it, and restores the default after.
    ours = _installed and signal.getsignal(signal.SIGALRM) is _tick
    if not ours and not _usable():
        yield
        return
    _serial += 1
    _engine, _mark, _since = engine, _progress(engine), time.monotonic()
    interval = max(timeout / _TICKS, 0.01)
    if not ours:
        signal.signal(signal.SIGALRM, _tick)
    signal.setitimer(signal.ITIMER_REAL, interval, interval)
    try:
        yield
    finally:
        _engine = None
        signal.setitimer(signal.ITIMER_REAL, 0)
        if not ours:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
