"""Each oracle: a small target or program that violates it is caught with the right signature,
and a correct one is not reported. Every case is deterministic: scripted decisions or seeds."""

from __future__ import annotations

import dataclasses

import pytest
from support import OwnerLock, RandomWalk, Scripted, holds, waits

import lockfuzz
from lockfuzz import (
    Capabilities, CpuProgram, Detection, Fairness, Handler, Level, Lock, Mark, Program, ProgramError,
    Settings, Status, Unlock, Work, run,
)  # fmt: skip
from lockfuzz._engine._events import ACQUIRED
from lockfuzz._search.exhaustive import bounded_schedules
from lockfuzz.targets.tas import TasLock
from lockfuzz.targets.ticket import TicketLock


def prog(*tasks, n_locks=1, handlers=None, **kw):  # type: ignore[no-untyped-def]
    handlers = handlers or {}
    return Program(
        cpus=tuple(CpuProgram(task=t, handlers=tuple(handlers.get(i, ()))) for i, t in enumerate(tasks)),
        n_locks=n_locks, **kw,
    )


def first_violation(target, program, seeds=300, **kw):  # type: ignore[no-untyped-def]
    for seed in range(seeds):
        r = run(target, program, RandomWalk(seed), **kw)
        if r.violation is not None:
            return r.violation
    return None


CS = (Lock(0), Work(5), Unlock(0))


# -- mutual exclusion ------------------------------------------------------------------------
class NonAtomicTas(TasLock):
    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        word = self.words[lock]
        while await word.load():
            await word.wait_until(lambda v: v == 0)
        await word.store(1)  # the test and the set are two steps: both may see 0
        return Status.OK


def test_mutual_exclusion_caught_when_test_and_set_is_not_atomic():
    v = first_violation(NonAtomicTas, prog(CS, CS))
    assert v is not None and v.signature == ("mutual-exclusion", "two-holders")
    assert set(v.contexts) == {"cpu0.task", "cpu1.task"} and v.locks == (0,)
    assert "L0" in str(v) and "event #" in str(v)


@pytest.mark.parametrize("target", [TasLock, TicketLock])
def test_mutual_exclusion_holds_for_correct_locks(target):
    assert first_violation(target, prog(CS, CS, CS)) is None


# -- ownership -------------------------------------------------------------------------------
def test_program_that_releases_what_it_does_not_hold_is_a_program_error():
    with pytest.raises(ProgramError, match=r"cpu1.task\[0\]: Unlock\(L0\) of a lock this context does not hold"):
        prog(CS, (Unlock(0),))
    with pytest.raises(ProgramError, match="out of order"):
        prog((Lock(0), Lock(1), Unlock(0), Unlock(1)), n_locks=2)
    with pytest.raises(ProgramError, match="ends holding L0"):
        prog((Lock(0),))


def test_ownership_oracle_blames_the_program_not_the_target():
    # A program built around validation (as a buggy generator might) releases a lock another
    # context holds: the ownership oracle raises ProgramError, never a Violation of the target.
    bad = object.__new__(Program)
    object.__setattr__(bad, "cpus", (CpuProgram(task=(Lock(0), Work(100), Unlock(0))), CpuProgram(task=(Unlock(0),))))
    object.__setattr__(bad, "n_locks", 1)
    object.__setattr__(bad, "on_error", lockfuzz.OnError())
    with pytest.raises(ProgramError, match="cpu1.task releases L0, held by cpu0.task"):
        run(TasLock, bad)


# -- final state -----------------------------------------------------------------------------
class LeakyTicket(TicketLock):
    """Forgets to advance the owner after a contended acquisition: the next taker waits forever."""

    async def release(self, ctx, lock):  # type: ignore[no-untyped-def]
        word = self.words[lock]
        value = await word.load()
        if value >> 16 == (value & 0xFFFF) + 1:  # uncontended: release as usual
            await word.store_field(0, 16, (value + 1) & 0xFFFF)


class DirtyCheck(TasLock):
    def check(self):  # type: ignore[no-untyped-def]
        return ["a leaked reference count"]


def test_final_state_caught_when_the_lock_is_left_held():
    v = first_violation(LeakyTicket, prog((Lock(0), Work(50), Unlock(0)), CS))
    assert v is not None and v.oracle in ("final-state", "hang")


