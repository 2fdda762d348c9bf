"""The resilient test-and-set lock: AA, ABBA, ABBCCA and the 1 s timeout, step by step.

Each test builds a small program, drives the interleaving that matters with a small decision
source (fire a handler once its task holds the lock, switch CPUs once a lock is held) and checks
the statuses and virtual times that kernel/bpf/rqspinlock.c implies. ``oracles=[]`` runs check the
model against the kernel's behaviour alone; runs with the default oracles check that the oracles
agree with it (no violation).
"""

from __future__ import annotations

import dataclasses

import random

import pytest
from support import HANDLER_CHANGES_THE_TABLE, FireWhileItSleeps, behind, cycle_clock
from lockfuzz.targets.resilient_tas import CHECK_PERIOD_NS, RES_NR_HELD, ResilientTasLock

import lockfuzz
from lockfuzz import CpuProgram, Handler, Level, Lock, Machine, Program, Status, Unlock, Work, run
from lockfuzz._engine._events import ACQUIRE, ACQUIRED, IRQ_EXIT, RELEASE
from lockfuzz._engine._machine import CMPXCHG, FETCH_ADD, LOAD

MS = 1_000_000
S = 1_000_000_000
CAPS = ResilientTasLock.capabilities


# -- helpers ---------------------------------------------------------------------------------------
def attempts(result):  # type: ignore[no-untyped-def]
    """Every acquisition of the programs as (context, lock, status, start ns, end ns)."""
    start, out = {}, []
    for t, c, kind, obj, value in result.trace.events:
        if kind == ACQUIRE:
            start[c] = t
        elif kind == ACQUIRED:
            out.append((result.trace.contexts[c], obj, Status(value), start[c], t))
    return [a for a in out if not a[0].endswith(".final")]


def of(result, name, lock=None):  # type: ignore[no-untyped-def]
    return [a for a in attempts(result) if a[0] == name and (lock is None or a[1] == lock)]


def started(result, name, lock):  # type: ignore[no-untyped-def]
    ctx = result.trace.contexts.index(name)
    return [t for t, c, kind, obj, _ in result.trace.events if c == ctx and kind == ACQUIRE and obj == lock]


def task(*ops):  # type: ignore[no-untyped-def]
    return CpuProgram(task=tuple(ops))


def nested(a, b):  # type: ignore[no-untyped-def]
    return task(Lock(a), Lock(b), Unlock(b), Unlock(a))


def both(program, source_factory):  # type: ignore[no-untyped-def]
    """Run without oracles (the model alone), then with the default oracles: no violation."""
    bare = run(ResilientTasLock, program, source_factory(), oracles=[])
    assert bare.violation is None
    checked = run(ResilientTasLock, program, source_factory())
    assert checked.violation is None, str(checked.violation)
    assert checked.trace.hash() == bare.trace.hash()  # oracles only watch
    return checked


class FireWhenHeld:
    """Fire ``cpu``'s handler (its only one) once ``engine.truth.holder[lock]`` is that CPU's
    task; decision 0 everywhere else."""

    def __init__(self, cpu: int, lock: int) -> None:
        self.cpu, self.lock, self.fired = cpu, lock, False

    def choose(self, n, engine):  # type: ignore[no-untyped-def]
        if not self.fired:
            holder = engine.truth.holder[self.lock]
            if holder is not None and holder.cpu == self.cpu and holder.level == Level.TASK:
                for i, option in enumerate(engine.options()):
                    if option[0] == "fire" and option[1] == self.cpu:
                        self.fired = True
                        return i
        return 0


class SwitchWhenHeld:
    """Decision 0, except: once context ``who`` holds ``lock``, switch to ``to`` (each rule
    once, in order). Makes each CPU take its first lock before any takes its second."""

    def __init__(self, *rules) -> None:  # type: ignore[no-untyped-def]
        self.rules = list(rules)

    def choose(self, n, engine):  # type: ignore[no-untyped-def]
        if self.rules:
            who, lock, to = self.rules[0]
            holder = engine.truth.holder[lock]
            if holder is not None and holder.name == who:
                for i, option in enumerate(engine.options()):
                    if option[0] == "run" and option[1] == to:
                        self.rules.pop(0)
                        return i
        return 0


