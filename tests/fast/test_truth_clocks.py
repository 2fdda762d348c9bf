"""The ground truth's waiting clocks, computed lock by lock, agree with their definition.

``GroundTruth.retime`` counts, once per lock, what the lock's waiters have in common (how many
are under a handler, how many are not asleep) instead of scanning every waiter's fellow waiters
for each waiter. This test holds it to the definition written out pair by pair (``stalled`` and
``free`` below, as ``retime`` read before it counted): after every call, over many random runs
with handlers, timeouts, FIFO queues and cancellations, each attempt's stall clock runs exactly
when it is stalled and its free clock exactly when the lock is free for it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import RandomWalk

import lockfuzz
from lockfuzz._engine._run import Engine
from lockfuzz._oracles._truth import Attempt, GroundTruth
from lockfuzz._model._target import resolve_target
from lockfuzz._trio._driver import TrioEngine
from lockfuzz.strategies import programs_for


def stalled(truth: GroundTruth, a: Attempt) -> bool:
    """Held up by a handler: above it, above the lock's holder (or releaser), or above another
    waiter on its lock."""
    holder = truth.holder[a.lock] or truth.releaser[a.lock]
    return (
        not a.ctx.top
        or (holder is not None and not holder.top)
        or any(not b.ctx.top for b in truth.on_lock[a.lock] if b is not a)
    )


def free(truth: GroundTruth, a: Attempt, now: int) -> bool:
    """Nobody holds or releases the lock, ``a`` sleeps on its CPU's top, every other waiter on
    the lock sleeps too, nobody FIFO puts first still waits, and (per-call budgets) its budget
    has not run out."""
    lock = a.lock
    return (
        truth.holder[lock] is None
        and truth.releaser[lock] is None
        and not truth.releasing[lock]
        and a.ctx.blocked
        and a.ctx.top
        and all(b.ctx.blocked and b.ctx.top for b in truth.on_lock[lock] if b is not a)
        and not any(b.end < 0 for b in a.ahead)
        and not (truth._window and now >= a.deadline())
    )


@pytest.fixture
def checked_retime(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Check every ``retime`` call of the exclusive path against the definition; returns the
    count of (call, attempt) pairs checked."""
    original = GroundTruth.retime
    checked = [0]

    def retime(self: GroundTruth, lock: int | None = None) -> None:
        original(self, lock)  # one lock's retime must leave every lock's clocks right
        if self.sharing is not None:
            return  # shared locks keep their own per-waiter code (_retime_shared)
        now = self.engine.machine.now
        for a in self.attempts.values():
            assert (a.stall_since is not None) == stalled(self, a), (a.ctx.name, now, "stall")
            assert (a.free_since is not None) == free(self, a, now), (a.ctx.name, now, "free")
            checked[0] += 1

    monkeypatch.setattr(GroundTruth, "retime", retime)
    return checked


# Over cells (spinning, queueing, detection with timeouts, handlers) and over trio (FIFO, budgets
# as deadlines, cancellations), correct and broken.
CASES = [
    (Engine, "tas"), (Engine, "ticket"), (Engine, "mcs"), (Engine, "rqspinlock"), (Engine, "lost_handoff"),
    (TrioEngine, "trio_lock"), (TrioEngine, "trio_strict_fifo_lock"), (TrioEngine, "trio_forgotten_handoff"),
]  # fmt: skip


def timed(cls: Any) -> Any:
    """``cls``, declaring (where it declares none) timeouts it never reaches: the ground truth
    keeps the clocks of waiting only for a target that declares timeouts (``GroundTruth.timed``)."""
    if cls.capabilities.timeouts is not None:
        return cls
    never = lockfuzz.Timeouts(per_call=False, min_ns=10**15, max_quiet_ns=10**15)
    return type(cls.__name__, (cls,), {"capabilities": dataclasses.replace(cls.capabilities, timeouts=never)})


@pytest.mark.parametrize("engine_cls,name", CASES)
def test_the_clocks_run_exactly_when_their_definition_says(engine_cls: Any, name: str, checked_retime: list[int]):
    cls = timed(resolve_target(name))

    @settings(max_examples=25, database=None, derandomize=True)
    @given(program=programs_for(cls, max_cpus=3, max_handlers=1), seed=st.integers(0, 2**32 - 1))
    def check(program: lockfuzz.Program, seed: int) -> None:
        for s in range(seed, seed + 4):
            try:
                engine_cls(cls, program, RandomWalk(s)).run()
            except lockfuzz.ProgramError:
                return

    check()
    assert checked_retime[0] > 100  # the runs had attempts whose clocks were checked


UNTIMED = [(Engine, "ticket"), (Engine, "lost_handoff"), (TrioEngine, "trio_forgotten_handoff")]


@pytest.fixture
def clock_changes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the ``retime`` calls that started or stopped a clock of waiting."""
    original = GroundTruth.retime
    changes = [0]

    def clocks(truth: GroundTruth) -> list[tuple[Any, ...]]:
        return [(a.stall_since, a.stall_total, a.free_since, a.free_total) for a in truth.attempts.values()]

    def retime(self: GroundTruth, lock: int | None = None) -> None:
        before = clocks(self)
        original(self, lock)
        changes[0] += clocks(self) != before

    monkeypatch.setattr(GroundTruth, "retime", retime)
    return changes


@pytest.mark.parametrize("engine_cls,name", UNTIMED)
def test_a_target_without_timeouts_keeps_no_clocks(engine_cls: Any, name: str, clock_changes: list[int]):
    """Only the timeout oracles read the clocks, and a target that declares no timeouts has any
    ETIMEDOUT reported without them: its runs start no clock, with contention, interrupts and
    lost hand-offs (a waiter asleep on a free lock) all; the same lock declaring timeouts does."""
    cls = resolve_target(name)
    assert cls.capabilities.timeouts is None
    work = (lockfuzz.Lock(0), lockfuzz.Work(5), lockfuzz.Unlock(0))
    if engine_cls is Engine:  # a handler stalls whoever it lands on (trio targets take no handlers)
        handler = lockfuzz.Handler(lockfuzz.Level.HARDIRQ, (lockfuzz.Work(5),))
        line = lockfuzz.CpuProgram(task=work, handlers=(handler,))
    else:
        line = lockfuzz.CpuProgram(task=work)
    program = lockfuzz.Program(cpus=(line, line, line), n_locks=1)
    for seed in range(40):
        engine = engine_cls(cls, program, RandomWalk(seed))
        engine.run()
        assert not engine.truth.timed
    assert clock_changes[0] == 0
    for seed in range(40):
        engine_cls(timed(cls), program, RandomWalk(seed)).run()
    assert clock_changes[0] > 0
