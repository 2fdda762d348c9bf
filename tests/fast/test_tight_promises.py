"""Promises as tight as the original's: each order a bundled target declares is exactly what its
lock does, so a change that loosens the lock by one step is caught.

Both sides of every declared bound, each under every schedule with up to two preemptions (the
exhaustive search: deterministic, and the first failing schedule has the fewest preemptions):

- the bundled lock keeps its declaration (no schedule fails);
- the declaration cannot be tighter: one step tighter and the bundled lock fails it;
- a variant of the lock one step looser (its doorway one step longer) fails the declaration as it
  stands, so the declared doorway is the lock's, not a comfortable overestimate.

Detection latency is declared per deadlock class where the lock differs (resilient locks find
AA at the first poll of a wait, ABBA only at a check more than 1 ms later), on the cycle's clock
(edeadlk_complete), to the nanosecond: AA 0 ns, and a lock that sleeps 1 ns before its AA check
is caught; ABBA within 1 ns of the most the lock reaches, and a lock that waits 4 ns before its
scans is caught. Timeouts to the step are in test_tight_timeouts.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import trio
from support import cycle_clock

import lockfuzz
from lockfuzz import (
    Capabilities, Context, CpuProgram, Detection, Fairness, InvalidArgument, Lock, Machine, Program, Status,
    Unlock, Violation, Work,
)  # fmt: skip
from lockfuzz._search.exhaustive import bounded_schedules
from lockfuzz.targets.bakery import BakeryLock, capabilities_for
from lockfuzz.targets.mcs import DOORWAY_STEPS, McsLock
from lockfuzz.targets.peterson import PetersonLock
from lockfuzz.targets.resilient_tas import ResilientTasLock
from lockfuzz.targets.rqspinlock import RqSpinlock
from lockfuzz.targets.ticket import TicketLock
from lockfuzz.targets.trio_locks import TrioCapacityLimiter, TrioLock, TrioSemaphore, TrioStrictFIFOLock

#: A holder and two later waiters on one lock: the smallest program where one waiter can
#: overtake another.
THREE_ON_ONE = Program(
    cpus=(
        CpuProgram(task=(Lock(0), Work(10), Unlock(0))),
        CpuProgram(task=(Lock(0), Unlock(0))),
        CpuProgram(task=(Lock(0), Unlock(0))),
    ),
    n_locks=1,
)


def first_failure(target: Any, program: Program, max_preemptions: int = 2) -> tuple[list[int], Violation] | None:
    """The first schedule (fewest preemptions first) under which ``target`` fails, or None."""
    search = bounded_schedules(max_preemptions)
    schedule = next(search)
    while True:
        result = lockfuzz.run(target, program, schedule)
        if result.violation is not None:
            return list(result.decisions), result.violation
        try:
            schedule = search.send(result)
        except StopIteration:
            return None


def assert_overtaken(target: Any, preemptions: int = 1, program: Program = THREE_ON_ONE) -> None:
    found = first_failure(target, program)
    assert found is not None, f"{target.__name__}: no schedule with up to 2 preemptions fails"
    schedule, violation = found
    assert violation.signature == ("fairness", "overtaken"), (schedule, violation)
    # The earlier arrival stopped inside its doorway (one preemption), and, for the bakery, the
    # later one must be the lower CPU to win the tie (one more).
    assert sum(1 for d in schedule if d) == preemptions, schedule


# -- ticket: FIFO after a one-step doorway (the fetch_add) --------------------------------------------
class TicketClaimsNoDoorway(TicketLock):
    capabilities = Capabilities(fairness=Fairness(overtakes=0, doorway_steps=0))


class TicketLoadsFirst(TicketLock):
    """One step looser: reads the word before drawing its ticket, so its doorway is two steps."""

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        await self.words[lock].load()
        return await super().acquire(ctx, lock, budget_ns)


def test_ticket_keeps_fifo_after_its_one_step_doorway():
    assert TicketLock.capabilities.fairness == Fairness(overtakes=0, doorway_steps=1)
    assert first_failure(TicketLock, THREE_ON_ONE) is None


def test_ticket_doorway_cannot_be_shorter():
    assert_overtaken(TicketClaimsNoDoorway)


def test_a_ticket_lock_one_step_looser_fails_the_declared_doorway():
    assert_overtaken(TicketLoadsFirst)


# -- MCS: FIFO after the three steps up to the tail xchg ---------------------------------------------
class McsClaimsShorterDoorway(McsLock):
    capabilities = Capabilities(fairness=Fairness(overtakes=0, doorway_steps=DOORWAY_STEPS - 1))


class McsReadsTailFirst(McsLock):
    """One step looser: peeks at the tail before initialising its node (a 4-step doorway)."""

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        await self.tails[lock].load()
        return await super().acquire(ctx, lock, budget_ns)


def test_mcs_keeps_fifo_after_its_doorway():
    assert McsLock.capabilities.fairness == Fairness(overtakes=0, doorway_steps=3)
    assert first_failure(McsLock, THREE_ON_ONE) is None


def test_mcs_doorway_cannot_be_shorter():
    assert_overtaken(McsClaimsShorterDoorway)


def test_an_mcs_lock_one_step_looser_fails_the_declared_doorway():
    assert_overtaken(McsReadsTailFirst)


# -- Peterson: FIFO after its two doorway stores (two processes) -----------------------------------------
TWO_ON_ONE = Program(cpus=(CpuProgram(task=(Lock(0), Unlock(0))), CpuProgram(task=(Lock(0), Unlock(0)))), n_locks=1)


class PetersonClaimsOneStep(PetersonLock):
    capabilities = Capabilities(fairness=Fairness(overtakes=0, doorway_steps=1), interrupts=False, max_cpus=2)


class PetersonLooksFirst(PetersonLock):
    """One step looser: reads the other's flag before raising its own (a three-step doorway)."""

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        await self.flag[lock][1 - ctx.cpu].load()
        return await super().acquire(ctx, lock, budget_ns)


