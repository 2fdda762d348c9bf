"""Trio timeouts to the nanosecond: a ``trio_budget`` scope marks its clock, and the driver finds
it expired at the wake its deadline causes.

``lockfuzz.trio_target`` times each acquisition with ``trio_budget`` (``trio.move_on_after`` with
its clock marked), so a trio target is judged as rqspinlock's own clock is: not before its
budget (``etimedout/early``) and no later in its own time (``bounded-waiting/late``,
``Timeouts.late_ns=0``). With exact programs and schedules:

- the bundled ``trio.Lock`` (and the limiter's shared path, which opens its own scope) finds its
  budget expired exactly at armed + budget, and is clean;
- a variant whose deadline is 1 ns short is early, 1 ns long is late;
- a lock that shields its wait from the budget's deadline is late by as long as it overstays,
  where before (``trio.move_on_after``, unmarked) an overstay under the 100 us slack passed;
- a spinner whose cancellation arrives at a checkpoint is found expired on its way out, clean;
- with 10 ns steps the clock may pass the deadline by up to 9 ns before trio sees it: declared.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

import lockfuzz
from lockfuzz import Capabilities, Context, CpuProgram, Lock, Mark, Program, Status, Target, Timeouts, Unlock, Work
from lockfuzz._engine._events import ACQUIRED, CANCEL, MARK
from lockfuzz.targets.trio_locks import TrioCapacityLimiter, TrioLock

BUDGET = 1_000_000


def waiter_behind(hold: int, *, shared: bool = False) -> Program:
    """cpu0 holds L0 for ``hold`` ns; cpu1 asks for it 10 ns in, with a budget of 1 ms (shared:
    a limiter of one token)."""
    return Program(
        cpus=(
            CpuProgram(task=(Lock(0, shared=shared), Work(hold), Unlock(0))),
            CpuProgram(task=(Work(10), Lock(0, budget_ns=BUDGET, shared=shared), Unlock(0))),
        ),
        n_locks=1,
        capacities=(1,) if shared else (),
    )


def marks(result: lockfuzz.RunResult, name: str) -> dict[Mark, int]:
    """When ``name`` marked each of its clock marks (the last of each)."""
    ctx = result.trace.contexts.index(name)
    return {Mark(e[4]): e[0] for e in result.trace.events if e[1] == ctx and e[2] == MARK}


def returned(result: lockfuzz.RunResult, name: str) -> list[tuple[int, Status]]:
    ctx = result.trace.contexts.index(name)
    return [(e[0], Status(e[4])) for e in result.trace.events if e[1] == ctx and e[2] == ACQUIRED]


def run(target: Any, program: Program, **settings: Any) -> lockfuzz.RunResult:
    return lockfuzz.run(target, program, [], settings=lockfuzz.Settings(**settings))


@pytest.mark.parametrize("target, shared", [(TrioLock, False), (TrioCapacityLimiter, True)])
def test_a_bundled_trio_lock_finds_its_budget_expired_exactly_at_its_end(target, shared):
    r = run(target, waiter_behind(2 * BUDGET, shared=shared))
    assert r.ok, r.violation
    m = marks(r, "cpu1.task")
    assert m[Mark.EXPIRED] - m[Mark.ARMED] == BUDGET  # at the wake the deadline caused, not a step later
    (t, status), = [x for x in returned(r, "cpu1.task") if x[1] != Status.OK] or [(0, None)]
    assert status == Status.ETIMEDOUT and t > m[Mark.EXPIRED]


class OffByNs(TrioLock):
    """A variant whose budget's deadline is ``off`` ns from the budget (its clock still armed for
    the budget itself: a per-call clock arms the attempt's budget)."""

    off = 0

    async def acquire(self, ctx: Context, lock: int, budget_ns: int, shared: bool = False) -> Status:
        with lockfuzz.trio_budget(ctx, lock, budget_ns + self.off):
            return await self._take(self.locks[lock])
        return Status.ETIMEDOUT


class OneNsShort(OffByNs):
    off = -1


class OneNsLong(OffByNs):
    off = 1


def test_a_deadline_one_ns_short_is_early():
    r = run(OneNsShort, waiter_behind(2 * BUDGET))
    assert r.violation is not None and r.violation.signature == ("etimedout", "early"), r.violation
    assert r.violation.details == {"armed_ns": BUDGET, "expired_after_ns": BUDGET - 1}


def test_a_deadline_one_ns_long_is_late():
    r = run(OneNsLong, waiter_behind(2 * BUDGET))
    assert r.violation is not None and r.violation.signature == ("bounded-waiting", "late"), r.violation
    assert r.violation.details == {"late_ns": 1}


class ShieldsItsWait(TrioLock):
    """Waits for the lock in a shielded scope, so the budget's deadline cannot reach it: it
    returns OK once the holder lets go, however long after its budget."""

    async def acquire(self, ctx: Context, lock: int, budget_ns: int, shared: bool = False) -> Status:
        with lockfuzz.trio_budget(ctx, lock, budget_ns):
            with trio.CancelScope(shield=True):
                await self.locks[lock].acquire()
            return Status.OK
        return Status.ETIMEDOUT  # pragma: no cover - the shield keeps the deadline out


