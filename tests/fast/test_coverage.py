"""Target coverage (coverage.py), lock-state features and guided search (issue 7).

The campaigns here are small (a few hundred runs of small programs); what they reach is a
function of the seed, so the assertions name exact functions, lines and branches.
"""

from __future__ import annotations

import sys
import textwrap
import types
from pathlib import Path

import pytest

import lockfuzz
from lockfuzz import CpuProgram, Engine, Handler, Level, Lock, Program, Status, Unlock, Work
from lockfuzz._campaigns._campaign import CoverageReport, _shape, _Spliced
from lockfuzz._frontends._cli import main
from lockfuzz._campaigns._coverage import (
    FileCoverage, Missed, TargetCoverage, _functions, _ranges, target_sources,
)  # fmt: skip
from lockfuzz._campaigns._features import FEATURES_KEY, Features, _magnitude, summarise, summary_lines
from lockfuzz._oracles import default_oracles
from lockfuzz.strategies import programs_for
from lockfuzz.targets import rqspinlock, tas
from lockfuzz.targets.mutants import nonatomic_tas
from lockfuzz.targets.rqspinlock import RqSpinlock

pytest_plugins = ["pytester"]

# These start coverage.py measurements of their own in this process: CI runs them outside
# pytest-xdist's workers (pyproject.toml, the serial marker; .ci/run).
pytestmark = pytest.mark.serial

MS = 1_000_000


def _line_of(module: types.ModuleType, marker: str) -> int:
    (line,) = [i + 1 for i, text in enumerate(Path(module.__file__).read_text().splitlines()) if marker in text]
    return line


# -- the report names what a narrow campaign never reached ------------------------------------------
def test_report_names_the_branches_a_narrow_campaign_never_reached() -> None:
    # One CPU, no handlers: no contention, so no pending waiter (S2), no queue, no ABBA check.
    programs = programs_for(RqSpinlock, max_cpus=1, max_handlers=0)
    report = lockfuzz.fuzz(RqSpinlock, programs=programs, runs=200, coverage=True)
    cov = report.coverage
    assert cov is not None and cov.target is not None and cov.runs == report.runs == 200
    missed = cov.target.missed
    assert missed["RqSpinlock._check_abba"].never_called
    assert missed["RqSpinlock._queue"].never_called
    s2 = _line_of(rqspinlock, "# S2:")  # if val == PENDING: never true without a second CPU
    slowpath = missed["RqSpinlock._slowpath"]
    assert (s2, s2 + 1) in slowpath.branches and not slowpath.never_called
    text = cov.text()
    assert "RqSpinlock._slowpath: lines " in text and f"{s2}->{s2 + 1}" in text
    assert "RqSpinlock._check_abba: never run" in text
    # ... and what it did reach: the fast path, and the AA check of a re-lock.
    f = cov.target.file("lockfuzz.targets.rqspinlock")
    assert f.reached(_line_of(rqspinlock, "val = await self.word[lock].cmpxchg(0, LOCKED)"))
    assert 0 < cov.target.branch_pct < cov.target.line_pct < 100
    assert report.features["status_levels"] == ["EDEADLK/task", "OK/task"]
    assert report.features["max_waiters"] == 1 and report.features["irq_while_held"] == 0


def test_coverage_is_off_by_default_and_campaigns_are_deterministic() -> None:
    assert lockfuzz.fuzz("tas", runs=50).coverage is None
    a = lockfuzz.fuzz("ticket", runs=300, seed=3, coverage=True, guided=True)
    b = lockfuzz.fuzz("ticket", runs=300, seed=3, coverage=True, guided=True)
    assert a.coverage is not None and b.coverage is not None
    assert a.coverage.text() == b.coverage.text()
    assert a.coverage.features == b.coverage.features and a.coverage.corpus == b.coverage.corpus > 0
    assert a.coverage.guided and "guided search:" in a.coverage.text()


