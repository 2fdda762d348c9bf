"""The rqspinlock model: the kernel's own selftest scenarios replayed step by step, and more.

Each test builds a program, drives the interleaving that matters with a small decision source
(fire a handler when the task holds its lock, ...) and checks the statuses and virtual times the
kernel code implies. ``oracles=[]`` runs check the model against the kernel's behaviour alone;
runs with the default oracles check that the oracles agree with it. The tests at the end are
kernel behaviours the oracles once flagged wrongly; each comment names what the oracle now knows.
"""

from __future__ import annotations

import random

import pytest
from support import HANDLER_CHANGES_THE_TABLE, FireWhileItSleeps, behind, cycle_clock
from support import Scripted as ScriptedRules

import lockfuzz
from lockfuzz import CpuProgram, Handler, Level, Lock, Mark, Program, Status, Unlock, Work, run
from lockfuzz._engine._events import IRQ_EXIT, MARK
from lockfuzz._engine._machine import FETCH_ADD, LOAD, STORE
from lockfuzz.targets.rqspinlock import RqSpinlock, capabilities_for

MS = 1_000_000
ACQUIRE, RELEASE_EV, ACQUIRED = 20, 22, 21  # trace event kinds (lockfuzz._engine._events)
LOCKED, PENDING = 0x1, 0x100


# -- helpers ---------------------------------------------------------------------------------------
def attempts(result):
    """Every acquisition as (context name, lock, status, start ns, end ns), in order of return."""
    start, out = {}, []
    for t, c, kind, obj, value in result.trace.events:
        if kind == ACQUIRE:
            start[c] = t
        elif kind == ACQUIRED:
            out.append((result.trace.contexts[c], obj, Status(value), start[c], t))
    return [a for a in out if not a[0].endswith(".final")]


def of(result, name, lock=None):
    return [a for a in attempts(result) if a[0] == name and (lock is None or a[1] == lock)]


def started(result, name, lock):
    """Start times of the attempts of context ``name`` on ``lock``."""
    ctx = result.trace.contexts.index(name)
    return [t for t, c, kind, obj, _ in result.trace.events if c == ctx and kind == ACQUIRE and obj == lock]


class FireWhen:
    """Fire the handler of each listed CPU as soon as its condition on the engine holds;
    otherwise let the engine's fair default decide."""

    def __init__(self, conditions):
        self.conditions = dict(conditions)

    def choose(self, n, engine):
        for cpu in sorted(self.conditions):
            if engine.target is not None and self.conditions[cpu](engine):
                for i, option in enumerate(engine.options()):
                    if option[0] == "fire" and option[1] == cpu:
                        del self.conditions[cpu]
                        return i
        return None


def holds(name, lock):
    """Condition: context ``name`` has acquired ``lock`` (its ACQUIRED OK event is in)."""

    def cond(engine):
        return any(
            k == ACQUIRED and o == lock and v == 0 and engine.contexts[c].name == name
            for _, c, k, o, v in engine.events
        )

    return cond


def queued(*cpus):
    """Condition: the task of each CPU is inside the queue part of the slow path, waiting."""

    def cond(engine):
        return all(engine.target.count[c].value == 1 and engine.contexts[c].blocked for c in cpus)

    return cond


def task(*ops):
    return CpuProgram(task=tuple(ops))


def nested(a, b, work=10_000):
    return task(Lock(a), Work(work), Lock(b), Unlock(b), Unlock(a))


# -- uncontended, determinism, parameters ----------------------------------------------------------
def test_uncontended_acquire_release_leaves_the_idle_state():
    program = Program(cpus=(task(Lock(0), Work(100), Lock(1), Unlock(1), Unlock(0)),), n_locks=2)
    engine = lockfuzz.Engine(RqSpinlock, program, lockfuzz.Schedule([]), oracles=[])
    result = engine.run()
    assert result.violation is None
    assert [a[2] for a in attempts(result)] == [Status.OK, Status.OK]
    assert engine.target.check() == []
    # Fast path: grab entry (2 steps), CAS (1 step).
    assert all(end - begin <= 3 for _, _, _, begin, end in attempts(result))
    assert run(RqSpinlock, program, []).violation is None


def test_check_reports_a_dirty_state():
    machine = lockfuzz.Machine(n_cpus=2, n_locks=2)
    target = RqSpinlock(machine)
    assert target.check() == []
    target.word[1].value = LOCKED
    target.cnt[0].value = 1
    target.slot[0][0].value = 2
    target.count[1].value = 1
    problems = target.check()
    assert len(problems) == 4
    assert any("L1.val" in p for p in problems) and any("node[0].count" in p for p in problems)


