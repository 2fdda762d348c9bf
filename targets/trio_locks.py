"""Real trio locks as targets: ``trio.Lock``, ``trio.StrictFIFOLock``, ``trio.Semaphore(1)``,
``trio.CapacityLimiter(1)`` and ``anyio.Lock`` (on trio), run by the trio driver.

Each adapter is what a user writes: acquire with a per-call budget as a trio cancel scope in
virtual time (``trio.move_on_after`` or ``trio.fail_after``; ``anyio.fail_after`` for anyio), and
a timed-out acquisition returns ETIMEDOUT. The capabilities are what the docs promise, no more:

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

from typing import Any, ClassVar

import trio

from lockfuzz import Capabilities, Fairness, Status, Target, Timeouts

__all__ = ["AnyioLock", "TrioCapacityLimiter", "TrioLock", "TrioSemaphore", "TrioStrictFIFOLock"]

#: Documented FIFO fairness with an empty doorway (see the module doc).
FIFO = Fairness(overtakes=0, doorway_steps=0)
#: Per-call budgets. The slack covers the steps between a deadline passing and the timed-out
#: task being scheduled (one step per decision the other contexts win meanwhile).
BUDGETS = Timeouts(per_call=True, slack_ns=100_000)


class _TrioAdapter(Target):
    """One primitive per lock; ``acquire`` under ``trio.move_on_after(budget)``."""

    driver: ClassVar[str] = "trio"
    capabilities = Capabilities(timeouts=BUDGETS, fairness=FIFO)

    def __init__(self, machine):  # type: ignore[no-untyped-def]
        super().__init__(machine)
        self.locks = [self.make() for _ in range(machine.n_locks)]

    def make(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        with trio.move_on_after(budget_ns / 1e9):
            try:
                await self.locks[lock].acquire()
            except RuntimeError as exc:
                return _retaken(exc)
            return Status.OK
        return Status.ETIMEDOUT

    async def release(self, ctx, lock):  # type: ignore[no-untyped-def]
        self.locks[lock].release()

    def check(self):  # type: ignore[no-untyped-def]
        return [f"L{i} is still held" for i, x in enumerate(self.locks) if self.held(x)]

    @staticmethod
    def held(x: Any) -> bool:
        return bool(x.locked())


class TrioLock(_TrioAdapter):
    """``trio.Lock``: documented fair (FIFO); timeouts by ``trio.move_on_after``."""

    def make(self) -> Any:
        return trio.Lock()


class TrioStrictFIFOLock(_TrioAdapter):
    """``trio.StrictFIFOLock``: documented strict first-come-first-served."""

    def make(self) -> Any:
        return trio.StrictFIFOLock()


class TrioSemaphore(_TrioAdapter):
    """``trio.Semaphore(1, max_value=1)``: fair (FIFO) like every trio primitive; no owner, so
    a context taking it twice waits for itself until its budget runs out. Timeouts by
    ``trio.fail_after`` (``TooSlowError``)."""

    def make(self) -> Any:
        return trio.Semaphore(1, max_value=1)

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        try:
            with trio.fail_after(budget_ns / 1e9):
                await self.locks[lock].acquire()
        except trio.TooSlowError:
            return Status.ETIMEDOUT
        return Status.OK

    @staticmethod
    def held(x: Any) -> bool:
        return bool(x.value == 0)


class TrioCapacityLimiter(_TrioAdapter):
    """``trio.CapacityLimiter(1)``: fair (FIFO); the borrower is the task, which may hold one
    token at a time (a second acquisition raises ``RuntimeError``: EDEADLK)."""

    def make(self) -> Any:
        return trio.CapacityLimiter(1)

    @staticmethod
    def held(x: Any) -> bool:
        return bool(x.borrowed_tokens)


class AnyioLock(_TrioAdapter):
    """``anyio.Lock`` on the trio backend (needs anyio); timeouts by ``anyio.fail_after``. anyio
    documents no fairness, so none is claimed."""

    capabilities = Capabilities(timeouts=BUDGETS)

    def __init__(self, machine):  # type: ignore[no-untyped-def]
        import anyio  # an optional dependency: imported when the target is used

        self._anyio = anyio
        super().__init__(machine)

    def make(self) -> Any:
        return self._anyio.Lock()

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        try:
            with self._anyio.fail_after(budget_ns / 1e9):
                await self.locks[lock].acquire()
        except TimeoutError:
            return Status.ETIMEDOUT
        except RuntimeError as exc:
            return _retaken(exc)
        return Status.OK


def _retaken(exc: RuntimeError) -> Status:
    """EDEADLK for the error a lock raises when its holder takes it again (trio.Lock: "attempt
    to re-acquire an already held Lock", CapacityLimiter: "this borrower is already holding one
    of this CapacityLimiter's tokens", anyio.Lock: "Attempted to acquire an already held Lock");
    any other RuntimeError is the target's fault and goes on up."""
    text = str(exc)
    if "already held" in text or "already holding" in text:
        return Status.EDEADLK
    raise exc
