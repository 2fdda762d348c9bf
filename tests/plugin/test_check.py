"""``lockfuzz.check``: the plain Hypothesis way, one program and many schedules per example."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from lockfuzz.strategies import programs, programs_for
from lockfuzz.targets.mutants.nonatomic_tas import NonatomicTasLock
from lockfuzz.targets.tas import TasLock

from lockfuzz import InvalidArgument, Lock, Program, ProgramError, Unlock, Work
from lockfuzz._campaigns._check import LockfuzzFailure, check
from lockfuzz._model._program import CpuProgram

TWO_CPUS = Program(
    cpus=tuple(CpuProgram(task=(Lock(0, 10**9), Work(0), Unlock(0))) for _ in range(2)), n_locks=1,
)


def test_check_raises_a_failure_with_the_minimal_case() -> None:
    with pytest.raises(LockfuzzFailure) as info:
        check(NonatomicTasLock, TWO_CPUS, runs=200)
    exc = info.value
    assert isinstance(exc, AssertionError)
    assert exc.violation.signature == ("mutual-exclusion", "two-holders")
    text = str(exc)
    assert text.startswith("lockfuzz.targets.mutants.nonatomic_tas:NonatomicTasLock [mutual-exclusion/two-holders]")
    assert "cpu1.task: lock L0; unlock L0" in text  # the work 0ns of TWO_CPUS plays no part: gone
    assert "2 preemptions" in text and ">> " in text and "^^ violation" in text
    assert exc.failure.minimal and exc.failure.signature == exc.violation.signature
    assert str(exc) is text or str(exc) == text  # worked out once


def test_check_passes_a_correct_lock() -> None:
    check(TasLock, TWO_CPUS, runs=100)
    check("tas", TWO_CPUS, runs=20, strategy="exhaustive")  # exhausts its space: stops early, no error


def test_check_is_deterministic() -> None:
    schedules = set()
    for _ in range(2):
        with pytest.raises(LockfuzzFailure) as info:
            check(NonatomicTasLock, TWO_CPUS, runs=200, seed=5)
        schedules.add(tuple(info.value.schedule))
    assert len(schedules) == 1


@settings(max_examples=100, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(programs(max_cpus=2, max_locks=1, max_handlers=0))
def _hypothesis_test(program: Program) -> None:
    check(NonatomicTasLock, program, runs=30)


def test_check_under_given_shrinks_to_the_two_cpu_case() -> None:
    with pytest.raises(LockfuzzFailure) as info:
        _hypothesis_test()
    assert info.value.minimised.program.n_cpus == 2
    assert "mutual-exclusion/two-holders" in str(info.value)


@settings(max_examples=30, database=None, derandomize=True)
@given(programs_for(TasLock, max_cpus=2))
def test_check_under_given_passes_for_a_correct_lock(program: Program) -> None:
    check(TasLock, program, runs=10)


def test_deadlocking_program_is_the_programs_fault() -> None:
    aa = Program(cpus=(CpuProgram(task=(Lock(0, 10**9), Lock(0, 10**9), Unlock(0), Unlock(0))),), n_locks=1)
    with pytest.raises(ProgramError):
        check(TasLock, aa)


@settings(max_examples=20, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(programs(max_cpus=1, max_locks=1, max_handlers=0, max_depth=2))
def test_deadlocking_programs_are_rejected_under_given(program: Program) -> None:
    check(TasLock, program, runs=5)  # a self-deadlocking program is filtered out, not a failure


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"program": "not a program"}, "expected a lockfuzz.Program"),
        ({"runs": 0}, "runs=0"),
        ({"strategy": "best"}, "strategy='best'"),
        ({"settings": {}}, "expected a lockfuzz.Settings"),
        ({"target": "no_such_lock"}, "unknown target"),
    ],
)
def test_check_rejects_bad_arguments(kwargs: dict, needle: str) -> None:  # type: ignore[type-arg]
    args = {"target": TasLock, "program": TWO_CPUS, **kwargs}
    with pytest.raises(InvalidArgument, match=needle.replace("(", r"\(")):
        check(args.pop("target"), args.pop("program"), **args)


def test_the_readmes_given_example_has_no_deadline_and_finds_the_bug(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The README's own code: its lock (the first block) and its @given test (the one using check).
    import re
    from pathlib import Path

    import lockfuzz

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    (tmp_path / "mylock.py").write_text(blocks[0])
    (example,) = [b for b in blocks if "lockfuzz.check(" in b and "@given" in b]
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict = {}  # type: ignore[type-arg]
    exec(compile(example, "README.md", "exec"), namespace)
    test = namespace["test_my_lock"]
    assert test._hypothesis_internal_use_settings.deadline is None  # no spurious DeadlineExceeded/Flaky
    with pytest.raises(lockfuzz.LockfuzzFailure, match="mutual-exclusion/two-holders"):
        test()