def test_peterson_keeps_fifo_after_its_two_step_doorway():
    assert first_failure(PetersonLock, TWO_ON_ONE) is None


@pytest.mark.parametrize("target", [PetersonClaimsOneStep, PetersonLooksFirst], ids=lambda c: c.__name__)
def test_peterson_doorway_is_exactly_two_steps(target: Any) -> None:
    found = first_failure(target, TWO_ON_ONE)
    assert found is not None and found[1].signature == ("fairness", "overtaken")


# -- the bakery: first-come-first-served after N + 2 steps ------------------------------------------------
class BakeryClaimsOneStepLess(BakeryLock):
    def __init__(self, machine: Any) -> None:
        super().__init__(machine)
        door = capabilities_for(machine.n_cpus).fairness.doorway_steps  # type: ignore[union-attr]
        self.capabilities = Capabilities(fairness=Fairness(overtakes=0, doorway_steps=door - 1), interrupts=False)


class BakeryLooksFirst(BakeryLock):
    """One step looser: reads its own number before it starts choosing."""

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        await self.number[lock][ctx.cpu].load()
        return await super().acquire(ctx, lock, budget_ns)


def test_bakery_is_first_come_first_served_after_its_doorway():
    assert capabilities_for(3).fairness == Fairness(overtakes=0, doorway_steps=5)
    assert first_failure(BakeryLock, THREE_ON_ONE) is None


def test_bakery_doorway_cannot_be_shorter():
    assert_overtaken(BakeryClaimsOneStepLess, preemptions=2)


def test_a_bakery_one_step_looser_fails_the_declared_doorway():
    assert_overtaken(BakeryLooksFirst, preemptions=2)


# -- trio's fair primitives: FIFO with an empty doorway ------------------------------------------------
TRIO_FIFO = [TrioLock, TrioStrictFIFOLock, TrioSemaphore, TrioCapacityLimiter]
#: THREE_ON_ONE for a semaphore or limiter, whose acquisitions are all shared: one permit, so the
#: order is a lock's (a capacity per lock, given by the program).
THREE_ON_ONE_PERMIT = Program(
    cpus=tuple(
        CpuProgram(task=tuple(Lock(op.lock, shared=True) if isinstance(op, Lock) else op for op in cp.task))
        for cp in THREE_ON_ONE.cpus
    ),
    n_locks=1,
    capacities=(1,),
)