def test_a_shielded_wait_is_a_wait_for_another_context_held_to_the_slack():
    """Own time counts timed waits only, as in the direct engine: a shielded wait waits for
    another context (trio.Condition's shielded re-acquire on the way out is one). So a lock
    that shields its whole wait is held to its budget + slack (``overrun``), not to ``late``."""
    within = run(ShieldsItsWait, waiter_behind(10 + BUDGET + 50_000))
    assert within.ok, within.violation
    past = run(ShieldsItsWait, waiter_behind(10 + BUDGET + 150_000))
    assert past.violation is not None and past.violation.signature == ("bounded-waiting", "overrun"), past.violation


#: The sweep's case (``bench/false_alarms.py --targets trio_rwlock``, random, 5 CPUs, seed 51).
_TWICE = (Lock(0, budget_ns=1_000_001, shared=True), Work(0), Lock(0, budget_ns=999_999), Work(53_242), Unlock(0),
          Unlock(0), Lock(0, budget_ns=195), Work(35_454), Lock(0, budget_ns=1_000_000, shared=True), Work(153),
          Unlock(0), Unlock(0))  # fmt: skip
CANCELLED_IN_CONDITION_WAIT = Program(
    cpus=(
        CpuProgram(task=_TWICE),
        CpuProgram(task=(Lock(0, budget_ns=8_572, shared=True), Work(31_345), Lock(0, budget_ns=1_000_001, shared=True),
                         Work(1_999_999), Unlock(0), Unlock(0), Work(347))),
        CpuProgram(task=(Lock(0, budget_ns=999_999, shared=True), Work(1_520_673), Unlock(0),
                         Lock(0, budget_ns=496, shared=True), Work(118), Lock(0, budget_ns=1_000_000, shared=True),
                         Work(153), Unlock(0), Unlock(0), Work(0))),
        CpuProgram(task=_TWICE),
    ),
    n_locks=1,
)  # fmt: skip
CANCELLED_SCHEDULE = [1, 2, 0, 0, 0, 1, 2, 0, 0, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]


def test_the_way_out_of_a_scheduled_cancellation_is_not_late():
    """The schedule cancels cpu0.task in ``trio.Condition.wait`` (the trio rwlock's) 3 ns before
    its budget ends; Condition.wait retakes the condition's lock in a shielded scope, from a
    holder that lets go a ns after the budget's end. That wait is the way out, not lateness."""
    from lockfuzz.targets.trio_locks import TrioRWLock

    r = lockfuzz.run(TrioRWLock, CANCELLED_IN_CONDITION_WAIT, CANCELLED_SCHEDULE)
    cancels = [e for e in r.trace.events if e[1] == 0 and e[2] == CANCEL and e[4] == 0]
    assert cancels, "the schedule no longer cancels cpu0.task's acquisition"
    assert r.violation is None or r.violation.signature[0] != "bounded-waiting", r.violation


class SpinsWithABudget(Target):
    """A flag and ``await trio.sleep(0)`` until it is clear, timed by ``trio_budget``: the
    deadline reaches it at a checkpoint, not in a wait (it is parked as a spinner)."""

    driver = "trio"
    capabilities = Capabilities(timeouts=Timeouts(per_call=True, late_ns=0))

    def __init__(self, machine: Any) -> None:
        super().__init__(machine)
        self.held = [False] * machine.n_locks

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        with lockfuzz.trio_budget(ctx, lock, budget_ns):
            while self.held[lock]:
                await trio.sleep(0)
            self.held[lock] = True
            return Status.OK
        return Status.ETIMEDOUT

    async def release(self, ctx: Context, lock: int) -> None:
        self.held[lock] = False


def test_a_spinner_is_found_expired_on_its_way_out():
    r = run(SpinsWithABudget, waiter_behind(2 * BUDGET))
    assert r.ok, r.violation
    m = marks(r, "cpu1.task")
    assert m[Mark.EXPIRED] - m[Mark.ARMED] >= BUDGET
    assert [s for _, s in returned(r, "cpu1.task")] == [Status.ETIMEDOUT]


def test_a_coarser_step_may_pass_the_deadline_by_a_step_less_one_ns():
    r = run(TrioLock, waiter_behind(2 * BUDGET + 5), step_ns=10)
    assert r.ok, r.violation
    m = marks(r, "cpu1.task")
    assert 0 <= m[Mark.EXPIRED] - m[Mark.ARMED] - BUDGET <= 9
    coarse = TrioLock(lockfuzz.Machine(n_cpus=2, n_locks=1, step_ns=10))
    assert coarse.capabilities.timeouts.late_ns == 9 and TrioLock.capabilities.timeouts.late_ns == 0