def test_runs_are_deterministic():
    program = Program(cpus=(nested(0, 1, 1000), nested(1, 0, 1000), nested(0, 1, 500)), n_locks=2)
    first = run(RqSpinlock, program, [1, 2, 0, 1, 3, 2, 1], oracles=[])
    second = run(RqSpinlock, program, [1, 2, 0, 1, 3, 2, 1], oracles=[])
    assert first.trace.hash() == second.trace.hash()
    assert first.decisions == second.decisions


def test_poll_interval_is_validated():
    machine = lockfuzz.Machine(n_cpus=1, n_locks=1)
    for bad in (0, -1, 1.5, True, "1"):
        with pytest.raises(lockfuzz.InvalidArgument):
            RqSpinlock(machine, poll_interval=bad)


def test_capabilities():
    caps = RqSpinlock.capabilities
    assert caps == capabilities_for(1, 1) == RqSpinlock.capabilities_for(1, 1)
    t, d = caps.timeouts, caps.detection
    # To the step: gives up when now > timeout_end, at the first poll past it (Mark.ARMED, EXPIRED).
    assert not t.per_call and t.min_ns == 250 * MS + 1 and t.early_when_another_times_out
    assert t.head_min_ns == 500 * MS + 1 and t.late_ns == 0
    assert capabilities_for(65536, 10).timeouts.late_ns == 65536 * 10 - 1 + 9  # a poll, and a wake's overshoot
    # Quiet on the lock's own time (the clock's jumps): a queue head's clock, with no slack for
    # steps; from EXPIRED it returns sleeping nowhere.
    assert t.max_quiet_ns == 500 * MS + 1 and t.slack_ns == 0 and t.way_out_ns == 0
    assert d.classes == {"AA", "ABBA"} and d.max_held == 31
    assert caps.fairness is None
    assert caps.exceptions == {"held-table-view", "nested-trylock-fallback"}
    instance = RqSpinlock(lockfuzz.Machine(n_cpus=1, n_locks=1, step_ns=10), poll_interval=65536)
    assert instance.capabilities == capabilities_for(65536, 10)
    slow = capabilities_for(65536, 10)
    assert slow.detection.latency_ns == MS + 65536 * 10 - 1 - 10  # on the cycle's clock (capabilities_for)
    assert d.latency_ns == MS + 1 - 1 - 1 and d.latency_for(["AA"]) == 0
    assert slow.timeouts.max_quiet_ns == 500 * MS + 1 + slow.timeouts.late_ns


# -- AA: the kernel's selftest (second lock returns -EDEADLK) and interrupt variants ---------------
def test_aa_relock_in_the_same_context_is_edeadlk_at_once():
    program = Program(cpus=(task(Lock(0), Lock(0), Unlock(0), Unlock(0)),), n_locks=1)
    for oracles in ([], None):
        result = run(RqSpinlock, program, [], oracles=oracles)
        assert result.violation is None
        (first, second) = attempts(result)
        assert first[2] is Status.OK and second[2] is Status.EDEADLK
        assert second[4] - second[3] < 20  # at the first poll: a few steps, no waiting


@pytest.mark.parametrize("level", [Level.SOFTIRQ, Level.HARDIRQ, Level.NMI])
def test_aa_handler_on_the_holders_cpu_is_edeadlk_at_once(level):
    program = Program(
        cpus=(CpuProgram(task=(Lock(0), Work(MS), Unlock(0)), handlers=(Handler(level, (Lock(0), Unlock(0))),)),),
        n_locks=1,
    )
    for oracles in ([], None):
        result = run(RqSpinlock, program, FireWhen({0: holds("cpu0.task", 0)}), oracles=oracles)
        assert result.violation is None
        handler = f"cpu0.{level}#0"
        [(_, _, status, begin, end)] = of(result, handler)
        assert status is Status.EDEADLK and end - begin < 20
        assert [a[2] for a in of(result, "cpu0.task")] == [Status.OK]


