"""A run lets go of itself: ``Engine._unlink`` breaks the cycles between the engine, its contexts
and the ground truth, so everything a run made is freed by reference counting once the caller
drops it, never left to Python's cyclic garbage collector (see its docstring for the cost). The
trio driver's own check is in tests/fast/test_trio_driver.py."""

from __future__ import annotations

import pytest

import lockfuzz
from lockfuzz import CpuProgram, Handler, Level, Lock, Program, Unlock, Work
from lockfuzz._engine._events import ACQUIRED
from lockfuzz._search import RandomWalk

from support import left_to_the_collector

# bench/engine.py's program (written out again: tests do not import bench/): nested in one order,
# with an interrupt handler that takes the inner lock: waits, hand-overs, interrupts.
PROGRAM = Program(
    cpus=(
        CpuProgram(task=(Lock(0), Lock(1), Work(20), Unlock(1), Unlock(0))),
        CpuProgram(
            task=(Lock(0), Work(10), Unlock(0), Lock(0), Unlock(0)),
            handlers=(Handler(Level.HARDIRQ, (Lock(1), Unlock(1))),),
        ),
        CpuProgram(task=(Lock(0), Lock(1), Unlock(1), Unlock(0))),
    ),
    n_locks=2,
)
# The same, and a handler that takes the lock its CPU's task holds (an AA): the resilient locks
# answer EDEADLK, and their failed acquisitions unwind.
AA = Program(
    cpus=(
        CpuProgram(task=PROGRAM.cpus[0].task, handlers=(Handler(Level.SOFTIRQ, (Lock(0), Unlock(0))),)),
        *PROGRAM.cpus[1:],
    ),
    n_locks=2,
)


@pytest.mark.parametrize(
    "name, program",
    [(name, PROGRAM) for name in ("ticket", "tas", "mcs", "qspinlock")]
    + [(name, AA) for name in ("rqspinlock", "resilient_tas")],
)
def test_a_run_leaves_nothing_to_the_cyclic_garbage_collector(name: str, program: Program):
    target = lockfuzz.resolve_target(name)
    for seed in range(5):
        lockfuzz.Engine(target, program, RandomWalk(seed)).run()  # every cache made first
    statuses = set()
    with left_to_the_collector() as left:
        for seed in range(40):
            result = lockfuzz.Engine(target, program, RandomWalk(seed)).run()
            assert result.violation is None, result.violation
            statuses.update(e[4] for e in result.trace.events if e[2] == ACQUIRED)
            del result
    assert left == [], sorted(set(left))
    if program is AA:
        assert len(statuses) > 1, statuses  # EDEADLK as well as OK


def test_the_engine_stays_readable_after_its_run():
    engine = lockfuzz.Engine(lockfuzz.resolve_target("ticket"), PROGRAM, RandomWalk(3))
    result = engine.run()
    assert [c.name for c in engine.contexts] == result.trace.contexts
    assert all(c.engine is None for c in engine.contexts)
    assert engine.truth.engine is None
    assert engine.truth.holder == [None, None]  # every lock free again at the end


def test_a_refused_program_leaves_nothing_to_the_cyclic_garbage_collector():
    # A deadlocked run ends with contexts waiting on cells that their requests name (a cycle
    # each): ``_unlink`` empties the cells' waiters. AA deadlocks ticket under some schedules, and
    # ticket promises no detection, so the program is refused (ProgramError).
    target = lockfuzz.resolve_target("ticket")

    def run(seed: int) -> str:
        try:
            result = lockfuzz.Engine(target, AA, RandomWalk(seed)).run()
        except lockfuzz.ProgramError:
            return "refused"
        assert result.violation is None, result.violation
        return "ran"

    for seed in range(5):
        run(seed)
    with left_to_the_collector() as left:
        outcomes = {run(seed) for seed in range(40)}
    assert outcomes == {"refused", "ran"}
    assert left == [], sorted(set(left))
