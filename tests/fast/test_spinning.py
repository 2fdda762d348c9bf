"""Spinning is waiting, and waits wake on changes (issue: judge waiting and time).

Each test has the exact program and schedule of a false alarm seen before: plain spin loops
reported as livelocks (``livelock/step-limit`` after 500,000 steps, one per virtual ns), and
two waiters that store the value a cell already holds waking each other for ever through a
watch. Each counts steps, so that a spinner that costs one step per virtual nanosecond again
fails here, not only in a benchmark.
"""

from __future__ import annotations

import lockfuzz
from lockfuzz import Capabilities, CpuProgram, Lock, Program, Status, Target, Timeouts, Unlock, Work
from lockfuzz._engine._events import ACQUIRED
from lockfuzz._engine._run import Context
from lockfuzz._engine._machine import WAIT, XCHG, Machine
from lockfuzz._trio._driver import run_trio

from natural_locks import SpinThenParkTas, TrioSleepZeroSpinLock
from support import OwnerLock, RandomWalk

HOLD_600US = Program(
    cpus=(CpuProgram(task=(Lock(0), Work(600_000), Unlock(0))), CpuProgram(task=(Lock(0), Unlock(0)))), n_locks=1
)
HOLD_2MS = Program(
    cpus=(CpuProgram(task=(Lock(0), Work(2_000_000), Unlock(0))), CpuProgram(task=(Lock(0), Unlock(0)))), n_locks=1
)


class PlainSpinLock(Target):
    """Test-and-set with the waiter's loop written as textbooks write it: no wait_until."""

    capabilities = Capabilities()

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.flags = [machine.cell(f"L{i}") for i in range(machine.n_locks)]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        flag = self.flags[lock]
        while True:
            while await flag.load():
                pass
            if await flag.xchg(1) == 0:
                return Status.OK

    async def release(self, ctx: Context, lock: int) -> None:
        await self.flags[lock].store(0)


class ClockSpinLock(PlainSpinLock):
    """Honours its budget by reading the clock inside a plain spin loop."""

    capabilities = Capabilities(timeouts=Timeouts(per_call=True))

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        start = ctx.now
        while await self.flags[lock].xchg(1):
            if ctx.now - start >= budget_ns:
                return Status.ETIMEDOUT
        return Status.OK


# A trio lock whose waiter spins with ``await trio.sleep(0)``, as trio users write one.
SleepZeroLock = TrioSleepZeroSpinLock


def test_a_plain_spinner_behind_a_600us_hold_is_clean_in_a_few_steps():
    for schedule in ([], [1], RandomWalk(3), RandomWalk(4)):
        r = lockfuzz.run(PlainSpinLock, HOLD_600US, schedule)
        assert r.violation is None, str(r.violation)
        assert r.steps < 100  # was a livelock/step-limit: 500,000 steps
        assert r.time_ns >= 600_000  # time passed as for any wait


def test_a_spinner_that_reads_the_clock_gives_up_on_time():
    program = Program(
        cpus=(CpuProgram(task=(Lock(0), Work(2_000_000), Unlock(0))), CpuProgram(task=(Lock(0, 1_000_000), Unlock(0)))),
        n_locks=1,
    )
    r = lockfuzz.run(ClockSpinLock, program, [])
    assert r.violation is None, str(r.violation)
    returned = [(e[0], e[4]) for e in r.trace.events if e[2] == 21 and e[1] == 1]  # cpu1's ACQUIRED
    assert returned[0][1] == Status.ETIMEDOUT and 1_000_000 <= returned[0][0] <= 1_000_100
    assert r.steps < 100


def test_a_sleep_zero_spinner_behind_a_2ms_hold_is_clean_in_a_few_steps():
    for schedule in ([], [1], RandomWalk(3)):
        r = run_trio(SleepZeroLock, HOLD_2MS, schedule)
        assert r.violation is None, str(r.violation)
        assert r.steps < 100


class PoliteLock(Target):
    """Waiters say they wait by storing 1 to their flag at every try, and sleep on a watch of
    the lock words and the flags: a store of the value a flag already holds changes nothing,
    so it must not wake the other waiter (it did: each woke the other for ever)."""

    capabilities = Capabilities()

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]
        self.waiting = machine.per_cpu(lambda cpu: machine.cell(f"cpu{cpu}.waiting"))
        self.changes = machine.watch("changes", [*self.words, *self.waiting])

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        while True:
            seen = self.changes.value
            if await self.words[lock].cmpxchg(0, 1) == 0:
                await self.waiting[ctx.cpu].store(0)
                return Status.OK
            await self.waiting[ctx.cpu].store(1)
            await self.changes.wait_until(lambda v, s=seen: v != s)

    async def release(self, ctx: Context, lock: int) -> None:
        await self.words[lock].store(0)


