"""The lock zoo: TTAS, MCS, qspinlock, the BPF arena spin lock and ww_mutex (Wait-Die, Wound-Wait).

Every correct target: an uncontended run is clean and leaves ``check()`` empty, and contended
3-CPU, 2-lock programs (nested acquisitions in one global order; interrupt handlers only take
locks that no lower level of their CPU takes, and that are later in the order than anything it
holds, so no program here can deadlock on a lock that detects nothing) run clean under many
seeded schedules. The arena lock is known broken: short budgets make waiters give up, and
lockfuzz must find the lock it leaves behind. ww_mutex returns EDEADLK by age, without a
deadlock, by design: it declares the ``age-backoff`` exception, and its runs use the default
oracles like every other target's.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

import lockfuzz
from lockfuzz import (
    Capabilities, CpuProgram, Engine, Fairness, Handler, Level, Lock, OnError, Program, Settings, Status, Unlock,
    Work, run,
)  # fmt: skip
from lockfuzz._engine._events import ACQUIRE, ACQUIRED, RELEASE
from lockfuzz._engine._machine import FETCH_ADD
from lockfuzz.targets.arena_spinlock import ArenaSpinlock
from lockfuzz.targets.mcs import McsLock
from lockfuzz.targets.qspinlock import QSpinlock
from lockfuzz.targets.ttas import TtasLock
from lockfuzz.targets.ww_mutex import WaitDieMutex, WoundWaitMutex

SEEDS = 90  # per program and target; sources rotate with the seed


# -- decision sources ------------------------------------------------------------------------------
class RandomWalk:
    """A uniform choice at every decision point."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choose(self, n: int, engine: Engine) -> int:
        return self.rng.randrange(n)


class Sparse:
    """Mostly keep running; now and then a random choice (so handlers also fire late in a run)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choose(self, n: int, engine: Engine) -> int:
        return self.rng.randrange(n) if self.rng.random() < 0.1 else 0


class IrqWhileWaiting:
    """Fire a CPU's handler mostly while a context of that CPU is inside an acquisition (so
    handlers nest into slow paths), and switch contexts now and then."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choose(self, n: int, engine: Engine) -> int:
        busy = {a.ctx.cpu for a in engine.truth.attempts.values()}
        options = engine.options()
        fire = [i for i, o in enumerate(options) if o[0] == "fire" and o[1] in busy]
        if fire and self.rng.random() < 0.3:
            return self.rng.choice(fire)
        runs = [i for i, o in enumerate(options) if o[0] != "fire"]
        return self.rng.choice(runs) if self.rng.random() < 0.3 else 0


SOURCES = (RandomWalk, Sparse, IrqWhileWaiting)


def source(seed: int):  # type: ignore[no-untyped-def]
    return SOURCES[seed % len(SOURCES)](seed)


# -- programs --------------------------------------------------------------------------------------
def nested(budget: int = 1_000_000_000) -> Program:
    """Nested L0 -> L1 on two CPUs; a hardirq on CPU0 takes L1, which CPU0's task never takes."""
    def L(i: int) -> Lock:  # noqa: N802 - reads like the Lock it makes
        return Lock(i, budget)

    return Program(
        cpus=(
            CpuProgram(
                task=(L(0), Work(20), Unlock(0), L(0), Unlock(0)),
                handlers=(Handler(Level.HARDIRQ, (L(1), Work(10), Unlock(1))),),
            ),
            CpuProgram(task=(L(0), L(1), Work(20), Unlock(1), Unlock(0), L(1), Unlock(1))),
            CpuProgram(task=(L(1), Work(5), Unlock(1), L(0), L(1), Unlock(1), Unlock(0))),
        ),
        n_locks=2,
    )


def irqs(budget: int = 1_000_000_000) -> Program:
    """Handlers at two levels: CPU2's softirq takes L0 and its hardirq L1 (its task takes none)."""
    def L(i: int) -> Lock:  # noqa: N802 - reads like the Lock it makes
        return Lock(i, budget)

    return Program(
        cpus=(
            CpuProgram(
                task=(L(0), Work(20), Unlock(0), L(0), Unlock(0)),
                handlers=(Handler(Level.SOFTIRQ, (L(1), Work(10), Unlock(1))),),
            ),
            CpuProgram(task=(L(0), L(1), Work(20), Unlock(1), Unlock(0))),
            CpuProgram(
                task=(Work(10),),
                handlers=(
                    Handler(Level.SOFTIRQ, (L(0), Work(5), Unlock(0))),
                    Handler(Level.HARDIRQ, (L(1), Unlock(1))),
                ),
            ),
        ),
        n_locks=2,
    )


