"""The lost-wake-up mutants really leave a waiter asleep on a free lock; their bases never do.

Read from the events of each run alone, with no oracle installed (``oracles=[]``), so this holds
whatever the etimedout oracle decides: a waiter that returns ETIMEDOUT slept on a free lock when,
from the moment its lock last became free (the last RELEASED of it, or the waiter's own ACQUIRE
if later) until the waiter's next step, nobody held the lock, no release of it was under way and
no other acquisition of it was in progress or began, and that stretch is long. The mutants
(``lost_wakeup``, ``trio_lost_wakeup``) show it on a pinned schedule (``SCHEDULES``) and under
some of the seeded random walks of ``test_mutants_found``; their bases, on the same schedules,
never.
"""

from __future__ import annotations

import random
from typing import NamedTuple

import pytest
from lockfuzz.targets.mutants import MUTANTS
from lockfuzz.targets.mutants.scenarios import BASES, SCENARIOS

import lockfuzz
from lockfuzz import CpuProgram, Lock, Program, Settings, Status, Unlock, Work
from lockfuzz._engine._events import ACQUIRE, ACQUIRED, RELEASE, RELEASED
from lockfuzz._engine._machine import CMPXCHG, START

NAMES = ("lost_wakeup", "trio_lost_wakeup")
#: A schedule that shows each: the fair default for the cell lock (no preemption needed), and for
#: the trio lock the holder's release run inside the waiter's checkpoint before it queues.
SCHEDULES = {"lost_wakeup": [], "trio_lost_wakeup": [1, 1, 1, 0]}
#: What the base returns to each waiter on that schedule: the cell base's 1 ms waiter times out
#: (deservedly: the lock was held or on its way), its 5 ms waiter gets the lock; the trio base
#: gives the lock to both.
BASE_STATUSES = {
    "lost_wakeup": {"cpu0.task": Status.OK, "cpu1.task": Status.ETIMEDOUT, "cpu2.task": Status.OK},
    "trio_lost_wakeup": {"cpu0.task": Status.OK, "cpu1.task": Status.OK},
}
SEEDS = range(300)
#: A mutant's victim sleeps on the free lock for at least this long (its scenario gives it 4 ms or more)...
SLEPT_NS = 1_000_000
#: ... and a base's waiter never longer than this (the steps of a wake-up are a few ns).
BASE_MAX_NS = 1_000


class Victim(NamedTuple):
    ctx: str
    lock: int
    start: int  # the attempt's ACQUIRE
    free_from: int  # when it began its longest sleep on the lock free for it
    woke: int  # its next step after free_from
    returned: int  # its ETIMEDOUT

    @property
    def slept_ns(self) -> int:
        return self.woke - self.free_from


class RandomWalk:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choose(self, n, engine):  # type: ignore[no-untyped-def]
        return self.rng.randrange(n)


def asleep_on_free_lock(trace: lockfuzz.Trace) -> list[Victim]:
    """Every ETIMEDOUT whose waiter slept, to the end of its wait, on a lock free for it."""
    events = trace.events
    victims = []
    for i, (t, ctx, kind, lock, value) in enumerate(events):
        if kind != ACQUIRED or value != Status.ETIMEDOUT:
            continue
        attempts: dict[int, int] = {}  # open attempts on the lock: context -> ACQUIRE time
        holder = releasing = None
        free_since = 0
        for t2, c2, k2, o2, v2 in events[:i]:
            if o2 != lock or k2 not in (ACQUIRE, ACQUIRED, RELEASE, RELEASED):
                continue
            if k2 == ACQUIRE:
                attempts[c2] = t2
            elif k2 == ACQUIRED:
                del attempts[c2]
                if v2 == Status.OK:
                    holder = c2
            elif k2 == RELEASE:
                holder, releasing = None, c2
            else:
                releasing, free_since = None, t2
        if holder is not None or releasing is not None or set(attempts) != {ctx}:
            continue  # held, being released, or someone else was taking it when it returned
        free_from = max(free_since, attempts[ctx])
        # Its longest sleep since then: the longest gap between its own steps (a waiter may
        # still take a step or two after the lock became free, then sleep: it queued too late).
        times = [free_from] + [e[0] for e in events[: i + 1] if e[1] == ctx and e[0] > free_from]
        slept, woke = max((b - a, b) for a, b in zip(times, times[1:]))
        victims.append(Victim(trace.contexts[ctx], lock, attempts[ctx], woke - slept, woke, t))
    return victims


