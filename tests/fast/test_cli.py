"""The ``lockfuzz`` command line and the reports it prints (timeline, Perfetto export).

Most tests call ``main([...])`` in-process (fast, and capsys sees the output); one runs the
installed console script, so the entry point itself is covered.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import lockfuzz
from lockfuzz._frontends._cli import main
from lockfuzz._engine._events import ACQUIRE, ACQUIRED, CLOCK, DONE, IRQ_ENTER, IRQ_EXIT, RELEASE, RELEASED, Trace
from lockfuzz._reports._failure_file import load_failure
from lockfuzz._engine._machine import LOAD, START, WAIT, XCHG
from lockfuzz._reports._report import perfetto, timeline

MUTANT = "nonatomic_tas"  # two CPUs, two preemptions: found in a few dozen runs


@pytest.fixture(scope="module")
def failure_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A failure file written by ``lockfuzz fuzz`` on a known-broken target."""
    directory = tmp_path_factory.mktemp("failures")
    assert main(["fuzz", MUTANT, "--runs", "500", "--failure-dir", str(directory), "--quiet"]) == 1
    (path,) = directory.glob("*.json")
    return path


def _assert_one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lockfuzz: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], err


# -- fuzz -----------------------------------------------------------------------------------------
def test_fuzz_mutant_exits_1_and_prints_the_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fuzz", MUTANT, "--runs", "500", "--failure-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 1
    (path,) = tmp_path.glob("*.json")
    failure = load_failure(path)
    assert failure.signature == ("mutual-exclusion", "two-holders")
    assert "FAILURE 1: mutual-exclusion/two-holders" in out
    assert failure.program.describe().splitlines()[1].strip() in out
    assert timeline(failure.trace, failure.violation) in out  # type: ignore[arg-type]
    assert str(path.name) in out and "lockfuzz replay" in out
    summary = out.strip().splitlines()[-1]
    assert summary.startswith(f"lockfuzz: {MUTANT} (swarm, seed 0, interrupts on): ") and summary.endswith("1 failure")
    assert err == ""  # no progress line when stderr is not a terminal


def test_fuzz_default_failure_dir_is_under_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["fuzz", MUTANT, "--runs", "500", "--quiet"]) == 1
    out = capsys.readouterr().out
    (path,) = (tmp_path / ".lockfuzz" / "failures").glob("*.json")
    assert f".lockfuzz/failures/{path.name}" in out
    assert "per-CPU timeline" not in out  # --quiet: one line per failure and the summary
    assert len(out.strip().splitlines()) == 2


def test_fuzz_correct_target_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fuzz", "tas", "--runs", "300", "--failure-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, out
    assert out.strip().splitlines() == [out.strip()]  # just the summary
    assert "300 runs" in out and "0 failures" in out
    assert err == ""
    assert not list(tmp_path.iterdir())


