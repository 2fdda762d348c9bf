"""Capacities as program data (#12): a lock built with a capacity of its own per program.

A semaphore's capacity is part of the counterexample: a program gives each lock one
(``Program(capacities=...)``, ``capacities L0 3, L1 1`` in the text form's header), the strategies
draw them for a target that is built with one per lock (``Sharing.capacity_range``), the target
reads them (``machine.capacity``), the oracles hold each lock to its own, failure files keep them
(schema 3) and the minimiser keeps them in step with the locks. Each check here would fail if the
capacity were dropped anywhere on that path.
"""

from __future__ import annotations

import json
from pathlib import Path

import hypothesis.errors
import pytest
import trio
from hypothesis import given, settings

import lockfuzz
from lockfuzz import CpuProgram, InvalidArgument, Lock, Machine, Program, Sharing, Unlock, Work
from lockfuzz._reports._failure_file import SCHEMA, Failure, load_failure, replay, write_failure
from lockfuzz._campaigns._minimise import _cleanups
from lockfuzz.strategies import programs, programs_for
from lockfuzz.targets.mutants.extra_permit import CountingSemaphore, ExtraPermitSemaphore
from lockfuzz.targets.ticket import TicketLock
from lockfuzz.targets.trio_locks import PER_LOCK, TrioCapacityLimiter, TrioSemaphore


def holders(n: int, lock: int = 0, n_locks: int = 1, capacities: tuple[int, ...] = ()) -> Program:
    """``n`` CPUs, each holding ``lock`` shared for a while: with no preemption, all at once."""
    line = (Lock(lock, shared=True), Work(100), Unlock(lock))
    return Program(cpus=(CpuProgram(task=line),) * n, n_locks=n_locks, capacities=capacities)


# -- the program ------------------------------------------------------------------------------------
def test_capacities_are_part_of_the_text_and_json_forms():
    program = holders(2, lock=1, n_locks=2, capacities=(3, 1))
    text = program.describe()
    assert text.splitlines()[0] == "2 CPU(s), 2 lock(s) (capacities L0 3, L1 1), on error unwind and stop"
    assert Program.from_text(text) == program
    assert program.to_json()["capacities"] == [3, 1]
    assert Program.from_json(program.to_json()) == program
    # A program that gives none reads as before capacities existed.
    plain = holders(2)
    assert "capacities" not in plain.to_json() and "capacities" not in plain.describe()


@pytest.mark.parametrize(
    "capacities, message",
    [((2,), r"capacities=\(2,\): expected \(\) or one int >= 1 per lock \(2 of them\)"),
     ((1, 0), r"capacities=\(1, 0\)"), ((1, True), r"capacities=\(1, True\)"), ("12", r"capacities='12'")],
)
def test_a_bad_capacity_in_a_program_is_named(capacities, message):  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgument, match=message):
        Program(cpus=(CpuProgram(),), n_locks=2, capacities=capacities)


@pytest.mark.parametrize(
    "header", ["(capacities L0 3)", "(capacities L1 3, L0 1)", "(capacities L0 three, L1 1)", "(capacities )"]
)
def test_a_bad_capacity_header_says_what_it_expected(header):  # type: ignore[no-untyped-def]
    text = f"1 CPU(s), 2 lock(s) {header}, on error unwind and stop\ncpu0.task: lock L0 shared; unlock L0"
    with pytest.raises(InvalidArgument, match=r"capacities .*: expected one per lock, in order: 'L0 N, L1 N'"):
        Program.from_text(text)


def test_the_machine_gives_each_lock_the_programs_capacity_or_the_default():
    assert Machine(n_cpus=1, n_locks=2, capacities=(3, 1)).capacity(1, default=2) == 1
    assert Machine(n_cpus=1, n_locks=2).capacity(1, default=2) == 2


# -- the promise ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(capacity=2, capacity_range=(0, 3)), r"capacity_range=\(0, 3\): expected None or \(low, high\)"),
     (dict(capacity=2, capacity_range=(3, 1)), r"capacity_range=\(3, 1\)"),
     (dict(capacity=2, capacity_range="14"), r"capacity_range='14'"),
     (dict(capacity=5, capacity_range=(1, 4)), r"capacity=5 with capacity_range=\(1, 4\)"),
     (dict(capacity=None, capacity_range=(1, 4)), r"capacity=None with capacity_range")],
)
def test_a_bad_capacity_range_is_named(kwargs, message):  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgument, match=message):
        Sharing(exclusive=False, **kwargs)