# -- lock-state features -----------------------------------------------------------------------------
def test_features_of_an_aa_deadlock_through_a_handler() -> None:
    # cpu0's task holds L0; a hardirq on cpu0 takes L0 too: rqspinlock's AA check says EDEADLK.
    program = Program(
        cpus=(CpuProgram(task=(Lock(0), Work(1000), Unlock(0)),
                         handlers=(Handler(Level.HARDIRQ, (Lock(0), Unlock(0))),)),),
        n_locks=1,
    )
    fire_when_held = _FireWhenHeld()
    result = Engine(RqSpinlock, program, fire_when_held, oracles=[*default_oracles(), Features()]).run()
    assert result.violation is None
    feats = result.features[FEATURES_KEY]
    assert {("status", "OK", "task"), ("status", "EDEADLK", "hardirq"), ("irq", "hardirq", "holding"),
            ("cycle", "AA"), ("waiters", 1), ("nesting", 1), ("cpu-attempts", "hardirq", 1),
            ("attempt", "EDEADLK", True, True), ("return", "EDEADLK", 0)} <= feats
    assert all(isinstance(f, tuple) and hash(f) is not None for f in feats)
    assert not any(f[0] == "status" and f[2] == "task" and f[1] != "OK" for f in feats)  # final check left out


class _FireWhenHeld:
    def choose(self, n: int, engine: Engine) -> int:
        if engine.truth.holder[0] is not None:
            for i, option in enumerate(engine.options()):
                if option[0] == "fire":
                    return i
        return 0


def test_features_of_waiting_timing_out_and_interrupting_a_waiter() -> None:
    # cpu0 holds L0 for 2 s; cpu1 waits and times out (250 ms, the pending waiter); a softirq
    # fires on cpu1 while it waits; the clock jumps while everyone sleeps.
    program = Program(
        cpus=(
            CpuProgram(task=(Lock(0), Work(2000 * MS), Unlock(0))),
            CpuProgram(task=(Work(10), Lock(0), Unlock(0)), handlers=(Handler(Level.SOFTIRQ, (Work(5),)),)),
        ),
        n_locks=1,
    )

    class FireWhileWaiting:
        def choose(self, n: int, engine: Engine) -> int | None:
            if any(a.ctx.cpu == 1 for a in engine.truth.attempts.values()):
                for i, option in enumerate(engine.options()):
                    if option[0] == "fire":
                        return i
            return None

    result = lockfuzz.run(RqSpinlock, program, FireWhileWaiting(), oracles=[Features()])
    feats = result.features[FEATURES_KEY]
    assert {("status", "ETIMEDOUT", "task"), ("wait", "ETIMEDOUT", 9), ("waiters", 1), ("irq", "softirq", "waiting"),
            ("clock-jump",), ("attempt", "ETIMEDOUT", False, True)} <= feats
    idle = Program(cpus=(CpuProgram(task=(Work(5), Lock(0), Unlock(0)), handlers=(Handler(Level.NMI, (Work(1),)),)),),
                   n_locks=1)
    assert ("irq", "nmi", "idle") in lockfuzz.run(RqSpinlock, idle, [1], oracles=[Features()]).features[FEATURES_KEY]


