"""The minimiser shrinks the whole counterexample, and the report says what "minimal" covers.

Each test starts from an exact program and schedule that fail, with dead weight the failure does
not need (a second lock, ``work 0``, a CPU or handler that plays no part), and checks the exact
program the minimiser returns. Then the report: the ``minimal:`` line says what is proven (the
schedule in preemptions, the program against removing any one part) or that a bound stopped it,
and the final check is one line unless it is what failed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lockfuzz.targets.mutants.blind_aa import BlindAaLock
from lockfuzz.targets.mutants.dirty_after_timeout import DirtyAfterTimeoutLock
from lockfuzz.targets.mutants.nonatomic_tas import NonatomicTasLock
from lockfuzz.targets.mutants.scenarios import SCENARIOS
from lockfuzz.targets.tas import TasLock

import lockfuzz
from lockfuzz import CpuProgram, Failure, Handler, Level, Lock, Program, Settings, Unlock, Work
from lockfuzz._engine._events import ACQUIRE, ACQUIRED, DONE, FINAL, Trace
from lockfuzz._reports._failure_file import load_failure, write_failure
from lockfuzz._campaigns._minimise import Minimised, minimise, preemptions
from lockfuzz._reports._report import failure_report, minimality, timeline

AA = ("edeadlk-complete", "missed-AA")
TWO_HOLDERS = ("mutual-exclusion", "two-holders")


def _cs(lock: int) -> tuple[Lock, Unlock]:
    return Lock(lock), Unlock(lock)


def _flat(text: str) -> str:
    """The text with line breaks and runs of blanks as single spaces (reports wrap long lines)."""
    return " ".join(text.split())


# -- the program shrinks ----------------------------------------------------------------------------
def test_an_aa_shrinks_to_one_lock_taken_twice_and_nothing_else() -> None:
    # cpu0 nests L1 twice inside L0 (blind_aa misses the AA: its check skips the entry below the
    # top). L0, both works (one of them a trailing work 0) and cpu1 play no part.
    program = Program(cpus=(
        CpuProgram(task=(Lock(0), Work(0), Lock(1), Work(5), Lock(1), Unlock(1), Unlock(1), Unlock(0), Work(0))),
        CpuProgram(task=(Lock(0), Work(3), Unlock(0))),
    ), n_locks=2)
    assert lockfuzz.run(BlindAaLock, program, []).violation.signature == AA  # type: ignore[union-attr]
    m = minimise(BlindAaLock, program, [], AA)
    # L1 is renumbered L0 once L0 has gone.
    assert m.program == Program(cpus=(CpuProgram(task=(Lock(0), Lock(0), Unlock(0), Unlock(0))),), n_locks=1)
    assert m.decisions == []
    assert m.result.violation is not None and m.result.violation.signature == AA
    assert m.proven_minimal and m.program_minimal


def test_a_handler_and_a_cpu_that_play_no_part_go() -> None:
    # Two CPUs race for L0 on a test-and-set that is not atomic. cpu1's softirq (on L1) fires in
    # this schedule, and cpu2 works: neither matters to the race.
    program = Program(cpus=(
        CpuProgram(task=(Lock(0), Work(0), Unlock(0))),
        CpuProgram(task=(Lock(0), Work(0), Unlock(0)),
                   handlers=(Handler(Level.SOFTIRQ, (Lock(1), Work(2), Unlock(1))),)),
        CpuProgram(task=(Work(7),)),
    ), n_locks=2)
    schedule = [3, 2, 1, 1, 0, 0, 2, 0, 1, 2, 1, 0, 1, 0, 1, 0, 1]
    found = lockfuzz.run(NonatomicTasLock, program, schedule)
    assert found.violation is not None and found.violation.signature == TWO_HOLDERS
    assert "cpu1.softirq#0" in found.trace.contexts  # the handler ran in the case as found
    m = minimise(NonatomicTasLock, program, schedule, TWO_HOLDERS)
    assert m.program == Program(cpus=(CpuProgram(task=_cs(0)), CpuProgram(task=_cs(0))), n_locks=1)
    assert preemptions(m.decisions) == 2
    assert m.proven_minimal and m.program_minimal


def test_a_handler_that_is_the_failure_stays_and_the_rest_goes() -> None:
    # The hardirq retakes L0 above the task that holds it (an AA across contexts); cpu1, L1 and
    # the works play no part.
    program = Program(cpus=(
        CpuProgram(task=(Lock(0), Work(0), Unlock(0), Work(0)), handlers=(Handler(Level.HARDIRQ, (Work(0), *_cs(0))),)),
        CpuProgram(task=_cs(1)),
    ), n_locks=2)
    schedule = [0, 1, 1, 0, 0, 0, 1, 2, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 1]
    m = minimise(BlindAaLock, program, schedule, AA)
    assert m.program == Program(cpus=(CpuProgram(task=_cs(0), handlers=(Handler(Level.HARDIRQ, _cs(0)),)),), n_locks=1)
    assert preemptions(m.decisions) == 1  # the interrupt, fired while the task holds L0
    assert m.proven_minimal and m.program_minimal
    again = lockfuzz.run(BlindAaLock, m.program, m.decisions)
    assert again.violation is not None and again.trace.hash() == m.result.trace.hash()


# -- what "minimal" covers --------------------------------------------------------------------------
PROVEN = ("minimal: no schedule with fewer preemptions fails this way (proven by exhaustive search); "
          "no single CPU, handler, lock or operation can be removed "
          "(each removal was tried under every schedule with up to 2 preemptions)")


@pytest.fixture(scope="module")
def race() -> tuple[Program, list[int]]:
    """Two CPUs racing on the non-atomic test-and-set, with a work 0 each: 2 preemptions."""
    program = Program(cpus=tuple(CpuProgram(task=(Lock(0), Work(0), Unlock(0))) for _ in range(2)), n_locks=1)
    return program, [0, 0, 1, 0, 0, 1]


def _failure(m: Minimised) -> Failure:
    return Failure.from_run(NonatomicTasLock, {}, m.program, m.result, Settings(), schedule=m.decisions,
                            minimal=m.proven_minimal, program_minimal=m.program_minimal)


def test_the_report_says_what_minimal_covers(race: tuple[Program, list[int]], tmp_path: Path) -> None:
    m = minimise(NonatomicTasLock, *race, TWO_HOLDERS)
    assert m.covers == PROVEN
    report = failure_report(_failure(m))
    assert PROVEN in _flat(report)
    assert "schedule: 6 decisions, 2 preemptions, as a per-CPU timeline:" in report
    # The failure file keeps it.
    path = write_failure(_failure(m), tmp_path)
    data = json.loads(path.read_text())
    assert data["minimal"] is True and data["program_minimal"] is True
    assert load_failure(path).program_minimal is True


def test_a_file_from_before_the_program_pass_loads_and_says_what_it_does_not_know(
        race: tuple[Program, list[int]], tmp_path: Path) -> None:
    m = minimise(NonatomicTasLock, *race, TWO_HOLDERS)
    data = _failure(m).to_json()
    del data["program_minimal"]  # as lockfuzz wrote it before the key existed
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    old = load_failure(path)
    assert old.minimal and old.program_minimal is None
    assert lockfuzz.replay(path).reproduced
    assert ("minimal: no schedule with fewer preemptions fails this way (proven by exhaustive search); "
            "the program's minimality is not recorded") in _flat(failure_report(old))


def test_a_bound_that_stops_the_search_is_said(race: tuple[Program, list[int]]) -> None:
    m = minimise(NonatomicTasLock, *race, TWO_HOLDERS, max_runs=8)
    assert not m.proven_minimal and not m.program_minimal
    assert m.covers == ("minimal: a schedule with fewer preemptions may exist (a bound stopped the exhaustive "
                        "search); a CPU, handler, lock or operation may still be removable "
                        "(a bound stopped the search)")
    assert "a bound stopped" in _flat(failure_report(_failure(m)))


def test_check_says_what_minimal_covers(race: tuple[Program, list[int]]) -> None:
    with pytest.raises(lockfuzz.LockfuzzFailure) as info:
        lockfuzz.check(NonatomicTasLock, race[0], runs=200)
    text = _flat(str(info.value))
    assert PROVEN in text
    assert "cpu0.task: lock L0; unlock L0 cpu1.task: lock L0; unlock L0" in text  # the work 0s went
    assert info.value.failure.program_minimal is True


@pytest.mark.parametrize(("schedule", "program", "preempts", "text"), [
    (True, True, 0, "minimal: the schedule needs no preemption; no single CPU, handler, lock or operation can be "
                    "removed (each removal was tried under the schedule with no preemption)"),
    (True, True, 1, "minimal: no schedule with fewer preemptions fails this way (proven by exhaustive search); no "
                    "single CPU, handler, lock or operation can be removed (each removal was tried under every "
                    "schedule with up to 1 preemption)"),
    (True, False, 1, "minimal: no schedule with fewer preemptions fails this way (proven by exhaustive search); a "
                     "CPU, handler, lock or operation may still be removable (a bound stopped the search)"),
    (False, True, 3, "minimal: a schedule with fewer preemptions may exist (a bound stopped the exhaustive search); "
                     "no single CPU, handler, lock or operation can be removed (each removal was tried under every "
                     "schedule with up to 3 preemptions)"),
    (False, None, 2, "minimal: not proven (the case as found, or a bound stopped the minimiser)"),
])
def test_each_claim_is_said_exactly(schedule: bool, program: bool | None, preempts: int, text: str) -> None:
    assert minimality(schedule, program, preempts) == text


# -- the final check in the timeline ----------------------------------------------------------------
def _final_index(trace: lockfuzz.Trace) -> int:
    (index,) = [i for i, e in enumerate(trace.events) if e[2] == FINAL]
    return index


def test_a_final_check_that_passed_is_one_line() -> None:
    program = Program(cpus=(CpuProgram(task=(Lock(0), Lock(1), Unlock(1), Unlock(0))),), n_locks=2)
    result = lockfuzz.run(TasLock, program, [])
    assert result.violation is None
    final = _final_index(result.trace)
    line = (f"== final check: cpu0.final took L0, L1 and released them: ok "
            f"({len(result.trace.events) - final - 1} events) ==")
    text = timeline(result.trace)
    assert line in text.splitlines()[-1]
    assert "final: acquire" not in text and "a fresh context takes every lock" not in text
    # A violation before the final check (here one placed on cpu0's first OK) leaves it folded.
    ok = next(i for i, e in enumerate(result.trace.events) if e[1] == 0 and e[2] == ACQUIRED)
    early = lockfuzz.Violation("mutual-exclusion", "two-holders", "a test violation", event_index=ok)
    text = timeline(result.trace, early)
    assert line in text and "final: acquire" not in text
    assert ">>" in text
    # fold=False shows every row, the final check's too.
    assert "final: acquire L1 -> OK" in timeline(result.trace, fold=False)


def test_a_final_check_that_failed_is_shown_in_full() -> None:
    result = lockfuzz.run(DirtyAfterTimeoutLock, SCENARIOS["dirty_after_timeout"], [])
    assert result.violation is not None and result.violation.signature == ("final-state", "dirty-lock")
    assert result.violation.event_index > _final_index(result.trace)
    failure = Failure.from_run(DirtyAfterTimeoutLock, {}, SCENARIOS["dirty_after_timeout"], result, Settings())
    report = failure_report(failure, steps=False)
    assert "== final check: a fresh context takes every lock ==" in report
    assert "final: acquire L0 ... (budget 10 s)" in report
    marked = [line for line in report.splitlines() if line.startswith(">>")]
    assert len(marked) == 1 and "final: acquire L0 -> ETIMEDOUT !" in marked[0]
    assert "cpu0.final took" not in report


def test_a_folded_final_check_says_what_went_wrong_when_no_oracle_judged_it() -> None:
    # Run without oracles, a final check can end badly with no violation: the line says how.
    events = [(1, 0, DONE, 0, 0), (1, -1, FINAL, 0, 0), (2, 1, ACQUIRE, 0, 10**10),
              (3, 1, ACQUIRED, 0, int(lockfuzz.Status.ETIMEDOUT)), (3, 1, DONE, 0, 0)]
    trace = Trace(events=events, contexts=["cpu0.task", "cpu0.final"], cells=["L0"])
    assert timeline(trace).splitlines()[-1].strip().endswith(
        "== final check: cpu0.final took no lock: L0 -> ETIMEDOUT (3 events) ==")
