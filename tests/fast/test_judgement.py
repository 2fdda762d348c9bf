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
from lockfuzz import Capabilities, CpuProgram, Detection, Lock, Program, Status, Target, Timeouts, Unlock, Work
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


class HandoffWakesNobody(Target):
    """A hand-off lock written by a newcomer: release hands the word to the lowest waiter that
    registered (its id with ``HANDED``), but a sleeping waiter's wake-up condition looks only for
    a free word, so the waiter it was handed to sleeps on; the other waiter, finding the word
    taken, times out. The lost wake-up is the first waiter's, not the one that timed out."""

    capabilities = Capabilities(timeouts=Timeouts(per_call=True))
    HANDED = 1 << 16

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]
        self.waiting = [machine.cell(f"L{i}.waiting") for i in range(machine.n_locks)]
        self.ids: dict[str, int] = {}

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        me = self.ids.setdefault(ctx.name, len(self.ids) + 1)
        word, waiting = self.words[lock], self.waiting[lock]
        deadline = ctx.now + budget_ns
        if await word.cmpxchg(0, me) == 0:
            return Status.OK
        await waiting.fetch_or(1 << me)
        while True:
            v = await word.load()
            if v == me | self.HANDED:
                await word.store(me)
                return Status.OK
            if v == 0 and await word.cmpxchg(0, me) == 0:
                await waiting.fetch_and(~(1 << me) & 0xFFFF_FFFF)
                return Status.OK
            if ctx.now >= deadline:
                if not await waiting.fetch_and(~(1 << me) & 0xFFFF_FFFF) & (1 << me):
                    await word.wait_until(lambda x: x == me | self.HANDED)  # claimed: it is on its way
                    await word.store(me)
                    return Status.OK
                return Status.ETIMEDOUT
            await word.wait_until(lambda x: x == 0, deadline)  # the bug: a hand-off wakes nobody

    async def release(self, ctx: Context, lock: int) -> None:
        word, waiting = self.words[lock], self.waiting[lock]
        while True:
            bits = await waiting.load()
            if not bits:
                await word.store(0)
                return
            first = (bits & -bits).bit_length() - 1
            if await waiting.fetch_and(~(1 << first) & 0xFFFF_FFFF) & (1 << first):
                await word.store(first | self.HANDED)
                return


def test_a_lost_wake_up_report_names_the_other_sleeping_waiters():
    program = Program.from_json({
        "cpus": [
            {"handlers": [{"level": "softirq", "ops": [["lock", 0, 0], ["unlock", 0]]}],
             "task": [["lock", 0, 900_000], ["unlock", 0]]},
            {"handlers": [{"level": "softirq", "ops": [["lock", 0, 900_000], ["unlock", 0]]}], "task": []},
        ],
        "n_locks": 1,
    })  # fmt: skip
    result = lockfuzz.run(HandoffWakesNobody, program, [0, 2, 0, 0, 2])
    v = result.violation
    assert v is not None and v.signature == ("etimedout", "undeserved"), v
    assert v.contexts == ("cpu0.task",)
    assert "still waiting for L0 too, and asleep whenever it counted: cpu1.softirq#0" in v.message, v.message


class ReleaseCounterLock(Target):
    """Test-and-set whose waiters sleep on a release counter, as a futex word is used. With
    ``reads_late`` (a newcomer's bug) the waiter reads the counter after its failed cmpxchg, so
    a release in between goes unseen and it sleeps through a free lock until its budget ends;
    it then takes the lock, within the slack. The OK hides the lost wake-up."""

    capabilities = Capabilities(timeouts=Timeouts(per_call=True))
    reads_late = True

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]
        self.releases = [machine.cell(f"L{i}.releases") for i in range(machine.n_locks)]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        word, releases = self.words[lock], self.releases[lock]
        deadline = ctx.now + budget_ns
        while True:
            seen = None if self.reads_late else await releases.load()
            if await word.cmpxchg(0, 1) == 0:
                return Status.OK
            if ctx.now >= deadline:
                return Status.ETIMEDOUT
            if seen is None:
                seen = await releases.load()  # the bug: a release since the cmpxchg is missed
            await releases.wait_until(lambda v, seen=seen: v != seen, deadline)

    async def release(self, ctx: Context, lock: int) -> None:
        await self.words[lock].store(0)
        await self.releases[lock].fetch_add(1)


class ReleaseCounterReadFirst(ReleaseCounterLock):
    reads_late = False


#: cpu0 takes L0 and releases it between cpu1's failed cmpxchg and its read of the counter.
SLEEPS_THROUGH = Program.from_json({
    "cpus": [{"handlers": [], "task": [["lock", 0, 0], ["unlock", 0]]},
             {"handlers": [], "task": [["lock", 0, 900_000], ["unlock", 0]]}],
    "n_locks": 1,
})  # fmt: skip


