"""The README's campaign over the whole zoo, CI-sized: every correct target runs clean with
interrupts enabled (no false alarm from any oracle), and the arena lock's defect is found.
The deep version (20,000 runs per target) is the README's command; this is the same code path."""

from __future__ import annotations

import pytest

import lockfuzz
from lockfuzz._registry import bundled_targets

KNOWN_BROKEN = {"arena_spinlock": "final-state"}
CORRECT = sorted(set(bundled_targets(mutants=False)) - set(KNOWN_BROKEN))


@pytest.mark.parametrize("name", CORRECT)
def test_correct_targets_run_clean_with_interrupts(name):
    report = lockfuzz.fuzz(name, runs=300, seed=5, max_failures=3)
    assert report.ok, [f.failure.violation for f in report.found]
    assert report.runs == 300


@pytest.mark.parametrize("name", sorted(KNOWN_BROKEN))
def test_the_arena_lock_defect_is_found(name):
    report = lockfuzz.fuzz(name, runs=2000, seed=5)
    assert [f.failure.signature[0] for f in report.found] == [KNOWN_BROKEN[name]]