class RandomWalk:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choose(self, n, engine):  # type: ignore[no-untyped-def]
        return self.rng.randrange(n)


# -- the target itself -----------------------------------------------------------------------------
def test_capabilities():
    t, d = CAPS.timeouts, CAPS.detection
    # Gives up when now > deadline: at least 1 s + 1 ns after arming, at the first poll past it.
    assert t is not None and not t.per_call and t.min_ns == S + 1 and t.head_min_ns is None and t.late_ns == 0
    # Quiet on the lock's own time (the clock's jumps): its own clock, with no slack for steps;
    # from EXPIRED it returns sleeping nowhere.
    assert t.max_quiet_ns == S + 1 and t.slack_ns == 0 and t.way_out_ns == 0
    assert d.classes == {"AA", "ABBA"} and d.max_held == RES_NR_HELD == 31
    # On the cycle's clock (edeadlk_complete), to the nanosecond: AA before any sleep, ABBA at the
    # check 1 ms + 1 ns after the previous one, less the steps between (``_abba_latency``).
    assert d.latency_ns == MS - 1 and d.latency_for(["AA"]) == 0
    coarse = ResilientTasLock(lockfuzz.Machine(n_cpus=1, n_locks=1, step_ns=10)).capabilities
    assert coarse.detection is not None and coarse.detection.latency_ns == MS + 1 - 1 - 10
    assert CAPS.fairness is None and CAPS.exceptions == {"held-table-view"}
    assert ResilientTasLock.__doc__ and len(ResilientTasLock.__doc__.split("\n\n")) == 1  # one paragraph


def test_uncontended_run_leaves_the_idle_state():
    program = Program(cpus=(task(Lock(0), Lock(1), Work(10), Unlock(1), Unlock(0)),), n_locks=2)
    result = both(program, list)
    assert [a[2] for a in attempts(result)] == [Status.OK, Status.OK]
    assert result.time_ns < 100  # no waiting at all


def test_check_reports_a_dirty_state():
    target = ResilientTasLock(Machine(n_cpus=2, n_locks=2))
    assert target.check() == []
    target.words[1].value = 1
    target.cnt[0].value = 1
    target.slots[0][0].value = 2
    assert target.check() == [
        "L1 word is 0x1, expected 0",
        "cpu0 held-locks count is 1, expected 0",
        "cpu0 held-locks slots [0] are not NULL",
    ]


def test_the_table_holds_what_a_cpu_holds_or_attempts():
    program = Program(cpus=(task(Lock(2), Lock(0), Work(100), Unlock(0), Unlock(2)),), n_locks=3)
    seen = []

    class Peek:
        def choose(self, n, engine):  # type: ignore[no-untyped-def]
            return 0

    engine = lockfuzz.Engine(ResilientTasLock, program, Peek())
    original = engine.log

    def log(ctx, kind, obj, value):  # type: ignore[no-untyped-def]
        if kind == ACQUIRED:
            t = engine.target
            seen.append((t.cnt[0].value, [s.value for s in t.slots[0][:3]]))
        original(ctx, kind, obj, value)

    engine.log = log  # type: ignore[method-assign]
    assert engine.run().violation is None
    # lock + 1 in each slot, 0 is NULL; the final check's two acquisitions come last.
    assert seen[:2] == [(1, [3, 0, 0]), (2, [3, 1, 0])]


def test_runs_are_deterministic():
    program = Program(cpus=(nested(0, 1), nested(1, 0), task(Lock(0), Unlock(0))), n_locks=2)
    a = run(ResilientTasLock, program, RandomWalk(7))
    b = run(ResilientTasLock, program, a.decisions)
    assert a.trace.hash() == b.trace.hash()