def test_final_state_reports_broken_invariants():
    r = run(DirtyCheck, prog(CS))
    assert r.violation is not None and r.violation.signature == ("final-state", "invariant")
    assert "leaked reference count" in r.violation.message


def test_final_state_passes_and_the_fresh_context_takes_every_lock():
    r = run(TicketLock, prog(CS, CS, n_locks=3))
    assert r.violation is None
    final = [e for e in r.trace.events if e[2] == 21 and r.trace.contexts[e[1]] == "cpu0.final"]
    assert [e[3] for e in final] == [0, 1, 2] and all(e[4] == 0 for e in final)


# -- bounded waiting and ETIMEDOUT attribution -----------------------------------------------
class SlowOwnerLock(OwnerLock):
    """Waits twice its budget before giving up."""

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        return await super().acquire(ctx, lock, 2 * budget_ns)


class HastyOwnerLock(OwnerLock):
    """Gives up after half its budget."""

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        return await super().acquire(ctx, lock, budget_ns // 2)


LONG_HOLD = prog((Lock(0), Work(10_000_000), Unlock(0)), (Lock(0, budget_ns=1_000_000), Unlock(0)))
HOLDER_FIRST = [0]  # cpu0 runs first and keeps running until it waits: cpu1 then meets a held lock


def test_bounded_waiting_caught_when_a_budget_is_overrun():
    r = run(SlowOwnerLock, LONG_HOLD, HOLDER_FIRST)
    assert r.violation is not None and r.violation.signature == ("bounded-waiting", "overrun")
    assert r.violation.contexts == ("cpu1.task",)


def test_deserved_timeout_passes_in_virtual_time():
    r = run(OwnerLock, LONG_HOLD, HOLDER_FIRST)
    assert r.violation is None
    acquired = [e for e in r.trace.events if e[2] == 21 and e[1] == 1]
    assert acquired[0][4] == Status.ETIMEDOUT
    assert r.time_ns >= 10_000_000 and r.steps < 100  # 10 ms of virtual time, a few dozen steps


def test_etimedout_caught_when_it_comes_too_early():
    r = run(HastyOwnerLock, LONG_HOLD, HOLDER_FIRST)
    assert r.violation is not None and r.violation.signature == ("etimedout", "early")


class TimingOutTas(TasLock):
    """Declares no timeouts but gives up anyway."""

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        if await self.words[lock].xchg(1):
            return Status.ETIMEDOUT
        return Status.OK


def test_etimedout_from_a_target_without_timeouts():
    r = run(TimingOutTas, LONG_HOLD, HOLDER_FIRST)
    assert r.violation is not None and r.violation.signature == ("etimedout", "undeclared")


# -- fairness --------------------------------------------------------------------------------
class FifoClaimingTas(TasLock):
    capabilities = Capabilities(fairness=Fairness(overtakes=0, doorway_steps=1))


def test_fairness_caught_when_a_waiter_is_overtaken():
    program = prog(CS, CS, CS)
    v = first_violation(FifoClaimingTas, program)
    assert v is not None and v.signature == ("fairness", "overtaken")
    assert first_violation(TicketLock, program) is None


def test_fairness_bound_allows_declared_overtakes():
    class TwoOvertakes(TasLock):
        capabilities = Capabilities(fairness=Fairness(overtakes=2))

    program = prog(CS, CS, CS)
    assert first_violation(TwoOvertakes, program) is None  # three CPUs: at most two overtakes


# -- hang and livelock -----------------------------------------------------------------------
class LostWakeupTas(TasLock):
    async def release(self, ctx, lock):  # type: ignore[no-untyped-def]
        pass  # never clears the word


def test_hang_without_cycle_is_the_targets_fault():
    r = run(LostWakeupTas, prog(CS, CS))
    assert r.violation is not None and r.violation.signature == ("hang", "no-cycle")
    assert "cpu1.task waits for L0, which nobody holds" in r.violation.message


def test_hang_on_a_cycle_of_a_non_detecting_lock_is_the_programs_deadlock():
    abba = prog(
        (Lock(0), Work(10), Lock(1), Unlock(1), Unlock(0)),
        (Lock(1), Work(10), Lock(0), Unlock(0), Unlock(1)),
        n_locks=2,
    )
    with pytest.raises(ProgramError, match=r"program deadlocks.*cycle \(ABBA\)"):
        run(TasLock, abba)


class Churner(TasLock):
    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        while True:  # changes memory for ever without taking the lock: a livelock
            await self.words[lock].fetch_add(1)
            await self.words[lock].fetch_add(-1)


def test_livelock_turns_into_a_report_with_the_last_events():
    r = run(Churner, prog(CS), settings=Settings(max_steps=2000))
    assert r.violation is not None and r.violation.signature == ("livelock", "step-limit")
    assert "fetch_add L0" in r.violation.message and r.steps == 2001


class Spinner(TasLock):
    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        while True:
            await self.words[lock].load()  # spins without ever taking the lock


def test_a_spin_that_nothing_can_end_is_a_hang_naming_what_it_re_reads():
    # Spinning is waiting: re-reading memory that nothing changes is a hang, found in a few
    # steps (the rounds that give a bounded loop room to end), not a livelock at the step limit.
    r = run(Spinner, prog(CS), settings=Settings(max_steps=2000))
    assert r.violation is not None and r.violation.signature == ("hang", "no-cycle")
    assert "cpu0.task spins, re-reading L0 = 0x0" in r.violation.message
    assert r.steps < 100


def test_plain_spinning_ends_under_the_fair_default():
    class LoadSpinTas(TasLock):
        async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
            while await self.words[lock].xchg(1):
                while await self.words[lock].load():
                    pass
            return Status.OK

    r = run(LoadSpinTas, prog((Lock(0), Work(0), Unlock(0)), CS))
    assert r.violation is None


# -- EDEADLK: sound, complete, bystander -----------------------------------------------------
AA_IRQ = prog((Lock(0), Work(1000), Unlock(0)), handlers={0: [Handler(Level.HARDIRQ, (Lock(0), Unlock(0)))]})
FIRE_WHILE_HELD = lambda: Scripted((holds("cpu0.task", 0), "cpu0.hardirq"))  # noqa: E731
ABBA = prog(
    (Lock(0), Work(10), Lock(1), Unlock(1), Unlock(0)),
    (Lock(1), Work(10), Lock(0), Unlock(0), Unlock(1)),
    n_locks=2,
)
CYCLE3 = prog(
    (Lock(0), Work(10), Lock(1), Unlock(1), Unlock(0)),
    (Lock(1), Work(10), Lock(2), Unlock(2), Unlock(1)),
    (Lock(2), Work(10), Lock(0), Unlock(0), Unlock(2)),
    n_locks=3,
)


def statuses(r):  # type: ignore[no-untyped-def]
    return {(r.trace.contexts[e[1]], e[3]): Status(e[4]) for e in r.trace.events if e[2] == 21}


def test_aa_through_an_interrupt_is_detected_by_a_correct_lock():
    r = run(OwnerLock, AA_IRQ, FIRE_WHILE_HELD())
    assert r.violation is None
    assert statuses(r)[("cpu0.hardirq#0", 0)] == Status.EDEADLK


def test_abba_across_two_cpus_is_detected_by_a_correct_lock():
    r = run(OwnerLock, ABBA)
    assert r.violation is None
    s = statuses(r)
    assert Status.EDEADLK in (s[("cpu0.task", 1)], s.get(("cpu1.task", 0)))


class TimeoutOnlyLock(OwnerLock):
    """Claims detection but never checks: every deadlock ends in a timeout."""

    async def deadlocked(self, ctx, me, owner):  # type: ignore[no-untyped-def]
        return False


def test_edeadlk_complete_caught_for_aa_through_an_interrupt():
    r = run(TimeoutOnlyLock, AA_IRQ, FIRE_WHILE_HELD())
    assert r.violation is not None and r.violation.signature == ("edeadlk-complete", "missed-AA")
    assert set(r.violation.contexts) == {"cpu0.task", "cpu0.hardirq#0"}


class TakenMarkingOwnerLock(OwnerLock):
    """OwnerLock that marks the step that takes its word (``Mark.TAKEN``)."""

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        me = ctx.cpu * 4 + int(ctx.level) + 1
        await self.waiting[me - 1].store(lock + 1)
        while True:
            owner = await self.words[lock].cmpxchg(0, me)
            if owner == 0:
                ctx.mark(Mark.TAKEN, lock)
                status = Status.OK
            elif await self.deadlocked(ctx, me, owner):
                status = Status.EDEADLK
            else:
                await self.words[lock].wait_until(lambda v: v == 0)
                continue
            await self.waiting[me - 1].store(0)
            return status


def test_a_handler_told_edeadlk_while_its_task_is_still_taking_the_lock_is_no_false_alarm():
    # Once a false alarm (edeadlk-sound/no-cycle): the task's compare-and-swap took L0, the handler
    # fired before the task's acquire returned, and the lock rightly found the handler waiting for
    # its own CPU's task. The ground truth counts a lock held from the OK return; for a target that
    # marks nothing it cannot tell whether the interrupted acquisition took the lock, so an EDEADLK
    # there is not reported (edeadlk_sound). A target that marks the step is judged exactly.
    program = prog((Lock(0), Unlock(0)), handlers={0: [Handler(Level.SOFTIRQ, (Lock(0), Unlock(0)))]})
    for target in (OwnerLock, TakenMarkingOwnerLock):
        edeadlk = 0
        search = bounded_schedules(1)
        schedule = next(search)
        while True:
            r = run(target, program, schedule)
            assert r.violation is None, (target.__name__, list(r.decisions), str(r.violation))
            edeadlk += any(e[2] == ACQUIRED and e[4] == Status.EDEADLK for e in r.trace.events)
            try:
                schedule = search.send(r)
            except StopIteration:
                break
        assert edeadlk > 0, target.__name__


def test_edeadlk_through_a_lock_an_interrupted_task_is_still_taking_is_no_bystander():
    # Once a false alarm (innocent-bystander/not-on-cycle, `cd tests && lockfuzz fuzz
    # support:OwnerLock --cpus 3 --strategy swarm --seed 7`): cpu2.task's compare-and-swap took L1
    # and its softirq fired before it returned; the softirq waits for L0, whose holder cpu1.task
    # waits for L1: a real cycle through the interrupted task, which the ground truth (holding
    # from the OK return) cannot see, while cpu0.task's own AA made "a cycle elsewhere".
    program = Program.from_json({
        "cpus": [
            {"handlers": [], "task": [["lock", 0, 0], ["lock", 0, 0], ["unlock", 0], ["unlock", 0]]},
            {"handlers": [], "task": [["lock", 0, 900000], ["unlock", 0], ["lock", 0, 0], ["lock", 1, 900000],
                                      ["unlock", 1], ["unlock", 0]]},
            {"handlers": [{"level": "softirq", "ops": [["lock", 0, 900000], ["unlock", 0]]}],
             "task": [["lock", 1, 0], ["unlock", 1]]},
        ],
        "n_locks": 2,
    })  # fmt: skip
    r = run(OwnerLock, program, [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2])
    assert r.violation is None, r.violation
    edeadlk = [e for e in r.trace.events if e[2] == ACQUIRED and e[4] == Status.EDEADLK]
    assert {r.trace.contexts[e[1]] for e in edeadlk} >= {"cpu2.softirq#0"}


def test_edeadlk_complete_caught_for_abba():
    r = run(TimeoutOnlyLock, ABBA)
    assert r.violation is not None and r.violation.signature == ("edeadlk-complete", "missed-ABBA")


class CycleOwnerLock(OwnerLock):
    capabilities = dataclasses.replace(
        OwnerLock.capabilities, detection=Detection(classes=frozenset({"cycle"}), latency_ns=2 * 100_000)
    )


class TwoPartyOnly(CycleOwnerLock):
    """Claims every cycle but only looks one hop down the chain (rqspinlock's ABBA limit)."""

    async def deadlocked(self, ctx, me, owner):  # type: ignore[no-untyped-def]
        awaited = await self.waiting[owner - 1].load()
        return bool(awaited) and await self.words[awaited - 1].load() == me


def test_three_lock_cycle_detected_by_a_chain_walk():
    r = run(CycleOwnerLock, CYCLE3)
    assert r.violation is None
    assert Status.EDEADLK in statuses(r).values()


def test_three_lock_cycle_missed_by_a_two_party_check_that_claims_it():
    r = run(TwoPartyOnly, CYCLE3)
    assert r.violation is not None and r.violation.signature == ("edeadlk-complete", "missed-cycle")
    assert len(r.violation.contexts) == 3


class ParanoidLock(OwnerLock):
    """Calls any contention a deadlock."""

    async def deadlocked(self, ctx, me, owner):  # type: ignore[no-untyped-def]
        return True


def test_edeadlk_sound_caught_without_any_cycle():
    v = first_violation(ParanoidLock, prog(CS, CS))
    assert v is not None and v.signature == ("edeadlk-sound", "no-cycle")


class BlameEveryone(OwnerLock):
    """Once anyone finds a deadlock, every waiter on any lock gives up with EDEADLK."""

    def __init__(self, machine):  # type: ignore[no-untyped-def]
        super().__init__(machine)
        self.panic = machine.cell("panic")

    async def deadlocked(self, ctx, me, owner):  # type: ignore[no-untyped-def]
        if await self.panic.load():
            return True
        found = await super().deadlocked(ctx, me, owner)
        if found:
            await self.panic.store(1)
        return found


def test_innocent_bystander_caught():
    # cpu0 and cpu1 deadlock on L0/L1; cpu2 merely waits for L2, held by cpu0's handler-free
    # critical section, and is told it deadlocked.
    program = prog(
        (Lock(2), Lock(0), Work(10), Lock(1), Unlock(1), Unlock(0), Work(1_000_000), Unlock(2)),
        (Lock(1), Work(10), Lock(0), Unlock(0), Unlock(1)),
        (Lock(2), Unlock(2)),
        n_locks=3,
    )
    assert run(OwnerLock, program).violation is None
    r = run(BlameEveryone, program)
    assert r.violation is not None and r.violation.signature == ("innocent-bystander", "not-on-cycle")
    assert r.violation.contexts == ("cpu2.task",)


# -- faults in the target are findings -------------------------------------------------------
class Raising(TasLock):
    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        if await self.words[lock].xchg(1):
            raise KeyError("boom")
        return Status.OK


class BadStatus(TasLock):
    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        await super().acquire(ctx, lock, budget_ns)
        return "ok"


class ForeignAwait(TasLock):
    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        import trio

        await trio.sleep(0)
        return Status.OK


class BrokenConstructor(TasLock):
    def __init__(self, machine):  # type: ignore[no-untyped-def]
        raise RuntimeError("no memory")


@pytest.mark.parametrize(
    "target, kind, words",
    [
        (Raising, "raised-KeyError", "acquire(L0) raised KeyError"),
        (BadStatus, "bad-status", "returned 'ok'"),
        (ForeignAwait, "foreign-await", "may only await lockfuzz cell operations"),
        (BrokenConstructor, "raised-RuntimeError", "constructor raised RuntimeError: no memory"),
    ],
)
def test_target_faults_are_reported_as_violations(target, kind, words):
    v = first_violation(target, prog(CS, CS), seeds=50)
    assert v is not None and v.signature == ("target-fault", kind)
    assert words in v.message


def test_a_fault_does_not_stop_the_next_run():
    assert first_violation(Raising, prog(CS, CS), seeds=50) is not None
    assert run(TasLock, prog(CS, CS)).violation is None


def test_interrupted_waiter_time_is_not_counted_against_its_budget():
    # cpu1's handler runs 5 ms of work while cpu1's task waits with a 1 ms budget: the task
    # cannot time out while it does not run, so bounded waiting must not blame the lock.
    program = prog(
        (Lock(0), Work(4_000_000), Unlock(0)),
        (Lock(0, budget_ns=2_000_000), Unlock(0)),
        handlers={1: [Handler(Level.SOFTIRQ, (Work(5_000_000),))]},
    )
    r = run(OwnerLock, program, Scripted((waits("cpu1.task", 0), "cpu1.softirq")))
    assert r.violation is None, r.violation
    assert any(e[2] == 23 for e in r.trace.events)


class ClaimsAaButSpins(TasLock):
    """Claims to detect AA deadlocks, has no timeouts, and spins forever on one."""

    capabilities = Capabilities(detection=Detection(classes=frozenset({"AA"}), latency_ns=1000))


def test_a_hang_on_a_claimed_cycle_is_a_missed_deadlock():
    r = run(ClaimsAaButSpins, AA_IRQ, FIRE_WHILE_HELD())
    assert r.violation is not None and r.violation.signature == ("edeadlk-complete", "missed-AA")
    assert "hangs forever" in r.violation.message
