"""Ground truth from the target's own marks (``ctx.mark``, ``lockfuzz.Mark``).

Without marks the ground truth learns that a lock is held only when ``acquire`` returns, and
knows nothing of a queue: a deadlock that goes through the step that takes the lock before the
return, or through a pending bit, shows as a hang with no cycle, and a correct lock is blamed for
what is the program's AA deadlock. Each test runs the exact program and schedule twice: with
marks (the bundled queued locks mark theirs), and with ``Context.mark`` made a no-op, which is
how lockfuzz judged them before.
"""

from __future__ import annotations

import pytest

import lockfuzz
from lockfuzz import (
    Capabilities, CpuProgram, Handler, Level, Lock, Mark, Program, ProgramError, Status, Target, Unlock, Work,
)
from lockfuzz._engine._run import Context, Engine
from lockfuzz._engine._machine import Machine
from lockfuzz.targets.qspinlock import QSpinlock

from support import Scripted


def _no_marks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Context, "mark", lambda self, what, lock: None)


class RecordingTas(Target):
    """Test-and-set that records its owner in a second step after taking the word: the window
    between the take and the return that rqspinlock's fast path had before its table entry."""

    capabilities = Capabilities()

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]
        self.owner = [machine.cell(f"L{i}.owner") for i in range(machine.n_locks)]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        while await self.words[lock].xchg(1):
            await self.words[lock].wait_until(lambda v: v == 0)
        ctx.mark(Mark.TAKEN, lock)
        await self.owner[lock].store(ctx.index + 1)  # one more step before the return
        return Status.OK

    async def release(self, ctx: Context, lock: int) -> None:
        await self.owner[lock].store(0)
        await self.words[lock].store(0)


# cpu0's task takes L0; its softirq, which also takes L0, lands in the window before the return.
TAKE_WINDOW = Program(
    cpus=(CpuProgram(task=(Lock(0), Unlock(0)), handlers=(Handler(Level.SOFTIRQ, (Lock(0), Unlock(0))),)),),
    n_locks=1,
)


def _in_take_window(engine: Engine) -> bool:
    return engine.target.words[0].value == 1 and engine.target.owner[0].value == 0


def test_a_handler_landing_between_the_take_and_the_return_deadlocks_the_program(monkeypatch):
    # With the mark: the handler waits for cpu0.task, which waits for the handler: an AA cycle,
    # the program's deadlock on a lock that promises no detection.
    with pytest.raises(ProgramError, match="the program deadlocks"):
        lockfuzz.run(RecordingTas, TAKE_WINDOW, Scripted((_in_take_window, "cpu0.softirq")))
    # Without it: nobody holds L0 in the ground truth, so the lock was blamed for a hang.
    _no_marks(monkeypatch)
    r = lockfuzz.run(RecordingTas, TAKE_WINDOW, Scripted((_in_take_window, "cpu0.softirq")))
    assert r.violation is not None and r.violation.signature == ("hang", "no-cycle")


# cpu0 holds L0 for a while; cpu1's task becomes its pending waiter; cpu1's softirq then asks
# for L0 and queues behind the pending bit of the task it interrupted.
PENDING_BEHIND = Program(
    cpus=(
        CpuProgram(task=(Lock(0), Work(1_000), Unlock(0))),
        CpuProgram(task=(Lock(0), Unlock(0)), handlers=(Handler(Level.SOFTIRQ, (Lock(0), Unlock(0))),)),
    ),
    n_locks=1,
)


def _pending_set(engine: Engine) -> bool:
    return bool(engine.target.words[0].value & 0x100) and engine.truth.holder[0] is not None


def test_a_handler_queued_behind_its_own_cpus_pending_waiter_is_on_a_cycle(monkeypatch):
    fire = Scripted((lambda e: e.truth.holder[0] is not None, "cpu1.task"), (_pending_set, "cpu1.softirq"))
    with pytest.raises(ProgramError, match="the program deadlocks"):
        lockfuzz.run(QSpinlock, PENDING_BEHIND, fire)
    _no_marks(monkeypatch)
    fire = Scripted((lambda e: e.truth.holder[0] is not None, "cpu1.task"), (_pending_set, "cpu1.softirq"))
    r = lockfuzz.run(QSpinlock, PENDING_BEHIND, fire)
    assert r.violation is not None and r.violation.signature == ("hang", "no-cycle")


def test_a_mark_outside_an_acquisition_of_that_lock_is_a_target_fault():
    class Stray(RecordingTas):
        async def release(self, ctx: Context, lock: int) -> None:
            ctx.mark(Mark.TAKEN, lock)
            await super().release(ctx, lock)

    program = Program(cpus=(CpuProgram(task=(Lock(0), Unlock(0))),), n_locks=1)
    r = lockfuzz.run(Stray, program, [])
    assert r.violation is not None and r.violation.signature == ("target-fault", "bad-mark")
    assert "inside an acquisition" in r.violation.message


def test_marks_are_events_in_the_trace():
    r = lockfuzz.run(QSpinlock, PENDING_BEHIND, [0, 1])
    marks = [(r.trace.contexts[e[1]], e[4]) for e in r.trace.events if e[2] == 29]
    assert ("cpu0.task", Mark.TAKEN) in marks
    assert r.trace.text(next(i for i, e in enumerate(r.trace.events) if e[2] == 29)) == "L0: taken"


class HeadMarkingLock(RecordingTas):
    """A queue whose head is whoever reaches the queue first, not whoever asked first: cpu0's
    task dawdles for 100 ns before it queues, cpu1's queues at once and marks itself head."""

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.heads = [machine.cell(f"L{i}.head") for i in range(machine.n_locks)]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        if ctx.cpu == 0:
            await self.machine.sleep_until(ctx.now + 100)
        if await self.heads[lock].cmpxchg(0, ctx.index + 1) == 0:
            ctx.mark(Mark.HEAD, lock)
        return await super().acquire(ctx, lock, budget_ns)


class FirstWaiters:
    """Decision 0 everywhere; records, once both tasks wait in the queue, which the ground
    truth calls the first waiter of L0."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, ...]] = set()

    def choose(self, n: int, engine: Engine) -> int:
        truth = engine.truth
        waiting = [a for a in truth.on_lock[0]]
        if len(waiting) == 2 and engine.machine.now > 150:  # both asked, both queued
            self.seen.add(tuple(a.ctx.name for a in waiting if truth.first_waiter(a)))
        return 0


def test_the_first_waiter_is_the_marked_head_not_the_earliest_arrival(monkeypatch):
    program = Program(
        cpus=(
            CpuProgram(task=(Lock(0), Unlock(0))),
            CpuProgram(task=(Lock(0), Unlock(0))),
            CpuProgram(task=(Lock(0), Work(1_000), Unlock(0))),
        ),
        n_locks=1,
    )

    class HolderFirst(HeadMarkingLock):
        async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
            if ctx.cpu == 2:
                return await RecordingTas.acquire(self, ctx, lock, budget_ns)
            await self.machine.sleep_until(ctx.now + 10)  # let cpu2 take the lock first
            return await HeadMarkingLock.acquire(self, ctx, lock, budget_ns)

    source = FirstWaiters()
    assert lockfuzz.run(HolderFirst, program, source).violation is None
    assert source.seen == {("cpu1.task",)}  # cpu0 asked first; cpu1 reached the queue first
    _no_marks(monkeypatch)
    source = FirstWaiters()
    lockfuzz.run(HolderFirst, program, source)
    assert source.seen == {("cpu0.task",)}  # without marks: the earliest arrival

