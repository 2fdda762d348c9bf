"""Return codes of an acquisition and the levels a context can run at.

Status values are the kernel's: an acquisition returns 0 or a negative errno, as
``res_spin_lock()`` does (include/asm-generic/rqspinlock.h). Keeping the numbers means a
trace reads like the C code it models.
"""

from __future__ import annotations

import enum

__all__ = ["Level", "Mark", "Status"]


class Status(enum.IntEnum):
    """What ``Target.acquire`` returns."""

    OK = 0
    EDEADLK = -35  # errno.EDEADLK on Linux
    ETIMEDOUT = -110  # errno.ETIMEDOUT on Linux
    EALREADY = -114  # errno.EALREADY: ww_mutex re-lock with the same acquire context
    #: Not a target's to return: the trio driver logs it for an acquisition its schedule
    #: cancelled (``trio.Cancelled`` raised out of ``acquire``; see ``Settings.cancels``).
    ECANCELED = -125  # errno.ECANCELED on Linux

    def __str__(self) -> str:
        return self.name


class Mark(enum.IntEnum):
    """What a target may tell the ground truth about a step of its acquisition (``ctx.mark``).

    The ground truth otherwise learns who holds a lock only when ``acquire`` returns, and knows
    no queue order. A queued lock that marks its steps is judged by its real state:

    - ``TAKEN``: this step took the lock (the CAS that set the locked byte): from now on the
      context holds it, before ``acquire`` returns (a handler that lands before the return and
      asks for the lock waits for it: a deadlock the wait-for graph now shows);
    - ``PENDING``: this step made it the pending waiter (qspinlock's pending bit): every other
      waiter on the lock waits behind it;
    - ``HEAD``: this step made it the head of the lock's queue: the waiters queued after it
      wait behind it, and "the first waiter" of a ``Detection(first_waiter_only=True)`` claim is
      the pending waiter or the head, not the earliest arrival.
    - ``LEFT``: this step gave up the place its ``PENDING`` or ``HEAD`` mark gave it, on its way
      out of a failed attempt (rqspinlock's pending waiter clearing its pending bit, a queue head
      handing the head role on, telling its successor to leave, or resetting the tail): nobody
      waits behind it any more and it waits for nobody, though its attempt has not returned
      yet (a handler that lands before the return and queues for the lock is on no cycle with it).

    Three more marks time a fixed timeout to the step (``Timeouts``: ``min_ns``, ``head_min_ns``,
    ``late_ns``, ``way_out_ns``); they change nothing about who holds or waits:

    - ``ARMED``: this step read the clock and armed the attempt's timeout (the kernel's first
      ``check_timeout`` of a wait loop: ``timeout_end = now + duration``). Its duration is the
      declared one: ``Timeouts.head_min_ns`` for an arming after the attempt's ``HEAD`` mark
      (rqspinlock's queue head re-arms with twice the pending waiter's: ``RES_RESET_TIMEOUT``),
      else ``Timeouts.min_ns`` (the budget, for per-call timeouts). Arming again replaces it.
    - ``EXPIRED``: this step's check found the armed timeout run out, and the attempt gives up
      (``now > timeout_end``). It must come at least the armed duration after ``ARMED``
      (``etimedout/early`` otherwise, with no grace), no later than ``Timeouts.late_ns`` of the
      waiter's own time after that, and at the step where it first read the time (``ctx.now``)
      past that (``bounded-waiting/late``). Its way out starts there (``Timeouts.way_out_ns``).
    - ``TOLD``: this step read that the waiter ahead told it to leave (rqspinlock's queued
      waiter finding ``RES_TIMEOUT_VAL`` in its node when its timed-out head tears the queue
      down): it gives up with no clock of its own, and its way out starts there, as after
      ``EXPIRED`` (``Timeouts.way_out_ns``).
    """

    TAKEN = 1
    PENDING = 2
    HEAD = 3
    ARMED = 4
    EXPIRED = 5
    LEFT = 6
    TOLD = 7

    def __str__(self) -> str:
        return self.name.lower()


class Level(enum.IntEnum):
    """The nesting level of a context on its CPU: a handler only fires above a lower level."""

    TASK = 0
    SOFTIRQ = 1
    HARDIRQ = 2
    NMI = 3

    def __str__(self) -> str:
        return self.name.lower()