def test_nmi_uses_the_trylock_fallback_while_its_task_is_queued():
    # cpu1 holds L1 and L2; cpu2 and cpu3 are their pending waiters, so cpu0's task queues on L1
    # (node 0). An NMI on cpu0 that finds L2 contended takes node index 1: one trylock, -EDEADLK (Q2).
    program = Program(
        cpus=(
            CpuProgram(task=(Work(2000), Lock(1), Unlock(1)), handlers=(Handler(Level.NMI, (Lock(2), Unlock(2))),)),
            task(Lock(1), Lock(2), Work(5 * MS), Unlock(2), Unlock(1)),
            task(Work(1000), Lock(1), Unlock(1)),
            task(Work(1000), Lock(2), Unlock(2)),
        ),
        n_locks=3,
    )
    for oracles in ([], None):
        result = run(RqSpinlock, program, FireWhen({0: queued(0)}), oracles=oracles)
        assert result.violation is None
        [(_, _, status, begin, end)] = of(result, "cpu0.nmi#0")
        assert status is Status.EDEADLK and end - begin < 20  # no spinning in the fallback
        assert all(a[2] is Status.OK for a in attempts(result) if a[0] != "cpu0.nmi#0")


# -- the held-locks table overflows past 31 entries ------------------------------------------------
@pytest.mark.parametrize(
    ("relock", "expected"),
    [
        (32, Status.ETIMEDOUT),  # the selftest: index 32 was never stored (cnt > 31)
        (30, Status.ETIMEDOUT),  # stored in slot 30, but the AA scan stops at min(31, cnt) - 1
        (29, Status.EDEADLK),
        (0, Status.EDEADLK),
    ],
)
def test_relock_beyond_the_held_table(relock, expected):
    ops = [Lock(i) for i in range(33)] + [Lock(relock), Unlock(relock)] + [Unlock(i) for i in reversed(range(33))]
    program = Program(cpus=(task(*ops),), n_locks=34)
    for oracles in ([], None):
        result = run(RqSpinlock, program, [], oracles=oracles)
        assert result.violation is None
        last = attempts(result)[33]
        assert last[1] == relock and last[2] is expected
        if expected is Status.ETIMEDOUT:
            assert last[4] - last[3] > 250 * MS  # the pending waiter's 250 ms, strictly
        else:
            assert last[4] - last[3] < 100


# -- ABBA, ABBCCA ----------------------------------------------------------------------------------
def _abba_latency(poll_interval):
    program = Program(cpus=(nested(0, 1), nested(1, 0)), n_locks=2)
    params = {"poll_interval": poll_interval}
    result = run(RqSpinlock, program, [], params=params, oracles=[])
    assert result.violation is None
    assert all(a[2] in (Status.OK, Status.EDEADLK) for a in attempts(result))
    deadlocked = [a for a in attempts(result) if a[2] is Status.EDEADLK]
    assert deadlocked  # one side (or both) gives up; the other then gets its lock
    formed = max(started(result, "cpu0.task", 1) + started(result, "cpu1.task", 0))

    class Target(RqSpinlock):
        capabilities = RqSpinlock.capabilities_for(poll_interval, 1)

    # Of the time it took, the cycle waited on the lock's own deadlines (edeadlk_complete) within
    # the declared latency.
    assert cycle_clock(Target, program, [], params=params) <= Target.capabilities.detection.latency_ns
    return min(a[4] for a in deadlocked) - formed


def test_abba_between_two_cpus_is_detected_within_about_a_millisecond():
    every_poll, amortised = _abba_latency(1), _abba_latency(65536)
    assert MS < every_poll < MS + 100
    # The amortised check runs every 65536 polls (ns here): detected later, within a poll more.
    assert every_poll < amortised < MS + 65536 + 100


def test_abbcca_across_three_cpus_ends_in_timeouts():
    program = Program(cpus=(nested(0, 1), nested(1, 2), nested(2, 0)), n_locks=3)
    for oracles in ([], None):
        result = run(RqSpinlock, program, [], oracles=oracles)
        assert result.violation is None
        statuses = [a[2] for a in attempts(result)]
        assert Status.EDEADLK not in statuses  # only two-party cycles are detected
        timed_out = [a for a in attempts(result) if a[2] is Status.ETIMEDOUT]
        assert timed_out and all(end - begin > 250 * MS for _, _, _, begin, end in timed_out)


# -- timeouts and the queue teardown ---------------------------------------------------------------
def test_queue_head_timeout_tears_the_queue_down():
    # cpu0 holds L0 for 2 s. cpu1 is the pending waiter (250 ms), cpu2 the queue head (500 ms),
    # cpu3 queues behind cpu2 at 400 ms and is told to leave when cpu2 times out.
    program = Program(
        cpus=(
            task(Lock(0), Work(2000 * MS), Unlock(0)),
            task(Work(100), Lock(0), Unlock(0)),
            task(Work(200), Lock(0), Unlock(0)),
            task(Work(400 * MS), Lock(0), Unlock(0)),
        ),
        n_locks=1,
    )
    for oracles in ([], None):
        result = run(RqSpinlock, program, [], oracles=oracles)
        assert result.violation is None
        [pending] = of(result, "cpu1.task")
        [head] = of(result, "cpu2.task")
        [queued] = of(result, "cpu3.task")
        assert pending[2] is head[2] is queued[2] is Status.ETIMEDOUT
        assert 250 * MS < pending[4] - pending[3] < 251 * MS
        assert 500 * MS < head[4] - head[3] < 501 * MS
        assert queued[4] - queued[3] < 101 * MS  # early: its head timed out
        assert queued[4] >= head[4] - 20