def test_feature_summary_and_its_text() -> None:
    runs = {("status", "OK", "task"): 9, ("status", "EDEADLK", "nmi"): 2, ("waiters", 3): 1, ("waiters", 1): 9,
            ("irq", "nmi", "holding"): 2, ("irq", "softirq", "idle"): 5, ("cycle", "ABBA"): 1, ("nesting", 2): 4,
            ("wait", "OK", 4): 3, ("wait", "OK", 7): 1, ("wait", "EDEADLK", 1): 2, ("clock-jump",): 4}
    s = summarise(runs)
    assert s == {"distinct": 12, "status_levels": ["EDEADLK/nmi", "OK/task"], "max_waiters": 3, "max_nesting": 2,
                 "irq_while_held": 2, "cycles": ["ABBA"], "clock_jumps": 4}
    text = "\n".join(summary_lines(runs, 10))
    assert "12 distinct features in 10 runs" in text and "EDEADLK/nmi, OK/task" in text
    assert "interrupts fired while a lock was held: 2 runs; deadlock cycles seen: ABBA" in text
    assert "longest wait per status: EDEADLK < 10 ns, OK >= 1 ms" in text
    empty = "\n".join(summary_lines({}, 1))
    assert "0 distinct features in 1 run\n" in empty and "statuses returned (status/level): none" in empty
    assert "longest" not in empty
    assert [_magnitude(d) for d in (0, 1, 2, 4, 7, 10)] == [
        "< 10 ns", "< 10 ns", ">= 10 ns", ">= 1 us", ">= 1 ms", ">= 1 s",
    ]


# -- which files, which functions --------------------------------------------------------------------
def test_sources_are_the_target_modules_not_the_framework() -> None:
    (src,) = target_sources(tas.TasLock)
    assert src.module == "lockfuzz.targets.tas" and src.region is None and src.path.endswith("tas.py")
    # A mutant: its own module and the target it changes, never the framework's Target.
    modules = [s.module for s in target_sources(nonatomic_tas.NonatomicTasLock)]
    assert modules == ["lockfuzz.targets.mutants.nonatomic_tas", "lockfuzz.targets.tas"]


def test_a_class_defined_in_a_function_is_measured_over_its_own_lines() -> None:
    class Local(lockfuzz.Target):
        async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
            return Status.OK

        async def release(self, ctx, lock):  # type: ignore[no-untyped-def]
            pass

    (src,) = target_sources(Local)
    assert src.path == str(Path(__file__).resolve()) and src.region is not None
    assert src.region[1] - src.region[0] == 5

    class Sub(Local):  # two local classes of one file: one region spanning both
        pass

    (both,) = target_sources(Sub)
    assert both.region is not None and both.region[0] == src.region[0] and both.region[1] > src.region[1]

    class Wide(_TopLevel):  # a local class over one defined at the top of the same file: all of it
        pass

    (whole,) = target_sources(Wide)
    assert whole.region is None and whole.path == src.path
    report = lockfuzz.fuzz(Local, runs=20, coverage=True)
    assert report.coverage is not None and report.coverage.target is not None
    t = report.coverage.target
    assert t.statements == 2 and t.line_pct == 100.0 and t.branch_pct == 100.0  # the two method bodies
    assert "every line and branch reached" in "\n".join(t.lines())


def test_a_target_without_source_reports_features_only() -> None:
    cls = type("Sourceless", (lockfuzz.Target,), {"acquire": _ok, "release": _none, "__module__": "no_such_module"})
    assert target_sources(cls) == []
    report = lockfuzz.fuzz(cls, runs=10, coverage=True)
    assert report.coverage is not None and report.coverage.target is None and report.coverage.branch_pct is None
    assert report.coverage.lines()[0] == "target coverage: no source file of the target to measure"
    assert TargetCoverage(cls).arcs() == 0


class _TopLevel(lockfuzz.Target):
    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        return Status.OK

    async def release(self, ctx, lock):  # type: ignore[no-untyped-def]
        pass


