"""Quiet time and the way out, on the lock's own time: no allowance for steps.

A kernel waiter behind rqspinlock's queue head has no clock of its own: it waits for its head,
whose clock (500 ms from becoming head) ends in a way out that sleeps nowhere (it waits for its
successor, a runnable context, to link, then tells it to leave). Counted in virtual time, that
wait also holds every step the contexts take (the checks, the hand-offs, other CPUs scheduled in
between), which needed an allowance of 100,000 steps: a variant 50 us slower on its way out was
not caught. Counted on the lock's own time (``Machine.jumped``: time that passes while no context
can run), the bounds are exact. With exact programs:

- the bundled locks come within a few ns of their declared ``max_quiet_ns`` (declared that much
  tighter, they fail), and are clean as declared;
- a variant that sleeps 1 ns on its way out after ``EXPIRED``, or after it was told to leave
  (``Mark.TOLD``: rqspinlock's queued waiter, torn down by its timed-out head), is
  ``bounded-waiting/way-out`` (it was clean before, inside the allowance);
- steps cost nothing: a busy neighbour's steps, however many, are not quiet time.
"""

from __future__ import annotations

import pytest

import lockfuzz
from lockfuzz import CpuProgram, Lock, Program, Unlock, Work
from lockfuzz._oracles.bounded_waiting import BoundedWaiting
from lockfuzz.targets.resilient_tas import ResilientTasLock
from lockfuzz.targets.rqspinlock import RqSpinlock

from support import declaring

US, S = 1_000, 1_000_000_000