def test_fuzz_options_reach_the_campaign(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fuzz", "tas", "--runs", "60", "--cpus", "1", "--locks", "1", "--no-interrupts", "--strategy",
                 "random", "--seed", "7", "--runs-per-program", "3", "--failure-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "tas (random, seed 7, interrupts off): 60 runs" in out


def test_fuzz_handlers_lets_interrupts_nest(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Found by a lock written for this check: an AA check blind to a handler interrupting
    # another handler on its CPU; drawn programs had one handler a CPU, so handlers never nested.
    import lockfuzz.strategies

    seen: dict[str, object] = {}
    real = lockfuzz.strategies.programs_for

    def spy(target, **kwargs):  # type: ignore[no-untyped-def]
        seen.update(kwargs)
        return real(target, **kwargs)

    monkeypatch.setattr(lockfuzz.strategies, "programs_for", spy)
    code = main(["fuzz", "ticket", "--runs", "60", "--handlers", "3", "--failure-dir", str(tmp_path)])
    assert code == 0 and seen["max_handlers"] == 3
    assert "(swarm, seed 0, interrupts on, up to 3 a CPU)" in capsys.readouterr().out
    assert main(["fuzz", "ticket", "--handlers", "0"]) == 2
    assert "--handlers" in capsys.readouterr().err


def test_fuzz_param_is_passed_to_the_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fuzz", "rqspinlock", "--param", "poll_interval=16", "--runs", "50", "--cpus", "1",
                 "--failure-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code in (0, 1), err  # accepted; what it finds is the campaign's business
    assert "rqspinlock (swarm, seed 0, interrupts on)" in out


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["fuzz", "no_such_lock"], ["unknown target 'no_such_lock'", "tas"]),
        (["fuzz", "no_such_module_xyz:Lock"], ["cannot import module 'no_such_module_xyz'"]),
        (["fuzz", "./mylock.py"], ["unknown target './mylock.py'", "looks like a file", "'mylock:MyLock'"]),
        (["fuzz", "locks/mylock.py:Lock"], ["'locks/mylock.py' is not a module name", "'mylock:MyLock'"]),
        (["fuzz", "tas", "--cpus", "0"], ["--cpus", "0 is not >= 1"]),
        (["fuzz", "tas", "--runs", "many"], ["--runs", "'many' is not an integer"]),
        (["fuzz", "tas", "--strategy", "best"], ["--strategy", "best"]),
        (["fuzz", "tas", "--time-limit", "-3"], ["--time-limit"]),
        (["fuzz", "tas", "--param", "nokey"], ["--param", "KEY=VALUE"]),
        (["fuzz", "tas", "--param", "poll_interval=3"], ["poll_interval", "TasLock takes no parameters"]),
        (["fuzz", "rqspinlock", "--param", "poll_interval=0"], ["poll_interval=0"]),
        (["fuzz", "rqspinlock", "--param", "poll=3"], ["poll", "takes only poll_interval"]),
        (["fuzz"], ["TARGET"]),
        (["frobnicate"], ["frobnicate"]),
        (["replay", "does-not-exist.json"], ["does-not-exist.json", "cannot read"]),
        (["show", "does-not-exist.json"], ["does-not-exist.json", "cannot read"]),
    ],
)
def test_bad_input_exits_2_with_one_line(argv: list[str], needles: list[str], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    _assert_one_line_error(err, *needles)
    assert not (tmp_path / ".lockfuzz").exists()


@pytest.mark.parametrize(
    ("source", "needle"), [("x = (\n", "SyntaxError"), ("raise RuntimeError('no lab')\n", "no lab")]
)
def test_target_module_that_fails_to_import_exits_2(source: str, needle: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "user_lock_module.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["fuzz", "user_lock_module:MyLock", "--runs", "10"]) == 2
    _assert_one_line_error(capsys.readouterr().err, "user_lock_module", needle)


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "exit codes:" in capsys.readouterr().err


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out
    for code in ("0 ", "1 ", "2 "):
        assert f"\n  {code}" in out


# -- replay and show --------------------------------------------------------------------------------
def test_replay_reproduces_and_prints_the_same_timeline(failure_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(failure_file)]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    failure = load_failure(failure_file)
    assert "reproduced: [mutual-exclusion/two-holders]" in out
    assert timeline(failure.trace, failure.violation) in out  # type: ignore[arg-type]
    assert ">> " in out


def test_replay_of_a_failure_that_passes_now_exits_0(failure_file: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # The same case against the fixed lock: the mutant's correct original.
    data = json.loads(failure_file.read_text())
    data["target"]["path"] = "lockfuzz.targets.tas:TasLock"
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(data))
    assert main(["replay", str(fixed)]) == 0
    out = capsys.readouterr().out
    assert "passes now" in out


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{ not json", "not valid JSON"),
        ('{"format": "something-else"}', "not a lockfuzz failure file"),
        ('{"format": "lockfuzz-failure", "schema": 1}', "broken failure file"),
        ('{"format": "lockfuzz-failure", "schema": 99, "lockfuzz_version": "99.0"}', "upgrade lockfuzz"),
    ],
)
@pytest.mark.parametrize("command", ["replay", "show"])
def test_corrupt_failure_file_exits_2(command: str, content: str, needle: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "corrupt.json"
    path.write_text(content)
    assert main([command, str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    _assert_one_line_error(err, needle, "corrupt.json")


def test_replay_of_a_target_that_no_longer_imports_exits_2(failure_file: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(failure_file.read_text())
    data["target"]["path"] = "no_such_module_xyz:Lock"
    path = tmp_path / "moved.json"
    path.write_text(json.dumps(data))
    assert main(["replay", str(path)]) == 2
    _assert_one_line_error(capsys.readouterr().err, "no_such_module_xyz")


def test_show_says_1_run_not_1_runs(failure_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(failure_file.read_text())
    data["found_by"]["runs"] = 1
    one = tmp_path / "one.json"
    one.write_text(json.dumps(data))
    assert main(["show", str(one)]) == 0
    out = capsys.readouterr().out
    assert "after 1 run\n" in out and "1 runs" not in out


def test_show_prints_the_recorded_timeline(failure_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(failure_file), "--no-steps"]) == 0
    out = capsys.readouterr().out
    failure = load_failure(failure_file)
    assert timeline(failure.trace, failure.violation, steps=False) in out  # type: ignore[arg-type]
    assert "load L0" not in out
    assert failure.target in out


def test_show_perfetto_writes_tracks_and_hold_slices(failure_file: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out_json = tmp_path / "out.json"
    assert main(["show", str(failure_file), "--perfetto", str(out_json)]) == 0
    assert "wrote" in capsys.readouterr().out
    data = json.loads(out_json.read_text())
    trace = load_failure(failure_file).trace
    assert trace is not None
    _check_perfetto(data, trace)
    violations = [e for e in data["traceEvents"] if e.get("cat") == "violation"]
    assert len(violations) == 1 and "two-holders" in violations[0]["name"]


def test_show_perfetto_to_an_unwritable_place_exits_2(failure_file: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(failure_file), "--perfetto", str(tmp_path / "no" / "such" / "dir.json")]) == 2
    _assert_one_line_error(capsys.readouterr().err, "cannot write")


def test_targets_lists_bundled_targets_and_mutants_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    assert "\n  tas " in out and "lockfuzz.targets.tas:TasLock" in out
    assert "timeouts: none" in out
    assert "mutants" not in out and MUTANT not in out
    assert main(["targets", "--mutants"]) == 0
    out = capsys.readouterr().out
    assert "mutants (known-broken):" in out
    assert out.index("mutants (known-broken):") < out.index(f"  {MUTANT} ")


# -- the installed script ---------------------------------------------------------------------------
def _script() -> str:
    found = shutil.which("lockfuzz", path=os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")]))
    if found is None:
        found = shutil.which("lockfuzz", path=str(Path(sys.executable).parent))
    assert found is not None, "the lockfuzz console script is not installed (pip install -e .)"
    return found


def test_console_script_fuzz_and_replay(tmp_path: Path) -> None:
    script = _script()
    env = {**os.environ, "PYTHONHASHSEED": "random"}  # the result must not depend on it
    run = subprocess.run([script, "fuzz", MUTANT, "--runs", "500", "--failure-dir", str(tmp_path)],
                         check=False, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert run.returncode == 1, run.stderr
    assert run.stderr == ""  # not a terminal: no progress line
    (path,) = tmp_path.glob("*.json")
    replayed = subprocess.run(
        [script, "replay", str(path)], check=False, capture_output=True, text=True, env=env, timeout=120
    )
    assert replayed.returncode == 1, replayed.stderr
    failure = load_failure(path)
    assert failure.trace is not None
    assert timeline(failure.trace, failure.violation) in replayed.stdout
    assert timeline(failure.trace, failure.violation) in run.stdout

    # A user's target by import path, from a module in the current directory.
    (tmp_path / "my_locks.py").write_text(
        "from lockfuzz.targets.mutants.nonatomic_tas import NonatomicTasLock\n\n"
        "class MyLock(NonatomicTasLock):\n    \"A user's lock.\"\n"
    )
    mine = subprocess.run([script, "fuzz", "my_locks:MyLock", "--runs", "500", "--failure-dir", "mine"], check=False,
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert mine.returncode == 1, mine.stderr
    (saved,) = (tmp_path / "mine").glob("*.json")
    assert load_failure(saved).target == "my_locks:MyLock"
    again = subprocess.run([script, "replay", str(saved)], check=False, capture_output=True, text=True, cwd=tmp_path,
                           timeout=120)
    assert again.returncode == 1, again.stderr

    bad = subprocess.run([script, "fuzz", "no_such_lock"], check=False, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    _assert_one_line_error(bad.stderr, "no_such_lock")


# -- the progress line ------------------------------------------------------------------------------
class _Tty:
    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass


def test_progress_line_is_carriage_return_updated_and_cleared() -> None:
    from lockfuzz._campaigns._campaign import CampaignReport
    from lockfuzz._frontends._cli import _Progress

    stream = _Tty()
    progress = _Progress(stream, enabled=True)  # type: ignore[arg-type]
    report = CampaignReport(target="t", strategy="swarm", runs=10, seconds=0.1)
    progress(report)
    assert stream.text == ""  # nothing for a campaign shorter than half a second
    report.runs, report.seconds = 2000, 1.0
    progress(report)
    assert stream.text.startswith("\rlockfuzz: 2,000 runs, 2,000 runs/s, 0 failures")
    progress.clear()
    assert stream.text.endswith("\r")
    quiet = _Progress(stream, enabled=False)  # type: ignore[arg-type]
    before = stream.text
    quiet(report)
    assert stream.text == before


def test_progress_shows_the_total_the_percentage_and_the_time_left() -> None:
    from lockfuzz._campaigns._campaign import CampaignReport
    from lockfuzz._frontends._cli import progress_text

    report = CampaignReport(target="t", strategy="swarm", runs=1000, seconds=2.0, max_runs=5000)
    assert progress_text(report) == (
        "lockfuzz: 1,000 of 5,000 runs (20%), 500 runs/s, 0 failures, 2.0 s, about 8 s left"
    )
    report.phase, report.phase_runs = "minimising mutual-exclusion/two-holders", 1
    assert progress_text(report) == ("lockfuzz: minimising mutual-exclusion/two-holders: 1 run, 2.0 s "
                                     "(search: 1,000 of 5,000 runs (20%), 0 failures)")


def test_progress_in_a_log_is_a_line_every_ten_seconds() -> None:
    from lockfuzz._campaigns._campaign import CampaignReport
    from lockfuzz._frontends._cli import LOG_INTERVAL, _Progress

    stream = _Tty()
    progress = _Progress(stream, enabled=True, terminal=False)  # type: ignore[arg-type]
    report = CampaignReport(target="t", strategy="swarm", max_runs=5000)
    for seconds in (0.6, 5.0, LOG_INTERVAL + 0.5, LOG_INTERVAL + 3, 2 * LOG_INTERVAL + 1):
        report.runs, report.seconds = int(seconds * 100), seconds
        progress(report)
    lines = stream.text.split("\n")
    assert lines[-1] == "" and "\r" not in stream.text
    assert [line.split(" of ")[0] for line in lines[:-1]] == ["lockfuzz: 1,050", "lockfuzz: 2,100"]
    progress.clear()
    assert stream.text.endswith("\n")  # nothing to clear in a log


def test_fuzz_json_is_a_machine_readable_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fuzz", MUTANT, "--runs", "500", "--failure-dir", str(tmp_path), "--json"]) == 1
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["target"] == MUTANT and data["runs"] >= 1 and data["interrupted"] is False
    (failure,) = data["failures"]
    assert failure["signature"] == "mutual-exclusion/two-holders" and failure["found"] == "search"
    assert Path(failure["file"]).exists() and failure["runs_to_find"] >= 1
    assert load_failure(failure["file"]).signature == ("mutual-exclusion", "two-holders")


def test_ctrl_c_prints_what_was_found_so_far_and_exits_130(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from lockfuzz._campaigns import _campaign

    def ctrl_c(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # while the failure found is minimised

    monkeypatch.setattr(_campaign._Campaign, "_keep", ctrl_c)
    assert main(["fuzz", MUTANT, "--runs", "500", "--failure-dir", str(tmp_path), "--json"]) == 130
    out, err = capsys.readouterr()
    (raw,) = tmp_path.glob("*.json")  # saved the moment it was seen
    assert "lockfuzz: interrupted after " in err and "1 failure found so far" in err
    assert f"mutual-exclusion/two-holders (not minimised yet): {raw}" in err
    data = json.loads(out)
    assert data["interrupted"] is True and [f["file"] for f in data["failures"]] == [str(raw)]


# -- the reports themselves ---------------------------------------------------------------------------
def _hand_trace() -> Trace:
    """cpu0's task takes L0 and releases it; cpu1 waits, an interrupt on cpu1 gets EDEADLK."""
    t, c1, irq = 0, 1, 2
    events = [
        (1, 0, START, -1, 0), (1, 0, ACQUIRE, 0, 1000), (2, 0, XCHG, 0, 0), (2, 0, ACQUIRED, 0, 0),
        (3, c1, START, -1, 0), (3, c1, ACQUIRE, 0, 1000), (4, c1, XCHG, 0, 1), (5, c1, WAIT, 0, 1),
        (6, irq, IRQ_ENTER, 1, 2), (7, irq, START, -1, 0), (7, irq, ACQUIRE, 0, 50), (8, irq, LOAD, 0, 1),
        (8, irq, ACQUIRED, 0, int(lockfuzz.Status.EDEADLK)), (9, irq, IRQ_EXIT, 1, 2),
        (500, -1, CLOCK, 0, 500), (501, t, RELEASE, 0, 0), (502, t, 1, 0, 0), (502, t, RELEASED, 0, 0),
        (502, t, DONE, 0, 0), (503, c1, XCHG, 0, 0), (503, c1, ACQUIRED, 0, 0),
    ]
    return Trace(events=events, contexts=["cpu0.task", "cpu1.task", "cpu1.hardirq#0"], cells=["L0"])


def _check_perfetto(data: dict, trace: Trace) -> None:  # type: ignore[type-arg]
    """Tracks per CPU and context, and one hold slice per OK acquisition, ending at its release."""
    events = data["traceEvents"]
    json.dumps(data)  # plain JSON
    procs = {e["pid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    threads = {e["tid"]: (e["pid"], e["args"]["name"]) for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert sorted(threads) == list(range(len(trace.contexts)))
    for tid, (pid, name) in threads.items():
        assert name == trace.contexts[tid]
        assert name.startswith(procs[pid] + ".")  # cpu1.hardirq#0 is on process cpu1
    end = trace.events[-1][0]
    expected = []
    held: dict[tuple[int, int], int] = {}
    for t, ctx, kind, obj, value in trace.events:
        if kind == ACQUIRED and value == 0:
            held[(ctx, obj)] = t
        elif kind == RELEASE and (ctx, obj) in held:
            expected.append((ctx, f"hold L{obj}", held.pop((ctx, obj)) / 1000, t / 1000))
    expected += [(ctx, f"hold L{lock}", start / 1000, end / 1000) for (ctx, lock), start in held.items()]
    holds = [(e["tid"], e["name"], e["ts"], e["ts"] + e["dur"]) for e in events
             if e["ph"] == "X" and e["name"].startswith("hold ")]
    assert sorted(holds) == sorted(expected)
    for e in events:
        if "ts" in e:
            assert isinstance(e["ts"], float)


def test_perfetto_slices_of_a_hand_made_trace() -> None:
    trace = _hand_trace()
    data = perfetto(trace)
    _check_perfetto(data, trace)
    x = {(e["tid"], e["name"]): (e["ts"], e["dur"]) for e in data["traceEvents"] if e["ph"] == "X"}
    assert x[(0, "hold L0")] == (0.002, 0.499)
    assert x[(0, "release L0")] == (0.501, 0.001)
    assert x[(1, "wait L0")] == (0.003, 0.5)
    assert x[(2, "wait L0")] == (0.007, 0.001)
    assert x[(2, "hardirq#0")] == (0.006, 0.003)  # the handler's life, irq enter to exit
    errors = [e for e in data["traceEvents"] if e.get("cat") == "error"]
    assert [(e["name"], e["tid"], e["ts"]) for e in errors] == [("EDEADLK L0", 2, 0.008)]
    clocks = [e for e in data["traceEvents"] if e["ph"] == "i" and e.get("s") == "g"]
    assert [e["ts"] for e in clocks] == [0.5]
    assert not [e for e in data["traceEvents"] if e.get("cat") == "step" and e["name"].startswith("start")]
    assert not [e for e in perfetto(trace, steps=False)["traceEvents"] if e.get("cat") == "step"]


def test_perfetto_keeps_out_of_order_releases_visible() -> None:
    """Take L0, take L1, release L0 first: the holds overlap without nesting, so one goes async."""
    events = [
        (1, 0, ACQUIRE, 0, 10), (1, 0, ACQUIRED, 0, 0), (2, 0, ACQUIRE, 1, 10), (2, 0, ACQUIRED, 1, 0),
        (3, 0, RELEASE, 0, 0), (3, 0, RELEASED, 0, 0), (4, 0, RELEASE, 1, 0), (4, 0, RELEASED, 1, 0),
    ]
    data = perfetto(Trace(events=events, contexts=["cpu0.task"], cells=[]))
    holds = [e for e in data["traceEvents"] if e["name"].startswith("hold")]
    assert sorted(e["ph"] for e in holds) == ["X", "b", "e"]


def test_timeline_columns_marks_and_levels() -> None:
    trace = _hand_trace()
    violation = lockfuzz.Violation("edeadlk-sound", "no-cycle", "a test violation", contexts=("cpu1.hardirq#0",),
                                   locks=(0,), time_ns=8, event_index=12)
    text = timeline(trace, violation)
    lines = text.splitlines()
    assert lines[0].split() == ["t", "(ns)", "cpu0", "cpu1"]
    assert all(len(line) <= 120 for line in lines)
    (marked,) = [line for line in lines if line.startswith(">>")]
    assert "hardirq#0: acquire L0 -> EDEADLK" in marked
    below = lines[lines.index(marked) + 1]
    assert "^^ violation [edeadlk-sound/no-cycle] a test violation" in below
    cpu1_col = lines[0].index("cpu1")
    irq = next(line for line in lines if "irq enter" in line)
    assert irq.index("hardirq#0: irq enter, interrupts task") == cpu1_col
    assert "clock jumps +491 ns" in text
    assert "hardirq#0:   load L0 = 1" in text  # steps indented under their lock operation
    short = timeline(trace, violation, steps=False)
    assert "load L0" not in short and "xchg" not in short
    assert "acquire L0 ... (budget 1 us)" in short
    assert ">>" in short
    # The JSON form of the violation (as a failure file holds it) prints the same.
    assert timeline(trace, violation.to_json()) == text
    # In a narrow table (many CPUs), rows are cut to the width, but not the judged one: its
    # status is what the verdict is about (it was cut to "acquire L0 ->...").
    narrow = timeline(trace, violation, width=40)
    (marked,) = [line for line in narrow.splitlines() if line.startswith(">>")]
    assert marked.endswith("hardirq#0: acquire L0 -> EDEADLK !")
    assert any(line.endswith("...") for line in narrow.splitlines())


def test_timeline_folds_a_polling_loop() -> None:
    events = [(1, 0, ACQUIRE, 0, 10**9)]
    t = 1
    for _ in range(500):  # wait, clock jump, recheck: 1000 rows of one loop
        t += 1
        events.append((t, 0, WAIT, 0, 1))
        t += 1000
        events.append((t, -1, CLOCK, 0, t))
    events.append((t + 1, 0, ACQUIRED, 0, int(lockfuzz.Status.ETIMEDOUT)))
    trace = Trace(events=events, contexts=["cpu0.task"], cells=["L0"])
    violation = {"oracle": "etimedout", "kind": "early", "message": "m", "event_index": len(events) - 1}
    text = timeline(trace, violation)
    assert len(text.splitlines()) < 15
    assert "repeat 499 more time(s)" in text
    assert text.splitlines()[-2].startswith(">>")
    assert len(timeline(trace, violation, fold=False, max_rows=None).splitlines()) > 1000
    limited = timeline(trace, violation, fold=False, max_rows=40)
    assert "rows not shown" in limited and ">>" in limited


def test_trio_targets_run_without_interrupt_handlers_unless_asked(capsys, tmp_path):  # type: ignore[no-untyped-def]
    # A trio task is cancelled, not interrupted by a handler on top of it: by default a campaign
    # over a trio target draws no handlers, and the summary says which is in force.
    from lockfuzz.strategies import interrupts_for
    from lockfuzz.targets.trio_locks import TrioLock

    assert not interrupts_for(TrioLock) and interrupts_for(lockfuzz.resolve_target("tas"))
    assert main(["fuzz", "trio_lock", "--runs", "60", "--quiet", "--failure-dir", str(tmp_path)]) == 0
    assert "(swarm, seed 0, interrupts off, cancellations on)" in capsys.readouterr().out
    assert main(["fuzz", "trio_lock", "--runs", "60", "--quiet", "--interrupts", "--failure-dir", str(tmp_path)]) == 0
    assert "(swarm, seed 0, interrupts on, cancellations on)" in capsys.readouterr().out

    class Opted(TrioLock):
        capabilities = lockfuzz.Capabilities(timeouts=TrioLock.capabilities.timeouts, interrupts=True)

    assert interrupts_for(Opted)
    assert "interrupt handlers in campaigns: on by default" in Opted.capabilities.describe()
    from hypothesis import find
    from hypothesis.errors import NoSuchExample

    from lockfuzz.strategies import programs_for

    from hypothesis import settings

    # 300 draws, not find()'s default 2,000 (ten seconds under coverage): a strategy that drew
    # handlers at all would draw one within the first few dozen, as Opted's does below.
    with pytest.raises(NoSuchExample):
        find(programs_for(TrioLock), lambda p: p.n_handlers > 0,
             settings=settings(max_examples=300, database=None, derandomize=True))
    assert find(programs_for(Opted), lambda p: p.n_handlers > 0).n_handlers > 0
