"""The pytest plugin: ``@pytest.mark.lockfuzz`` tests, their saved failures, options and ini."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

BROKEN = """
import pytest

@pytest.mark.lockfuzz("nonatomic_tas", runs=400)
def test_lock():
    pass
"""

CORRECT = """
import pytest

@pytest.mark.lockfuzz("tas", runs=200)
def test_lock():
    pass
"""


def _saved(pytester: pytest.Pytester, test: str = "test_lock.py_test_lock", root: str = ".lockfuzz") -> list[Path]:
    return sorted((pytester.path / root / test).glob("*.json"))


def test_failing_target_reports_the_timeline_and_saves_its_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lock=BROKEN)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    (path,) = _saved(pytester)
    result.stdout.fnmatch_lines([
        "*lockfuzz found 1 failure in nonatomic_tas: mutual-exclusion/two-holders*",
        "FAILURE 1: mutual-exclusion/two-holders*",
        "program:",
        "*cpu0.task: lock L0*",
        "*as a per-CPU timeline:",
        "*t (ns)*cpu0*cpu1*",
        ">> *acquire L0 -> OK",
        "*^^ violation [[]mutual-exclusion/two-holders[]]*",
        f"saved: .lockfuzz/test_lock.py_test_lock/{path.name}",
        "*the next run replays*first*",
    ])
    assert "Traceback" not in result.stdout.str()


def test_next_run_replays_the_saved_failure_first_without_fuzzing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lock=BROKEN)
    pytester.runpytest().assert_outcomes(failed=1)
    (path,) = _saved(pytester)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "lockfuzz: saved failure fails again: mutual-exclusion/two-holders*",
        f"replaying saved failure .lockfuzz/test_lock.py_test_lock/{path.name}: reproduced",
        "FAILURE (saved): mutual-exclusion/two-holders",
        ">> *acquire L0 -> OK",
    ])
    assert "fuzzed" not in result.stdout.str()  # it failed before any new search
    assert _saved(pytester) == [path]


def test_saved_failure_that_passes_now_is_kept_and_fuzzing_goes_on(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lock=BROKEN)
    pytester.runpytest().assert_outcomes(failed=1)
    (path,) = _saved(pytester)
    pytester.makepyfile(test_lock=CORRECT)  # the lock was fixed
    result = pytester.runpytest("-rP")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines([
        "*LockfuzzWarning: saved failure .lockfuzz/test_lock.py_test_lock/*.json passes now*",
        f"replaying saved failure .lockfuzz/test_lock.py_test_lock/{path.name}: passes now",
        "fuzzed tas (swarm, seed 0): 200 runs in *, 0 failures",
    ])
    assert _saved(pytester) == [path]  # a regression corpus: lockfuzz never deletes it


def test_a_fixed_lock_does_not_fail_a_strict_suite_unless_asked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lock=BROKEN)
    pytester.runpytest().assert_outcomes(failed=1)
    pytester.makepyfile(test_lock=CORRECT)  # the lock was fixed
    # Our warning made an error, as a strict suite would (not every warning: under pytest-xdist a
    # third-party plugin such as pytest-benchmark warns at configure time, which -W error would
    # turn into an internal error of the inner run, nothing to do with lockfuzz).
    strict = "error::lockfuzz.LockfuzzWarning"
    result = pytester.runpytest("-W", strict)
    result.assert_outcomes(passed=1, warnings=1)
    result = pytester.runpytest("-W", strict, "--lockfuzz-strict")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*saved failure .lockfuzz/test_lock.py_test_lock/*.json passes now "
                                 "(--lockfuzz-strict)*"])
    pytester.makeini("[pytest]\nlockfuzz_strict = true\n")
    pytester.runpytest().assert_outcomes(failed=1)


def test_the_warning_is_public() -> None:
    import lockfuzz
    from lockfuzz._frontends._pytest_plugin import LockfuzzWarning

    assert lockfuzz.LockfuzzWarning is LockfuzzWarning and "LockfuzzWarning" in lockfuzz.__all__
    assert issubclass(LockfuzzWarning, UserWarning)


def test_correct_target_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lock=CORRECT)
    result = pytester.runpytest("-rP")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*Captured lockfuzz call*", "fuzzed tas (swarm, seed 0): 200 runs in *, 0 failures"])
    assert not (pytester.path / ".lockfuzz").exists()


def test_test_body_runs_first_and_can_skip(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lock="""
        import pytest

        @pytest.mark.lockfuzz("nonatomic_tas", runs=400)
        def test_lock(tmp_path):
            pytest.skip("not on this machine")
    """)
    pytester.runpytest().assert_outcomes(skipped=1)
    assert not _saved(pytester)


def test_command_line_options_override_marker_and_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nlockfuzz_runs = 55\nlockfuzz_seed = 3\nlockfuzz_strategy = pct\n")
    pytester.makepyfile(test_lock="""
        import pytest

        @pytest.mark.lockfuzz("tas")
        def test_ini():
            pass

        @pytest.mark.lockfuzz("tas", runs=66, seed=4, strategy="exhaustive")
        def test_marker():
            pass
    """)
    result = pytester.runpytest("-rP")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["fuzzed tas (pct*, seed 3): 55 runs*", "fuzzed tas (exhaustive*, seed 4): 66 runs*"])
    result = pytester.runpytest("-rP", "--lockfuzz-runs", "77", "--lockfuzz-seed", "9", "--lockfuzz-strategy", "random",
                                "--lockfuzz-time-limit", "30")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["fuzzed tas (random*, seed 9): 77 runs*", "fuzzed tas (random*, seed 9): 77 runs*"])


def test_profile_deep_multiplies_the_runs_and_explicit_runs_win(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nlockfuzz_profile = deep\n")
    pytester.makepyfile(test_lock="""
        import pytest

        @pytest.mark.lockfuzz("tas", runs=10)
        def test_deep():
            pass
    """)
    result = pytester.runpytest("-rP")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["fuzzed tas (*): 200 runs*"])
    result = pytester.runpytest("-rP", "--lockfuzz-profile", "ci")
    result.stdout.fnmatch_lines(["fuzzed tas (*): 10 runs*"])
    result = pytester.runpytest("-rP", "--lockfuzz-runs", "7")
    result.stdout.fnmatch_lines(["fuzzed tas (*): 7 runs*"])
    result = pytester.runpytest("-rP", "--lockfuzz-runs", "1")
    result.stdout.fnmatch_lines(["fuzzed tas (*): 1 run in *, 0 failures"])
    pytester.makeini("[pytest]\nlockfuzz_profile = huge\n")
    result = pytester.runpytest()
    result.stderr.fnmatch_lines(["*lockfuzz_profile = 'huge': expected one of ci, deep*"])


def test_lockfuzz_dir_ini_and_sanitised_test_ids(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nlockfuzz_dir = corpus/locks\n")
    pytester.makepyfile(test_lock="""
        import pytest

        @pytest.mark.parametrize("n", [1])
        @pytest.mark.lockfuzz("nonatomic_tas", runs=400)
        def test_param(n):
            pass
    """)
    pytester.runpytest().assert_outcomes(failed=1)
    assert len(_saved(pytester, "test_lock.py_test_param_1", root="corpus/locks")) == 1
    assert not (pytester.path / ".lockfuzz").exists()


def test_each_test_keeps_its_own_corpus(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lock=BROKEN)
    pytester.runpytest().assert_outcomes(failed=1)
    (path,) = _saved(pytester)
    other = pytester.path / ".lockfuzz" / "test_lock.py_test_other"
    other.mkdir()
    shutil.copy(path, other / path.name)  # a file in another test's folder is not this test's business
    pytester.makepyfile(test_lock=CORRECT)
    result = pytester.runpytest("-rP")
    result.assert_outcomes(passed=1, warnings=1)  # only its own saved failure was replayed


@pytest.mark.parametrize(
    ("marker", "needle"),
    [
        ('"no_such_lock"', "unknown target 'no_such_lock'"),
        ('"tas", runz=3', "unknown argument(s) runz"),
        ("", "no target"),
        ('"tas", runs=0', "runs=0: expected an int >= 1"),
        ('"tas", programs={"max_cpus": 0}', "max_cpus=0"),
        ('"tas", seed=-3', "seed=-3: expected an int >= 0"),
        ('"tas", seed="x"', "seed='x': expected an int >= 0"),
        ('"tas", params={"poll_interval": 3}', "params poll_interval: TasLock takes no parameters"),
        ('"rqspinlock", params={"poll_interval": 0}', "params: RqSpinlock rejects poll_interval=0"),
        ('"tas", params=[1]', "params=[1]: expected a dict"),
        ('"tas", program="cpu0.task: lok L0"', "program: program line 1 ('cpu0.task: lok L0'): operation 'lok L0'"),
        ('"tas", program=3', "program=3: expected a lockfuzz.Program or its text form"),
        ('"tas", properties="os:getcwd"', "properties='os:getcwd': expected a list"),
        ('"tas", properties=["os:nope"]', "property 'os:nope': os has no 'nope'"),
        ('"tas", budget_max_ns=0', "budget_max_ns=0: expected an int number of nanoseconds >= 1"),
    ],
)
def test_bad_marker_fails_the_test_with_a_clear_message(pytester: pytest.Pytester, marker: str, needle: str) -> None:
    pytester.makepyfile(test_lock=f"""
        import pytest

        @pytest.mark.lockfuzz({marker})
        def test_lock():
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    assert needle in result.stdout.str()
    assert "Traceback" not in result.stdout.str()
    assert not (pytester.path / ".lockfuzz").exists()  # nothing saved as a "regression case"