async def _ok(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
    return Status.OK


async def _none(self, ctx, lock):  # type: ignore[no-untyped-def]
    return None


def test_functions_lambdas_and_line_ranges(tmp_path: Path) -> None:
    path = tmp_path / "mod.py"
    path.write_text(textwrap.dedent('''\
        X = 1
        key = lambda v: v + 1
        class C:
            """Doc."""
            def method(self):
                def inner():
                    return 1
                return inner()
        async def top():
            # a comment
            return 2
    '''))
    names = {f.name: (f.start, f.end) for f in _functions(str(path))}
    assert names == {"<lambda>": (2, 2), "C.method": (6, 8), "C.method.inner": (7, 7), "top": (11, 11)}
    assert _ranges([3, 4, 5, 9, 12], [3, 4, 5, 7, 9, 10, 12]) == "3-5, 9, 12"
    assert _ranges([3, 7], [3, 7]) == "3-7"  # nothing between them is a statement
    assert _ranges([], [1]) == ""
    m = Missed(statements=(3, 4, 5), lines=(5,), branches=((3, 5), (4, -2)))
    assert m.describe() == "lines 5; branches 3->5, 4->exit" and not m.never_called
    assert Missed((3,), (3,), ((3, -1),)).describe() == "never run (lines 3)"
    assert Missed((3, 4), (4,), ()).describe() == "lines 4"
    f = FileCoverage(str(path), "mod", frozenset({7, 8}), frozenset({8}), 2, ((7, 8),))
    assert f.reached(7) and not f.reached(8) and not f.reached(99)
    assert not f.arc_reached(7, 8) and f.arc_reached(7, -5)


def test_result_with_two_files_names_functions_with_their_module() -> None:
    report = lockfuzz.fuzz(nonatomic_tas.NonatomicTasLock, runs=30, coverage=True, minimise=False)
    assert report.coverage is not None and report.coverage.target is not None
    t = report.coverage.target
    assert [f.module for f in t.files] == ["lockfuzz.targets.mutants.nonatomic_tas", "lockfuzz.targets.tas"]
    assert t.missed and all(name.startswith("lockfuzz.targets.") and ":" in name for name in t.missed)
    with pytest.raises(KeyError):
        t.file("no.such.module")


# -- measuring ----------------------------------------------------------------------------------------
def test_arcs_counts_distinct_arcs_and_the_public_fallback_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    measure = TargetCoverage(RqSpinlock)
    program = Program(cpus=(CpuProgram(task=(Lock(0), Unlock(0))),), n_locks=1)
    measure.start()
    lockfuzz.run(RqSpinlock, program)
    measure.stop()
    first = measure.arcs()
    measure.start()
    lockfuzz.run(RqSpinlock, program)  # the same run again: nothing new
    measure.stop()
    assert measure.arcs() == first > 0

    # Without coverage.py's private collector data, the public (slower) data says the same.
    monkeypatch.setattr(TargetCoverage, "_raw_arcs", lambda self: None)
    assert measure.arcs() == first


def test_coverage_flags_are_checked_and_a_missing_coverage_py_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(lockfuzz.InvalidArgument, match="coverage='yes'"):
        lockfuzz.fuzz("tas", runs=10, coverage="yes")  # type: ignore[arg-type]
    with pytest.raises(lockfuzz.InvalidArgument, match="guided=1"):
        lockfuzz.fuzz("tas", runs=10, guided=1)  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "coverage", None)
    with pytest.raises(lockfuzz.InvalidArgument, match="pip install coverage"):
        lockfuzz.fuzz("tas", runs=10, coverage=True)
    monkeypatch.setitem(sys.modules, "coverage", types.ModuleType("coverage"))
    with pytest.raises(lockfuzz.InvalidArgument, match="needs coverage.py"):
        lockfuzz.fuzz("tas", runs=10, guided=True)


# -- guided search ----------------------------------------------------------------------------------
def test_spliced_source_and_program_shapes() -> None:
    class Then:
        def choose(self, n: int, engine: object) -> int:
            return n - 1

    source = _Spliced([2, 0], Then())
    assert [source.choose(3, None), source.choose(3, None), source.choose(5, None)] == [2, 0, 4]
    a = Program(cpus=(CpuProgram(task=(Lock(0), Unlock(0)), handlers=(Handler(Level.NMI, (Work(1),)),)),), n_locks=1)
    b = Program(cpus=(CpuProgram(task=(Work(3), Lock(0), Unlock(0)), handlers=(Handler(Level.NMI, (Work(2),)),)),),
                n_locks=1)
    c = Program(cpus=(CpuProgram(task=(Lock(0), Unlock(0))),), n_locks=1)
    assert _shape(a) == _shape(b) != _shape(c)