def test_contended_three_cpus_default_schedule():
    line = tuple(
        op for _ in range(4) for op in (Lock(0), Work(100), Unlock(0), Lock(1), Lock(0), Work(50), Unlock(0), Unlock(1))
    )
    program = Program(cpus=(CpuProgram(task=line),) * 3, n_locks=2)
    engine = lockfuzz.Engine(RqSpinlock, program, lockfuzz.Schedule([]))
    result = engine.run()
    assert result.violation is None
    assert all(a[2] is Status.OK for a in attempts(result)) and len(attempts(result)) == 36
    assert engine.target.check() == []


def test_random_walk_keeps_the_hard_properties():
    """A small seeded campaign: interleavings with NMIs at random steps never break mutual
    exclusion, ownership or the final state, never fault, never hang."""
    hard = {"mutual-exclusion", "ownership", "final-state", "target-fault", "hang", "livelock"}
    for seed in range(150):
        rng = random.Random(seed)
        n_locks = rng.randint(1, 3)
        cpus = []
        for _ in range(rng.randint(2, 4)):
            locks = rng.sample(range(n_locks), rng.randint(1, n_locks))
            work = [Work(rng.choice([10, 1000, 2 * MS]))]
            ops = [Lock(x) for x in locks] + work + [Unlock(x) for x in reversed(locks)]
            x = rng.randrange(n_locks)
            nmi = Handler(Level.NMI, (Lock(x), Unlock(x)))
            cpus.append(CpuProgram(task=tuple(ops) * 2, handlers=(nmi,) if rng.random() < 0.5 else ()))
        program = Program(cpus=tuple(cpus), n_locks=n_locks)
        walk = random.Random(seed + 1000)
        schedule = [walk.choice([0, 0, 0, 1, 2, 3]) for _ in range(400)]
        result = run(RqSpinlock, program, schedule)
        assert result.violation is None or result.violation.oracle not in hard, (seed, result.violation)


# -- a finding: hardirq/softirq waiters nested into queue heads hang the heads ---------------------
def _heads_interrupted_program(level):
    handler = lambda lock: (Handler(level, (Lock(lock), Unlock(lock))),)  # noqa: E731
    return Program(
        cpus=(
            CpuProgram(task=(Work(200), Lock(0), Unlock(0)), handlers=handler(1)),
            CpuProgram(task=(Work(200), Lock(1), Unlock(1)), handlers=handler(0)),
            task(Lock(0), Lock(1), Work(1000), Unlock(1), Unlock(0)),
            task(Work(100), Lock(0), Unlock(0)),  # pending waiters: the tasks of cpu0 and cpu1 queue
            task(Work(100), Lock(1), Unlock(1)),
        ),
        n_locks=2,
    )


def test_hardirqs_queued_behind_each_others_interrupted_heads_hang():
    # cpu0.task heads L0's queue, cpu1.task heads L1's. A hardirq on cpu0 queues on L1 behind
    # cpu1.task, a hardirq on cpu1 queues on L0 behind cpu0.task. Non-head waiters spin with no
    # timeout; the heads, which own the timeouts, cannot run: nothing ever returns (mainline:
    # the Q0 AA check does not see it, the Q2 fallback is for NMIs only).
    program = _heads_interrupted_program(Level.HARDIRQ)
    result = run(RqSpinlock, program, FireWhen({0: queued(0, 1), 1: queued(0, 1)}), oracles=[])
    assert result.violation is not None and result.violation.oracle == "hang"


def test_nmis_queued_behind_each_others_heads_take_the_trylock_fallback():
    program = _heads_interrupted_program(Level.NMI)
    result = run(RqSpinlock, program, FireWhen({0: queued(0, 1), 1: queued(0, 1)}), oracles=[])
    assert result.violation is None
    assert [a[2] for a in attempts(result) if "nmi" in a[0]] == [Status.EDEADLK, Status.EDEADLK]