def three_on_one(target: type) -> Program:
    sharing = target.capabilities.sharing  # type: ignore[attr-defined] # every target has capabilities
    return THREE_ON_ONE_PERMIT if sharing is not None and not sharing.exclusive else THREE_ON_ONE


def checkpointing_first(base: type) -> type:
    """``base`` one step looser: a checkpoint between beginning the acquisition and queueing."""

    class CheckpointsFirst(base):  # type: ignore[misc, valid-type] # a class built from a parameter
        async def acquire(self, ctx: Context, lock: int, budget_ns: int, shared: bool = False) -> Status:
            await trio.lowlevel.checkpoint()
            result: Status = await (super().acquire(ctx, lock, budget_ns, shared=True) if shared
                                    else super().acquire(ctx, lock, budget_ns))
            return result

    CheckpointsFirst.__name__ = CheckpointsFirst.__qualname__ = f"{base.__name__}CheckpointsFirst"
    return CheckpointsFirst


@pytest.mark.parametrize("base", TRIO_FIFO, ids=lambda c: c.__name__)
def test_trio_fifo_primitives_keep_fifo_with_no_doorway(base: type) -> None:
    assert base.capabilities.fairness == Fairness(overtakes=0, doorway_steps=0)
    assert first_failure(base, three_on_one(base)) is None


@pytest.mark.parametrize("base", TRIO_FIFO, ids=lambda c: c.__name__)
def test_a_trio_lock_one_checkpoint_looser_fails_fifo(base: type) -> None:
    assert_overtaken(checkpointing_first(base), program=three_on_one(base))


# -- detection latency per deadlock class, to the nanosecond -------------------------------------------
# On the cycle's clock (edeadlk_complete): it runs only while the whole cycle waits and a checker
# sleeps on a deadline of its own, so the steps of the checks and the schedule's delays are not in it.
MS = 1_000_000
AA = Program(cpus=(CpuProgram(task=(Lock(0), Lock(0), Unlock(0), Unlock(0))),), n_locks=1)
ABBA = Program(
    cpus=(
        CpuProgram(task=(Lock(0), Work(10_000), Lock(1), Unlock(1), Unlock(0))),
        CpuProgram(task=(Lock(1), Work(10_000), Lock(0), Unlock(0), Unlock(1))),
    ),
    n_locks=2,
)
RESILIENT = [ResilientTasLock, RqSpinlock]


class ResilientTasFindsAaLate(ResilientTasLock):
    """Looser: skips the AA check at the first poll and runs it with the ABBA check, 1 ms later."""

    async def _check_timeout(self, ctx: Context, lock: int, timer: Any) -> Any:
        if timer.end is None:  # arm the timer, as the first poll does, but check nothing
            timer.cur, timer.end = ctx.now, ctx.now + timer.duration
            return 0
        before = timer.cur
        ret = await super()._check_timeout(ctx, lock, timer)
        if ret == 0 and timer.cur != before:  # a 1 ms check just fell due
            return await self._check_aa(ctx.cpu, lock)
        return ret


def _looks_later(target: type, check: str, ns: int) -> type:
    """``target`` made looser: it sleeps ``ns`` before each of its ``check`` scans (past the step
    that starts the sleep: a sleep until the next step's own time would not block at all)."""

    async def later(self: Any, *args: Any) -> Any:
        await Machine.sleep_until(self.machine.now + self.machine.step_ns + ns)
        return await getattr(target, check)(self, *args)

    return type(f"{target.__name__}{check.title()}{ns}nsLater", (target,), {check: later})


def _declaring(target: type, latency_ns: int) -> type:
    """``target`` declaring another ABBA latency (``Detection.latency_ns``)."""

    class Declaring(target):  # type: ignore[valid-type,misc] # a class made at run time
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            caps = self.capabilities
            self.capabilities = replace(caps, detection=replace(caps.detection, latency_ns=latency_ns))

    return Declaring