# -- AA --------------------------------------------------------------------------------------------
def test_aa_relock_in_the_same_context_is_edeadlk_at_the_first_poll():
    program = Program(cpus=(task(Lock(0), Lock(0), Unlock(0), Unlock(0)),), n_locks=1)
    result = both(program, list)
    (first, second) = attempts(result)
    assert first[2] is Status.OK and second[2] is Status.EDEADLK
    assert second[4] - second[3] < 20  # grab, load, AA walk, release the entry: a few steps


@pytest.mark.parametrize("level", [Level.SOFTIRQ, Level.HARDIRQ, Level.NMI])
def test_aa_handler_above_the_holder_is_edeadlk_at_the_first_poll(level):
    program = Program(
        cpus=(
            CpuProgram(task=(Lock(0), Work(MS), Unlock(0)), handlers=(Handler(level, (Lock(0), Unlock(0))),)),
            task(Work(100), Lock(0), Unlock(0)),
        ),
        n_locks=1,
    )
    result = both(program, lambda: FireWhenHeld(0, 0))
    [(_, _, status, begin, end)] = of(result, f"cpu0.{level}#0")
    assert status is Status.EDEADLK and end - begin < 20
    assert [a[2] for a in of(result, "cpu0.task")] == [Status.OK]
    assert [a[2] for a in of(result, "cpu1.task")] == [Status.OK]


def test_handler_landing_in_unlock_before_the_store_gets_edeadlk():
    # The release has begun (RELEASE logged) but the word still reads 1: the handler's attempt can
    # never succeed while it runs above the unlock, and the table entry is still there: EDEADLK.
    program = Program(
        cpus=(CpuProgram(task=(Lock(0), Unlock(0)), handlers=(Handler(Level.HARDIRQ, (Lock(0), Unlock(0))),)),),
        n_locks=1,
    )

    class InUnlock:
        def choose(self, n, engine):  # type: ignore[no-untyped-def]
            releasing = any(e[2] == RELEASE for e in engine.events)
            if releasing and engine.target.words[0].value == 1:
                for i, option in enumerate(engine.options()):
                    if option[0] == "fire":
                        return i
            return 0

    result = both(program, InUnlock)
    [(_, _, status, _, _)] = of(result, "cpu0.hardirq#0")
    assert status is Status.EDEADLK


def test_handler_landing_in_unlock_after_the_store_takes_the_lock():
    # res_spin_unlock stores the word before it clears the entry: a handler in between finds the
    # lock free and takes it (and its own entry sits above the stale one, which the task clears).
    program = Program(
        cpus=(CpuProgram(task=(Lock(0), Unlock(0)), handlers=(Handler(Level.HARDIRQ, (Lock(0), Unlock(0))),)),),
        n_locks=1,
    )

    class AfterStore:
        def choose(self, n, engine):  # type: ignore[no-untyped-def]
            t = engine.target
            releasing = any(e[2] == RELEASE for e in engine.events)
            if releasing and t.words[0].value == 0 and t.slots[0][0].value == 1:
                for i, option in enumerate(engine.options()):
                    if option[0] == "fire":
                        return i
            return 0

    result = both(program, AfterStore)
    assert [a[2] for a in attempts(result)] == [Status.OK, Status.OK]