# -- correct kernel behaviour the oracles currently flag (false alarms) ----------------------------
class Scripted:
    """Decisions from a policy: ``policy(engine, options)`` returns an option index or None."""

    def __init__(self, policy):
        self.policy = policy

    def choose(self, n, engine):
        return self.policy(engine, engine.options()) if engine.target is not None else None


def _pick(options, kind, name):
    for i, option in enumerate(options):
        if option[0] == kind and (option[1] == name):
            return i
    return None


# Once an oracle false alarm, fixed: the held-table view drops a lock at RELEASE, but the kernel clears the
# entry after the unlocking store (by design, 'Enclose lock/unlock within lock entry acquisitions')
def test_handler_landing_in_unlock_gets_edeadlk_from_the_stale_entry():
    program = Program(
        cpus=(
            CpuProgram(task=(Lock(0), Work(1000), Unlock(0)), handlers=(Handler(Level.HARDIRQ, (Lock(0), Unlock(0))),)),
            task(Work(500), Lock(0), Work(10_000), Unlock(0)),
        ),
        n_locks=1,
    )

    def policy(engine, options):
        t = engine.target
        released = any(k == RELEASE_EV and c == 0 for _, c, k, _, _ in engine.events)
        if released and t.slot[0][0].value == 1:
            if t.word[0].value & LOCKED == 0:
                return _pick(options, "run", "cpu1.task")  # let cpu1, the pending waiter, take it
            if engine.contexts[1].done is False and t.word[0].value == LOCKED:
                return _pick(options, "fire", 0)
        return None

    result = run(RqSpinlock, program, Scripted(policy), oracles=[])
    [(_, _, status, _, _)] = of(result, "cpu0.hardirq#0")
    assert status is Status.EDEADLK  # the kernel's accepted false positive
    assert run(RqSpinlock, program, Scripted(policy)).violation is None


# Once an oracle false alarm, fixed: the Q2 trylock fails on any nonzero word (a pending bit in hand-over),
# not only while the lock is held
def test_nmi_fallback_on_a_lock_in_hand_over_is_edeadlk():
    program = Program(
        cpus=(
            CpuProgram(task=(Work(2000), Lock(1), Unlock(1)), handlers=(Handler(Level.NMI, (Lock(2), Unlock(2))),)),
            task(Lock(1), Lock(2), Work(5000), Unlock(2), Work(5000), Unlock(1)),
            task(Work(1000), Lock(1), Unlock(1)),
            task(Work(1000), Lock(2), Unlock(2)),
        ),
        n_locks=3,
    )
    # Fire when cpu1 has released L2 and cpu3, its pending waiter, has not yet taken it.
    hand_over = lambda e: e.target.word[2].value == PENDING and e.target.count[0].value == 1  # noqa: E731
    result = run(RqSpinlock, program, FireWhen({0: hand_over}), oracles=[])
    [(_, _, status, _, _)] = of(result, "cpu0.nmi#0")
    assert status is Status.EDEADLK
    assert run(RqSpinlock, program, FireWhen({0: hand_over})).violation is None


# Once an oracle false alarm, fixed: the kernel checks ABBA only at the pending waiter and the queue head; an
# ABBA between two queued waiters ends in a timeout
def test_abba_between_queued_waiters_is_not_detected():
    # cpu0: A then B; cpu1: B then A. On each lock a pending waiter (cpu2, cpu3) and a queue head
    # (cpu4, cpu5) arrive first, so both parties of the ABBA are non-head waiters: they run no
    # checks, and the heads' checks see no cycle through their own tables. The heads time out.
    program = Program(
        cpus=(
            nested(0, 1, 1000),
            nested(1, 0, 1000),
            task(Work(300), Lock(0), Unlock(0)),
            task(Work(300), Lock(1), Unlock(1)),
            task(Work(600), Lock(0), Unlock(0)),
            task(Work(600), Lock(1), Unlock(1)),
        ),
        n_locks=2,
    )
    result = run(RqSpinlock, program, [], oracles=[])
    statuses = [a[2] for a in attempts(result)]
    assert Status.EDEADLK not in statuses
    [broken] = of(result, "cpu1.task", 0)  # told to leave when its head, cpu4, timed out
    assert broken[2] is Status.ETIMEDOUT and broken[4] > 500 * MS
    assert run(RqSpinlock, program, []).violation is None


