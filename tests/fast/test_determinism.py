"""A campaign draws the same whatever else the process has imported.

Hypothesis (6.131+) sometimes draws literals found in the source of imported local modules, so a
campaign's programs depended on which modules happened to be loaded: a mutant found when its
test ran alone was missed after other tests had run. ``_hypothesis_internals.stable_draws`` pins
those constants empty while a campaign runs.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

import lockfuzz


def _campaign() -> tuple[list[int], int]:
    report = lockfuzz.fuzz("lost_wakeup", runs=5_000, seed=0, minimise=False)
    return [found.runs_to_find for found in report.found], report.examples


def test_importing_a_module_full_of_constants_changes_no_draw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    before = _campaign()
    # A module of the user's (outside any tests folder) with many literals, as a project has:
    # Hypothesis would offer them to the draws. Without the pin this campaign found the mutant
    # after 3,955 runs before the import and after 3,604 runs after it (331 and 345 examples).
    (tmp_path / "lots_of_constants.py").write_text(
        "A = [" + ", ".join(str(n) for n in range(300)) + "]\n"
        "B = [" + ", ".join(str(10**k * m) for k in range(12) for m in (1, 2, 5)) + "]\n"
        "C = [" + ", ".join(repr(f"s{n}") for n in range(50)) + "]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("lots_of_constants")
    try:
        assert _campaign() == before
    finally:
        sys.modules.pop("lots_of_constants", None)


def test_the_pin_is_lifted_after_the_campaign():
    from hypothesis.internal.conjecture import providers

    original = providers._get_local_constants, providers.CONSTANTS_CACHE
    _campaign()
    assert (providers._get_local_constants, providers.CONSTANTS_CACHE) == original
