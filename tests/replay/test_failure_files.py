"""Failure files: written atomically by a search, replayed to the same trace in a fresh process,
and every way a file can be unreplayable is said clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import lockfuzz
from lockfuzz import ReplayError, load_failure, replay
from lockfuzz._reports._failure_file import SCHEMA

MUTANT = "lockfuzz.targets.mutants.nonatomic_tas:NonatomicTasLock"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):  # type: ignore[no-untyped-def]
    directory = tmp_path_factory.mktemp("failures")
    report = lockfuzz.fuzz(MUTANT, runs=2000, failure_dir=directory)
    assert len(report.found) == 1
    found = report.found[0]
    assert found.path is not None and found.path.exists()
    assert [p.name for p in directory.iterdir()] == [found.path.name]  # no temporary file left
    return found.path


def test_a_failure_file_replays_to_the_same_trace_hash_in_a_fresh_process(saved, tmp_path):
    recorded = json.loads(saved.read_text())
    script = (
        "import sys, lockfuzz; o = lockfuzz.replay(sys.argv[1]); "
        "print(o.status, o.result.trace.hash(), o.result.violation.oracle)"
    )
    env = dict(os.environ, PYTHONHASHSEED="4242")
    out = subprocess.run(
        [sys.executable, "-c", script, str(saved)], env=env, capture_output=True, text=True, check=True, cwd=tmp_path
    )
    status, trace_hash, oracle = out.stdout.split()
    assert status == "reproduced"
    assert trace_hash == recorded["trace"]["hash"]
    assert oracle == recorded["signature"]["oracle"] == "mutual-exclusion"


def test_the_file_holds_everything_needed_to_replay(saved):
    data = json.loads(saved.read_text())
    assert data["format"] == "lockfuzz-failure" and data["schema"] == SCHEMA
    assert data["lockfuzz_version"] == lockfuzz.__version__
    assert data["target"] == {"path": MUTANT, "params": {}}
    assert data["minimal"] is True
    assert set(data) >= {"program", "schedule", "settings", "signature", "violation", "trace"}
    f = load_failure(saved)
    assert f.trace is not None and f.trace.hash() == f.trace_hash  # the stored events are the run


def _edit(saved, tmp_path, change):  # type: ignore[no-untyped-def]
    data = json.loads(saved.read_text())
    change(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return path


def test_corrupt_json_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"format": "lockfuzz-failure", ')
    with pytest.raises(ReplayError, match=r"bad.json: not valid JSON"):
        replay(path)


def test_not_a_failure_file(tmp_path):
    path = tmp_path / "other.json"
    path.write_text("[1, 2, 3]")
    with pytest.raises(ReplayError, match="not a lockfuzz failure file"):
        replay(path)


def test_missing_field_is_named(saved, tmp_path):
    path = _edit(saved, tmp_path, lambda d: d.pop("program"))
    with pytest.raises(ReplayError, match=r"broken failure file \(missing field 'program'\)"):
        replay(path)


def test_edited_trace_is_caught(saved, tmp_path):
    path = _edit(saved, tmp_path, lambda d: d["trace"]["events"][2].__setitem__(4, 7))
    with pytest.raises(ReplayError, match="the stored events do not match the stored trace hash"):
        replay(path)


def test_file_from_a_newer_lockfuzz_says_upgrade(saved, tmp_path):
    path = _edit(saved, tmp_path, lambda d: d.update(schema=SCHEMA + 1, lockfuzz_version="99.0.0"))
    newer = rf"written by lockfuzz 99.0.0 \(schema {SCHEMA + 1}\), newer than this lockfuzz"
    with pytest.raises(ReplayError, match=newer):
        replay(path)


def test_unknown_target_is_named(saved, tmp_path):
    path = _edit(saved, tmp_path, lambda d: d["target"].update(path="nowhere.module:Lock"))
    expected = r"cannot replay: target 'nowhere.module:Lock': cannot import module 'nowhere.module'"
    with pytest.raises(ReplayError, match=expected):
        replay(path)


def test_passes_now_when_the_target_is_fixed(saved, tmp_path):
    path = _edit(saved, tmp_path, lambda d: d["target"].update(path="lockfuzz.targets.tas:TasLock"))
    outcome = replay(path)
    assert outcome.status == "passes" and outcome.result.violation is None
    assert "passes now" in outcome.message


def test_a_drifting_trace_names_the_first_differing_event(saved, tmp_path):
    def tamper(d):  # type: ignore[no-untyped-def]
        # As if recorded from a target that behaved differently at event 3.
        d["trace"]["events"][3][4] = 12345
        t = d["trace"]
        d["trace"]["hash"] = lockfuzz.Trace([tuple(e) for e in t["events"]], t["contexts"], t["cells"]).hash()

    outcome = replay(_edit(saved, tmp_path, tamper))
    assert outcome.status == "differs" and outcome.first_difference == 3
    assert "differs from the recorded one at event 3" in outcome.message


def test_files_are_written_atomically(tmp_path, monkeypatch):
    from lockfuzz._reports import _failure_file

    f = load_failure(next(iter(_saved_files(tmp_path))))
    target = tmp_path / "out"
    path = _failure_file.write_failure(f, target)

    def boom(*a, **k):  # type: ignore[no-untyped-def]
        raise OSError("disk full")

    monkeypatch.setattr(_failure_file.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        _failure_file.write_failure(f, target)
    # The earlier file is intact and no temporary file is left behind.
    assert [p.name for p in target.iterdir()] == [path.name]
    assert load_failure(path).trace_hash == f.trace_hash


def _saved_files(tmp_path):  # type: ignore[no-untyped-def]
    report = lockfuzz.fuzz(MUTANT, runs=500, failure_dir=tmp_path / "src")
    return [x.path for x in report.found]