# Once an oracle false alarm, fixed: a waiter's quiet time runs while the queue head ahead of it is
# interrupted (the head owns the timeout)
def test_waiter_behind_an_interrupted_head_waits_longer():
    program = Program(
        cpus=(
            task(Lock(0), Work(2000 * MS), Unlock(0)),
            task(Work(100), Lock(0), Unlock(0)),
            CpuProgram(task=(Work(200), Lock(0), Unlock(0)), handlers=(Handler(Level.HARDIRQ, (Work(600 * MS),)),)),
            task(Work(300), Lock(0), Unlock(0)),
        ),
        n_locks=1,
    )
    late = lambda e: e.machine.now >= 400 * MS  # noqa: E731
    result = run(RqSpinlock, program, FireWhen({2: late}), oracles=[])
    [head] = of(result, "cpu2.task")
    [queued] = of(result, "cpu3.task")
    assert head[2] is queued[2] is Status.ETIMEDOUT and queued[4] > 1000 * MS
    assert run(RqSpinlock, program, FireWhen({2: late})).violation is None


# Found by `lockfuzz fuzz rqspinlock --runs 20000 --cpus 4 --strategy pct --seed 0`, minimised:
# cpu2's task joins the queue a few ns after a queue head returned ETIMEDOUT, behind a waiter
# that the head told to leave and that is still leaving; that waiter, leaving, tells cpu2 to
# leave too (the T step, waiter to waiter), so cpu2 returns ETIMEDOUT long before 250 ms. The
# kernel's own teardown: the declared early leaving covers it, and only because cpu2 joined
# behind a leaving waiter.
TEARDOWN = Program.from_json({
    "n_locks": 1, "on_error": {"retries": 0, "backoff_ns": 0},
    "cpus": [
        {"task": [["lock", 0, 1_000_000_000], ["unlock", 0]],
         "handlers": [{"level": "softirq", "ops": [["lock", 0, 1_000_000_000], ["unlock", 0]]}]},
        {"task": [["lock", 0, 1_000_000_000], ["work", 0], ["unlock", 0]], "handlers": []},
        {"task": [["lock", 0, 1_000_000_000], ["work", 2], ["unlock", 0], ["work", 250_100_001],
                  ["lock", 0, 1_000_000_000], ["unlock", 0]], "handlers": []},
        {"task": [["lock", 0, 1_000_000_000], ["work", 500_100_002], ["unlock", 0]], "handlers": []},
    ],
})  # fmt: skip
TEARDOWN_SCHEDULE = [1] + [0] * 21 + [2] + [0] * 6 + [2] + [0] * 29 + [1] + [0] * 11 + [1]


def _early_timeouts(result: lockfuzz.RunResult) -> list[str]:
    start: dict[int, int] = {}
    early = []
    for t, ctx, kind, _lock, value in result.trace.events:
        if kind == 20:  # ACQUIRE
            start[ctx] = t
        elif kind == 21 and value == Status.ETIMEDOUT and t - start[ctx] < 250 * MS:
            early.append(result.trace.contexts[ctx])
    return early