def test_a_waiter_that_sleeps_through_its_budget_on_a_free_lock_and_then_takes_it_is_a_lost_wake_up():
    result = lockfuzz.run(ReleaseCounterLock, SLEEPS_THROUGH, [0, 0, 0, 1, 0, 1])
    v = result.violation
    assert v is not None and v.signature == ("bounded-waiting", "lost-wake-up"), v
    assert "cpu1.task got L0 only after its budget of 900000 ns ran out" in v.message, v.message
    # Read before the cmpxchg, the counter shows the release: no schedule of a campaign fails it.
    assert lockfuzz.run(ReleaseCounterReadFirst, SLEEPS_THROUGH, [0, 0, 0, 1, 0, 1]).violation is None
    report = lockfuzz.fuzz(ReleaseCounterReadFirst, runs=1_500, seed=0, minimise=False)
    assert report.ok, [f.failure.violation for f in report.found]
    report = lockfuzz.fuzz(ReleaseCounterLock, runs=3_000, seed=0, minimise=False)
    assert [f.failure.signature for f in report.found] == [("bounded-waiting", "lost-wake-up")]


def test_a_pause_within_the_budget_is_no_lost_wake_up():
    class PausesFirst(ReleaseCounterReadFirst):
        async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
            await self.machine.sleep_until(ctx.now + 200_000)  # 200 us on purpose, on a free lock
            return await super().acquire(ctx, lock, budget_ns - 200_000)

    program = Program(cpus=(CpuProgram(task=(Lock(0, MS), Unlock(0))),), n_locks=1)
    assert lockfuzz.run(PausesFirst, program, []).violation is None


class ChainWalkAnyCycle(Target):
    """A newcomer's deadlock detector: the lock word holds its owner's CPU + 1, each CPU publishes
    the lock it waits for, and a waiter walks the owner chain. The bug: it answers EDEADLK on any
    cycle it meets, not only one through itself. It marks nothing (no ``Mark.TAKEN``)."""

    capabilities = Capabilities(
        timeouts=Timeouts(per_call=True), detection=Detection(classes=frozenset({"AA", "ABBA"}), latency_ns=MS)
    )

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]
        self.waits_for = machine.per_cpu(lambda cpu: machine.cell(f"cpu{cpu}.waits_for"))

    async def _cycle(self, me: int, owner: int) -> bool:
        seen: set[int] = set()
        for _ in range(8):
            if owner == me or owner in seen:
                return True  # the bug: a cycle met that does not go through me
            seen.add(owner)
            wanted = await self.waits_for[owner - 1].load()
            if not wanted:
                return False
            nxt = await self.words[wanted - 1].load()
            if not nxt or nxt == owner:
                return False
            owner = nxt
        return False

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        word, waits_for = self.words[lock], self.waits_for[ctx.cpu]
        deadline = ctx.now + budget_ns
        await waits_for.store(lock + 1)
        while True:
            owner = await word.cmpxchg(0, ctx.cpu + 1)
            if owner == 0:
                await waits_for.store(0)
                return Status.OK
            if await self._cycle(ctx.cpu + 1, owner):
                await waits_for.store(0)
                return Status.EDEADLK
            if ctx.now >= deadline:
                await waits_for.store(0)
                return Status.ETIMEDOUT
            await word.wait_until(lambda v: v == 0, deadline)

    async def release(self, ctx: Context, lock: int) -> None:
        await self.words[lock].store(0)


def test_an_edeadlk_off_a_cycle_an_unmarked_step_may_have_closed_is_a_bystanders():
    # cpu0's task takes L1 (its cmpxchg succeeds) and a softirq lands before it returns, then waits
    # for L0, held by cpu1's task, which waits for L1: a cycle, if that cmpxchg took L1, which a
    # target that marks nothing leaves open. cpu2's task, behind L0, walks into the cycle and gets
    # EDEADLK. It was reported as "no deadlock cycle existed", which is not so.
    softirq = [{"level": "softirq", "ops": [["lock", 0, 0], ["unlock", 0]]}]
    program = Program.from_json({
        "cpus": [
            {"handlers": softirq, "task": [["lock", 1, 0], ["unlock", 1]]},
            {"handlers": [], "task": [["lock", 0, 0], ["lock", 1, 0], ["unlock", 1], ["unlock", 0]]},
            {"handlers": softirq, "task": [["lock", 0, 0], ["unlock", 0]]},
        ],
        "n_locks": 2,
    })  # fmt: skip
    schedule = [0, 0, 0, 4, 3, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    v = lockfuzz.run(ChainWalkAnyCycle, program, schedule).violation
    assert v is not None and v.signature == ("innocent-bystander", "not-on-cycle"), v
    assert "if an interrupted acquisition has taken its lock" in v.message, v.message