# -- ABBA, ABBCCA, timeouts ------------------------------------------------------------------------
def test_abba_between_two_cpus_is_edeadlk_within_about_a_millisecond():
    program = Program(cpus=(nested(0, 1), nested(1, 0)), n_locks=2)
    result = both(program, lambda: SwitchWhenHeld(("cpu0.task", 0, "cpu1.task")))
    deadlocked = [a for a in attempts(result) if a[2] is Status.EDEADLK]
    assert deadlocked and all(a[1] in (0, 1) for a in deadlocked)
    assert all(a[2] in (Status.OK, Status.EDEADLK) for a in attempts(result))
    formed = max(started(result, "cpu0.task", 1) + started(result, "cpu1.task", 0))
    latency = min(a[4] for a in deadlocked) - formed
    assert MS < latency < MS + 100  # the first ABBA check, > 1 ms after the first poll
    # Of that, the time the whole cycle waited on the lock's own deadlines: within the declared.
    clock = cycle_clock(ResilientTasLock, program, SwitchWhenHeld(("cpu0.task", 0, "cpu1.task")))
    assert MS - 10 < clock <= CAPS.detection.latency_ns


def test_abba_under_random_schedules_is_always_broken_in_time():
    program = Program(cpus=(nested(0, 1), nested(1, 0), task(Lock(0), Unlock(0))), n_locks=2)
    deadlocks = 0
    for seed in range(60):
        result = run(ResilientTasLock, program, RandomWalk(seed))
        assert result.violation is None, (seed, str(result.violation))
        statuses = [a[2] for a in attempts(result)]
        assert Status.ETIMEDOUT not in statuses  # two-party cycles never wait for the timeout
        if Status.EDEADLK in statuses:
            deadlocks += 1
            # only the two parties of the ABBA ever get EDEADLK, never the bystander
            assert all(a[0] != "cpu2.task" for a in attempts(result) if a[2] is Status.EDEADLK)
            assert result.time_ns < 2 * MS
    assert deadlocks >= 5


def test_abbcca_across_three_cpus_ends_in_timeouts():
    program = Program(cpus=(nested(0, 1), nested(1, 2), nested(2, 0)), n_locks=3)
    result = both(
        program,
        lambda: SwitchWhenHeld(("cpu0.task", 0, "cpu1.task"), ("cpu1.task", 1, "cpu2.task")),
    )
    statuses = [a[2] for a in attempts(result)]
    assert Status.EDEADLK not in statuses  # only two-party cycles are detected
    timed_out = [a for a in attempts(result) if a[2] is Status.ETIMEDOUT]
    assert timed_out
    for _, _, _, begin, end in timed_out:
        assert S < end - begin <= S + 100  # strictly more than 1 s, and a few steps


