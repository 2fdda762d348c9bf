"""Say what to check: one program written by hand (``fuzz(program=...)``, ``--program FILE``) and
your own properties (``fuzz(properties=...)``, ``--property MODULE:FUNCTION``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import lockfuzz
from lockfuzz import InvalidArgument, Program
from lockfuzz._frontends._cli import main
from lockfuzz._oracles._properties import RunRecord
from lockfuzz.strategies import programs

#: Written by hand, as a user reproducing a report would: three CPUs race for one lock.
RACE = """
# three CPUs race for one lock
cpu0.task: lock L0; work 10ns; unlock L0
cpu1.task: lock L0; unlock L0
cpu2.task: lock L0; unlock L0
"""


def test_a_hand_written_program_finds_the_bug_in_a_bundled_mutant():
    report = lockfuzz.fuzz("unfair_ticket", program=Program.from_text(RACE), runs=2000, seed=0)
    (found,) = report.found
    assert found.failure.signature == ("fairness", "overtaken")
    assert found.raw_program == Program.from_text(RACE)  # the program as written, not another
    clean = lockfuzz.fuzz("ticket", program=Program.from_text(RACE), runs=2000, seed=0)
    assert clean.ok and clean.runs == 2000
    # One program, many examples: each searches schedules from a seed of its own.
    assert clean.examples == 2000 // 50


def test_budgets_are_drawn_where_none_is_written_and_kept_where_one_is():
    program = Program.from_text("cpu0.task: lock L0; work 2ms; unlock L0\ncpu1.task: lock L0; unlock L0\n"
                                "cpu2.task: lock L0 (5ms); unlock L0")
    budgets: dict[str, set[int]] = {"cpu1.task": set(), "cpu2.task": set()}

    def note_budgets(run: RunRecord) -> None:
        for a in run.acquisitions:
            if a.context in budgets:
                budgets[a.context].add(a.budget_ns)

    lockfuzz.fuzz("trio_lock", program=program, properties=[note_budgets], runs=400, seed=0)
    assert budgets["cpu2.task"] == {5_000_000}
    assert len(budgets["cpu1.task"]) > 3 and max(budgets["cpu1.task"]) <= 20_000_000


def test_a_target_without_budgets_runs_the_program_as_written():
    seen: set[Program] = set()
    lockfuzz.fuzz("tas", program=Program.from_text(RACE), properties=[lambda run: seen.add(run.program)], runs=200)
    assert seen == {Program.from_text(RACE)}


def test_bad_fixed_programs_are_refused():
    race = Program.from_text(RACE)
    with pytest.raises(InvalidArgument, match="program= and programs= were both given"):
        lockfuzz.fuzz("tas", program=race, programs=programs())
    with pytest.raises(InvalidArgument, match="expected a lockfuzz.Program"):
        lockfuzz.fuzz("tas", program=RACE)  # type: ignore[arg-type] # the bad input under test
    with pytest.raises(InvalidArgument, match="3 CPUs, but PetersonLock is written for at most 2"):
        lockfuzz.fuzz("peterson", program=race)


# -- your own properties, in a campaign -------------------------------------------------------------------
def test_a_property_campaign_finds_the_lost_update_and_passes_the_fixed_lock():
    from test_properties import CountingTas, LosesCounts, every_acquisition_is_counted

    report = lockfuzz.fuzz(LosesCounts, properties=[every_acquisition_is_counted], runs=1000, seed=0)
    (found,) = report.found
    assert found.failure.signature == ("property", "every_acquisition_is_counted")
    assert lockfuzz.fuzz(CountingTas, properties=[every_acquisition_is_counted], runs=1000, seed=0).ok


# -- the command line ---------------------------------------------------------------------------------------
def test_the_cli_fuzzes_a_program_file_in_either_form(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "race.txt"
    text.write_text(RACE)
    failures = tmp_path / "failures"
    assert main(["fuzz", "unfair_ticket", "--program", str(text), "--failure-dir", str(failures), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "fairness/overtaken in unfair_ticket" in out and f"program {text}" in out
    # The failure file itself is a JSON program file (its "program" key), as is the bare JSON form.
    (saved,) = failures.glob("*.json")
    assert main(["fuzz", "ticket", "--program", str(saved), "--runs", "100", "--quiet"]) == 0
    bare = tmp_path / "race.json"
    bare.write_text(json.dumps(Program.from_text(RACE).to_json()))
    assert main(["fuzz", "ticket", "--program", str(bare), "--runs", "100", "--quiet"]) == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--program", "{dir}/missing.txt"], "--program {dir}/missing.txt: cannot read it"),
        (["--program", "{dir}/bad.txt"], "operation 'lok L0': expected"),
        (["--program", "{dir}/bad.json"], "--program {dir}/bad.json: not valid JSON"),
        (["--property", "nope"], "--property: property 'nope': expected module:function"),
        (["--property", "os.path:no_such_function"], "os.path has no 'no_such_function'"),
    ],
)
def test_bad_program_files_and_properties_are_usage_errors(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.txt").write_text("cpu0.task: lok L0")
    (tmp_path / "bad.json").write_text("{not json")
    args = [a.format(dir=tmp_path) for a in args]
    assert main(["fuzz", "tas", *args, "--runs", "10"]) == 2
    assert message.format(dir=tmp_path) in capsys.readouterr().err


def test_the_cli_checks_a_property_given_by_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = "test_properties:every_acquisition_is_counted"
    target = "test_properties:LosesCounts"
    assert main(["fuzz", target, "--property", path, "--failure-dir", str(tmp_path), "--quiet"]) == 1
    assert "property/every_acquisition_is_counted" in capsys.readouterr().out




def test_a_property_failure_is_saved_with_its_property_and_replays(tmp_path: Path) -> None:
    from test_properties import LosesCounts, every_acquisition_is_counted

    report = lockfuzz.fuzz(LosesCounts, properties=[every_acquisition_is_counted], runs=1000, failure_dir=tmp_path)
    (found,) = report.found
    assert found.path is not None
    saved = json.loads(found.path.read_text())
    assert saved["properties"] == ["test_properties:every_acquisition_is_counted"]
    outcome = lockfuzz.replay(found.path)
    assert outcome.reproduced, outcome.message


def test_a_property_that_cannot_be_imported_says_so_on_replay(tmp_path: Path) -> None:
    from test_properties import LosesCounts

    counted = lambda run: run.memory["stats.acquisitions"] == len(run.acquisitions)  # noqa: E731 - on purpose
    report = lockfuzz.fuzz(LosesCounts, properties=[counted], runs=1000, failure_dir=tmp_path)
    (found,) = report.found
    assert found.failure.properties == ("<<lambda>>",)
    with pytest.raises(lockfuzz.ReplayError, match="the failure is property/<lambda>, which cannot be loaded here"):
        lockfuzz.replay(found.path)  # type: ignore[arg-type] # saved: the path is set
