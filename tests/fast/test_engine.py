"""The engine: decisions, interrupts, virtual time, determinism, and the machine's atomics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from support import RandomWalk, Scripted, holds

from lockfuzz import (
    CpuProgram, Handler, InvalidArgument, Level, Lock, Machine, Program, Settings, Unlock,
    Work, run,
)  # fmt: skip
from lockfuzz._engine._events import ACQUIRED, IRQ_ENTER, IRQ_EXIT
from lockfuzz.targets.tas import TasLock
from lockfuzz.targets.ticket import TicketLock

CS = (Lock(0), Work(5), Unlock(0))
THREE = Program(cpus=(CpuProgram(task=CS), CpuProgram(task=CS), CpuProgram(task=CS)), n_locks=1)


def drive(coro, machine):  # type: ignore[no-untyped-def]
    """Run one cell coroutine to completion outside the engine (performing each access)."""
    from lockfuzz._engine._machine import MEMORY_OPS

    res = None
    while True:
        try:
            op, cell, a, b = coro.send(res)
        except StopIteration as stop:
            return stop.value
        res = MEMORY_OPS[op](cell, a, b)


def test_cell_atomics_follow_the_kernel_semantics():
    m = Machine(n_cpus=1, n_locks=1)
    c = m.cell("word")
    assert drive(c.cmpxchg(0, 5), m) == 0 and c.value == 5  # success: returns the old value
    assert drive(c.cmpxchg(0, 7), m) == 5 and c.value == 5  # failure: returns what it saw
    assert drive(c.xchg(9), m) == 5 and c.value == 9
    assert drive(c.fetch_add(0xFFFFFFFF), m) == 9 and c.value == 8  # wraps at 32 bits
    assert drive(c.fetch_or(0x100), m) == 8 and c.value == 0x108
    assert drive(c.fetch_and(0xFF), m) == 0x108 and c.value == 0x08
    c.value = 0xAABBCCDD
    drive(c.store_field(0, 8, 0x11), m)
    assert c.value == 0xAABBCC11  # a byte store leaves the rest of the word
    assert drive(c.xchg_field(16, 16, 0x1234), m) == 0xAABBCC11 and c.value == 0x1234CC11
    b = m.cell("byte", 0x1FF, width=8)
    assert b.value == 0xFF


def test_bad_machine_arguments_name_the_value():
    with pytest.raises(InvalidArgument, match=r"n_cpus=0: expected an int >= 1"):
        Machine(n_cpus=0, n_locks=1)
    with pytest.raises(InvalidArgument, match=r"width=65"):
        Machine(n_cpus=1, n_locks=1).cell("x", width=65)
    with pytest.raises(InvalidArgument, match=r"max_steps=0"):
        Settings(max_steps=0)
    with pytest.raises(InvalidArgument, match=r"lock=3, expected an int in \[0, 1\)"):
        Program(cpus=(CpuProgram(task=(Lock(3), Unlock(3))),), n_locks=1)
    with pytest.raises(InvalidArgument, match=r"level=task: a handler runs above task level"):
        Program(cpus=(CpuProgram(handlers=(Handler(Level.TASK, ()),)),), n_locks=1)
    with pytest.raises(InvalidArgument, match=r"schedule decision -1"):
        run(TasLock, THREE, [0, -1])


def test_decision_zero_keeps_the_current_context_running():
    r = run(TicketLock, THREE, [])
    order = [r.trace.contexts[e[1]] for e in r.trace.events if e[2] == ACQUIRED]
    # With no preemption, each CPU's critical section runs to completion before the next
    # starts: the only switches happen where a context blocks (its Work) or finishes.
    assert order[:3] == ["cpu0.task", "cpu1.task", "cpu2.task"]
    assert r.preemptions == 0 and all(d == 0 for d in r.decisions)


def test_a_decision_switches_to_another_context_in_cpu_order():
    # Decision 1 at the first point: the second runnable context (cpu1) starts first.
    r = run(TicketLock, THREE, [1])
    first = next(e for e in r.trace.events if e[2] == ACQUIRED)
    assert r.trace.contexts[first[1]] == "cpu1.task"
    assert r.decisions[0] == 1 and r.branching[0] == 3


def test_decisions_larger_than_the_options_wrap():
    assert run(TicketLock, THREE, [4]).trace.hash() == run(TicketLock, THREE, [1]).trace.hash()


def test_interrupt_fires_between_steps_and_the_interrupted_context_waits():
    program = Program(
        cpus=(
            CpuProgram(
                task=(Lock(0), Work(100), Unlock(0)), handlers=(Handler(Level.HARDIRQ, (Lock(1), Unlock(1))),)
            ),
        ),
        n_locks=2,
    )
    r = run(TasLock, program, Scripted((holds("cpu0.task", 0), "cpu0.hardirq")))
    assert r.violation is None
    names = r.trace.contexts
    enter = next(i for i, e in enumerate(r.trace.events) if e[2] == IRQ_ENTER)
    leave = next(i for i, e in enumerate(r.trace.events) if e[2] == IRQ_EXIT)
    between = {names[e[1]] for e in r.trace.events[enter + 1 : leave]}
    assert between == {"cpu0.hardirq#0"}  # the task does not run while its handler does


def test_a_context_knows_its_level():
    seen = []

    class LevelSpy(TasLock):
        async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
            seen.append((ctx.name, ctx.level, ctx.in_nmi))
            return await super().acquire(ctx, lock, budget_ns)

    program = Program(
        cpus=(CpuProgram(task=(Work(10),), handlers=(Handler(Level.NMI, (Lock(0), Unlock(0))),)),), n_locks=1
    )
    run(LevelSpy, program, [1])
    assert seen == [("cpu0.nmi#0", Level.NMI, True), ("cpu0.final", Level.TASK, False)]


def test_handlers_fire_only_above_the_current_level():
    program = Program(
        cpus=(
            CpuProgram(
                task=(Work(10),),
                handlers=(Handler(Level.HARDIRQ, (Work(10),)), Handler(Level.SOFTIRQ, (Work(10),))),
            ),
        ),
        n_locks=1,
    )
    # Fire the hardirq first: from inside it, the softirq is not an option.
    offered = []

    class FireHardirqThenWatch:
        def choose(self, n, engine):  # type: ignore[no-untyped-def]
            opts = engine.options()
            offered.append((engine.cur.name if engine.cur and engine.cur.top else None, opts))
            fire = [i for i, opt in enumerate(opts) if opt[0] == "fire"]
            hard = [i for i in fire if opts[i][2] == "hardirq"]
            return (hard or fire or [0])[0]

    r = run(TasLock, program, FireHardirqThenWatch())
    assert r.violation is None
    # Inside the hardirq nothing else can run and the softirq cannot fire: not even a decision.
    assert [opts for cur, opts in offered if cur == "cpu0.hardirq#0"] == []
    assert [("run", "cpu0.task"), ("fire", 0, "softirq", 1)] in [opts for _, opts in offered]
    levels = [Level(e[4]) for e in r.trace.events if e[2] == IRQ_ENTER]
    assert levels == [Level.HARDIRQ, Level.SOFTIRQ]  # the softirq fires once the task runs again


def test_a_250ms_wait_costs_a_few_steps_of_virtual_time():
    class Sleepy(TasLock):
        async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
            await self.machine.sleep_until(ctx.now + 250_000_000)
            return await super().acquire(ctx, lock, budget_ns)

    program = Program(cpus=(CpuProgram(task=CS), CpuProgram(task=CS)), n_locks=1)
    r = run(Sleepy, program)
    assert r.violation is None
    assert r.time_ns >= 250_000_000 and r.steps < 40  # the clock jumped; nothing stepped through it
    assert any(e[2] == 25 for e in r.trace.events)  # a CLOCK event records the jump


def test_the_same_inputs_give_the_same_trace():
    for seed in range(20):
        a = run(TicketLock, THREE, RandomWalk(seed))
        b = run(TicketLock, THREE, a.decisions)  # the recorded decisions replay the run
        assert a.trace.hash() == b.trace.hash() and a.trace.events == b.trace.events


def test_trace_hash_is_stable_across_processes_and_hash_seeds(tmp_path):
    script = textwrap.dedent(
        """
        import json, sys
        sys.path.insert(0, sys.argv[1])
        from support import RandomWalk
        from lockfuzz import run, Program, CpuProgram, Handler, Level, Lock, Unlock, Work
        from lockfuzz.targets.ticket import TicketLock
        cs = (Lock(0), Work(5), Unlock(0))
        p = Program(cpus=(CpuProgram(task=cs, handlers=(Handler(Level.HARDIRQ, (Lock(1), Unlock(1))),)),
                          CpuProgram(task=cs), CpuProgram(task=cs)), n_locks=2)
        print(json.dumps([run(TicketLock, p, RandomWalk(s)).trace.hash() for s in range(10)]))
        """
    )
    tests_dir = os.path.dirname(os.path.dirname(__file__))
    outs = []
    for seed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run(
            [sys.executable, "-c", script, tests_dir], env=env, capture_output=True, text=True, check=True, cwd=tmp_path
        )
        outs.append(json.loads(proc.stdout))
    assert outs[0] == outs[1] == outs[2]
    assert len(set(outs[0])) > 1  # different schedules do give different traces


def test_engine_options_describe_each_decision():
    program = Program(
        cpus=(CpuProgram(task=CS, handlers=(Handler(Level.HARDIRQ, (Work(1),)),)), CpuProgram(task=CS)), n_locks=1
    )
    seen = []

    class Spy:
        def choose(self, n, engine):  # type: ignore[no-untyped-def]
            opts = engine.options()
            assert len(opts) == n
            seen.append(opts)
            return 0

    run(TasLock, program, Spy())
    assert seen[0] == [("run", "cpu0.task"), ("run", "cpu1.task"), ("fire", 0, "hardirq", 0)]


def test_fire_options_follow_the_stacks_through_blocks_wakes_and_returns():
    # The engine recomputes which handlers may fire only when a context starts or ends
    # (``Engine._stacks_changed``), not on every block or wake: at every decision of random walks
    # over contended programs with handlers at three levels, the fire options must still be
    # exactly the unfired handlers above each CPU's running level.
    handlers = (Handler(Level.SOFTIRQ, (Lock(1), Unlock(1))), Handler(Level.HARDIRQ, (Work(2),)),
                Handler(Level.NMI, (Work(1),)))  # fmt: skip
    program = Program(
        cpus=(
            CpuProgram(task=(Lock(0), Work(3), Unlock(0), Lock(0), Unlock(0)), handlers=handlers),
            CpuProgram(task=(Lock(0), Lock(1), Unlock(1), Unlock(0)), handlers=handlers[1:]),
            CpuProgram(task=(Lock(0), Work(1), Unlock(0))),
        ),
        n_locks=2,
    )
    checked = fired = 0

    class Check:
        def __init__(self, seed: int) -> None:
            self.walk = RandomWalk(seed)

        def choose(self, n, engine):  # type: ignore[no-untyped-def]
            nonlocal checked
            expected = []
            if engine.phase == "run":
                for cpu, stack in enumerate(engine.stacks):
                    if stack:
                        hs = program.cpus[cpu].handlers
                        expected += [("fire", cpu, str(hs[h].level), h) for h in engine.unfired[cpu]
                                     if hs[h].level > stack[-1].level]  # fmt: skip
            opts = engine.options()
            assert [o for o in opts if o[0] == "fire"] == expected
            assert len(opts) == n
            checked += 1
            return self.walk.choose(n, engine)

    for seed in range(60):
        r = run(TicketLock, program, Check(seed))
        assert r.violation is None, r.violation
        fired += sum(1 for e in r.trace.events if e[2] == IRQ_ENTER)
    assert checked > 1000 and fired > 200  # the walks did fire handlers, between blocks and wakes