def test_a_program_that_deadlocks_by_itself_fails_with_what_is_wrong(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lock="""
        import pytest
        from hypothesis import strategies as st
        from lockfuzz import CpuProgram, Lock, Program, Unlock

        ABBA = Program(cpus=(CpuProgram(task=(Lock(0), Lock(1), Unlock(1), Unlock(0))),
                             CpuProgram(task=(Lock(1), Lock(0), Unlock(0), Unlock(1)))), n_locks=2)

        @pytest.mark.lockfuzz("tas", runs=100, programs=st.just(ABBA))
        def test_lock():
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.lockfuzz: every program the campaign drew was rejected*"])
    assert "the program deadlocks" in result.stdout.str()
    assert "Unsatisfiable" not in result.stdout.str() and "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"{ nope", "not valid JSON"), (b"\xff\xfe{}", "not UTF-8"),
     (b"[" * 100_000 + b"]" * 100_000, "nested too deeply")],
    ids=["json", "not-utf8", "deeply-nested"],
)
def test_corrupt_saved_failure_fails_the_test(pytester: pytest.Pytester, content: bytes, needle: str) -> None:
    pytester.makepyfile(test_lock=CORRECT)
    folder = pytester.path / ".lockfuzz" / "test_lock.py_test_lock"
    folder.mkdir(parents=True)
    (folder / "broken.json").write_bytes(content)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [f"*cannot replay saved failure .lockfuzz/test_lock.py_test_lock/broken.json*{needle}*"]
    )
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    ("args", "ini", "needle"),
    [
        (["--lockfuzz-runs", "0"], "", "0 is not >= 1"),
        (["--lockfuzz-strategy", "best"], "", "lockfuzz strategy 'best'"),
        ([], "lockfuzz_runs = lots", "ini option lockfuzz_runs = 'lots'"),
    ],
)
def test_bad_options_are_usage_errors(pytester: pytest.Pytester, args: list[str], ini: str, needle: str) -> None:
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(test_lock=CORRECT)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert needle in result.stderr.str()


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.lockfuzz(target, *"])


LOCAL_CLASSES = """
import pytest
from lockfuzz.targets.mutants.nonatomic_tas import NonatomicTasLock


class ModuleLock(NonatomicTasLock):
    "A user's lock, defined in the test module."


@pytest.mark.lockfuzz(ModuleLock, runs=400)
def test_module_class():
    pass


def make():
    class HiddenLock(NonatomicTasLock):
        "Defined in a function: no import path reaches it."
    return HiddenLock


@pytest.mark.lockfuzz(make(), runs=400)
def test_hidden_class():
    pass
"""


def test_target_classes_from_the_test_module_replay_too(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lock=LOCAL_CLASSES)
    pytester.runpytest().assert_outcomes(failed=2)
    assert len(_saved(pytester, "test_lock.py_test_module_class")) == 1
    assert len(_saved(pytester, "test_lock.py_test_hidden_class")) == 1
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    # Count the failure bodies' first lines, not substrings: pytest's short summary repeats the message
    # when the terminal is wide enough, so a substring count would depend on COLUMNS.
    again = [line for line in result.stdout.lines
             if line.startswith("lockfuzz: saved failure fails again: mutual-exclusion/two-holders")]
    assert len(again) == 2
    assert "fuzzed" not in result.stdout.str()


def test_marker_params_and_programs_reach_the_campaign(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lock="""
        import pytest
        from lockfuzz.strategies import programs_for
        from lockfuzz.targets.tas import TasLock

        SEEN = []

        class ParamLock(TasLock):
            "Remembers what it was built with, and on how many CPUs."
            def __init__(self, machine, flavour="plain"):
                super().__init__(machine)
                SEEN.append((flavour, machine.n_cpus))

        @pytest.mark.lockfuzz(ParamLock, runs=30, params={"flavour": "spicy"},
                              programs=programs_for(TasLock, max_cpus=1, max_handlers=0))
        def test_params():
            pass

        @pytest.mark.lockfuzz(ParamLock, runs=30, programs={"max_cpus": 1})
        def test_programs_as_keywords():
            pass

        def test_seen():
            assert {f for f, _ in SEEN} == {"spicy", "plain"}
            assert {n for _, n in SEEN} == {1}
    """)
    pytester.runpytest().assert_outcomes(passed=3)


def test_the_marker_takes_a_program_and_properties(pytester: pytest.Pytester) -> None:
    # One program written as its text form, and a property of the application's: a statistics
    # counter bumped with a load and a store loses a count; the saved case replays first next time.
    pytester.makepyfile(test_lock="""
        import pytest
        from lockfuzz import Status
        from lockfuzz.targets.tas import TasLock

        class LosesCounts(TasLock):
            def __init__(self, machine):
                super().__init__(machine)
                self.count = machine.cell("stats.acquisitions")

            async def acquire(self, ctx, lock, budget_ns):
                seen = await self.count.load()
                await self.count.store(seen + 1)
                return await TasLock.acquire(self, ctx, lock, budget_ns)

        def counted(run):
            assert run.memory["stats.acquisitions"] == len(run.acquisitions), "a count was lost"

        @pytest.mark.lockfuzz(LosesCounts, runs=500, properties=[counted],
                              program="cpu0.task: lock L0; unlock L0\\ncpu1.task: lock L0; unlock L0")
        def test_lock():
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*property/counted*", "*a count was lost*"])
    (saved,) = (pytester.path / ".lockfuzz").rglob("*.json")
    assert '"properties"' in saved.read_text()
    again = pytester.runpytest()
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(["*saved failure fails again: property/counted*"])