def test_a_long_holder_makes_its_waiter_time_out_after_one_second():
    program = Program(
        cpus=(task(Lock(0), Work(3 * S // 2), Unlock(0)), task(Work(10), Lock(0), Unlock(0))), n_locks=1
    )
    result = both(program, list)
    [(_, _, status, begin, end)] = of(result, "cpu1.task")
    assert status is Status.ETIMEDOUT and S < end - begin <= S + 100


def test_a_holder_just_under_a_second_lets_its_waiter_in():
    program = Program(cpus=(task(Lock(0), Work(S - 100), Unlock(0)), task(Work(10), Lock(0), Unlock(0))), n_locks=1)
    result = both(program, list)
    assert [a[2] for a in of(result, "cpu1.task")] == [Status.OK]


# -- the held-locks table overflows past 31 entries ------------------------------------------------
@pytest.mark.parametrize(
    ("relock", "expected"),
    [
        (32, Status.ETIMEDOUT),  # index 32 was never stored (cnt > 31)
        (30, Status.ETIMEDOUT),  # stored in slot 30, but the AA walk stops at min(31, cnt) - 1
        (29, Status.EDEADLK),
        (0, Status.EDEADLK),
    ],
)
def test_relock_beyond_the_held_table(relock, expected):
    ops = [Lock(i) for i in range(33)] + [Lock(relock), Unlock(relock)] + [Unlock(i) for i in reversed(range(33))]
    program = Program(cpus=(task(*ops),), n_locks=34)
    result = both(program, list)
    last = attempts(result)[33]
    assert last[1] == relock and last[2] is expected
    if expected is Status.ETIMEDOUT:
        assert last[4] - last[3] > S
    else:
        assert last[4] - last[3] < 100


# -- interrupts everywhere: the oracles stay quiet -------------------------------------------------
PROGRAMS = {
    "nested-irq": Program(
        cpus=(
            CpuProgram(task=(Lock(0), Work(20), Unlock(0), Lock(0), Unlock(0)),
                       handlers=(Handler(Level.HARDIRQ, (Lock(0), Work(10), Unlock(0))),)),
            CpuProgram(task=(Lock(0), Lock(1), Work(20), Unlock(1), Unlock(0))),
            CpuProgram(task=(Lock(1), Lock(0), Unlock(0), Unlock(1)),
                       handlers=(Handler(Level.SOFTIRQ, (Lock(1), Unlock(1))),)),
        ),
        n_locks=2,
    ),
    "hammer": Program(
        cpus=(
            CpuProgram(task=(Lock(0), Work(5), Unlock(0)) * 3,
                       handlers=(Handler(Level.NMI, (Lock(1), Work(10), Unlock(1))),)),
            CpuProgram(task=(Lock(0), Lock(1), Work(3), Unlock(1), Unlock(0)) * 3),
            CpuProgram(task=(Lock(1), Unlock(1), Lock(0), Unlock(0)) * 3),
        ),
        n_locks=2,
    ),
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_random_schedules_with_interrupts_find_nothing(name):
    for seed in range(40):
        result = run(ResilientTasLock, PROGRAMS[name], RandomWalk(seed))
        assert result.violation is None, (name, seed, result.decisions, str(result.violation))


# -- a limit of the kernel's ABBA check that lockfuzz reports --------------------------------------
def test_abba_hidden_behind_a_third_cpus_table_is_outside_the_claim():
    """The kernel's ABBA check lets the first other CPU that has the awaited lock below its top
    entry decide. Here cpu0's task waits for L1, its softirq for L0 and its hardirq holds L2 for
    5 ms, so cpu0's table is [L1, L0, L2]: cpu1 (holds L0, waits for L1) and cpu2 (holds L1, waits
    for L0) both stop at cpu0, whose top entry L2 neither of them holds, and the ABBA between them
    goes undetected until the hardirq lets go (or, with a longer hardirq, until the 1 s timeout).
    The model is faithful, and so is its claim: ``Detection(table_scan=True)`` says the clock only
    runs while no CPU outside the cycle lists an awaited lock below its top entry. The same claim
    without ``table_scan`` is what the completeness oracle reports as missed."""
    a, b, x = 0, 1, 2
    program = Program(
        cpus=(
            CpuProgram(
                task=(Work(100), Lock(b), Unlock(b)),
                handlers=(
                    Handler(Level.SOFTIRQ, (Lock(a), Unlock(a))),
                    Handler(Level.HARDIRQ, (Lock(x), Work(5 * MS), Unlock(x))),
                ),
            ),
            task(Lock(a), Work(1000), Lock(b), Unlock(b), Unlock(a)),
            task(Lock(b), Work(1000), Lock(a), Unlock(a), Unlock(b)),
        ),
        n_locks=3,
    )

    class Stack:
        """Fire the softirq once the task waits for L1, the hardirq once the softirq waits."""

        def choose(self, n, engine):  # type: ignore[no-untyped-def]
            t = engine.target
            level = {1: "softirq", 2: "hardirq"}.get(t.cnt[0].value)
            if level and t.slots[0][t.cnt[0].value - 1].value and engine.machine.now > 200:
                for i, option in enumerate(engine.options()):
                    if option[0] == "fire" and option[2] == level:
                        return i
            return 0

    bare = run(ResilientTasLock, program, Stack(), oracles=[])
    assert bare.violation is None
    parties = of(bare, "cpu1.task", 1) + of(bare, "cpu2.task", 0)
    formed = max(started(bare, "cpu1.task", 1) + started(bare, "cpu2.task", 0))
    [hardirq] = of(bare, "cpu0.hardirq#1")
    # Nobody detects the ABBA while cpu0's hardirq works; once it returns, cpu0's table top is
    # L0 again and the next check of a party finds the cycle.
    detected = min(p[4] for p in parties if p[2] is Status.EDEADLK)
    assert detected > hardirq[4] + 5 * MS > formed + 4 * CAPS.detection.latency_ns
    assert run(ResilientTasLock, program, Stack()).violation is None

    class ClaimsEveryAbba(ResilientTasLock):
        capabilities = dataclasses.replace(
            CAPS, detection=dataclasses.replace(CAPS.detection, table_scan=False)
        )

    result = run(ClaimsEveryAbba, program, Stack())
    assert result.violation is not None and result.violation.signature == ("edeadlk-complete", "missed-ABBA")
    assert set(result.violation.contexts) == {"cpu1.task", "cpu2.task"}


# -- waiting costs events, not virtual time (issue #13) --------------------------------------------
@pytest.mark.parametrize("waiters", [1, 2])
def test_a_long_wait_costs_the_steps_of_a_short_one(waiters):
    # After its first ABBA check finds nothing, a waiter sleeps until the word or a table
    # changes, or its timeout: behind a hold of 3 ms, 250 ms or 900 ms it takes the same steps,
    # and waiting out its 1 s timeout takes no more. (Waking for each 1 ms check cost about
    # 1,000 steps per second of waiting: 790 behind 250 ms, 3,037 behind 1.5 s.)
    steps = set()
    for hold in (3 * MS, 250 * MS, 900 * MS):
        result = both(behind(hold, waiters), list)
        assert [a[2] for a in attempts(result)] == [Status.OK] * (1 + waiters)
        steps.add(result.steps)
    [short] = steps
    result = both(behind(3 * S // 2, waiters), list)
    assert [a[2] for a in attempts(result)][-waiters:] == [Status.ETIMEDOUT] * waiters
    assert result.steps <= short < 100


def test_a_change_mid_period_is_checked_on_the_kernels_1ms_grid():
    # cpu0 holds L0 and waits for L1; cpu1 holds L1, works 2.5 ms, then asks for L0: the ABBA
    # closes at t = 2,500,012 (cpu1's table count goes to 2). cpu0's first poll runs the AA check
    # (two reads of its table) and then arms its timer, at t = 16: the kernel reads the clock
    # after the AA check. The kernel then checks at the first poll strictly more than 1 ms after
    # each check: every 1 ms + 1 ns (CHECK_PERIOD_NS). Its first ABBA check runs at t = 1,000,018
    # (the poll after the clock reached 16 + 1,000,001) and finds nothing; the kernel's next one,
    # at 2,000,019, would find nothing either (nothing changed) and is skipped, so cpu0 sleeps
    # until the change. The check after it falls on the same grid, at 3,000,020 (its poll one step
    # later): not at once, and not 1 ms after the change. It finds the cycle: EDEADLK.
    program = Program(cpus=(nested(0, 1), task(Lock(1), Work(5 * MS // 2), Lock(0), Unlock(0), Unlock(1))), n_locks=2)
    schedule = [0, 0, 0, 0, 0, 1]  # cpu0 takes L0, then cpu1 runs (and takes L1)
    result = both(program, lambda: lockfuzz.Schedule(schedule))
    cpu0, cnt1 = result.trace.contexts.index("cpu0.task"), result.trace.cells.index("cpu1.held.cnt")
    # Each ABBA check reads cpu1's count 4 steps after its poll (own count, cpu0's, the word).
    checks = [t - 4 for t, c, kind, obj, _ in result.trace.events if c == cpu0 and kind == LOAD and obj == cnt1]
    changed = min(t for t, _, kind, obj, old in result.trace.events if obj == cnt1 and kind == FETCH_ADD and old == 1)
    first = 1_000_018
    assert checks == [first, first + 2 * CHECK_PERIOD_NS + 1]  # + 1: the poll is the step after the jump
    assert first + CHECK_PERIOD_NS < changed == 2_500_012 < first + 2 * CHECK_PERIOD_NS
    assert of(result, "cpu0.task", 1) == [("cpu0.task", 1, Status.EDEADLK, 5, 3_000_032)]
    assert [a[2] for a in of(result, "cpu1.task")] == [Status.OK, Status.OK]
    assert result.steps == 80


def test_a_change_under_a_handler_is_checked_when_the_handler_returns():
    # The change comes from a handler on the waiter's own CPU, which then runs past a point of
    # the grid: cpu0's task sleeps after its first ABBA check (t = 1,000,018); its hardirq grabs
    # a table entry for L2 at t = 1,000,026 and works 1.5 ms. The grid point 2,000,019 came after
    # the change, while the task could not run: the kernel's task, back from the handler at
    # 2,500,035, is more than 1 ms past its last check and checks at its first poll. The model
    # does the same (it knows when the change woke the task, Context.woken_ns); counting from
    # when the task ran again instead would skip that point and check 1 ms late, at 3,000,021.
    program = HANDLER_CHANGES_THE_TABLE

    result = both(program, FireWhileItSleeps)
    cpu0, cnt1 = result.trace.contexts.index("cpu0.task"), result.trace.cells.index("cpu1.held.cnt")
    checks = [t - 4 for t, c, kind, obj, _ in result.trace.events if c == cpu0 and kind == LOAD and obj == cnt1]
    [back] = [t for t, _, kind, _, _ in result.trace.events if kind == IRQ_EXIT]
    assert back == 2_500_035
    assert checks == [1_000_018, 2_500_037]  # two steps on: the task wakes, then polls


def test_a_waiter_that_loses_the_race_for_a_freed_lock_polls_again():
    # Both waiters sleep on the word after their first ABBA check; the holder lets go at 2 ms and
    # wakes both. cpu1 takes the lock and cpu2's cmpxchg fails (its poll read 0 before cpu1's
    # cmpxchg): less than 1 ms since its last check, so it runs none and polls again.
    result = both(behind(2 * MS, 2), lambda: RandomWalk(0))
    contexts = result.trace.contexts
    lost = [(t, contexts[c]) for t, c, kind, _, old in result.trace.events if kind == CMPXCHG and old != 0]
    assert lost == [(2_000_021, "cpu2.task")]
    assert [a[2] for a in attempts(result)] == [Status.OK] * 3


def test_a_waiter_woken_for_every_check_still_skips_those_that_cannot_find_anything():
    # The budget_overrun mutant sleeps until its next 1 ms check and never until its deadline.
    # Behind a 10 ms hold with a budget of 4.5 ms it wakes at 2, 3, 4 and 5 ms; nothing changed
    # since its ABBA check at 1 ms, so those checks read nothing (one ABBA check in all), and it
    # notices its deadline at the 5 ms check: 0.5 ms late, which the bounded-waiting oracle reports.
    from lockfuzz.targets.mutants.budget_overrun import BudgetOverrunLock

    program = Program(cpus=(task(Lock(0), Work(10 * MS), Unlock(0)), task(Work(10), Lock(0, 9 * MS // 2), Unlock(0))),
                      n_locks=1)
    bare = run(BudgetOverrunLock, program, [], oracles=[])
    [(_, _, status, begin, end)] = of(bare, "cpu1.task")
    assert status is Status.ETIMEDOUT and 5 * MS < end < 5 * MS + 100
    cpu1, cnt0 = bare.trace.contexts.index("cpu1.task"), bare.trace.cells.index("cpu0.held.cnt")
    assert len([t for t, c, kind, obj, _ in bare.trace.events if c == cpu1 and kind == LOAD and obj == cnt0]) == 1
    result = run(BudgetOverrunLock, program, [])
    assert result.violation is not None and result.violation.oracle == "bounded-waiting"