def test_a_waiter_joining_behind_a_leaving_one_may_be_told_to_leave(monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(RqSpinlock, TEARDOWN, TEARDOWN_SCHEDULE)
    assert result.violation is None, str(result.violation)
    assert _early_timeouts(result)  # someone was told to leave long before 250 ms
    # Without the teardown mark (a waiter that joined behind a leaving one), it is etimedout/early:
    # the exception covers exactly this and nothing wider.
    from lockfuzz._oracles import _truth

    monkeypatch.setattr(_truth.Attempt, "teardown", property(lambda self: False, lambda self, value: None))
    again = run(RqSpinlock, TEARDOWN, TEARDOWN_SCHEDULE)
    assert again.violation is not None and again.violation.signature == ("etimedout", "early")


# -- waiting costs events, not virtual time (issue #13) --------------------------------------------
@pytest.mark.parametrize("waiters", [1, 2])
def test_a_long_wait_costs_the_steps_of_a_short_one(waiters):
    # After its first ABBA check finds nothing, a waiter sleeps until the word or a table
    # changes, or its timeout: behind a hold of 3 ms or 200 ms (under the pending waiter's
    # 250 ms) it takes the same steps. Waiting out the timeouts (250 ms, then 500 ms for the
    # head) costs a bounded number of steps too. (Waking for each 1 ms check cost 541 steps
    # behind 250 ms.)
    steps = set()
    for hold in (3 * MS, 200 * MS):
        for oracles in ([], None):
            result = run(RqSpinlock, behind(hold, waiters), [], oracles=oracles)
            assert result.violation is None, str(result.violation)
            assert [a[2] for a in attempts(result)] == [Status.OK] * (1 + waiters)
            steps.add(result.steps)
    [short] = steps
    for hold in (900 * MS, 1500 * MS):
        result = run(RqSpinlock, behind(hold, waiters), [])
        assert result.violation is None, str(result.violation)
        assert Status.ETIMEDOUT in [a[2] for a in attempts(result)]
        assert result.steps < 2 * short < 200


@pytest.mark.parametrize(
    ("poll_interval", "checks", "edeadlk"),
    [
        # Every poll: the first ABBA check at 1,000,018 (the poll after the clock reached
        # 16 + 1 ms + 1), then every 1 ms + 1 ns: 2,000,019 (skipped, nothing changed), then
        # 3,000,020, whose poll is the step after.
        (1, [1_000_018, 3_000_021], 3_000_033),
        # Every 65,536 polls (the kernel's): checks on the grid of polls from the last one,
        # the ABBA ones 16 polls (1,048,576 ns, the fewest longer than 1 ms) apart: 1,048,593,
        # then (after the check's reads) 2,097,174 (skipped), then 3,145,750.
        (65536, [1_048_593, 3_145_751], 3_145_763),
    ],
)
def test_a_change_mid_period_is_checked_on_the_kernels_grid(poll_interval, checks, edeadlk):
    # cpu0 holds L0 and becomes L1's pending waiter; cpu1 holds L1, works 2.5 ms, then asks for
    # L0: the ABBA closes at t = 2,500,010 (cpu1's table count goes to 2). cpu0 checks ABBA at
    # the first poll strictly more than 1 ms after its last check; the check between its first
    # one and the change would find nothing and is skipped, and the check after the change falls
    # on the same grid: not at once, and not 1 ms after the change. It finds the cycle.
    program = Program(
        cpus=(
            task(Lock(0), Lock(1), Unlock(1), Unlock(0)),
            task(Lock(1), Work(5 * MS // 2), Lock(0), Unlock(0), Unlock(1)),
        ),
        n_locks=2,
    )
    schedule = [0, 0, 0, 0, 1]  # cpu0 takes L0, then cpu1 runs (and takes L1)
    params = {"poll_interval": poll_interval}

    class Target(RqSpinlock):
        capabilities = RqSpinlock.capabilities_for(poll_interval, 1)

    bare = run(RqSpinlock, program, schedule, params=params, oracles=[])
    result = run(Target, program, schedule, params=params)
    assert result.violation is None, str(result.violation)
    assert result.trace.hash() == bare.trace.hash()
    cpu0, cnt1 = result.trace.contexts.index("cpu0.task"), result.trace.cells.index("cpu1.held.cnt")
    # Each ABBA check reads cpu1's count 4 steps after its poll (own count, cpu0's, the word).
    assert [t - 4 for t, c, kind, obj, _ in result.trace.events if c == cpu0 and kind == LOAD and obj == cnt1] == checks
    changed = min(t for t, _, kind, obj, old in result.trace.events if obj == cnt1 and kind == FETCH_ADD and old == 1)
    assert checks[0] < changed == 2_500_010 < checks[1]
    assert of(result, "cpu0.task", 1) == [("cpu0.task", 1, Status.EDEADLK, 4, edeadlk)]
    assert [a[2] for a in of(result, "cpu1.task")] == [Status.OK, Status.OK]


def test_a_change_under_a_handler_is_checked_when_the_handler_returns():
    # The change comes from a handler on the waiter's own CPU, which then runs past a point of
    # the grid: cpu0's task (L1's pending waiter) sleeps after its first ABBA check (t =
    # 1,000,018); its hardirq grabs a table entry for L2 at t = 1,000,026 and works 1.5 ms. The
    # grid point 2,000,019 came after the change, while the task could not run: back from the
    # handler, the task is more than 1 ms past its last check and checks at its first poll, as
    # the kernel's would. (Counting from when the task ran again would check 1 ms late.)
    program = HANDLER_CHANGES_THE_TABLE

    bare = run(RqSpinlock, program, FireWhileItSleeps(), oracles=[])
    result = run(RqSpinlock, program, FireWhileItSleeps())
    assert result.violation is None, str(result.violation)
    assert result.trace.hash() == bare.trace.hash()
    cpu0, cnt1 = result.trace.contexts.index("cpu0.task"), result.trace.cells.index("cpu1.held.cnt")
    checks = [t - 4 for t, c, kind, obj, _ in result.trace.events if c == cpu0 and kind == LOAD and obj == cnt1]
    [back] = [t for t, _, kind, _, _ in result.trace.events if kind == IRQ_EXIT]
    changed = min(t for t, c, kind, obj, _ in result.trace.events
                  if result.trace.contexts[c] == "cpu0.hardirq#0" and kind == FETCH_ADD)
    assert changed == 1_000_026 and back == 2_500_034
    assert checks == [1_000_018, 2_500_036]  # two steps on: the task wakes, then polls


# -- a waiter on its way out is no longer the one the others wait behind -------------------------------------
#: cpu1 becomes the pending waiter and cpu2 the queue head behind cpu0's hold; cpu1 times out after
#: 250 ms, clears its pending bit (S6), and its softirq lands once it also cleared its table slot
#: (before its count goes down), so the softirq's AA check finds nothing and it queues behind
#: cpu2. Nobody waits for cpu1 any more: cpu0 lets go (and comes back for L0), cpu2 and then the
#: softirq get L0, and cpu1's task returns. (Found by a campaign: the ground truth kept cpu1 as
#: the pending waiter until it returned, so the softirq waited behind the task it had
#: interrupted: a false AA. Mark.LEFT at the S6 store says it no longer is.)
LEAVING_PENDING = Program.from_text(
    """
    cpu0.task: lock L0; work 250100002ns; unlock L0; lock L0; unlock L0
    cpu1.task: lock L0; unlock L0
    cpu1.softirq#0: lock L0; unlock L0
    cpu2.task: lock L0; work 99992ns; unlock L0
    """
)


def _slot_cleared(engine: lockfuzz.Engine) -> bool:
    """cpu1's task, on its way out after 250 ms, has just cleared its held-table slot."""
    if engine.machine.now < 250 * MS or not engine.events:
        return False
    _, c, kind, obj, value = engine.events[-1]
    return (
        kind == STORE and engine.contexts[c].name == "cpu1.task"
        and engine.machine.cells[obj].name == "cpu1.held[0]" and value == 0
    )  # fmt: skip


def test_a_pending_waiter_on_its_way_out_keeps_nobody_waiting():
    result = run(RqSpinlock, LEAVING_PENDING, ScriptedRules((_slot_cleared, "cpu1.softirq")))
    assert result.violation is None, result.violation
    names = result.trace.contexts
    assert "cpu1.softirq#0" in names  # it fired in the window
    statuses = {names[c]: Status(v) for _, c, kind, _, v in result.trace.events if kind == ACQUIRED}
    assert statuses == {
        "cpu0.task": Status.OK, "cpu1.task": Status.ETIMEDOUT, "cpu1.softirq#0": Status.OK, "cpu2.task": Status.OK,
        "cpu0.final": Status.OK,
    }  # fmt: skip


def test_without_the_leaving_mark_that_run_is_the_false_alarm_it_was(monkeypatch: pytest.MonkeyPatch):
    # The same run judged as before Mark.LEFT: the softirq waits "behind" the task it interrupted.
    original = lockfuzz.Context.mark

    def no_left(self, what, lock):  # type: ignore[no-untyped-def]
        if what != Mark.LEFT:
            original(self, what, lock)

    monkeypatch.setattr(lockfuzz.Context, "mark", no_left)
    result = run(RqSpinlock, LEAVING_PENDING, ScriptedRules((_slot_cleared, "cpu1.softirq")))
    assert result.violation is not None
    assert result.violation.signature == ("edeadlk-complete", "missed-AA")
    assert set(result.violation.contexts) == {"cpu1.task", "cpu1.softirq#0"}


def test_a_waiter_that_gives_up_leaves_its_place_before_it_returns():
    # The pending waiter leaves at its S6 store, the queue head once it has reset the tail (T);
    # both still have their table entries to release, so both marks come before they return.
    result = run(RqSpinlock, behind(1000 * MS, 2), [])
    assert result.violation is None, result.violation
    names, events = result.trace.contexts, result.trace.events
    marks: dict[str, list[str]] = {}
    for i, (_, c, kind, _, _) in enumerate(events):
        if kind in (MARK, ACQUIRED) and names[c] in ("cpu1.task", "cpu2.task"):
            marks.setdefault(names[c], []).append(result.trace.text(i))
    assert marks == {
        "cpu1.task": ["L0: pending waiter", "L0: timeout armed", "L0: timeout expired", "L0: left its place",
                      "acquire L0 = ETIMEDOUT"],
        "cpu2.task": ["L0: queue head", "L0: timeout armed", "L0: timeout expired", "L0: left its place",
                      "acquire L0 = ETIMEDOUT"],
    }
    left = [t for t, c, kind, _, v in events if kind == MARK and v == Mark.LEFT]
    gone = [t for t, c, kind, _, v in events if kind == ACQUIRED and v == Status.ETIMEDOUT]
    assert all(a < b for a, b in zip(left, gone))
