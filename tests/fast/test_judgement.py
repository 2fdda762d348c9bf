"""Judging waiting and time as the lock's designer means them (no false alarm; no undeserved
timeout let through). Exact programs and schedules, each a case seen before:

- an ETIMEDOUT after a waiter slept on a free lock (a lost wake-up) passed unreported;
- a lock that polls must not be blamed for sleeping between looks, within what it declares.

The spinning cases are in test_spinning.py; rqspinlock's teardown case in test_rqspinlock.py;
interrupt time on the holder's CPU, and correct locks written the way outside authors write
them, in test_natural_locks.py.
"""

from __future__ import annotations

import lockfuzz
from lockfuzz import Capabilities, CpuProgram, Lock, Program, Status, Target, Timeouts, Unlock, Work
from lockfuzz._engine._run import Context
from lockfuzz._engine._machine import Machine

from support import RandomWalk

MS = 1_000_000


class WakeOneLock(Target):
    """A lock word and one 'go' flag per CPU: a waiter that finds the lock taken sleeps on its
    flag (with its budget as deadline); release clears the word and, if ``wakes`` says so,
    sets every waiter's flag. With ``wakes=False`` it forgets to: the waiter sleeps through a
    free lock until its budget ends."""

    capabilities = Capabilities(timeouts=Timeouts(per_call=True))
    wakes = True

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]
        self.go = machine.per_cpu(lambda cpu: machine.cell(f"cpu{cpu}.go"))

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        end = ctx.now + budget_ns
        go = self.go[ctx.cpu]
        while await self.words[lock].cmpxchg(0, 1):
            await go.store(0)
            if await self.words[lock].load() == 0:
                continue
            await go.wait_until(lambda v: v == 1, deadline_ns=end)
            if ctx.now >= end:
                return Status.ETIMEDOUT
        return Status.OK

    async def release(self, ctx: Context, lock: int) -> None:
        await self.words[lock].store(0)
        if self.wakes:
            for go in self.go:
                await go.store(1)


class ForgetfulLock(WakeOneLock):
    wakes = False


HOLD_THEN_WAIT = Program(
    cpus=(
        CpuProgram(task=(Lock(0), Work(1 * MS), Unlock(0))),
        CpuProgram(task=(Lock(0, 5 * MS), Unlock(0))),
    ),
    n_locks=1,
)


def test_a_timeout_after_sleeping_through_a_free_lock_is_undeserved():
    r = lockfuzz.run(ForgetfulLock, HOLD_THEN_WAIT, [])
    assert r.violation is not None and r.violation.signature == ("etimedout", "undeserved")
    # The holder released at about 1 ms; the waiter slept on the free lock until its 5 ms budget.
    assert 3_900_000 <= r.violation.details["free_ns"] <= 4_000_000
    assert "sat free for" in r.violation.message and "cpu1.task slept" in r.violation.message


def test_the_same_lock_that_wakes_its_waiter_is_clean():
    for schedule in ([], RandomWalk(1), RandomWalk(2), RandomWalk(3)):
        r = lockfuzz.run(WakeOneLock, HOLD_THEN_WAIT, schedule)
        assert r.violation is None, str(r.violation)


def test_a_timeout_while_the_lock_was_held_all_along_is_deserved():
    program = Program(
        cpus=(CpuProgram(task=(Lock(0), Work(10 * MS), Unlock(0))), CpuProgram(task=(Lock(0, 5 * MS), Unlock(0)))),
        n_locks=1,
    )
    r = lockfuzz.run(ForgetfulLock, program, [])
    assert r.violation is None, str(r.violation)
    statuses = [e[4] for e in r.trace.events if e[2] == 21]
    assert Status.ETIMEDOUT in statuses


class PollingLock(Target):
    """Polls the word, sleeping ``poll_ns`` between looks: it promises no prompt wake-up, only
    that it looks again within ``poll_ns``."""

    poll_ns = 50_000
    capabilities = Capabilities(timeouts=Timeouts(per_call=True))

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        end = ctx.now + budget_ns
        while await self.words[lock].cmpxchg(0, 1):
            await self.machine.sleep_until(min(end, ctx.now + self.poll_ns))
            if ctx.now >= end:
                return Status.ETIMEDOUT
        return Status.OK

    async def release(self, ctx: Context, lock: int) -> None:
        await self.words[lock].store(0)


class SlowPollingLock(PollingLock):
    poll_ns = 2 * MS


class DeclaredSlowPollingLock(SlowPollingLock):
    capabilities = Capabilities(timeouts=Timeouts(per_call=True, grace_ns=2 * MS))


def test_a_poll_sleep_within_the_grace_is_no_lost_wake_up_and_a_longer_one_must_be_declared():
    # The holder releases at ~0.3 ms; the waiter's budget is 1 ms. A 50 us poll takes the lock
    # within the default grace (100 us); a 2 ms poll sleeps through the rest of the budget, a
    # lost wake-up unless the lock declares that it looks only every 2 ms.
    program = Program(
        cpus=(CpuProgram(task=(Lock(0), Work(300_000), Unlock(0))), CpuProgram(task=(Lock(0, 1 * MS), Unlock(0)))),
        n_locks=1,
    )
    assert lockfuzz.run(PollingLock, program, []).violation is None
    slow = lockfuzz.run(SlowPollingLock, program, [])
    assert slow.violation is not None and slow.violation.signature == ("etimedout", "undeserved")
    assert "Timeouts(grace_ns=...)" in slow.violation.message
    assert lockfuzz.run(DeclaredSlowPollingLock, program, []).violation is None
