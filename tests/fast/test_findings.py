"""Never lose a finding (issue 14): a different violation met while shrinking is kept and reported
as found that way; the first one's report and file stay its own; the time limit bounds shrinking
and minimising, and the smallest case so far is kept."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import lockfuzz
from lockfuzz import Capabilities, Status, Target
from lockfuzz._campaigns import _campaign
from lockfuzz.strategies import programs_for


class TwoBugs(Target):
    """Not atomic (two holders need two CPUs); and, once ``armed``, a fault on one CPU."""

    capabilities = Capabilities()
    armed = False

    def __init__(self, machine):  # type: ignore[no-untyped-def]
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]
        self.alone = machine.n_cpus == 1

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        if TwoBugs.armed and self.alone:
            raise RuntimeError("the second bug")
        while await self.words[lock].load():
            await self.words[lock].wait_until(lambda v: v == 0)
        await self.words[lock].store(1)
        return Status.OK

    async def release(self, ctx, lock):  # type: ignore[no-untyped-def]
        await self.words[lock].store(0)


def test_a_violation_met_while_shrinking_is_kept_and_said_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The second bug shows only once the first has been seen: then Hypothesis, shrinking the
    # first toward one CPU, runs into it.
    save_raw = _campaign._Campaign._save_raw
    first: list[int] = []

    def arm(self, program, result):  # type: ignore[no-untyped-def]
        if not TwoBugs.armed:
            first.append(self.report.runs)
        TwoBugs.armed = True
        return save_raw(self, program, result)

    monkeypatch.setattr(_campaign._Campaign, "_save_raw", arm)
    monkeypatch.setattr(TwoBugs, "armed", False)
    report = lockfuzz.fuzz(TwoBugs, runs=400, failure_dir=tmp_path,
                           programs=programs_for(TwoBugs, max_cpus=2, max_locks=1, max_handlers=0))
    by_signature = {f.failure.signature: f for f in report.found}
    main = by_signature[("mutual-exclusion", "two-holders")]
    other = by_signature[("target-fault", "raised-RuntimeError")]
    assert main.how == "search" and main.runs_to_find == first[0]
    assert other.how == "while shrinking mutual-exclusion/two-holders"
    assert main.path is not None and other.path is not None and main.path != other.path
    assert sorted(tmp_path.glob("*.json")) == sorted([main.path, other.path])  # raw files replaced, none lost
    assert lockfuzz.replay(main.path).reproduced


def test_the_time_limit_ends_hypothesis_shrinking_and_keeps_the_case(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    shrink_runs: list[int] = []
    run = _campaign._Campaign._run

    def counted(self, program, source):  # type: ignore[no-untyped-def]
        if not self.searching:
            shrink_runs.append(1)
        return run(self, program, source)

    monkeypatch.setattr(_campaign._Campaign, "_run", counted)
    # Time is up the moment a failure is found: the search found it, nothing shrinks it.
    monkeypatch.setattr(_campaign._Campaign, "_out_of_time", lambda self: not self.searching)
    report = lockfuzz.fuzz("nonatomic_tas", runs=400, failure_dir=tmp_path)
    (found,) = report.found
    assert found.failure.signature == ("mutual-exclusion", "two-holders")
    assert found.path is not None and lockfuzz.replay(found.path).reproduced
    assert len(shrink_runs) == 1  # the one that raised the time-up, before any run


def test_the_minimiser_stops_at_its_deadline_with_the_case_unproven() -> None:
    report = lockfuzz.fuzz("nonatomic_tas", runs=400, minimise=False)
    (found,) = report.found
    f = found.failure
    seen: list[int] = []
    m = lockfuzz.minimise(lockfuzz.resolve_target("nonatomic_tas"), f.program, f.schedule, f.signature,
                          deadline=time.monotonic() - 1, progress=seen.append)
    assert m.runs == 1 and seen == [0]  # the run that confirms the case, then nothing
    assert not m.proven_minimal and not m.program_minimal
    assert m.result.violation is not None and m.result.violation.signature == f.signature


def test_a_program_that_deadlocks_by_itself_is_a_program_error_not_unsatisfiable() -> None:
    from hypothesis import strategies as st

    from lockfuzz import CpuProgram, Lock, Program, ProgramError, Unlock

    abba = Program(cpus=(CpuProgram(task=(Lock(0), Lock(1), Unlock(1), Unlock(0))),
                         CpuProgram(task=(Lock(1), Lock(0), Unlock(0), Unlock(1)))), n_locks=2)
    with pytest.raises(ProgramError, match=r"every program the campaign drew was rejected .*the program deadlocks"):
        lockfuzz.fuzz("tas", programs=st.just(abba), runs=200)