def run(target: str, name: str, schedule):  # type: ignore[no-untyped-def]
    # Without cancellation decisions (trio targets): SCHEDULES were written for the decision
    # points a run has without them, and a cancelled waiter is not one that slept on a free lock.
    return lockfuzz.run(target, SCENARIOS[name], schedule, settings=Settings(cancels=False), oracles=[])


def budget_of(name: str, ctx: str) -> int:
    cpu = int(ctx.removeprefix("cpu").split(".")[0])
    return next(op.budget_ns for op in SCENARIOS[name].cpus[cpu].task if isinstance(op, Lock))


@pytest.mark.parametrize("name", NAMES)
def test_mutant_leaves_a_waiter_asleep_on_a_free_lock(name):
    result = run(MUTANTS[name], name, SCHEDULES[name])
    victims = [v for v in asleep_on_free_lock(result.trace) if v.slept_ns >= SLEPT_NS]
    assert victims, f"{name}: no waiter slept on the free lock ({asleep_on_free_lock(result.trace)})"
    for v in victims:
        # It slept until its budget ran out, then returned at once: the whole budget was spent,
        # most of it with the lock free and nobody else after it.
        assert v.returned - v.start >= budget_of(name, v.ctx)
        assert v.returned - v.woke < 100
        assert v.slept_ns > budget_of(name, v.ctx) // 2


@pytest.mark.parametrize("name", NAMES)
def test_random_walks_find_it_and_the_base_never_does_it(name):
    found = []
    for seed in SEEDS:
        victims = asleep_on_free_lock(run(MUTANTS[name], name, RandomWalk(seed)).trace)
        if any(v.slept_ns >= SLEPT_NS for v in victims):
            found.append(seed)
        base = run(BASES[name], name, RandomWalk(seed))
        slept = [v for v in asleep_on_free_lock(base.trace) if v.slept_ns > BASE_MAX_NS]
        assert not slept, f"{BASES[name]} (seed {seed}): {slept}"
    assert len(found) >= 3, f"{name}: only seeds {found} of {len(SEEDS)} lose a wake-up"


@pytest.mark.parametrize("name", NAMES)
def test_the_base_gives_every_waiter_the_free_lock(name):
    """On the schedule that shows the mutant, the base hands the freed lock on (BASE_STATUSES)."""
    result = run(BASES[name], name, SCHEDULES[name])
    statuses = {result.trace.contexts[c]: v for _, c, k, _, v in result.trace.events if k == ACQUIRED}
    assert {c: statuses[c] for c in BASE_STATUSES[name]} == BASE_STATUSES[name]
    assert all(v.slept_ns <= BASE_MAX_NS for v in asleep_on_free_lock(result.trace))


@pytest.mark.parametrize("target", [MUTANTS["lost_wakeup"], BASES["lost_wakeup"]])
def test_a_spent_budget_gives_up_without_registering(target):
    """A waiter whose budget is already spent when it finds the lock taken returns at once: it
    never registers, so it has no wake-up to lose."""
    holder, waiter = (Lock(0), Work(10), Unlock(0)), (Lock(0, 0), Unlock(0))
    program = Program(cpus=(CpuProgram(task=holder), CpuProgram(task=waiter)), n_locks=1)
    result = lockfuzz.run(target, program, [], settings=Settings())
    assert result.violation is None
    mine = [e[2:] for e in result.trace.events if e[1] == result.trace.contexts.index("cpu1.task")]
    returned = next(i for i, (kind, _, _) in enumerate(mine) if kind == ACQUIRED)
    assert mine[returned] == (ACQUIRED, 0, Status.ETIMEDOUT)
    assert [kind for kind, _, _ in mine[:returned]] == [START, ACQUIRE, CMPXCHG]  # one failed test, no sleep