def test_guided_campaign_keeps_a_corpus_and_reports_it() -> None:
    report = lockfuzz.fuzz("rqspinlock", programs=programs_for(RqSpinlock, max_cpus=2, max_handlers=1),
                           runs=250, seed=1, guided=True, max_failures=5, minimise=False)
    cov = report.coverage
    assert cov is not None and cov.guided and cov.corpus > 0 and cov.runs == report.runs
    assert cov.target is not None and cov.target.branch_pct > 50


def test_rejected_programs_are_measured_but_not_counted() -> None:
    from hypothesis import strategies as st

    # An AA deadlock on a lock that neither detects it nor times out: the program's fault.
    aa = Program(cpus=(CpuProgram(task=(Lock(0, 10**9), Lock(0, 10**9), Unlock(0), Unlock(0))),), n_locks=1)
    fine = Program(cpus=(CpuProgram(task=(Lock(0), Unlock(0))),), n_locks=1)
    report = lockfuzz.fuzz("tas", programs=st.sampled_from([fine, aa]), runs=10, runs_per_program=1, coverage=True)
    assert report.runs == 10 and report.rejected > 0
    assert report.coverage is not None and report.coverage.runs == 10
    assert report.coverage.features[("status", "OK", "task")] == 10


def test_coverage_report_without_guidance_says_nothing_of_a_corpus() -> None:
    report = CoverageReport(None, {("status", "OK", "task"): 1}, 1)
    assert "guided" not in report.text() and "1 distinct features in 1 run\n" in report.text()


# -- command line and pytest plugin --------------------------------------------------------------------
def test_cli_reports_coverage_at_the_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fuzz", "ticket", "--runs", "100", "--coverage", "--quiet", "--failure-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith("target coverage (100 runs measured with coverage.py")
    assert any(line.startswith("lock states: ") for line in lines)
    assert lines[-1].startswith("lockfuzz: ticket (swarm, seed 0, interrupts on): 100 runs")
    code = main(["fuzz", "ticket", "--runs", "100", "--guided", "--quiet", "--failure-dir", str(tmp_path)])
    assert code == 0 and "guided search: " in capsys.readouterr().out


def test_pytest_plugin_reports_coverage_at_the_end(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lock="""
        import pytest

        @pytest.mark.lockfuzz("ticket", runs=100)
        def test_lock():
            pass

        @pytest.mark.lockfuzz("tas", runs=50, coverage=True)
        def test_marked():
            pass
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*= lockfuzz coverage =*", "test_lock.py::test_marked", "  target coverage (50 runs*"])
    assert "test_lock.py::test_lock\n" not in result.stdout.str()
    result = pytester.runpytest("-p", "no:cacheprovider", "--lockfuzz-guided")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*= lockfuzz coverage =*", "test_lock.py::test_lock", "  target coverage (100 runs*",
                                 "*guided search: *"])


def test_the_coverage_summary_reaches_the_end_under_xdist(pytester: pytest.Pytester) -> None:
    # Each worker runs its campaigns; the controller prints the summary, from the test reports.
    pytest.importorskip("xdist", reason="pytest-xdist is not installed (pip install -e '.[test]')")
    pytester.makepyfile(test_lock="""
        import pytest

        @pytest.mark.lockfuzz("tas", runs=50, coverage=True)
        def test_one():
            pass

        @pytest.mark.lockfuzz("ticket", runs=40, coverage=True)
        def test_two():
            pass
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert out.count("= lockfuzz coverage =") == 1
    result.stdout.fnmatch_lines(["test_lock.py::test_*", "  target coverage (* runs measured*"])
    assert "test_lock.py::test_one" in out and "test_lock.py::test_two" in out
    assert "target coverage (50 runs measured" in out and "target coverage (40 runs measured" in out