@pytest.mark.parametrize("target", RESILIENT, ids=lambda c: c.__name__)
def test_resilient_locks_find_aa_before_they_sleep(target: Any) -> None:
    d = target.capabilities.detection
    assert d.latency_for(["AA"]) == 0 and MS - 2 < d.latency_for(["ABBA"]) <= MS
    assert cycle_clock(target, AA, []) == 0


@pytest.mark.parametrize("target", RESILIENT, ids=lambda c: c.__name__)
def test_a_resilient_lock_that_sleeps_one_ns_before_its_aa_check_is_caught(target: Any) -> None:
    r = lockfuzz.run(_looks_later(target, "_check_aa", 1), AA, [])  # the shortest sleep there is
    assert r.violation is not None and r.violation.signature == ("edeadlk-complete", "missed-AA")
    assert "waited 1 ns on the lock's own time" in r.violation.message
    assert "declares detection within 0 ns" in r.violation.message


def test_a_resilient_lock_finding_aa_only_with_its_abba_check_is_caught():
    r = lockfuzz.run(ResilientTasFindsAaLate, AA, [])
    assert r.violation is not None and r.violation.signature == ("edeadlk-complete", "missed-AA")


@pytest.mark.parametrize("target", RESILIENT, ids=lambda c: c.__name__)
def test_abba_latency_is_within_a_nanosecond_of_what_the_lock_does(target: Any) -> None:
    declared = target.capabilities.detection.latency_ns
    assert declared == MS - 1
    # The lock keeps it under every schedule with up to two preemptions...
    assert first_failure(target, ABBA) is None
    # ...and comes within 1 ns of it: declared 2 ns tighter, some schedule fails.
    found = first_failure(_declaring(target, declared - 2), ABBA)
    assert found is not None and found[1].signature == ("edeadlk-complete", "missed-ABBA"), found
    assert f"waited {declared - 1} ns" in found[1].message
    # A variant that waits 4 ns before each ABBA scan fails the declaration as it stands. (At 3 ns
    # it reaches 999,999 ns, inside it: its earlier scans, which miss the cycle, move with it.)
    found = first_failure(_looks_later(target, "_check_abba", 4), ABBA)
    assert found is not None and found[1].signature == ("edeadlk-complete", "missed-ABBA"), found


def test_class_latency_is_checked_and_shown():
    d = Detection(classes={"AA", "ABBA"}, latency_ns=2 * MS, class_latency_ns={"AA": 5})
    assert d.class_latency_ns == (("AA", 5),) and d.latency_for(["AA"]) == 5 and d.latency_for(["ABBA"]) == 2 * MS
    assert d.latency_for(["ABBA", "AA"]) == 5  # a cycle matching both is held to the shorter
    assert "detects: AA within 5 ns, ABBA within 2000000 ns of the cycle waiting on the lock's own time" in (
        Capabilities(detection=d).describe()
    )
    hash(d)  # still a frozen value
    with pytest.raises(InvalidArgument, match="'cycle' is not a declared class"):
        Detection(classes={"AA"}, class_latency_ns={"cycle": 5})
    with pytest.raises(InvalidArgument, match=r"class_latency_ns\['AA'\]=-1"):
        Detection(classes={"AA"}, class_latency_ns={"AA": -1})
    with pytest.raises(InvalidArgument, match="expected a mapping"):
        Detection(classes={"AA"}, class_latency_ns=5)  # type: ignore[arg-type] # the bad input under test


@pytest.mark.parametrize("bad", [0, -3, 2.5, "31"])
def test_max_held_is_checked(bad: object) -> None:
    # (This check once sat after a return statement, unreachable: a Detection(max_held=0) was accepted.)
    with pytest.raises(InvalidArgument, match=rf"max_held={bad!r}: expected None or an int >= 1"):
        Detection(classes={"AA"}, max_held=bad)  # type: ignore[arg-type] # the bad input under test
    assert Detection(classes={"AA"}, max_held=1).max_held == 1
