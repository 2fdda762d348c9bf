"""Real trio locks as targets: ``trio.Lock``, ``trio.StrictFIFOLock``, ``trio.Semaphore(n)``,
``trio.CapacityLimiter(n)`` (each lock's ``n`` from the program, or ``--param capacity=n`` for all),
``anyio.Lock`` (on trio), and a
reader-writer lock written on ``trio.Condition`` (``RWLock``), run by the trio driver.

Each adapter is ``lockfuzz.trio_target(factory, ...)``, what a user writes for a lock of their
own: acquire with a per-call budget as a trio cancel scope in virtual time (``lockfuzz.trio_budget``:
``trio.move_on_after`` with its clock marked), and a timed-out acquisition returns ETIMEDOUT. The
capabilities are what the docs promise, no more:

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
  task to them: it waits until its budget runs out;
- sharing: ``Semaphore`` and ``CapacityLimiter`` are counted locks (every acquisition shared, at
  most n holders), each lock with the capacity its program gives it (``Sharing(capacity_range=(1,
  4))``) or, with ``--param capacity=n``, n for all (1: an exclusive lock); FIFO across all
  acquisitions by the same "Fairness" section; ``RWLock`` promises writer preference
  (its own docstring says why that holds from the first step).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import trio

from lockfuzz import (
    Capabilities, Fairness, InvalidArgument, Machine, Sharing, Target, trio_target,
)  # fmt: skip

__all__ = [
    "AnyioLock", "RWLock", "TrioCapacityLimiter", "TrioLock", "TrioRWLock", "TrioSemaphore", "TrioStrictFIFOLock",
]

#: Documented FIFO fairness with an empty doorway (see the module doc).
FIFO = Fairness(overtakes=0, doorway_steps=0)


class TrioLock(trio_target(trio.Lock, fairness=FIFO)):  # type: ignore[misc]
    """``trio.Lock``: documented fair (FIFO); timeouts by ``trio.move_on_after``."""


class TrioStrictFIFOLock(trio_target(trio.StrictFIFOLock, fairness=FIFO)):  # type: ignore[misc]
    """``trio.StrictFIFOLock``: documented strict first-come-first-served."""


#: A semaphore or limiter built with the capacity the program gives each lock (``--param
#: capacity`` not given): from 1 (a lock) to 4, drawn by the strategies; 2 for a lock the program
#: gives none. Every acquisition is shared, FIFO across them as trio documents it (with the
#: empty doorway above).
DEFAULT_PERMITS = 2
PER_LOCK = Sharing(
    exclusive=False, capacity=DEFAULT_PERMITS, capacity_range=(1, 4), preference="fifo", doorway_steps=0
)


def _check_capacity(capacity: object) -> int | None:
    if capacity is not None and (not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1):
        raise InvalidArgument(
            f"capacity={capacity!r}: expected an int >= 1 (the number of permits of every lock), or none given "
            "(each lock's from the program)"
        )
    return capacity


def _counted(cls: type[Target], capacity: int | None) -> Capabilities:
    """The class's promises (a capacity per lock, ``PER_LOCK``) for ``capacity`` None; for an
    int, every lock that many holders: an exclusive lock for 1 (FIFO, as trio documents it),
    else a counted lock, every acquisition shared."""
    caps = cls.capabilities
    if capacity is None:
        return caps
    if capacity == 1:
        return replace(caps, sharing=None)
    return replace(caps, sharing=replace(PER_LOCK, capacity=capacity, capacity_range=None))


def _permits(machine: Machine, lock: int, capacity: int | None) -> int:
    """How many holders lock number ``lock`` is built for: ``capacity`` when one was given as a
    parameter, else the program's for that lock (``PER_LOCK``'s default where it gives none)."""
    return machine.capacity(lock, DEFAULT_PERMITS) if capacity is None else capacity


def _permits_out(x: Any) -> bool:
    return bool(x.value < x.max_value)


class TrioSemaphore(
    trio_target(lambda: trio.Semaphore(2, max_value=2), fairness=FIFO, held=_permits_out, sharing=PER_LOCK)  # type: ignore[misc] # a base trio_target makes
):
    """``trio.Semaphore(n, max_value=n)``: fair (FIFO) like every trio primitive.

    By default each lock of a program is built with its own ``n``, the program's (``capacities
    L0 3, L1 1``, drawn from 1 to 4): every acquisition is shared, and at most ``n`` contexts hold
    it at once. ``capacity`` (``--param capacity=3``) gives every lock the same ``n`` instead; 1
    makes it an exclusive lock. No owner, so a context taking it again takes another permit, or
    waits (for itself, when it holds the last one) until its budget runs out."""

    def __init__(self, machine: Machine, capacity: int | None = None) -> None:
        self.capacity = _check_capacity(capacity)
        self.capabilities = _counted(type(self), self.capacity)
        super().__init__(machine)

    def make_lock(self, lock: int) -> trio.Semaphore:
        n = _permits(self.machine, lock, self.capacity)
        return trio.Semaphore(n, max_value=n)


def _borrowed(x: Any) -> bool:
    return bool(x.borrowed_tokens)


class TrioCapacityLimiter(
    trio_target(lambda: trio.CapacityLimiter(2), fairness=FIFO, held=_borrowed, sharing=PER_LOCK)  # type: ignore[misc] # a base trio_target makes
):
    """``trio.CapacityLimiter(n)``: fair (FIFO); by default each lock with the program's ``n``
    (drawn from 1 to 4), ``capacity`` (``--param capacity=3``) the same ``n`` for every lock, every
    acquisition shared, except that with ``capacity=1`` it is an exclusive lock.

    Exclusive (``capacity=1``), the borrower is the task, as ``async with limiter`` borrows, which
    may hold one token at a time: a second acquisition by the same context raises
    ``RuntimeError``, reported as EDEADLK (it would wait for itself). Shared, each acquisition
    borrows on behalf of a borrower of its own (``trio_target`` does so for any lock that lends,
    as ``trio.to_thread.run_sync`` borrows for each thread), so that a context may hold several
    tokens, as it may hold several permits of a semaphore."""

    def __init__(self, machine: Machine, capacity: int | None = None) -> None:
        self.capacity = _check_capacity(capacity)
        self.capabilities = _counted(type(self), self.capacity)
        super().__init__(machine)

    def make_lock(self, lock: int) -> trio.CapacityLimiter:
        return trio.CapacityLimiter(_permits(self.machine, lock, self.capacity))


def _anyio_lock() -> Any:
    import anyio  # an optional dependency: imported when the target is used

    return anyio.Lock()


class AnyioLock(trio_target(_anyio_lock)):  # type: ignore[misc]
    """``anyio.Lock`` on the trio backend (needs anyio); anyio documents no fairness, so none
    is claimed."""

    requires = ("anyio",)


class RWLock:
    """A reader-writer lock on ``trio.Condition``, written the way trio code writes one: many
    readers or one writer; a writer that waits holds new readers back (writer preference), so
    a stream of readers cannot starve it. ``acquire``/``release`` are the writer's,
    ``acquire_shared``/``release_shared`` the reader's (the names ``trio_target`` calls).

    Each method holds the condition's lock (``async with self._cond``) while it reads or changes
    the counts, and waits in ``Condition.wait()`` inside a ``while`` loop that re-tests its
    predicate: a wake-up says only that something changed. A writer that gives up (its scope was
    cancelled, or its deadline passed) takes itself off ``_writers_waiting`` and wakes the readers
    it was holding back. The releases wait for the condition's lock, so they are shielded: a
    release must finish even in a cancelled scope (an ``async with`` block exiting because its
    task was cancelled), or the lock would stay held."""

    _readers: int  # readers holding the lock
    _writer: bool  # a writer holds the lock
    _writers_waiting: int  # writers waiting for it: new readers wait behind them

    def __init__(self) -> None:
        self._cond = trio.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    async def acquire_shared(self) -> None:
        async with self._cond:
            while self._writer or self._writers_waiting:
                await self._cond.wait()
            self._readers += 1

    async def release_shared(self) -> None:
        with trio.CancelScope(shield=True):
            async with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()  # a writer may be waiting for the last reader

    async def acquire(self) -> None:
        async with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    await self._cond.wait()
            except BaseException:  # cancelled, or timed out: leave, and let the readers go
                self._writers_waiting -= 1
                self._cond.notify_all()
                raise
            self._writers_waiting -= 1
            self._writer = True

    async def release(self) -> None:
        with trio.CancelScope(shield=True):
            async with self._cond:
                self._writer = False
                self._cond.notify_all()

    def locked(self) -> bool:
        return self._writer or self._readers > 0


#: Writer preference with an empty doorway: a writer is counted in ``_writers_waiting`` before
#: any reader that began after it can look, because the condition's lock is a FIFO ``trio.Lock``
#: (an attempt queues on it, or takes it, in the step it begins).
WRITERS_FIRST = Sharing(exclusive=True, capacity=None, preference="writers", doorway_steps=0)


class TrioRWLock(trio_target(RWLock, sharing=WRITERS_FIRST)):  # type: ignore[misc]
    """A reader-writer lock on ``trio.Condition`` (``RWLock``): any number of readers or one
    writer, writer preference, per-call budgets (``trio.move_on_after``). No order among writers
    is promised (a woken writer competes with the others), and readers may starve while writers
    keep coming."""

    def check(self) -> list[str]:
        problems = super().check()
        problems += [
            f"L{i} still counts {rw._writers_waiting} waiting writer(s)"
            for i, rw in enumerate(self.locks) if rw._writers_waiting
        ]
        return problems