def hammer(budget: int = 1_000_000_000) -> Program:
    """Short critical sections, three times over on every CPU: queues form and drain often."""
    def L(i: int) -> Lock:  # noqa: N802 - reads like the Lock it makes
        return Lock(i, budget)

    return Program(
        cpus=(
            CpuProgram(
                task=(L(0), Work(5), Unlock(0)) * 3,
                handlers=(Handler(Level.SOFTIRQ, (L(1), Work(10), Unlock(1))),),
            ),
            CpuProgram(task=(L(0), L(1), Work(3), Unlock(1), Unlock(0)) * 3),
            CpuProgram(task=(L(1), Unlock(1), L(0), Unlock(0)) * 3),
        ),
        n_locks=2,
    )


PROGRAMS = {"nested": nested, "irqs": irqs, "hammer": hammer}
UNCONTENDED = Program(
    cpus=(CpuProgram(task=(Lock(0), Lock(1), Work(10), Unlock(1), Unlock(0), Lock(1), Unlock(1))),), n_locks=2
)


# -- ww_mutex ---------------------------------------------------------------------------------
WW = (WaitDieMutex, WoundWaitMutex)


def oracles_for(cls):  # type: ignore[no-untyped-def]
    """The oracles a run of ``cls`` is judged by: the defaults, for every target."""
    return None


CORRECT = (TtasLock, McsLock, QSpinlock, WaitDieMutex, WoundWaitMutex)


# -- every correct target --------------------------------------------------------------------------
@pytest.mark.parametrize("cls", CORRECT + (ArenaSpinlock,), ids=lambda c: c.__name__)
def test_uncontended_run_is_clean(cls):  # type: ignore[no-untyped-def]
    engine = Engine(cls, UNCONTENDED, RandomWalk(0), oracles=oracles_for(cls))
    result = engine.run()
    assert result.violation is None, result.violation
    statuses = [e[4] for e in result.trace.events if e[2] == ACQUIRED]
    assert statuses and all(s == Status.OK for s in statuses)
    assert engine.target.check() == []


@pytest.mark.parametrize("program", sorted(PROGRAMS))
@pytest.mark.parametrize("cls", CORRECT, ids=lambda c: c.__name__)
def test_contended_runs_find_nothing(cls, program):  # type: ignore[no-untyped-def]
    prog = PROGRAMS[program]()
    for seed in range(SEEDS):
        result = run(cls, prog, source(seed), oracles=oracles_for(cls))
        assert result.violation is None, f"seed {seed}: {result.violation}\ndecisions {result.decisions}"


def test_targets_are_bundled():
    for name, cls in (
        ("ttas", TtasLock), ("mcs", McsLock), ("qspinlock", QSpinlock), ("arena_spinlock", ArenaSpinlock),
        ("ww_wait_die", WaitDieMutex), ("ww_wound_wait", WoundWaitMutex),
    ):  # fmt: skip
        assert lockfuzz.resolve_target(name) is cls


# -- MCS: the FIFO claim is exact --------------------------------------------------------------------
class McsClaimsShortDoorway(McsLock):
    capabilities = Capabilities(fairness=Fairness(overtakes=0, doorway_steps=2))


def test_mcs_doorway_is_the_tail_xchg_and_no_shorter():
    # With a doorway of 3 steps (two node stores, then the xchg) the contended runs above are
    # FIFO; claim 2 and a waiter that has not swapped the tail yet counts as queued: overtaken.
    found = set()
    for seed in range(SEEDS):
        result = run(McsClaimsShortDoorway, hammer(), source(seed))
        if result.violation is not None:
            found.add(result.violation.signature)
    assert found == {("fairness", "overtaken")}