def test_targets_shows_the_capacities_a_lock_is_built_with(capsys):  # type: ignore[no-untyped-def]
    from lockfuzz._frontends._cli import main

    assert main(["targets"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    semaphore = out[out.index("trio_semaphore "):]
    assert "modes: shared, a capacity of 1 to 4 per lock, given by the program (default 2)" in semaphore


def test_a_program_with_capacities_the_target_does_not_take_is_refused():
    program = Program(cpus=(CpuProgram(task=(Lock(0), Unlock(0))),), n_locks=1, capacities=(2,))
    with pytest.raises(InvalidArgument, match=r"gives its locks capacities \(L0 2\), but TicketLock takes none"):
        lockfuzz.run(TicketLock, program)
    with pytest.raises(InvalidArgument, match=r"gives L1 capacity 5, but CountingSemaphore is built with capacities "
                                              r"from 1 to 4"):
        lockfuzz.run(CountingSemaphore, holders(1, n_locks=2, capacities=(1, 5)))
    # A fixed capacity (a parameter) takes none from programs either.
    with pytest.raises(InvalidArgument, match="takes none from programs"):
        lockfuzz.run(CountingSemaphore, holders(1, capacities=(2,)), params={"capacity": 2})


# -- the oracles hold each lock to its own ----------------------------------------------------------
def test_each_lock_admits_its_own_capacity():
    # Three holders at once are fine for a lock of 3 and the default of 2 is not what counts.
    assert lockfuzz.run(CountingSemaphore, holders(3, capacities=(3,)), []).ok
    # One permit: the second holder is one too many, on the broken semaphore (it admits 2).
    result = lockfuzz.run(ExtraPermitSemaphore, holders(2, capacities=(1,)), [])
    assert result.violation is not None and result.violation.signature == ("mutual-exclusion", "over-capacity")
    assert "holder number 2; L0 admits at most 1" in result.violation.message
    # The same two holders on the correct one: the second waits for the first.
    assert lockfuzz.run(CountingSemaphore, holders(2, capacities=(1,)), []).ok


class SemaphoreOfTwo(TrioSemaphore):
    """Builds every lock with two permits, whatever the program says: a target that ignores the
    capacity it is given is caught, because the oracle reads the program's."""

    def make_lock(self, lock: int) -> trio.Semaphore:
        return trio.Semaphore(2, max_value=2)


def test_a_lock_built_with_the_wrong_capacity_is_caught():
    program = holders(2, capacities=(1,))
    assert lockfuzz.run(TrioSemaphore, program, []).ok
    result = lockfuzz.run(SemaphoreOfTwo, program, [])
    assert result.violation is not None and result.violation.signature == ("mutual-exclusion", "over-capacity")
    assert lockfuzz.run(SemaphoreOfTwo, holders(2, capacities=(2,)), []).ok


@pytest.mark.parametrize("cls", [TrioSemaphore, TrioCapacityLimiter])
def test_trio_primitives_are_built_with_each_locks_capacity(cls):  # type: ignore[no-untyped-def]
    target = cls(Machine(n_cpus=1, n_locks=3, capacities=(1, 4, 2)))
    built = [x.max_value if isinstance(x, trio.Semaphore) else x.total_tokens for x in target.locks]
    assert built == [1, 4, 2]
    fixed = cls(Machine(n_cpus=1, n_locks=2), capacity=3)
    assert [x.max_value if isinstance(x, trio.Semaphore) else x.total_tokens for x in fixed.locks] == [3, 3]


# -- the strategies draw them -----------------------------------------------------------------------
@settings(max_examples=50, database=None)
@given(programs(max_locks=3, modes=("shared",), capacity_range=(2, 3)))
def test_programs_draw_a_capacity_per_lock_in_the_range(program):  # type: ignore[no-untyped-def]
    assert len(program.capacities) == program.n_locks
    assert set(program.capacities) <= {2, 3}


@settings(max_examples=30, database=None)
@given(programs(max_locks=3))
def test_programs_draw_no_capacities_unless_asked(program):  # type: ignore[no-untyped-def]
    assert program.capacities == ()


@pytest.mark.parametrize("bad", [(0, 2), (3, 2), (1,), "12"])
def test_programs_name_a_bad_capacity_range(bad):  # type: ignore[no-untyped-def]
    with pytest.raises(hypothesis.errors.InvalidArgument, match="capacity_range"):
        programs(capacity_range=bad).example()


def test_campaigns_draw_capacities_and_judge_each_lock_by_its_own():
    seen: set[int] = set()

    def capacities(record: lockfuzz.RunRecord) -> bool:
        seen.update(record.program.capacities)
        return True

    report = lockfuzz.fuzz(TrioSemaphore, runs=300, runs_per_program=10, seed=4, properties=[capacities])
    assert report.ok, [f.failure.violation for f in report.found]
    assert seen == {1, 2, 3, 4}


@settings(max_examples=20, database=None)
@given(programs_for(TrioSemaphore, params={"capacity": 3}))
def test_a_capacity_given_as_a_parameter_draws_none(program):  # type: ignore[no-untyped-def]
    assert program.capacities == ()


def test_the_default_campaign_finds_the_extra_permit_at_a_drawn_capacity():
    report = lockfuzz.fuzz(ExtraPermitSemaphore, runs=2000, seed=1)
    assert report.found, "the extra permit went unseen"
    failure = report.found[0].failure
    assert failure.signature == ("mutual-exclusion", "over-capacity")
    # Judged by the capacity of the lock in the (shrunk) program: capacity + 1 holders.
    lock = failure.violation["locks"][0]
    capacity = failure.program.capacities[lock] if failure.program.capacities else 2
    assert f"holder number {capacity + 1}; L{lock} admits at most {capacity}" in failure.violation["message"]
    # Shrunk to the least capacity: one permit, and two holders (with a fixed 2, it took three).
    assert failure.program.capacities == (1,) and failure.program.n_cpus == 2


# -- failure files and the minimiser keep them ------------------------------------------------------
def test_a_failure_with_capacities_saves_as_schema_3_and_replays(tmp_path):  # type: ignore[no-untyped-def]
    program = holders(2, n_locks=2, capacities=(1, 4))
    result = lockfuzz.run(ExtraPermitSemaphore, program, [])
    path = write_failure(Failure.from_run(ExtraPermitSemaphore, {}, program, result, lockfuzz.Settings()), tmp_path)
    data = json.loads(path.read_text())
    assert data["schema"] == SCHEMA == 3 and data["program"]["capacities"] == [1, 4]
    assert load_failure(path).program == program
    assert replay(path).status == "reproduced"
    data["program"]["capacities"] = [1]
    path.write_text(json.dumps(data))
    with pytest.raises(lockfuzz.ReplayError, match=r"program.capacities=\[1\], expected a list of 2 ints >= 1"):
        load_failure(path)


SCHEMA_2 = Path(__file__).parent.parent / "replay" / "schema2"


@pytest.mark.parametrize("name", sorted(p.name for p in SCHEMA_2.glob("*.json")))
def test_failure_files_of_schema_2_still_replay(name):  # type: ignore[no-untyped-def]
    # Written by lockfuzz before capacities were program data (commit 108d64e): the semaphore's
    # then default of 2 permits is now the capacity of a lock its program gives none.
    path = SCHEMA_2 / name
    assert json.loads(path.read_text())["schema"] == 2
    outcome = replay(path)
    assert outcome.status == "reproduced", outcome.message


def test_the_minimiser_drops_a_locks_capacity_with_the_lock():
    program = Program(
        cpus=(CpuProgram(task=(Lock(0, shared=True), Lock(1, shared=True), Unlock(1), Unlock(0))),),
        n_locks=2, capacities=(1, 3),
    )
    smaller = [p for p in _cleanups(program) if p.n_locks == 1]
    assert sorted(p.capacities for p in smaller) == [(1,), (3,)]
    assert all(p.capacities == (1, 3) for p in _cleanups(program) if p.n_locks == 2)


def test_the_per_lock_promise_is_the_bundled_one():
    assert TrioSemaphore.capabilities.sharing is PER_LOCK
    assert PER_LOCK.capacity_of(1, (4, 1)) == 1 and PER_LOCK.capacity_of(1, ()) == 2
