"""Your own properties, over the run's public record (``lockfuzz.RunRecord``).

The two properties of the manual: a statistics counter that must count every acquisition
(fails on a lost update, passes on the fixed lock), and "the waiter got the lock" (an
application's promise that a lock's ETIMEDOUT, deserved as far as the lock is concerned, breaks).
"""

from __future__ import annotations

import pytest

import lockfuzz
from lockfuzz import Context, CpuProgram, InvalidArgument, Lock, Machine, Program, Status, Unlock, Work
from lockfuzz._oracles import default_oracles
from lockfuzz._oracles._properties import PropertyError, PropertyOracle, RunRecord
from lockfuzz.targets.tas import TasLock

from support import RandomWalk


class CountingTas(TasLock):
    """A test-and-set lock that keeps lockstat-like statistics: a count of acquisitions, bumped
    with one atomic ``fetch_add`` before the lock is taken (it is not protected by the lock)."""

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.count = machine.cell("stats.acquisitions")

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        await self.count.fetch_add(1)
        return await super().acquire(ctx, lock, budget_ns)


class LosesCounts(CountingTas):
    """The same statistics bumped with a load and a store: two CPUs that bump it at once lose
    one. The lock itself is correct, so no built-in oracle can see it."""

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        seen = await self.count.load()
        await self.count.store(seen + 1)
        return await TasLock.acquire(self, ctx, lock, budget_ns)


def every_acquisition_is_counted(run: RunRecord) -> None:
    started = len(run.acquisitions)
    assert run.memory["stats.acquisitions"] == started, (
        f"the counter says {run.memory['stats.acquisitions']}, but {started} acquisitions began"
    )


TWO = Program(cpus=(CpuProgram(task=(Lock(0), Work(5), Unlock(0))),) * 2, n_locks=1)


def _with(*props):  # type: ignore[no-untyped-def]
    return [*default_oracles(), PropertyOracle(props)]


def test_a_lost_update_fails_the_property_and_the_fixed_lock_passes():
    found = None
    for seed in range(50):
        fixed = lockfuzz.run(CountingTas, TWO, RandomWalk(seed), oracles=_with(every_acquisition_is_counted))
        assert fixed.violation is None
        r = lockfuzz.run(LosesCounts, TWO, RandomWalk(seed), oracles=_with(every_acquisition_is_counted))
        found = found or r.violation
    assert found is not None and found.signature == ("property", "every_acquisition_is_counted")
    assert "the counter says 1, but 2 acquisitions began" in found.message
    # Without the property, nothing is wrong with the lock.
    assert all(lockfuzz.run(LosesCounts, TWO, RandomWalk(s)).violation is None for s in range(50))


def test_the_record_says_who_held_what_when():
    program = Program(
        cpus=(CpuProgram(task=(Lock(0), Work(100), Unlock(0))), CpuProgram(task=(Lock(0, 10), Unlock(0)))), n_locks=1
    )
    seen: list[RunRecord] = []
    r = lockfuzz.run("resilient_tas", program, [], oracles=_with(seen.append))
    assert r.violation is None
    (record,) = seen
    first, second = record.acquisitions
    assert (first.context, first.status, first.lock) == ("cpu0.task", Status.OK, 0)
    assert first.start_ns < first.end_ns < first.released_ns  # type: ignore[operator]
    assert (second.context, second.budget_ns, second.status) == ("cpu1.task", 10, Status.OK)
    assert second.end_ns > first.released_ns  # type: ignore[operator] # it waited for the holder
    assert record.by("cpu1.task") == (second,) and record.of(0) == (first, second)
    assert record.memory["L0"] == 0 and record.time_ns >= second.released_ns  # type: ignore[operator]


def the_waiter_got_the_lock(run: RunRecord) -> bool:
    return all(a.status == Status.OK for a in run.by("cpu1.task"))


def test_an_application_promise_a_lock_does_not_make_is_a_property_violation():
    # The waiter's 1 ms budget runs out behind a 5 ms hold: the lock's ETIMEDOUT is deserved
    # (no built-in oracle fires), but the application wanted the waiter to get the lock.
    program = Program(cpus=(CpuProgram(task=(Lock(0), Work(5_000_000), Unlock(0))),
                            CpuProgram(task=(Lock(0, 1_000_000), Unlock(0)))), n_locks=1)  # fmt: skip
    assert lockfuzz.run("trio_lock", program, []).violation is None
    r = lockfuzz.run("trio_lock", program, [], oracles=_with(the_waiter_got_the_lock))
    assert r.violation is not None and r.violation.signature == ("property", "the_waiter_got_the_lock")
    assert r.violation.message == "property the_waiter_got_the_lock returned False"


def test_a_property_that_crashes_is_the_propertys_bug_not_the_targets():
    def looks_up_a_missing_cell(run: RunRecord) -> None:
        assert run.memory["no such cell"] == 0

    with pytest.raises(PropertyError, match="property looks_up_a_missing_cell raised KeyError: 'no such cell'"):
        lockfuzz.run("tas", TWO, [], oracles=_with(looks_up_a_missing_cell))


def test_bad_properties_are_refused():
    with pytest.raises(InvalidArgument, match="is not callable"):
        PropertyOracle([3])  # type: ignore[list-item] # the bad input under test
    with pytest.raises(InvalidArgument, match="expected a list of functions"):
        PropertyOracle("every_acquisition_is_counted")  # type: ignore[arg-type] # the bad input under test

    def twin(run: RunRecord) -> None: ...

    other = (lambda: twin)()
    twin2 = lambda run: None  # noqa: E731 - a second function under the same name, for the test
    twin2.__name__ = "twin"
    with pytest.raises(InvalidArgument, match="two properties are named 'twin'"):
        PropertyOracle([other, twin2])
