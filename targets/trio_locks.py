"""Real trio locks as targets: ``trio.Lock``, ``trio.StrictFIFOLock``, ``trio.Semaphore(1)``,
``trio.CapacityLimiter(1)`` and ``anyio.Lock`` (on trio), run by the trio driver.

Each adapter is ``lockfuzz.trio_target(factory, ...)``, what a user writes for a lock of their
own: acquire with a per-call budget as a trio cancel scope in virtual time
(``trio.move_on_after``), and a timed-out acquisition returns ETIMEDOUT. The capabilities are what
the docs promise, no more:

- timeouts: every adapter honours its budget (a cancel scope's deadline), ``per_call``;
- fairness: trio's reference, "Synchronizing and communicating between tasks", section
  "Fairness": "These classes are all guaranteed to be 'fair', meaning that when it comes time to
  choose who will be next to acquire a lock, get an item from a queue, etc., then it always goes
  to the task which has been waiting longest"; ``StrictFIFOLock`` is documented as "strict
  first-come-first-served". So FIFO for the four trio classes. The *doorway* is empty
  (``doorway_steps=0``): ``acquire`` queues the task (``ParkingLot.park``) or takes the lock in
  the same step as it begins (``checkpoint_if_cancelled`` only yields when already cancelled), so
  by the time an attempt has begun, every earlier attempt is in the queue or holds the lock.
  anyio documents no fairness for ``Lock`` ("Using synchronization primitives"), so none is
  claimed for it (on trio it is FIFO underneath; that is trio's promise, not anyio's);
- deadlock detection: none. ``trio.Lock``, ``StrictFIFOLock``, ``CapacityLimiter`` and
  ``anyio.Lock`` raise ``RuntimeError`` when their holder acquires them again; the adapters
  report that as EDEADLK, which the EDEADLK-soundness oracle checks like any other (a context
  waiting for itself is a cycle). An interrupt handler's acquisition above the holder is another
  task to them: it waits until its budget runs out.
"""

from __future__ import annotations

from typing import Any

import trio

from lockfuzz import Fairness, trio_target

__all__ = ["AnyioLock", "TrioCapacityLimiter", "TrioLock", "TrioSemaphore", "TrioStrictFIFOLock"]

#: Documented FIFO fairness with an empty doorway (see the module doc).
FIFO = Fairness(overtakes=0, doorway_steps=0)


class TrioLock(trio_target(trio.Lock, fairness=FIFO)):  # type: ignore[misc]
    """``trio.Lock``: documented fair (FIFO); timeouts by ``trio.move_on_after``."""


class TrioStrictFIFOLock(trio_target(trio.StrictFIFOLock, fairness=FIFO)):  # type: ignore[misc]
    """``trio.StrictFIFOLock``: documented strict first-come-first-served."""


def _one_permit() -> trio.Semaphore:
    return trio.Semaphore(1, max_value=1)


def _no_permit_left(x: Any) -> bool:
    return bool(x.value == 0)


class TrioSemaphore(trio_target(_one_permit, fairness=FIFO, held=_no_permit_left)):  # type: ignore[misc]
    """``trio.Semaphore(1, max_value=1)``: fair (FIFO) like every trio primitive; no owner, so
    a context taking it twice waits for itself until its budget runs out."""


def _borrowed(x: Any) -> bool:
    return bool(x.borrowed_tokens)


class TrioCapacityLimiter(trio_target(lambda: trio.CapacityLimiter(1), fairness=FIFO, held=_borrowed)):  # type: ignore[misc]
    """``trio.CapacityLimiter(1)``: fair (FIFO); the borrower is the task, which may hold one
    token at a time (a second acquisition raises ``RuntimeError``: EDEADLK)."""


def _anyio_lock() -> Any:
    import anyio  # an optional dependency: imported when the target is used

    return anyio.Lock()


class AnyioLock(trio_target(_anyio_lock)):  # type: ignore[misc]
    """``anyio.Lock`` on the trio backend (needs anyio); anyio documents no fairness, so none
    is claimed."""
