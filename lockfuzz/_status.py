"""Return codes of an acquisition and the levels a context can run at.

Status values are the kernel's: an acquisition returns 0 or a negative errno, as
``res_spin_lock()`` does (include/asm-generic/rqspinlock.h). Keeping the numbers means a
trace reads like the C code it models.
"""

from __future__ import annotations

import enum

__all__ = ["Level", "Status"]


class Status(enum.IntEnum):
    """What ``Target.acquire`` returns."""

    OK = 0
    EDEADLK = -35  # errno.EDEADLK on Linux
    ETIMEDOUT = -110  # errno.ETIMEDOUT on Linux
    EALREADY = -114  # errno.EALREADY: ww_mutex re-lock with the same acquire context

    def __str__(self) -> str:
        return self.name


class Level(enum.IntEnum):
    """The nesting level of a context on its CPU: a handler only fires above a lower level."""

    TASK = 0
    SOFTIRQ = 1
    HARDIRQ = 2
    NMI = 3

    def __str__(self) -> str:
        return self.name.lower()
