"""A trio target's deadlock detection, judged on the cycle's clock as a cell target's is.

edeadlk-complete times a claimed cycle while the whole cycle waits on the lock's own time: every
member blocked, and a checker asleep in a timed wait, up to the first deadline of a member
(tests/fast/test_tight_promises.py for the cell targets). Members waiting inside trio (a
``trio.Event``, a cancel scope's deadline) used to be invisible to that clock, so a trio target's
cycle was judged only at the hang: a lock that found the deadlock late, but found it, passed.
Now the driver tells the clock when a member begins and ends a wait in trio, and when a deadline
can end it (``_trio_wait_deadline``).

The lock here is how a trio user writes a deadlock-detecting lock: an owner per lock, a wait for
the owner's release that wakes every ``period`` to walk the wait-for chain, EDEADLK if it leads
back to the caller. It declares ABBA within ``period``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import trio

import lockfuzz
from lockfuzz import Capabilities, Context, CpuProgram, Detection, Lock, Program, Status, Target, Timeouts, Unlock, Work

from support import cycle_clock

PERIOD = 1_000


class CheckingTrioLock(Target):
    """Owner per lock; a waiter sleeps until the release or ``period`` ns, then walks the
    wait-for chain (owner of the lock it wants, the lock that owner waits for, ...)."""

    driver: ClassVar[str] = "trio"
    period: ClassVar[int] = PERIOD
    capabilities = Capabilities(
        timeouts=Timeouts(per_call=True),
        detection=Detection(classes=frozenset({"ABBA"}), latency_ns=PERIOD),
    )

    def __init__(self, machine: Any) -> None:
        super().__init__(machine)
        self.owner: list[int | None] = [None] * machine.n_locks
        self.released = [trio.Event() for _ in range(machine.n_locks)]
        self.waits_for: dict[int, int] = {}

    def _cycle(self, me: int, lock: int) -> bool:
        seen = set()
        owner = self.owner[lock]
        while owner is not None and owner not in seen:
            if owner == me:
                return True
            seen.add(owner)
            nxt = self.waits_for.get(owner)
            owner = self.owner[nxt] if nxt is not None else None
        return False

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        with trio.move_on_after(budget_ns / 1e9):
            self.waits_for[ctx.index] = lock
            try:
                while self.owner[lock] is not None:
                    with trio.move_on_after(self.period / 1e9):
                        await self.released[lock].wait()
                    if self.owner[lock] is not None and self._cycle(ctx.index, lock):
                        return Status.EDEADLK
                self.owner[lock] = ctx.index
                return Status.OK
            finally:
                del self.waits_for[ctx.index]
        return Status.ETIMEDOUT

    async def release(self, ctx: Context, lock: int) -> None:
        self.owner[lock] = None
        self.released[lock].set()
        self.released[lock] = trio.Event()


class ChecksLater(CheckingTrioLock):
    """The same, waking 100 ns later between its walks."""

    period = PERIOD + 100


#: cpu0 takes L0, then L1; cpu1 takes L1, then L0: ABBA, with both first locks taken before
#: either asks for its second.
ABBA = Program(
    cpus=(
        CpuProgram(task=(Lock(0), Work(10), Lock(1), Unlock(1), Unlock(0))),
        CpuProgram(task=(Lock(1), Work(10), Lock(0), Unlock(0), Unlock(1))),
    ),
    n_locks=2,
)


def test_a_trio_cycle_runs_its_clock_while_its_members_wait_in_trio():
    most = cycle_clock(CheckingTrioLock, ABBA, [])
    assert 0 < most <= PERIOD  # judged at the hang only, the clock never ran: 0


def test_a_trio_lock_that_checks_later_than_it_declares_is_caught():
    r = lockfuzz.run(ChecksLater, ABBA, [])
    assert r.violation is not None and r.violation.signature == ("edeadlk-complete", "missed-ABBA"), r.violation
