"""Broken locks written over trio, each one small change to a correct one, for the trio driver.

``HandoffLock`` is the correct base: a FIFO lock that hands the lock straight to the waiter that
has waited longest (a ``trio.Event`` per waiter in a queue), with per-call budgets as
``trio.move_on_after`` scopes, and a waiter that times out leaves the queue (or, if the lock was
handed to it meanwhile, passes it on). It promises FIFO with an empty doorway, like ``trio.Lock``.
Each mutant below changes one thing; its docstring says what and which oracle catches it.

Two correct bases and their mutants fail only under cancellation: they claim no timeouts (so a
budget never cancels anything), and only the schedule's cancellation decisions
(``Settings.cancels``, as a nursery being cancelled) reach their clean-up code.
``YieldingHandoffLock`` is ``HandoffLock`` whose woken waiter checkpoints once more before it
returns (a cancellation can land after the hand-off); ``ParkingSemaphore`` is a one-permit
semaphore over a ``trio.lowlevel.ParkingLot`` whose release hands the permit to a parked waiter.

``MUTANTS``/``EXPECTED``/``SCENARIOS``/``BASES`` follow ``targets/mutants/__init__.py`` and
``scenarios.py``: name -> import path, name -> oracle, name -> a small program in which a seeded
random walk finds the bug, name -> the correct target that runs that program cleanly.
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

import trio

from lockfuzz import (
    Capabilities, Context, CpuProgram, Fairness, Lock, Machine, Program, Status, Target, Timeouts, Unlock, Work,
)

__all__ = [
    "BASES", "CheckThenSetLock", "DoubleCountSemaphore", "EXPECTED", "ForgetfulHandoffLock", "HandoffLock",
    "LateQueueLock", "LeakyPermitLock", "MUTANTS", "ParkingSemaphore", "SCENARIOS", "WrongWaiterLock",
    "YieldingHandoffLock",
]  # fmt: skip


class HandoffLock(Target):
    """Correct: FIFO hand-off over ``trio.Event``s, budgets by ``trio.move_on_after``."""

    driver: ClassVar[str] = "trio"
    capabilities = Capabilities(timeouts=Timeouts(per_call=True), fairness=Fairness(overtakes=0, doorway_steps=0))

    def __init__(self, machine):  # type: ignore[no-untyped-def]
        super().__init__(machine)
        self.held = [False] * machine.n_locks
        self.queue: list[deque[trio.Event]] = [deque() for _ in range(machine.n_locks)]

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        with trio.move_on_after(budget_ns / 1e9):
            if not self.held[lock]:
                self.held[lock] = True
                await trio.lowlevel.cancel_shielded_checkpoint()  # a checkpoint that keeps what it took
                return Status.OK
            await self.wait_turn(lock)
            return Status.OK
        return Status.ETIMEDOUT

    async def wait_turn(self, lock: int) -> None:
        """Queue up; return once the lock has been handed over."""
        turn = trio.Event()
        self.queue[lock].append(turn)
        try:
            await turn.wait()
        except trio.Cancelled:
            self.leave(lock, turn)
            raise

    def leave(self, lock: int, turn: trio.Event) -> None:
        """A waiter gives up: out of the queue, or, if it was handed the lock, pass it on."""
        if turn.is_set():
            self.hand_off(lock)
        else:
            self.queue[lock].remove(turn)

    async def release(self, ctx, lock):  # type: ignore[no-untyped-def]
        self.hand_off(lock)

    def hand_off(self, lock: int) -> None:
        queue = self.queue[lock]
        if queue:
            self.next_waiter(queue).set()  # the lock stays held: it is the waiter's now
        else:
            self.held[lock] = False

    def next_waiter(self, queue: deque[trio.Event]) -> trio.Event:
        return queue.popleft()

    def check(self):  # type: ignore[no-untyped-def]
        problems = [f"L{i} is still held" for i, h in enumerate(self.held) if h]
        problems += [f"L{i} has {len(q)} waiter(s) queued" for i, q in enumerate(self.queue) if q]
        return problems


class CheckThenSetLock(HandoffLock):
    """Mutant: a checkpoint between the test and the set.

    Broken: the fast path sees the lock free, then checkpoints (``await trio.sleep(0)``: "let the
    others run before I take it") and only then marks it held. Another task that runs during that
    checkpoint also sees it free and takes it: two holders. Caught by: **mutual-exclusion**. (It
    claims no fairness: with the FIFO claim kept, whichever of the two holders returns first
    decides whether the run ends as a mutual-exclusion or a fairness finding.)
    """

    capabilities = Capabilities(timeouts=Timeouts(per_call=True))

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        with trio.move_on_after(budget_ns / 1e9):
            if not self.held[lock]:
                await trio.sleep(0)  # BUG: the test above and the set below are not atomic
                self.held[lock] = True
                return Status.OK
            await self.wait_turn(lock)
            return Status.OK
        return Status.ETIMEDOUT


class LeakyPermitLock(HandoffLock):
    """Mutant: leaks the lock when a timeout lands at the wrong await.

    Broken: after queueing, a waiter checkpoints once (``await trio.sleep(0)``: "give the holder a
    chance to release first") *outside* the ``try`` that cleans up after a timeout. A timeout that
    lands there (a tiny budget, or a waiter kept from running until its deadline passed) returns
    ETIMEDOUT but leaves its entry queued; the next release hands the lock to that entry, whose
    owner has gone, and nobody ever takes or releases it again. Every later acquisition times out,
    including the final check's. Caught by: **final-state**.
    """

    async def wait_turn(self, lock: int) -> None:
        turn = trio.Event()
        self.queue[lock].append(turn)
        await trio.sleep(0)  # BUG: a cancellation here skips the clean-up below
        try:
            await turn.wait()
        except trio.Cancelled:
            self.leave(lock, turn)
            raise


class LateQueueLock(HandoffLock):
    """Mutant: a checkpoint between seeing the lock taken and joining its queue.

    Broken: a waiter that finds the lock held checkpoints (``await trio.sleep(0)``: "maybe it is
    about to be released") before it queues. A release that runs during that checkpoint finds
    the queue empty and marks the lock free; the waiter then queues and sleeps, waiting for a
    hand-off that only a release can give, on a lock nobody holds, until its budget runs out.
    The lost wake-up of every "test, then sleep" written without re-testing after queueing
    (the classic missed-wakeup race of condition variables used without a predicate loop). It
    takes one preemption: the holder's release in that checkpoint. Caught by: **etimedout** (an
    ETIMEDOUT to a waiter that slept on a free lock). (It claims no fairness: a newcomer may
    take the free lock ahead of the sleeper, which would be reported first as a fairness
    finding under a FIFO claim.)
    """

    capabilities = Capabilities(timeouts=Timeouts(per_call=True))

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        with trio.move_on_after(budget_ns / 1e9):
            if not self.held[lock]:
                self.held[lock] = True
                await trio.lowlevel.cancel_shielded_checkpoint()
                return Status.OK
            await trio.sleep(0)  # BUG: a release here sees nobody queued and frees the lock
            await self.wait_turn(lock)
            return Status.OK
        return Status.ETIMEDOUT


class WrongWaiterLock(HandoffLock):
    """Mutant: a release wakes the wrong waiter.

    Broken: the hand-off takes the *newest* waiter (``queue.pop()``) instead of the one that has
    waited longest, while the lock still promises FIFO. With two waiters queued, the later
    arrival gets the lock first. Caught by: **fairness**.
    """

    def next_waiter(self, queue: deque[trio.Event]) -> trio.Event:
        return queue.pop()  # BUG: LIFO


class YieldingHandoffLock(HandoffLock):
    """Correct: ``HandoffLock`` whose woken waiter checkpoints once more before it returns, and
    which claims no timeouts (budgets are ignored; only a cancellation ends a wait). A waiter
    cancelled after the hand-off passes the lock on (``leave``)."""

    capabilities = Capabilities(fairness=Fairness(overtakes=0, doorway_steps=0))

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        if not self.held[lock]:
            self.held[lock] = True
            await trio.lowlevel.cancel_shielded_checkpoint()
            return Status.OK
        await self.wait_turn(lock)
        return Status.OK

    async def wait_turn(self, lock: int) -> None:
        turn = trio.Event()
        self.queue[lock].append(turn)
        try:
            await turn.wait()
            await trio.lowlevel.checkpoint()  # "let the releaser run on": a cancel point after the hand-off
        except trio.Cancelled:
            self.leave(lock, turn)
            raise


class ForgetfulHandoffLock(YieldingHandoffLock):
    """Mutant: forgets to hand the lock on when a woken waiter is cancelled.

    Broken: a cancelled waiter leaves the queue if it is still in it, and does nothing else; the
    case where the lock was already handed to it (its event set, a cancellation landing at its
    checkpoint after the wake-up) is forgotten. The lock stays held by nobody: every later
    acquisition waits for ever, the final check's included (a hang in the final check). Found
    only with cancellation decisions (the lock claims no timeouts, so no budget ever cancels a
    waiter). Caught by: **final-state**.
    """

    def leave(self, lock: int, turn: trio.Event) -> None:
        if turn in self.queue[lock]:  # BUG: a waiter already handed the lock must pass it on
            self.queue[lock].remove(turn)


class ParkingSemaphore(Target):
    """Correct: a one-permit semaphore over ``trio.lowlevel.ParkingLot``s; a release hands the
    permit straight to the longest-parked waiter (``unpark``), else puts it back. A waiter
    cancelled while parked never had a permit and gives none back. No timeouts and no fairness
    claimed (a fairness claim would see the double count's newcomer overtake the holder whose
    ``acquire`` has not returned yet, before mutual exclusion sees two holders)."""

    driver: ClassVar[str] = "trio"
    capabilities = Capabilities()

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.value = [1] * machine.n_locks
        self.lots = [trio.lowlevel.ParkingLot() for _ in range(machine.n_locks)]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        if self.value[lock] > 0:
            self.value[lock] -= 1
            await trio.lowlevel.cancel_shielded_checkpoint()
            return Status.OK
        try:
            await self.lots[lock].park()  # returns holding the permit its releaser handed over
        except trio.Cancelled:
            self.cancelled(lock)
            raise
        return Status.OK

    def cancelled(self, lock: int) -> None:
        """A parked waiter was cancelled: it held no permit, so there is nothing to give back."""

    async def release(self, ctx: Context, lock: int) -> None:
        if self.lots[lock]:
            self.lots[lock].unpark()
        else:
            self.value[lock] += 1

    def check(self) -> list[str]:
        return [f"L{i} has {len(lot)} waiter(s) parked" for i, lot in enumerate(self.lots) if lot]


class DoubleCountSemaphore(ParkingSemaphore):
    """Mutant: double-counts a cancelled acquire.

    Broken: a waiter cancelled while parked "gives back" the permit it was waiting for, which
    it never had: the semaphore now counts one permit more than it has. The next release
    finds nobody parked and adds its own: two permits, two holders. Found only with
    cancellation decisions (no timeouts claimed). Caught by: **mutual-exclusion**.
    """

    def cancelled(self, lock: int) -> None:
        self.value[lock] += 1  # BUG: it never took a permit


_P = "lockfuzz.targets.mutants.trio_mutants"

MUTANTS: dict[str, str] = {
    "trio_check_then_set": f"{_P}:CheckThenSetLock",
    "trio_leaky_permit": f"{_P}:LeakyPermitLock",
    "trio_wrong_waiter": f"{_P}:WrongWaiterLock",
    "trio_lost_wakeup": f"{_P}:LateQueueLock",
    "trio_forgotten_handoff": f"{_P}:ForgetfulHandoffLock",
    "trio_double_count": f"{_P}:DoubleCountSemaphore",
}

EXPECTED: dict[str, str] = {
    "trio_check_then_set": "mutual-exclusion",
    "trio_leaky_permit": "final-state",
    "trio_wrong_waiter": "fairness",
    "trio_lost_wakeup": "etimedout",
    "trio_forgotten_handoff": "final-state",
    "trio_double_count": "mutual-exclusion",
}


_MS = 1_000_000


def _cs(lock: int, budget_ns: int = 1_000_000_000, work_ns: int = 0) -> tuple[Any, ...]:
    return (Lock(lock, budget_ns),) + ((Work(work_ns),) if work_ns else ()) + (Unlock(lock),)


def _cpus(*tasks: tuple[Any, ...]) -> tuple[CpuProgram, ...]:
    return tuple(CpuProgram(task=t) for t in tasks)


SCENARIOS: dict[str, Program] = {
    # Two tasks racing for a free lock.
    "trio_check_then_set": Program(cpus=_cpus(_cs(0, work_ns=10), _cs(0, work_ns=10)), n_locks=1),
    # A holder, and a waiter whose budget (2 ns) runs out around its first checkpoint in the queue.
    "trio_leaky_permit": Program(cpus=_cpus(_cs(0, work_ns=100), _cs(0, budget_ns=2)), n_locks=1),
    # A holder and two waiters: the second waiter to queue must not get the lock first.
    "trio_wrong_waiter": Program(cpus=_cpus(_cs(0, work_ns=100), _cs(0), _cs(0)), n_locks=1),
    # A holder and a waiter that finds the lock held: the release, run in the waiter's checkpoint
    # before it queues, frees the lock behind its back; the waiter sleeps out its 5 ms budget.
    "trio_lost_wakeup": Program(cpus=_cpus(_cs(0, work_ns=100), _cs(0, budget_ns=5 * _MS)), n_locks=1),
    # A holder and a waiter, cancelled after the release handed it the lock.
    "trio_forgotten_handoff": Program(cpus=_cpus(_cs(0, work_ns=100), _cs(0)), n_locks=1),
    # A holder and a waiter cancelled while parked; a third task takes the permit it gave back.
    "trio_double_count": Program(cpus=_cpus(_cs(0, work_ns=100), _cs(0), _cs(0, work_ns=100)), n_locks=1),
}

BASES: dict[str, str] = {name: f"{_P}:HandoffLock" for name in MUTANTS}
BASES["trio_forgotten_handoff"] = f"{_P}:YieldingHandoffLock"
BASES["trio_double_count"] = f"{_P}:ParkingSemaphore"
