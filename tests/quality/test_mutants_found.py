"""Every mutant is found, by the oracle it is meant for, and its correct base is not blamed.

For each mutant (``lockfuzz.targets.mutants.MUTANTS``): a seeded random walk over its small
program (``scenarios.SCENARIOS``) finds a violation within ``MAX_RUNS`` runs; the first violation
found is from the oracle ``EXPECTED`` names; and the correct target it was made from
(``scenarios.BASES``) runs the same program under the same seeds without any violation, so the
finding is the mutant's bug and not a false alarm of the oracle.
"""

from __future__ import annotations

import inspect
import random

import pytest
from lockfuzz.targets.mutants import EXPECTED, MUTANTS
from lockfuzz.targets.mutants.scenarios import BASES, SCENARIOS

import lockfuzz
from lockfuzz import Settings, resolve_target
from lockfuzz._engine._events import CANCEL
from lockfuzz._oracles import ORACLE_NAMES

MAX_RUNS = 500
SETTINGS = Settings()

#: Mutants whose walks run without cancellation decisions. A uniform walk offers a cancellation at
#: every decision point for every context waiting in trio, so in a scenario where a writer waits
#: through a dozen decisions almost every walk cancels it before the bug shows; campaigns take a
#: cancellation at 1/8 of a uniform share (``CANCEL_KEEP``) and find these by default
#: (tests/quality/test_search_quality.py). Their bugs need no cancellation.
WALK_SETTINGS = {"trio_rwlock_starves_writers": Settings(cancels=False)}

#: Mutants whose bug needs at least one preemption (or fired interrupt): with no preemption at
#: all (every decision 0) their scenario runs clean. The others are timeout and AA bugs that a
#: long critical section or a relock shows on its own.
NEEDS_PREEMPTION = {
    "nonatomic_tas", "torn_ticket", "unfair_ticket", "lost_handoff", "bystander_edeadlk", "trio_lost_wakeup",
    "trio_forgotten_handoff", "trio_double_count",  # a cancellation decision is a nonzero decision
}

ORACLES = set(ORACLE_NAMES) | {"hang", "livelock", "target-fault"}


class RandomWalk:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choose(self, n, engine):  # type: ignore[no-untyped-def]
        return self.rng.randrange(n)


def first_violation(target, program, settings=SETTINGS):  # type: ignore[no-untyped-def]
    """(seed, result) of the first seeded random walk that finds a violation, or None."""
    for seed in range(MAX_RUNS):
        result = lockfuzz.run(target, program, RandomWalk(seed), settings=settings)
        if result.violation is not None:
            return seed, result
    return None


def test_the_tables_agree():
    assert len(MUTANTS) >= 8
    assert set(MUTANTS) == set(EXPECTED) == set(SCENARIOS) == set(BASES)
    assert set(EXPECTED.values()) <= ORACLES
    # The list: mutual exclusion, a hang, EDEADLK attribution both ways, a bystander,
    # bounded waiting, a dirty final state, fairness and ETIMEDOUT attribution.
    assert {
        "mutual-exclusion", "hang", "edeadlk-sound", "edeadlk-complete", "innocent-bystander",
        "bounded-waiting", "final-state", "fairness", "etimedout",
    } <= set(EXPECTED.values())  # fmt: skip
    assert NEEDS_PREEMPTION <= set(MUTANTS)
    assert set(WALK_SETTINGS) <= set(MUTANTS)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_a_documented_variant_of_its_base(name):
    mutant, base = resolve_target(MUTANTS[name]), resolve_target(BASES[name])
    assert mutant is not base and issubclass(mutant, base)
    module_doc = inspect.getmodule(mutant).__doc__ or ""
    # The mutant's own docstring, or its module's (one mutant per module), says which oracle.
    assert f"Caught by: **{EXPECTED[name]}**" in (mutant.__doc__ or "") + module_doc
    assert "Broken" in module_doc and mutant.__doc__
    assert lockfuzz.resolve_target(name) is mutant  # found by name, as the CLI takes it


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_random_walk_finds_the_mutant_and_spares_its_base(name):
    program = SCENARIOS[name]
    assert 2 <= program.n_cpus <= 3 and program.n_locks <= 2 and program.n_handlers <= 1
    settings = WALK_SETTINGS.get(name, SETTINGS)
    found = first_violation(MUTANTS[name], program, settings)
    assert found is not None, f"{name}: no violation in {MAX_RUNS} random walks"
    seed, result = found
    assert result.violation.oracle == EXPECTED[name], f"{name} (seed {seed}): {result.violation}"
    if name in NEEDS_PREEMPTION:
        assert result.preemptions >= 1
    # Replaying the recorded decisions gives the same finding.
    again = lockfuzz.run(MUTANTS[name], program, result.decisions, settings=settings)
    assert again.violation is not None and again.violation.signature == result.violation.signature
    # The correct target, same program, same seeds: nothing to report.
    for s in range(seed + 1):
        base = lockfuzz.run(BASES[name], program, RandomWalk(s), settings=settings)
        assert base.violation is None, f"{BASES[name]} (seed {s}, decisions {base.decisions}): {base.violation}"


@pytest.mark.parametrize("name", sorted(NEEDS_PREEMPTION))
def test_without_preemption_the_bug_stays_hidden(name):
    result = lockfuzz.run(MUTANTS[name], SCENARIOS[name], [], settings=SETTINGS)
    assert result.violation is None and result.preemptions == 0


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_the_base_survives_more_schedules(name):
    """Beyond the seeds the search used: 40 more random walks of the correct base."""
    settings = WALK_SETTINGS.get(name, SETTINGS)
    for seed in range(MAX_RUNS, MAX_RUNS + 40):
        result = lockfuzz.run(BASES[name], SCENARIOS[name], RandomWalk(seed), settings=settings)
        assert result.violation is None, f"{BASES[name]} (seed {seed}): {result.violation}"


#: Mutants whose bug only a cancellation decision reaches (``Settings.cancels``; they claim no
#: timeouts, so no budget ever cancels a waiter).
CANCEL_ONLY = {"trio_forgotten_handoff", "trio_double_count"}


@pytest.mark.parametrize("name", sorted(CANCEL_ONLY))
def test_without_cancellation_decisions_the_bug_stays_hidden(name):
    program = SCENARIOS[name]
    for seed in range(MAX_RUNS):
        result = lockfuzz.run(MUTANTS[name], program, RandomWalk(seed), settings=Settings(cancels=False))
        assert result.violation is None, f"{name} (seed {seed}): {result.violation}"
    found = first_violation(MUTANTS[name], program)  # the same walks, cancellations on
    assert found is not None and any(e[2] == CANCEL for e in found[1].trace.events)