def test_watches_and_waits_wake_on_a_change_of_value_not_on_a_write():
    program = Program(
        cpus=(
            CpuProgram(task=(Lock(0), Work(1_000_000), Unlock(0))),
            CpuProgram(task=(Lock(0), Unlock(0))),
            CpuProgram(task=(Lock(0), Unlock(0))),
        ),
        n_locks=1,
    )
    for schedule in ([], [0, 1, 2], RandomWalk(1), RandomWalk(2)):
        r = lockfuzz.run(PoliteLock, program, schedule)
        assert r.violation is None, str(r.violation)
        assert r.steps < 200


class TwoFlagLock(Target):
    """Two cells' condition in one wait: ``Machine.wait_until`` over the lock word and a
    'closed' flag; either change can end the wait."""

    capabilities = Capabilities()

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]
        self.closed = machine.cell("closed")
        self.woken = 0

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        word = self.words[lock]
        while await word.xchg(1):
            values = await self.machine.wait_until([word, self.closed], lambda w, c: w == 0 or c == 1)
            assert values[0] == 0 or values[1] == 1
            self.woken += 1
        return Status.OK

    async def release(self, ctx: Context, lock: int) -> None:
        await self.words[lock].store(0)


def test_wait_until_over_several_cells_sleeps_then_wakes_on_either():
    r = lockfuzz.run(TwoFlagLock, HOLD_600US, [])
    assert r.violation is None, str(r.violation)
    waits = [e for e in r.trace.events if e[2] == 13]  # wait_cells: one step now, one when it holds
    assert [e[4] for e in waits] == [0, 1]
    assert r.steps < 30


def test_a_bounded_walk_past_its_budget_runs_to_its_end_before_the_clock_jumps():
    # Once a false alarm (bounded-waiting/overrun, found by `cd tests && lockfuzz fuzz
    # support:OwnerLock --cpus 4 --strategy pct --seed 3`): cpu1.task's budget of 0 ns ran out,
    # and its last deadlock check walks an owner chain that goes round a cycle 16 times (32 reads
    # that change nothing), then returns ETIMEDOUT. The walk looks like a spin and is parked; the
    # clock jumped to each probe of doubling length, then 100 us to a sleeper's deadline, and
    # the 32 reads "took" 21-100 us. A spinner past its acquisition's time now gets its spin
    # rounds before the clock jumps (``_spinning``).
    program = Program.from_json({
        "cpus": [
            {"handlers": [{"level": "softirq", "ops": []}],
             "task": [["lock", 0, 0], ["work", 14], ["lock", 1, 0], ["unlock", 1], ["unlock", 0]]},
            {"handlers": [], "task": [["lock", 0, 0], ["unlock", 0]]},
            {"handlers": [{"level": "softirq", "ops": [["lock", 0, 0], ["unlock", 0]]}],
             "task": [["lock", 0, 0], ["unlock", 0]]},
            {"handlers": [{"level": "softirq", "ops": [["lock", 0, 900000], ["unlock", 0]]}],
             "task": [["lock", 1, 0], ["unlock", 1]]},
        ],
        "n_locks": 2,
    })  # fmt: skip
    r = lockfuzz.run(OwnerLock, program, [0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 4])
    assert r.violation is None, r.violation
    ended = {e[1]: (e[0], e[4]) for e in r.trace.events if e[2] == ACQUIRED}
    # Both budget-0 walkers gave up within a hundred nanoseconds, not after a clock jump.
    timed_out = [t for t, status in ended.values() if status == Status.ETIMEDOUT]
    assert len(timed_out) >= 2 and max(timed_out) < 200, ended


# -- counting loops: a loop that counts in a local variable runs to its end, not across a jump ----
# Found by a lock written for this check by someone new to lockfuzz: a test-and-set lock that
# gives up after a fixed number of tries, whatever its budget. Behind a 1 ms hold the waiter was
# parked after three tries, got one round, and the clock jumped across the hold: its early
# timeout (64 tries, about 64 ns, against a budget of 5 ms) was never seen. And with a budget of
# 0 and 200 tries, the doubling probes reached 2**62 ns within the rounds: "waited
# 4611686018427387972 ns", a bounded-waiting/overrun of a loop that ends after 200 ns.


