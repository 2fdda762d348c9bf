"""Bad failure files (issue 14): whatever the bytes, ``replay`` and ``show`` end in one line and
exit 2, never a traceback, never a silent reinterpretation of what the file says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

import lockfuzz
from lockfuzz import ReplayError
from lockfuzz._frontends._cli import main

CELLS = "lockfuzz.targets.mutants.nonatomic_tas:NonatomicTasLock"
TRIO = "lockfuzz.targets.mutants.trio_mutants:CheckThenSetLock"


@pytest.fixture(scope="module", params=[CELLS, TRIO], ids=["cells", "trio"])
def saved(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    report = lockfuzz.fuzz(request.param, runs=300, failure_dir=tmp_path_factory.mktemp("failures"))
    (found,) = report.found
    assert found.path is not None
    return found.path


def _edited(saved: Path, tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    data = json.loads(saved.read_text())
    change(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return path


def _one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("lockfuzz: error: ")
    for needle in needles:
        assert needle in line, line


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"\xff\xfe{\"format\": 1}", "not UTF-8"), (b"[" * 100_000 + b"]" * 100_000, "nested too deeply")],
    ids=["not-utf8", "deeply-nested"],
)
@pytest.mark.parametrize("command", ["replay", "show"])
def test_unreadable_bytes_exit_2_with_one_line(command: str, content: bytes, needle: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "weird.json"
    path.write_bytes(content)
    _one_line_exit_2([command, str(path)], capsys, "weird.json", needle)
    with pytest.raises(ReplayError, match=needle):
        lockfuzz.load_failure(path)


def test_a_decision_outside_its_points_options_is_a_corrupt_file(saved: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = _edited(saved, tmp_path, lambda d: d.update(schedule=[10**30] * 6))
    # Taken modulo the options, this schedule would run and "pass now": it must not.
    _one_line_exit_2(["replay", str(path)], capsys, "edited.json", "corrupt schedule", f"decision 0 is {10**30}",
                     "has 2 options")
    with pytest.raises(ReplayError, match="decision 0 is"):
        lockfuzz.replay(path)


def test_an_in_range_schedule_still_replays(saved: Path) -> None:
    assert lockfuzz.replay(saved).reproduced  # the strict schedule changes nothing for a good file


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda d: d.update(schema=True), "schema=True, expected an int"),
        (lambda d: d.update(lockfuzz_version=[0, 1]), "lockfuzz_version=[0, 1], expected a version string"),
        (lambda d: d.update(lockfuzz_version="latest"), "lockfuzz_version='latest'"),
        (lambda d: d["target"].update(path=7), "target.path=7"),
        (lambda d: d["target"].update(params=[1]), "target.params=[1]"),
        (lambda d: d.update(signature={"oracle": 1, "kind": "x"}), "signature="),
        (lambda d: d.update(minimal="yes"), "minimal='yes', expected true or false"),
        (lambda d: d["settings"].update(final_check=2), "settings.final_check=2"),
        (lambda d: d["settings"].update(max_steps=10**12), "settings.max_steps=1000000000000"),
        (lambda d: d["program"].update(n_locks=10_000_000), "program.n_locks=10000000, expected an int in [1, 256]"),
        (lambda d: d["program"].update(n_locks="2"), "program.n_locks='2'"),
        (lambda d: d["program"].update(cpus=d["program"]["cpus"] * 300), "program.cpus=<"),
        (lambda d: d["program"]["cpus"][0]["task"].append(["lock", "0", 1]), "program.cpus[0] operation"),
        (lambda d: d.update(schedule=[0, True]), "schedule=[0, True]"),
        (lambda d: d.update(target="tas"), "target='tas', expected an object"),
        (lambda d: d.update(trace=[]), "trace=[], expected an object with a hash string"),
        (lambda d: d.update(found_by=3), "found_by=3, expected an object"),
        (lambda d: d.update(settings=None), "settings=None, expected an object"),
        (lambda d: d.update(schedule=[0] * 11, settings=dict(d["settings"], max_steps=10)),
         "schedule=<11 decisions>, expected at most settings.max_steps (10) decisions"),
        (lambda d: d.update(program=[]), "program=[], expected an object"),
        (lambda d: d["program"]["cpus"].__setitem__(0, 5), "program.cpus[0]=5, expected an object"),
        (lambda d: d["program"]["cpus"][0].update(task="lock"), "program.cpus[0]='lock', expected lines"),
        (lambda d: d["program"]["cpus"][0].update(task=[["work", 1]] * 100_001), "program.cpus[0]=<a line>"),
    ],
    ids=["schema-bool", "version-list", "version-word", "path-int", "params-list", "signature", "minimal",
         "final-check", "max-steps", "n-locks-huge", "n-locks-str", "cpus-many", "op-type", "decision-bool",
         "target-str", "trace-list", "found-by-int", "settings-null", "schedule-long", "program-list", "cpu-int",
         "line-str", "line-long"],
)
def test_every_field_is_checked_for_type_and_bound(saved: Path, tmp_path: Path, change: Any, needle: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = _edited(saved, tmp_path, change)
    _one_line_exit_2(["replay", str(path)], capsys, "edited.json", needle)
    _one_line_exit_2(["show", str(path)], capsys, "edited.json", needle)
