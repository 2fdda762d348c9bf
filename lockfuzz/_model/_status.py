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
      the pending waiter or the head, not the earliest arrival;
    - ``LEFT``: this step gave up its place on the way out (rqspinlock clearing its pending bit,
      or a queue head handing its role on or tearing the queue down): the acquisition will
      return an error, nobody waits behind it any more and it waits for nobody. Without it, a
      handler that lands between that step and the return, and queues behind the leaving
      waiter, would be on an AA cycle that the lock rightly never sees.
    """

    TAKEN = 1
    PENDING = 2
    HEAD = 3
    LEFT = 4

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