class SpinCountLock(Target):
    """Test-and-set that gives up after ``TRIES`` tries: an early timeout behind any long hold."""

    capabilities = Capabilities(timeouts=Timeouts(per_call=True, slack_ns=100_000))
    TRIES = 64

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        for _ in range(self.TRIES):
            if await self.words[lock].xchg(1) == 0:
                return Status.OK
        return Status.ETIMEDOUT

    async def release(self, ctx: Context, lock: int) -> None:
        await self.words[lock].store(0)


class SpinCount200Lock(SpinCountLock):
    TRIES = 200


class SpinThenParkLock(SpinThenParkTas):
    """The natural zoo's spin-then-park lock, with fewer tries."""

    TRIES = 16


HOLD_1MS_BUDGET_5MS = Program(
    cpus=(
        CpuProgram(task=(Lock(0, 5_000_000), Work(1_000_000), Unlock(0))),
        CpuProgram(task=(Lock(0, 5_000_000), Unlock(0))),
    ),
    n_locks=1,
)


def _returns(r: lockfuzz.RunResult, ctx: int) -> list[tuple[int, int]]:
    return [(e[0], e[4]) for e in r.trace.events if e[2] == ACQUIRED and e[1] == ctx]


def test_a_spin_count_timeout_behind_a_hold_runs_its_tries_and_is_caught_early():
    r = lockfuzz.run(SpinCountLock, HOLD_1MS_BUDGET_5MS, [])
    assert r.violation is not None and r.violation.signature == ("etimedout", "early"), r.violation
    # cpu1 made its 64 tries in steps, one ns each: it gave up long before the hold ended.
    assert _returns(r, 1) == [] or _returns(r, 1)[0][0] < 1_000
    xchgs = [e for e in r.trace.events if e[1] == 1 and e[2] == XCHG]
    assert len(xchgs) == 64


def test_a_loop_of_200_tries_past_its_budget_ends_in_steps_and_is_no_overrun():
    # One CPU takes L0 twice with budgets of 0: the second attempt spins on its own lock, past
    # its time from the start, and gives up after 200 tries, about 200 ns later.
    program = Program(cpus=(CpuProgram(task=(Lock(0, 0), Lock(0, 0), Unlock(0), Unlock(0))),), n_locks=1)
    r = lockfuzz.run(SpinCount200Lock, program, [])
    assert r.violation is None or r.violation.signature != ("bounded-waiting", "overrun"), r.violation
    second = _returns(r, 0)[1]
    assert second[1] == Status.ETIMEDOUT and second[0] < 300
    assert r.time_ns < 1_000  # no jump of the clock across the loop


def test_a_spin_then_park_lock_reaches_its_park_path_behind_a_hold_and_is_clean():
    r = lockfuzz.run(SpinThenParkLock, HOLD_1MS_BUDGET_5MS, [])
    assert r.violation is None, str(r.violation)
    # cpu1 spun its 16 tries, then waited on the word (a WAIT step): the park path ran.
    assert any(e[1] == 1 and e[2] == WAIT for e in r.trace.events), "cpu1 never reached its wait"
    assert r.steps < 100  # 16 tries and a wait, not a step per nanosecond of the hold


def test_a_still_spinner_past_its_budget_is_probed_at_doubling_intervals_not_once_at_2_62():
    # A spinner that never gives up (ignores its budget of 0) behind a holder that never
    # releases: an overrun, reported once the wait passes budget + slack, by a bounded figure.
    class Ignores(SpinCountLock):
        async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
            while await self.words[lock].xchg(1):
                pass
            return Status.OK

    program = Program(cpus=(CpuProgram(task=(Lock(0, 0), Lock(0, 0), Unlock(0), Unlock(0))),), n_locks=1)
    r = lockfuzz.run(Ignores, program, [])
    assert r.violation is not None and r.violation.signature == ("bounded-waiting", "overrun"), r.violation
    assert 100_000 < r.time_ns < 400_000  # the first probe past the slack: within a doubling of it


class TrioCountingSpinLock(Target):
    """A trio lock whose waiter checkpoints a fixed number of times, then gives up: an early
    timeout, whose checkpoints must run in steps behind a long hold, not across a clock jump."""

    driver = "trio"
    capabilities = Capabilities(timeouts=Timeouts(per_call=True, slack_ns=100_000))

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.held = [False] * machine.n_locks

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        import trio

        for _ in range(50):
            if not self.held[lock]:
                self.held[lock] = True
                return Status.OK
            await trio.sleep(0)
        return Status.ETIMEDOUT

    async def release(self, ctx: Context, lock: int) -> None:
        self.held[lock] = False


def test_a_trio_waiter_that_counts_its_checkpoints_is_caught_giving_up_early():
    r = run_trio(TrioCountingSpinLock, HOLD_1MS_BUDGET_5MS, [])
    assert r.violation is not None and r.violation.signature == ("etimedout", "early"), r.violation


