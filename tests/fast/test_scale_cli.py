"""Every core and many machines on the command line (issue 13): ``--workers``, ``--shards``,
``--shard K/M`` and ``lockfuzz merge``, ``--dask``. The shards run in this process where the
point is the result (``--workers 1 --shards M`` is the same campaign as on any pool); a few
tests start processes: the spawn pool, a Dask ``LocalCluster``, and Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

import lockfuzz
from lockfuzz._frontends._cli import main

MUTANT = "nonatomic_tas"  # found within a few runs in every shard


def _one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lockfuzz: error: "), err
    for needle in needles:
        assert needle in lines[0], err


def _files(directory: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(directory.glob("*.json"))}


def _figures(out: str) -> tuple[int, int]:
    """Runs and failures from the summary line."""
    line = out.strip().splitlines()[-1]
    runs = re.search(r"([\d,]+) runs?\b", line)
    failures = re.search(r"(\d+) failures?$", line)
    assert runs is not None and failures is not None, line
    return int(runs.group(1).replace(",", "")), int(failures.group(1))


def _summary(out: str) -> str:
    """The summary line without its times."""
    return out.strip().splitlines()[-1].split(" in ")[0]


@pytest.mark.parametrize(("argv", "needles"), [
    (["--workers", "0"], ["--workers", "0", "'auto'"]),
    (["--workers", "many"], ["--workers", "'many'", "'auto'"]),
    (["--shard", "3/2"], ["--shard", "'3/2'", "1 <= K <= M"]),
    (["--shard", "0/2"], ["--shard", "'0/2'"]),
    (["--shard", "2"], ["--shard", "'2'", "K/M"]),
    (["--shards", "0"], ["--shards", "0 is not >= 1"]),
    (["--dask", "foo"], ["--dask", "'foo'", "tcp://HOST:8786"]),
    (["--dask", "http://host:8786"], ["--dask", "'http://host:8786'"]),
    (["--runs", "5", "--shards", "10"], ["--shards 10", "--runs 5"]),
    (["--runs", "5", "--shard", "1/10"], ["--shard 10", "--runs 5"]),
    (["--shard", "1/2", "--workers", "2"], ["--shard K/M runs one shard alone"]),
    (["--dask", "tcp://127.0.0.1:1", "--workers", "2"], ["--workers 2", "remote Dask cluster"]),
    (["--property", "os.path:isfile", "--workers", "2"], ["--program and --property run in one process"]),
])
def test_bad_values_exit_2_with_one_line(argv: list[str], needles: list[str], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["fuzz", "tas", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    _one_line_error(err, *needles)
    assert not (tmp_path / ".lockfuzz").exists()


def test_merge_of_what_is_not_a_shard_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["merge", str(tmp_path / "nowhere")]) == 2
    _one_line_error(capsys.readouterr().err, "nowhere", "not a folder")
    assert main(["merge", str(tmp_path)]) == 2
    _one_line_error(capsys.readouterr().err, "no shard summary")


def test_workers_auto_is_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from lockfuzz._frontends._cli import _workers
    from lockfuzz._campaigns._workers import available_cores

    assert _workers("auto") == available_cores() >= 1
    assert _workers("3") == 3


@pytest.mark.parametrize(("argv", "workers", "dask"), [
    (["--workers", "auto"], "cores", None),
    (["--dask", "local"], "cores", "local"),  # a LocalCluster: a worker per core unless told
    (["--dask", "local", "--workers", "3"], 3, "local"),
    (["--dask", "tcp://scheduler.example:8786"], 1, "tcp://scheduler.example:8786"),
])
def test_where_the_shards_go(argv: list[str], workers: object, dask: object, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import lockfuzz._frontends._scale_cli
    from lockfuzz._campaigns._campaign import CampaignReport
    from lockfuzz._campaigns._workers import available_cores

    asked: dict[str, object] = {}

    def fake(**kwargs: object) -> tuple[CampaignReport, int]:
        asked.update(kwargs)
        return CampaignReport(target="t", strategy="swarm", runs=10), 2

    monkeypatch.setattr(lockfuzz._frontends._scale_cli, "fuzz_sharded", fake)
    if available_cores() == 1 and argv == ["--workers", "auto"]:
        pytest.skip("one core: --workers auto is the plain campaign")
    assert main(["fuzz", "tas", "--runs", "10", "--failure-dir", str(tmp_path), *argv]) == 0
    assert asked["workers"] == (available_cores() if workers == "cores" else workers)
    assert asked["dask"] == dask and asked["shards"] is None
    assert "2 shards" in capsys.readouterr().out


def test_shard_jobs_merged_equal_the_sharded_campaign(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # One campaign of 3 shards, in this process; it stops when shard 1 alone holds the one failure
    # asked for (--max-failures 1), so it reports shard 1's finding and runs.
    assert main(["fuzz", MUTANT, "--runs", "300", "--shards", "3", "--failure-dir", str(tmp_path / "all"),
                 "--quiet"]) == 1
    whole = capsys.readouterr().out
    assert "3 shards" in _summary(whole)
    # The same shards as three separate jobs, then merged: the same report and the same files.
    for k in (1, 2, 3):
        assert main(["fuzz", MUTANT, "--runs", "300", "--shard", f"{k}/3", "--failure-dir",
                     str(tmp_path / f"job{k}"), "--quiet"]) == 1
        assert f"shard {k}/3" in _summary(capsys.readouterr().out)
        assert (tmp_path / f"job{k}" / f"shard-{k}-of-3.lockfuzz-shard").exists()
    assert main(["merge", *(str(tmp_path / f"job{k}") for k in (3, 1, 2)), "--failure-dir",
                 str(tmp_path / "merged")]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    assert _files(tmp_path / "merged") == _files(tmp_path / "all") != {}
    assert "merged 1 of 3 shards" in out  # the shards the campaign counts: 1 found what was asked
    assert _figures(out) == _figures(whole)
    assert _figures(whole)[0] < 100  # shard 1's runs, up to its failure
    # A missing shard is said, and the others are merged.
    assert main(["merge", str(tmp_path / "job1"), str(tmp_path / "job3"), "--failure-dir", str(tmp_path / "m2"),
                 "--max-failures", "3"]) == 1
    out, err = capsys.readouterr()
    assert "1 shard of 3 missing (2/3)" in err
    assert "merged 2 of 3 shards" in out
    # Shards of two campaigns do not merge.
    assert main(["fuzz", MUTANT, "--runs", "300", "--seed", "1", "--shard", "2/3", "--failure-dir",
                 str(tmp_path / "other"), "--quiet"]) == 1
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "job1"), str(tmp_path / "other")]) == 2
    _one_line_error(capsys.readouterr().err, "another campaign")


@pytest.mark.serial
def test_merge_joins_coverage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for k in (1, 2):
        assert main(["fuzz", "tas", "--runs", "60", "--coverage", "--shard", f"{k}/2", "--failure-dir",
                     str(tmp_path / f"job{k}")]) == 0
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "job1"), str(tmp_path / "job2"), "--failure-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "target coverage (60 runs measured" in out and "lock states:" in out
    assert "merged 2 of 2 shards" in out and "0 failures" in out


def test_workers_give_the_same_result_as_one_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["fuzz", MUTANT, "--runs", "300", "--shards", "3", "--max-failures", "3", "--quiet"]
    assert main([*args, "--failure-dir", str(tmp_path / "one")]) == 1
    one = capsys.readouterr().out
    assert main([*args, "--workers", "2", "--failure-dir", str(tmp_path / "two")]) == 1
    two = capsys.readouterr().out
    assert _files(tmp_path / "two") == _files(tmp_path / "one") != {}
    assert _summary(two) == _summary(one)
    assert " 300 runs" in two  # every shard ran: no third failure to stop at


@pytest.mark.serial  # a Dask cluster or client: outside xdist's workers (pyproject.toml)
def test_dask_local_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("distributed", reason="the dask extra is not installed (pip install 'lockfuzz[dask]')")
    args = ["fuzz", MUTANT, "--runs", "600", "--quiet"]
    # A LocalCluster of two worker processes, one thread each: four shards per thread by default.
    # The first failure stops the campaign (--max-failures 1) once the shards before it are in,
    # whichever worker finished first: the same report as the shards in one process.
    # The console script, in a process of its own, as a user runs it: after a Dask close that
    # hung (see lockfuzz._campaigns._dask.CLOSE_TIMEOUT), Dask's event loop in that process may be gone, and
    # a later Dask client there would wait for it for ever.
    proc = subprocess.run([_script(), *args, "--dask", "local", "--workers", "2", "--failure-dir",
                           str(tmp_path / "dask")], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 1, proc.stderr
    dask = proc.stdout
    assert "8 shards" in _summary(dask)
    assert main([*args, "--shards", "8", "--failure-dir", str(tmp_path / "one")]) == 1
    one = capsys.readouterr().out
    assert _files(tmp_path / "dask") == _files(tmp_path / "one") != {}
    assert _summary(dask) == _summary(one)


def test_a_shard_that_fails_in_a_worker_fails_the_campaign(tmp_path: Path) -> None:
    from lockfuzz._model._errors import InvalidArgument
    from lockfuzz._campaigns._shards import plan
    from lockfuzz._campaigns._workers import ShardCampaign, run_pool

    specs = plan(2, target="lockfuzz.targets.tas:TasLock", seed=0, runs=4, strategy="no-such-strategy")
    campaign = ShardCampaign(specs, max_failures=1, failure_dir=None)
    with pytest.raises(InvalidArgument, match="no-such-strategy"):  # raised in the worker, re-raised here
        run_pool(campaign, 2)


@pytest.mark.serial  # a Dask cluster or client: outside xdist's workers (pyproject.toml)
def test_dask_scheduler_that_cannot_be_reached_exits_2(tmp_path: Path) -> None:
    pytest.importorskip("distributed", reason="the dask extra is not installed (pip install 'lockfuzz[dask]')")
    # In a process of its own, as the command line runs it: under `coverage run`, after a test
    # that measured coverage in this process, Dask's event-loop thread once never started here,
    # and the client waited for it for ever (the serial stage of CI).
    code = ("import sys, lockfuzz._campaigns._dask as d; d.CONNECT_TIMEOUT = 0.5; "
            "from lockfuzz._frontends._cli import main; sys.exit(main(['fuzz', 'tas', '--dask', 'tcp://127.0.0.1:1']))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    _one_line_error(proc.stderr, "--dask tcp://127.0.0.1:1", "cannot reach a Dask scheduler")


def test_an_unreachable_scheduler_is_refused_before_dask_makes_a_client(monkeypatch: pytest.MonkeyPatch) -> None:
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    import lockfuzz._campaigns._dask as d

    def no_client(*args: object, **kwargs: object) -> None:
        raise AssertionError("a Dask client was made for an address where nothing listens")

    monkeypatch.setattr(distributed, "Client", no_client)
    with pytest.raises(lockfuzz.InvalidArgument, match="cannot reach a Dask scheduler there"):
        d.connect("tcp://127.0.0.1:1", workers=1, timeout=0.5)


def test_dask_not_installed_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    assert main(["fuzz", "tas", "--dask", "local"]) == 2
    _one_line_error(capsys.readouterr().err, "--dask", "pip install 'lockfuzz[dask]'")


def test_a_target_that_does_not_import_by_its_path_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    from lockfuzz._frontends._scale_cli import _importable
    from lockfuzz._frontends._cli import UsageError

    class Local(lockfuzz.Target):  # defined here: no import path reaches it
        capabilities = lockfuzz.Capabilities()

    with pytest.raises(UsageError, match="import the target by path"):
        _importable(Local)


class DyingLock(lockfuzz.Target):
    """A target that ends its process: what a worker killed by the system looks like."""

    capabilities = lockfuzz.Capabilities()

    def __init__(self, machine: lockfuzz.Machine) -> None:
        pass

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        os._exit(3)

    async def release(self, ctx, lock):  # type: ignore[no-untyped-def]
        pass


def test_a_worker_that_dies_fails_the_campaign_instead_of_waiting_for_it() -> None:
    from lockfuzz._campaigns._shards import plan
    from lockfuzz._campaigns._workers import ShardCampaign, run_pool

    path = lockfuzz.target_path(DyingLock)  # test_scale_cli:DyingLock: tests/fast is on the workers' sys.path
    campaign = ShardCampaign(plan(2, target=path, seed=0, runs=10), max_failures=1, failure_dir=None)
    with pytest.raises(RuntimeError, match=r"worker process running shard [12]/2 \(pid \d+\) died"):
        run_pool(campaign, 2)


# -- Ctrl-C ---------------------------------------------------------------------------------------
def _script() -> str:
    path = Path(sysconfig.get_path("scripts")) / "lockfuzz"
    return str(path) if path.exists() else "lockfuzz"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(sys.platform == "win32", reason="process groups and SIGINT are POSIX")
def test_ctrl_c_stops_every_worker_and_keeps_what_was_found(tmp_path: Path) -> None:
    # A user's target from the current directory (the workers import it by path too), a campaign
    # that would run for hours, two workers; Ctrl-C goes to the whole process group, as a terminal's.
    (tmp_path / "my_locks.py").write_text(
        "from lockfuzz.targets.mutants.nonatomic_tas import NonatomicTasLock\n\n"
        "class MyLock(NonatomicTasLock):\n    \"A user's lock.\"\n"
    )
    # Output to files, not pipes: waiting for the process must not also wait for any process
    # that inherited its pipes (the group check below says whether one outlived it).
    with open(tmp_path / "out", "w") as out_file, open(tmp_path / "err", "w") as err_file:
        proc = subprocess.Popen(
            [_script(), "fuzz", "my_locks:MyLock", "--workers", "2", "--runs", "100000000", "--max-failures", "50",
             "--failure-dir", "found", "--quiet"],
            cwd=tmp_path, stdout=out_file, stderr=err_file, text=True, start_new_session=True,
            # As a terminal starts it: SIGINT at its default. (A child inherits an ignored SIGINT,
            # and Python keeps it ignored; under `coverage run` of the whole suite this test and
            # the trio driver's Ctrl-C test both timed out as if it were, cause not found.)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        for _ in range(2400):  # until a worker has found something (two minutes at most)
            if list((tmp_path / "found").glob("*.json")) or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, (tmp_path / "err").read_text()
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:  # pragma: no cover - only when the test fails
            os.killpg(proc.pid, signal.SIGKILL)
    err = (tmp_path / "err").read_text()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err, err
    saved = list((tmp_path / "found").glob("*.json"))
    assert saved
    for path in saved:
        failure = lockfuzz.load_failure(path)
        assert failure.target == "my_locks:MyLock" and failure.signature == ("mutual-exclusion", "two-holders")
    for _ in range(600):  # the workers are gone (the pool's helper threads may take a moment)
        if not _group_alive(proc.pid):
            break
        time.sleep(0.05)
    survivors = subprocess.run(["ps", "-o", "pid,stat,args", "-s", str(proc.pid)], capture_output=True, text=True)
    assert not _group_alive(proc.pid), survivors.stdout


@pytest.mark.serial  # a Dask cluster or client: outside xdist's workers (pyproject.toml)
def test_a_dask_close_that_never_finishes_costs_its_timeout_not_the_campaign() -> None:
    # Dask's synchronous close can wait forever on Python 3.11 (dask/distributed#8394; seen on
    # --dask local under coverage.py): lockfuzz bounds it, and marks the cluster closed so that
    # Dask's exit hook does not wait for it a second time.
    pytest.importorskip("distributed", reason="the dask extra is not installed (pip install 'lockfuzz[dask]')")
    from distributed.core import Status

    from lockfuzz._campaigns._dask import close

    class Hanging:
        status = Status.running
        timeouts: list[float] = []

        def close(self, timeout: float) -> None:
            self.timeouts.append(timeout)
            raise TimeoutError(f"timed out after {timeout} s.")

    class Client:
        closed_with: list[float] = []

        def close(self, timeout: float) -> None:
            self.closed_with.append(timeout)

    client, cluster = Client(), Hanging()
    close(client, cluster, timeout=0.5)
    assert client.closed_with == [0.5] and cluster.timeouts == [0.5]
    assert cluster.status is Status.closed
