"""A campaign draws the same whatever else the process has imported.

Hypothesis (6.131+) sometimes draws literals found in the source of imported local modules, so a
campaign's programs depended on which modules happened to be loaded: a mutant found when its
test ran alone was missed after other tests had run. ``_hypothesis_internals.stable_draws`` pins
those constants empty while a campaign runs. And Hypothesis's shrinker tried its strategies'
labels in the order of their values, which come from ``hash()`` and differ from process to
process: the same failure shrank along different paths. The pin makes it take them in the order
they first occur in the example.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

import lockfuzz
from lockfuzz.strategies import programs_for


def _drawn_programs() -> list[Any]:
    target = lockfuzz.resolve_target("ticket")
    drawn: list[Any] = []

    def record(program: lockfuzz.Program) -> lockfuzz.Program:
        drawn.append(program.to_json())
        return program

    lockfuzz.fuzz(target, programs=programs_for(target).map(record), runs=300, runs_per_program=1, minimise=False)
    return drawn


def test_importing_a_module_full_of_literals_changes_no_draw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    before = _drawn_programs()
    # A module of the user's (outside any tests folder) with many literals, as a project has:
    # Hypothesis would offer them to the draws. Without the pin, 208 of these 300 programs
    # differed after the import.
    (tmp_path / "lots_of_literals.py").write_text(
        "A = [" + ", ".join(str(n) for n in range(300)) + "]\n"
        "B = [" + ", ".join(str(10**k * m) for k in range(12) for m in (1, 2, 5)) + "]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("lots_of_literals")
    try:
        assert _drawn_programs() == before
    finally:
        sys.modules.pop("lots_of_literals", None)


def test_the_pin_is_lifted_after_the_campaign():
    from hypothesis.internal.conjecture import providers

    if not hasattr(providers, "_get_local_constants"):
        pytest.skip("this Hypothesis draws no local constants: nothing is pinned")
    original = providers._get_local_constants, providers.CONSTANTS_CACHE
    _drawn_programs()
    assert (providers._get_local_constants, providers.CONSTANTS_CACHE) == original


def _shrunk_programs(monkeypatch: pytest.MonkeyPatch, salt: int = 0) -> list[Any]:
    """Every program a campaign that finds a lost wake-up runs, its shrinking included; with
    ``salt``, every label the shrinker sees is changed (as another process's hashes change it)."""
    from hypothesis.internal.conjecture.shrinker import Shrinker

    from lockfuzz._campaigns._campaign import _Campaign

    if salt:
        by_label = Shrinker.__dict__["spans_by_label"].fget
        monkeypatch.setattr(
            Shrinker, "spans_by_label", property(lambda self: {k ^ salt: v for k, v in by_label(self).items()})
        )
    drawn: list[Any] = []
    example = _Campaign._example

    def record(self: Any, program: lockfuzz.Program, *args: Any) -> None:
        drawn.append(program.to_json())
        example(self, program, *args)

    # The campaign's own strategy, unwrapped (a ``.map`` would change what the shrinker sees).
    monkeypatch.setattr(_Campaign, "_example", record)
    report = lockfuzz.fuzz("lost_wakeup", runs=1500, seed=0, minimise=False)
    monkeypatch.undo()
    assert [f.failure.signature for f in report.found] == [("etimedout", "undeserved")]
    return drawn


def test_shrinking_takes_the_same_path_whatever_the_labels_hash_to(monkeypatch: pytest.MonkeyPatch):
    # Hypothesis's labels come from hash() (randomised per process) and addresses; its shrinker
    # used to try them in the order of their values, so this campaign shrank along another path
    # in about one process of two. Without the pin, the salted labels below change 3 of the 331
    # programs the campaign runs (4 salts in 10 do; this is one of them).
    before = _shrunk_programs(monkeypatch)
    after = _shrunk_programs(monkeypatch, salt=0xB0C1_1FDE_CB91_CE37)
    assert len(after) == len(before) > 300
    assert after == before


def test_the_shrinker_is_restored_after_the_campaign():
    from hypothesis.internal.conjecture.shrinker import Shrinker

    original = Shrinker.__dict__["distinct_labels"]
    _drawn_programs()
    assert Shrinker.__dict__["distinct_labels"] is original
