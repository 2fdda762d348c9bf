"""Mutant of ``targets/qrwlock.py``: a process-context reader does not back off for a waiting writer.

Broken: the reader fast path (``queued_read_lock``) keeps the lock when no writer *holds* it,
testing ``cnts & _QW_LOCKED`` where the kernel tests ``cnts & _QW_WMASK`` (a writer holds *or
waits*). A writer that has set ``_QW_WAITING`` and waits for the readers to drain is passed by
every reader that arrives meanwhile, from task context as from interrupts: the writer preference
the lock declares (``preference="writers"``) is gone, and a stream of readers starves the
writer. Mutual exclusion still holds (the writer waits for ``cnts == _QW_WAITING``, so it never
enters beside a reader). It takes a reader holding, a writer queued behind it (``_QW_WAITING``
set), and a second task reader arriving then. Caught by: **fairness**
(``fairness/reader-overtook-writer``): the writer has arrived at its ``Mark.PENDING`` step (the
one that sets ``_QW_WAITING``; ``QRWLock`` declares ``doorway_steps=None``), and the reader that
arrives after it takes the lock first.
"""

from __future__ import annotations

from lockfuzz.targets.qrwlock import QW_LOCKED, QRWLock

__all__ = ["BargingReaderQRWLock"]


class BargingReaderQRWLock(QRWLock):
    """The queued rwlock whose reader fast path checks ``_QW_LOCKED`` instead of ``_QW_WMASK``."""

    def reader_backs_off(self, cnts: int) -> bool:
        return bool(cnts & QW_LOCKED)  # BUG: a waiting writer (_QW_WAITING) is not seen