#: cpu3 becomes rqspinlock's queue head the moment cpu2 takes the lock and returns (progress),
#: and waits for cpu2's 2 s hold: quiet for its whole 500 ms clock, then it times out. (cpu1, the
#: pending waiter, takes the lock from cpu0 first; cpu2 is the head until then.)
HEAD_AFTER_PROGRESS = Program(
    cpus=(
        CpuProgram(task=(Lock(0), Work(100 * US), Unlock(0))),
        CpuProgram(task=(Work(10), Lock(0), Unlock(0))),
        CpuProgram(task=(Work(20), Lock(0), Work(2 * S), Unlock(0))),
        CpuProgram(task=(Work(30), Lock(0), Unlock(0))),
    ),
    n_locks=1,
)
#: cpu1 waits for cpu0's 1.5 s hold: the test-and-set waiter's own 1 s clock is all its quiet time.
TAS_QUIET = Program(
    cpus=(CpuProgram(task=(Lock(0), Work(3 * S // 2), Unlock(0))), CpuProgram(task=(Work(10), Lock(0), Unlock(0)))),
    n_locks=1,
)
CASES = [(RqSpinlock, HEAD_AFTER_PROGRESS), (ResilientTasLock, TAS_QUIET)]


class _QuietClocks(BoundedWaiting):
    """bounded-waiting that also keeps the most quiet time any attempt reached."""

    most = 0

    def observe(self, engine, index, ctx, kind, obj, value):  # type: ignore[no-untyped-def]
        now = engine.machine.now
        returned = engine.truth.returned
        done = [returned] if returned is not None and returned.end == now else []  # judged at its return
        for a in [*engine.truth.attempts.values(), *done]:
            self.most = max(self.most, a.quiet_ns(now))
        super().observe(engine, index, ctx, kind, obj, value)


def quiet_most(target: type, program: Program) -> int:
    """The most quiet time (the lock's own time since its last progress) of a run that passes."""
    clocks = _QuietClocks()
    r = lockfuzz.run(target, program, [], oracles=[clocks])
    assert r.violation is None, r.violation
    return clocks.most


@pytest.mark.parametrize("target, program", CASES, ids=["rqspinlock", "resilient_tas"])
def test_the_bundled_lock_comes_within_a_few_ns_of_its_quiet_bound(target, program):
    r = lockfuzz.run(target, program, [])
    assert r.violation is None, r.violation
    bound = target.capabilities.timeouts.max_quiet_ns
    most = quiet_most(target, program)
    # Short by the steps of its last poll before it sleeps (its work, not its waiting).
    assert bound - 16 <= most <= bound, (bound, most)
    if bound - (bound - most) - 1 >= target.capabilities.timeouts.min_ns:  # a declaration may be that tight
        tighter = lockfuzz.run(declaring(target, max_quiet_ns=most - bound - 1), program, [])
        assert tighter.violation is not None and tighter.violation.signature == ("bounded-waiting", "overrun")


class RqSleepsOnItsWayOut(RqSpinlock):
    """rqspinlock whose timed-out queue head sleeps 1 ns before it tells its successor to leave
    (or resets the tail): its way out is 1 ns of the lock's own time."""

    async def _try_cmpxchg_tail(self, lock: int, tail: int) -> bool:
        await self.machine.sleep_until(self.machine.now + self.machine.step_ns + 1)  # past its own step
        return await super()._try_cmpxchg_tail(lock, tail)


class TasSleepsOnItsWayOut(ResilientTasLock):
    """The test-and-set lock sleeping 1 ns before it releases its table entry on the way out."""

    async def _release_entry(self, cpu: int) -> None:
        await self.machine.sleep_until(self.machine.now + self.machine.step_ns + 1)  # past its own step
        await super()._release_entry(cpu)


#: HEAD_AFTER_PROGRESS with cpu4 queued behind cpu3: told to leave when cpu3 times out.
TOLD_TO_LEAVE = Program(
    cpus=(*HEAD_AFTER_PROGRESS.cpus, CpuProgram(task=(Work(40), Lock(0), Unlock(0)))),
    n_locks=1,
)
#: rqspinlock's encoded tail for cpu4's first MCS node: ``(cpu + 1) << 2 | idx``, shifted by 16.
CPU4_TAIL = (4 + 1) << 2 << 16


class RqToldSleepsOnItsWayOut(RqSpinlock):
    """rqspinlock whose waiter on cpu4, told to leave, sleeps 1 ns before it resets the tail."""

    async def _try_cmpxchg_tail(self, lock: int, tail: int) -> bool:
        if tail == CPU4_TAIL:
            await self.machine.sleep_until(self.machine.now + self.machine.step_ns + 1)  # past its own step
        return await super()._try_cmpxchg_tail(lock, tail)


@pytest.mark.parametrize(
    "variant, program, waiter, how",
    [
        (RqSleepsOnItsWayOut, HEAD_AFTER_PROGRESS, "cpu3.task", "found its timeout on L0 expired"),
        (RqToldSleepsOnItsWayOut, TOLD_TO_LEAVE, "cpu4.task", "was told to leave L0 at"),
        (TasSleepsOnItsWayOut, TAS_QUIET, "cpu1.task", "found its timeout on L0 expired"),
    ],
    ids=["rqspinlock-head", "rqspinlock-told", "resilient_tas"],
)
def test_a_way_out_one_ns_slower_is_caught(variant, program, waiter, how):
    assert lockfuzz.run(RqSpinlock if "Rq" in variant.__name__ else ResilientTasLock, program, []).ok
    r = lockfuzz.run(variant, program, [])
    assert r.violation is not None and r.violation.signature == ("bounded-waiting", "way-out"), r.violation
    assert r.violation.contexts == (waiter,) and r.violation.details == {"way_out_ns": 1}
    assert how in r.violation.message


def test_steps_are_not_quiet_time():
    """cpu2 takes an uncontended L1 over and over while cpu1 waits out its 1 s clock: thousands
    of steps, each 10 ns of virtual time, none of them the lock's own time."""
    busy = CpuProgram(task=(Lock(1), Unlock(1)) * 400)
    program = Program(cpus=(*TAS_QUIET.cpus, busy), n_locks=2)
    settings = lockfuzz.Settings(step_ns=10)
    r = lockfuzz.run(ResilientTasLock, program, [], settings=settings)
    assert r.violation is None, r.violation
    assert r.steps > 1_000