# -- qspinlock: nested queue nodes and the out-of-nodes trylock spin ---------------------------------
def _fetch_adds(result, cell_name):  # type: ignore[no-untyped-def]
    """The values a cell's fetch_add steps returned, over one run."""
    index = result.trace.cells.index(cell_name)
    return [e[4] for e in result.trace.events if e[2] == FETCH_ADD and e[3] == index]


def test_qspinlock_handlers_queue_on_their_own_node():
    # A handler that queues while its CPU's task is queued takes node 1 (count was 1).
    nested_queue = 0
    for seed in range(3 * SEEDS):
        result = run(QSpinlock, hammer(), IrqWhileWaiting(seed))
        assert result.violation is None, f"seed {seed}: {result.violation}"
        nested_queue += any(1 in _fetch_adds(result, f"cpu{c}.node[0].count") for c in range(3))
    assert nested_queue > 0


def test_qspinlock_out_of_nodes_spins_on_trylock():
    # With one node per CPU, a handler that needs the queue while its task is queued has none
    # left: the kernel's fallback spins on trylock, unqueued, and stays correct.
    fallback = 0
    for name in sorted(PROGRAMS):
        for seed in range(SEEDS):
            result = run(QSpinlock, PROGRAMS[name](), IrqWhileWaiting(seed), params={"max_nodes": 1})
            assert result.violation is None, f"{name} seed {seed}: {result.violation}"
            fallback += any(1 in _fetch_adds(result, f"cpu{c}.node[0].count") for c in range(3))
    assert fallback > 0


