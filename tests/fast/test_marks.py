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
from lockfuzz._engine import Context, Engine
from lockfuzz._machine import Machine
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