# -- waiting loops that write ----------------------------------------------------------------------
class CountsFailedTries(Target):
    """Test-and-set whose waiter counts its failed exchanges in a cell, as lock statistics do
    (written by a newcomer): every round writes, so the loop is never parked as a spinner."""

    capabilities = Capabilities()

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.flags = [machine.cell(f"L{i}") for i in range(machine.n_locks)]
        self.tries = [machine.cell(f"L{i}.failed_tries") for i in range(machine.n_locks)]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        while await self.flags[lock].xchg(1):
            await self.tries[lock].fetch_add(1)
        return Status.OK

    async def release(self, ctx: Context, lock: int) -> None:
        await self.flags[lock].store(0)


class NeverTakes(CountsFailedTries):
    """Counts its tries and never takes the lock, even once it is free: a real livelock."""

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        while True:
            await self.tries[lock].fetch_add(1)


def test_a_waiter_whose_loop_writes_waits_out_a_hold_longer_than_the_step_limit():
    # 500,000 steps at 1 ns a step end before the 2 ms hold: time passes to the holder's wake-up.
    r = lockfuzz.run(CountsFailedTries, HOLD_2MS, [])
    assert r.violation is None, str(r.violation)
    assert r.steps > lockfuzz.Settings().max_steps and r.time_ns > 2_000_000
    # A waiter that never stops churning is still a livelock, however long the sleeper sleeps.
    small = lockfuzz.Settings(max_steps=2_000)
    r = lockfuzz.run(NeverTakes, HOLD_600US, [], settings=small)
    assert r.violation is not None and r.violation.signature == ("livelock", "step-limit"), r.violation
    # On the trio driver too.
    r = run_trio(CountsFailedTries, HOLD_2MS, [])
    assert r.violation is None, str(r.violation)


class CountsFailedTriesWithBudget(CountsFailedTries):
    """The same, giving up when its budget ends."""

    capabilities = Capabilities(timeouts=Timeouts(per_call=True))

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        deadline = ctx.now + budget_ns
        while await self.flags[lock].xchg(1):
            if ctx.now >= deadline:
                return Status.ETIMEDOUT
            await self.tries[lock].fetch_add(1)
        return Status.OK


class ChurnsInRelease(CountsFailedTries):
    """Counts for ever in its release: something other than a waiter keeps running."""

    async def release(self, ctx: Context, lock: int) -> None:
        while True:
            await self.tries[lock].fetch_add(1)


def test_time_passes_to_a_waiters_own_deadline_and_never_for_anything_else():
    small = lockfuzz.Settings(max_steps=2_000)
    # The waiter's budget (1 ms) ends before the holder wakes (2 ms): the clock goes there, not
    # past it, and its ETIMEDOUT comes in time (no overrun) and deserved.
    program = Program(
        cpus=(CpuProgram(task=(Lock(0), Work(2_000_000), Unlock(0))), CpuProgram(task=(Lock(0, 1_000_000), Unlock(0)))),
        n_locks=1,
    )
    r = lockfuzz.run(CountsFailedTriesWithBudget, program, [], settings=small)
    assert r.violation is None, str(r.violation)
    timed_out = [e for e in r.trace.events if e[2] == ACQUIRED and e[4] == Status.ETIMEDOUT]
    assert len(timed_out) == 1 and 1_000_000 <= timed_out[0][0] < 1_000_100, timed_out
    # A release that churns while another CPU sleeps: not waiting, so a livelock.
    sleeper = Program(
        cpus=(CpuProgram(task=(Lock(0), Unlock(0))), CpuProgram(task=(Work(1_000), Work(2_000_000)))), n_locks=1
    )
    r = lockfuzz.run(ChurnsInRelease, sleeper, [], settings=small)
    assert r.violation is not None and r.violation.signature == ("livelock", "step-limit"), r.violation
    # Time passes at most STEP_LIMIT_JUMPS times: a churning waiter beside a CPU that sleeps
    # again and again is a livelock in the end.
    naps = Program(
        cpus=(CpuProgram(task=(Lock(0), Unlock(0))), CpuProgram(task=tuple(Work(1_000_000) for _ in range(8)))),
        n_locks=1,
    )
    r = lockfuzz.run(NeverTakes, naps, [], settings=small)
    assert r.violation is not None and r.violation.signature == ("livelock", "step-limit"), r.violation
    assert 4 * 1_000_000 <= r.time_ns < 5 * 1_000_000 + 10_000, r.time_ns  # four naps passed, not more