# -- the arena lock: known broken -------------------------------------------------------------------
def test_arena_lock_is_correct_while_nobody_gives_up():
    # Budgets far beyond any wait here: the arena lock is qspinlock, and runs clean.
    for name in sorted(PROGRAMS):
        for seed in range(SEEDS // 3):
            result = run(ArenaSpinlock, PROGRAMS[name](), source(seed))
            assert result.violation is None, f"{name} seed {seed}: {result.violation}"


def test_arena_pending_waiter_that_gives_up_leaves_the_pending_bit():
    # CPU0 holds L0 for 1 us; CPU1's pending waiter gives up after 100 ns and returns
    # ETIMEDOUT without clearing pending (release_err). Once both are done nobody holds L0,
    # yet a fresh acquisition queues behind the stale pending bit and times out.
    program = Program(
        cpus=(CpuProgram(task=(Lock(0), Work(1_000), Unlock(0))), CpuProgram(task=(Lock(0, 100), Unlock(0)))), n_locks=1
    )
    engine = Engine(ArenaSpinlock, program, lockfuzz.Schedule([]), Settings(final_check=False))
    result = engine.run()
    assert result.violation is None  # the timeout itself is deserved
    assert [e[4] for e in result.trace.events if e[2] == ACQUIRED] == [Status.OK, Status.ETIMEDOUT]
    assert engine.target.words[0].value == 0x100  # PENDING, with no holder and no waiter
    result = run(ArenaSpinlock, program, [])
    assert result.violation is not None and result.violation.signature == ("final-state", "dirty-lock")


def test_arena_lock_defect_is_found_by_random_search():
    # Short budgets (comparable to the critical sections) under contention: waiters give up
    # inside the queue and leave it linked, the pending bit set, or the lock held by a new owner
    # that gave up on its successor. Every such run ends with a lock nobody can take.
    found = {}
    for name in sorted(PROGRAMS):
        for seed in range(100):
            result = run(ArenaSpinlock, PROGRAMS[name](budget=30), source(seed))
            if result.violation is not None:
                found.setdefault(result.violation.signature, (name, seed))
    assert ("final-state", "dirty-lock") in found, found
    # A waiter that queues behind a node its owner left sleeps on a free lock until its budget
    # ends: the same defect, seen earlier as a lost wake-up (etimedout/undeserved).
    assert {oracle for oracle, _ in found} <= {"final-state", "mutual-exclusion", "etimedout"}, found


def test_arena_queue_left_linked_by_a_timed_out_waiter():
    # A waiter that gives up inside the queue leaves the tail naming a node that nobody will
    # hand the lock to: the word keeps a tail after every program ended, and check() says so.
    tails = 0
    for seed in range(200):
        engine = Engine(ArenaSpinlock, hammer(budget=30), source(seed), Settings(final_check=False))
        engine.run()
        if any(w.value >> 16 for w in engine.target.words):
            tails += 1
            assert any("expected 0" in p for p in engine.target.check())
    assert tails > 0


class StaleHandOff:
    """Fire CPU0's softirq once CPU0's task has left its slow path and L1 has a queue; switch
    contexts at every step until t=150 ns, then choose at random."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choose(self, n: int, engine: Engine) -> int:
        options = engine.options()
        target = engine.target
        if target.words[1].value >> 16 and target.count[0].value == 0 and engine.machine.now > 70:
            for i, o in enumerate(options):
                if o[0] == "fire" and o[1] == 0:
                    return i
        runs = [i for i, o in enumerate(options) if o[0] == "run"]
        if engine.machine.now > 150:
            return self.rng.choice(runs)
        return 1 if len(runs) >= 2 else 0


def test_arena_node_left_linked_is_handed_the_wrong_lock():
    # L0: cpu1 holds it, cpu2 is the pending waiter, cpu3 heads the queue and cpu0's task queues
    # behind cpu3, then gives up (its node stays linked as cpu3's successor). L1: cpu4 holds it,
    # cpu6 is pending, cpu5 heads the queue; cpu0's softirq queues behind cpu5 on the same
    # per-CPU node 0. When cpu3 gets L0 it hands the head role to that node: the softirq wakes
    # as a second head of L1, and both heads claim L1 once it is free.
    long = 10**9
    program = Program(
        cpus=(
            CpuProgram(
                task=(Work(40), Lock(0, 20), Unlock(0)),
                handlers=(Handler(Level.SOFTIRQ, (Lock(1, long), Unlock(1))),),
            ),
            CpuProgram(task=(Lock(0, long), Work(100), Unlock(0))),
            CpuProgram(task=(Work(1), Lock(0, long), Unlock(0))),
            CpuProgram(task=(Work(2), Lock(0, long), Unlock(0))),
            CpuProgram(task=(Work(50), Lock(1, long), Work(100), Unlock(1))),
            CpuProgram(task=(Work(51), Lock(1, long), Unlock(1))),
            CpuProgram(task=(Work(52), Lock(1, long), Unlock(1))),
        ),
        n_locks=2,
        on_error=OnError(retries=1, backoff_ns=200),  # the back-off is when the softirq fires
    )
    found = set()
    for seed in range(200):
        result = run(ArenaSpinlock, program, StaleHandOff(seed), settings=Settings(final_check=False))
        if result.violation is not None:
            found.add(result.violation.signature)
    assert ("mutual-exclusion", "two-holders") in found


# -- ww_mutex ------------------------------------------------------------------------------------------
def abba() -> Program:
    """Two transactions in opposite orders and a third in order; retried after a back-off."""
    return Program(
        cpus=(
            CpuProgram(task=(Lock(0), Work(10), Lock(1), Work(5), Unlock(1), Unlock(0))),
            CpuProgram(task=(Lock(1), Work(10), Lock(0), Work(5), Unlock(0), Unlock(1))),
            CpuProgram(task=(Lock(0), Lock(1), Unlock(1), Unlock(0), Lock(1), Unlock(1))),
        ),
        n_locks=2,
        on_error=OnError(retries=20, backoff_ns=20),
    )


def ring() -> Program:
    """A three-party cycle L0 -> L1 -> L2 -> L0, which no two-party check sees."""
    return replace(
        abba(),
        cpus=(
            CpuProgram(task=(Lock(0), Work(10), Lock(1), Unlock(1), Unlock(0))),
            CpuProgram(task=(Lock(1), Work(10), Lock(2), Unlock(2), Unlock(1))),
            CpuProgram(task=(Lock(2), Work(10), Lock(0), Unlock(0), Unlock(2))),
        ),
        n_locks=3,
    )


@pytest.mark.parametrize("make", [abba, ring])
@pytest.mark.parametrize("cls", WW, ids=lambda c: c.__name__)
def test_ww_breaks_every_cycle_and_the_oldest_never_backs_off(cls, make):  # type: ignore[no-untyped-def]
    backoffs = 0
    for seed in range(2 * SEEDS):
        engine = Engine(cls, make(), source(seed), oracles=None)
        result = engine.run()  # a cycle nobody broke would end in a hang, raised as ProgramError
        assert result.violation is None, f"seed {seed}: {result.violation}\ndecisions {result.decisions}"
        txns = engine.target.txns
        oldest = min(txns, key=lambda i: txns[i].stamp)
        died = [e[1] for e in result.trace.events if e[2] == ACQUIRED and e[4] == Status.EDEADLK]
        assert oldest not in died, f"seed {seed}: the oldest transaction backed off"
        backoffs += len(died)
    assert backoffs > 0  # the programs do deadlock, and the deadlocks are broken


@pytest.mark.parametrize("cls", WW, ids=lambda c: c.__name__)
def test_ww_abba_the_younger_backs_off(cls):  # type: ignore[no-untyped-def]
    # Fair default schedule: both take their first lock, then both ask for the other's. The
    # younger one (CPU1, stamp 2) backs off, at once; the older one gets both and never fails.
    program = replace(abba(), cpus=abba().cpus[:2])
    result = run(cls, program, [], oracles=None)
    assert result.violation is None, result.violation
    got = [(result.trace.contexts[e[1]], e[3], Status(e[4])) for e in result.trace.events if e[2] == ACQUIRED]
    assert ("cpu1.task", 0, Status.EDEADLK) in got
    assert not [g for g in got if g[0] == "cpu0.task" and g[2] != Status.OK]
    asked = min(t for t, c, kind, obj, v in result.trace.events if kind == ACQUIRE and obj == 0 and c == 1)
    died = min(t for t, c, kind, obj, v in result.trace.events if kind == ACQUIRED and v == Status.EDEADLK)
    assert 0 <= died - asked < 20  # a few steps of 1 ns


@pytest.mark.parametrize("cls", WW)
def test_ww_relock_in_the_same_context_is_ealready_and_releases_once(cls):  # type: ignore[no-untyped-def]
    program = Program(cpus=(CpuProgram(task=(Lock(0), Lock(0), Work(5), Unlock(0), Unlock(0))),), n_locks=1)
    result = run(cls, program)
    assert result.violation is None
    statuses = [Status(e[4]) for e in result.trace.events if e[2] == ACQUIRED]
    assert statuses[:2] == [Status.OK, Status.EALREADY]
    releases = [e for e in result.trace.events if e[2] == RELEASE and result.trace.contexts[e[1]] == "cpu0.task"]
    assert len(releases) == 1  # the Unlock matching the EALREADY releases nothing


def test_wound_wait_wounds_a_younger_owner_that_takes_the_lock_after_an_older_waiter_asked():
    # Found by bench/false_alarms.py (swarm, 5 CPUs): cpu1 (older, holding L1) wounded cpu2 for
    # L0, then published its wait; meanwhile cpu2 released L0, unwound (it held nothing) and took
    # L0 again, then waited for L1: an ABBA nobody broke. The kernel wounds a new owner that finds
    # an older waiter (__ww_mutex_check_waiters), and adds a waiter and wounds the owner under one
    # lock; the model now publishes the wait first and checks the waiters on taking a lock.
    program = Program.from_json({
        "n_locks": 2, "on_error": {"backoff_ns": 0, "retries": 0},
        "cpus": [
            {"handlers": [], "task": [["lock", 0, 10**9], ["work", 0], ["unlock", 0]]},
            {"handlers": [], "task": [["lock", 1, 10**9], ["work", 0], ["lock", 0, 10**9], ["work", 0], ["unlock", 0],
                                      ["unlock", 1]]},
            {"handlers": [], "task": [["lock", 0, 10**9], ["work", 0], ["unlock", 0], ["lock", 0, 10**9], ["work", 0],
                                      ["lock", 1, 10**9], ["work", 0], ["unlock", 1], ["unlock", 0]]},
            {"handlers": [], "task": [["lock", 0, 10**9], ["work", 0], ["unlock", 0]]},
        ],
    })  # fmt: skip
    schedule = [0] * 9 + [2, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 1] + [0] * 7
    for source in [schedule] + [RandomWalk(seed) for seed in range(200)]:
        result = run(WoundWaitMutex, program, source)
        assert result.violation is None, str(result.violation)
