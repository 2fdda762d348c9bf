"""Saving failures (issue 14): a directory that cannot hold them is refused before the campaign, a
save that fails later puts the whole failure on stderr, file names never collide across modules,
and temporary files of killed writes are cleaned."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import lockfuzz
from lockfuzz import InvalidArgument
from lockfuzz._frontends._cli import main
from lockfuzz._reports._failure_file import STALE_TMP_SECONDS, Failure, write_failure

MUTANT = "lockfuzz.targets.mutants.nonatomic_tas:NonatomicTasLock"

BROKEN = '''
from lockfuzz import Capabilities, Status, Target

class Lock(Target):
    capabilities = Capabilities()

    def __init__(self, machine):
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]

    async def acquire(self, ctx, lock, budget_ns):
        while await self.words[lock].load():
            await self.words[lock].wait_until(lambda v: v == 0)
        await self.words[lock].store(1)
        return Status.OK

    async def release(self, ctx, lock):
        await self.words[lock].store(0)
'''


def test_an_unwritable_failure_dir_is_refused_before_the_campaign(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("")
    bad = tmp_path / "a-file" / "failures"
    assert main(["fuzz", "nonatomic_tas", "--runs", "300", "--failure-dir", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"lockfuzz: error: --failure-dir {bad}: cannot save failure files there")
    assert "is not a directory" in line
    with pytest.raises(InvalidArgument, match="is not a directory"):
        lockfuzz.fuzz(MUTANT, runs=10, failure_dir=bad)


def test_a_failure_dir_without_write_permission_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lockfuzz._reports import _failure_file

    monkeypatch.setattr(_failure_file.os, "access", lambda path, mode: False)  # as a non-root user would see it
    with pytest.raises(InvalidArgument, match="is not writable"):
        lockfuzz.fuzz(MUTANT, runs=10, failure_dir=tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_a_save_that_fails_later_prints_the_whole_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from lockfuzz._campaigns import _campaign

    def disk_full(*args: object, **kwargs: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_campaign, "write_failure", disk_full)
    report = lockfuzz.fuzz(MUTANT, runs=300, failure_dir=tmp_path)
    (found,) = report.found
    assert found.path is None
    err = capsys.readouterr().err
    assert "No space left on device" in err
    # The raw failure and the minimised one, each whole: the last replays as found.
    dumps = [line for line in err.splitlines() if line.startswith("{")]
    assert len(dumps) == 2
    failure = Failure.from_json(json.loads(dumps[-1]))
    assert failure.schedule == found.failure.schedule
    assert lockfuzz.replay(failure).reproduced


def test_classes_of_the_same_name_in_two_modules_get_two_files(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("lock_one", "lock_two"):
        (tmp_path / f"{module}.py").write_text(BROKEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "failures"
    paths = []
    for module in ("lock_one", "lock_two"):
        (found,) = lockfuzz.fuzz(f"{module}:Lock", runs=300, failure_dir=out).found
        paths.append(found.path)
    assert paths[0] != paths[1]
    assert sorted(out.glob("*.json")) == sorted(paths)
    assert [lockfuzz.load_failure(p).target for p in paths] == ["lock_one:Lock", "lock_two:Lock"]


def test_stale_temporary_files_are_removed_by_the_next_write(tmp_path: Path) -> None:
    (found,) = lockfuzz.fuzz(MUTANT, runs=300).found
    stale = tmp_path / f".{found.failure.name}.abc123.tmp"
    live = tmp_path / f".{found.failure.name}.def456.tmp"  # another process writing right now
    other = tmp_path / ".not-ours.tmp"
    for path in (stale, live, other):
        path.write_text("{")
    old = time.time() - STALE_TMP_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    path = write_failure(found.failure, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, live.name, other.name])


def test_a_long_trace_is_not_stored_and_replay_rebuilds_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from lockfuzz._reports import _failure_file

    (found,) = lockfuzz.fuzz(MUTANT, runs=300).found
    assert found.failure.trace is not None and len(found.failure.trace) > 5
    monkeypatch.setattr(_failure_file, "MAX_STORED_EVENTS", 5)
    path = write_failure(found.failure, tmp_path)
    data = json.loads(path.read_text())
    assert "events" not in data["trace"] and data["trace"]["length"] == len(found.failure.trace)
    assert data["schedule"] == found.failure.schedule
    loaded = lockfuzz.load_failure(path)
    assert loaded.trace is None
    assert lockfuzz.replay(path).reproduced  # the same trace, by its hash
    again = write_failure(loaded, tmp_path / "again")  # a failure without its trace writes as it loaded
    assert json.loads(again.read_text())["trace"] == {"hash": found.failure.trace_hash}
    assert main(["show", str(path)]) == 0
    assert "no trace recorded in the file: lockfuzz replay runs it" in capsys.readouterr().out


def test_a_stored_trace_keeps_one_event_per_line(tmp_path: Path) -> None:
    (found,) = lockfuzz.fuzz(MUTANT, runs=300).found
    path = write_failure(found.failure, tmp_path)
    lines = path.read_text().splitlines()
    assert lines.count(" \"schedule\": " + json.dumps(found.failure.schedule) + ",") == 1
    assert sum(1 for line in lines if line.startswith("   [")) == len(found.failure.trace or ())
    assert lockfuzz.load_failure(path).trace_hash == found.failure.trace_hash
