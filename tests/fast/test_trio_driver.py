"""The trio driver (issue 6): contexts as trio tasks, every trio checkpoint a decision.

- the differential test: targets over cells give the same trace on both drivers, event for
  event, for the same decisions (interrupts, timeouts, hangs and violations included);
- real trio locks (trio.Lock, StrictFIFOLock, Semaphore, CapacityLimiter, anyio.Lock) fuzzed with
  a seeded random walk show no violation: their fairness and timeout behaviour hold;
- each broken trio lock is found, by the oracle its docstring names, and shrunk;
- budgets are trio cancel scopes firing in virtual time; runs are deterministic.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from support import OwnerLock, RandomWalk, Scripted, holds, left_to_the_collector

import lockfuzz
from lockfuzz import (
    Capabilities, CpuProgram, Engine, Handler, InvalidArgument, Level, Lock, Program, Schedule, Settings, Status,
    Target, Timeouts, Unlock, Work,
)  # fmt: skip
from lockfuzz._engine._events import ACQUIRE, ACQUIRED, IRQ_ENTER, IRQ_EXIT
from lockfuzz._engine._machine import CHECKPOINT, START
from lockfuzz._model._target import resolve_target
from lockfuzz._trio._driver import TrioEngine, _Stopped, driver_of, make_engine, run_trio
from lockfuzz._trio._internals import UnsupportedTrio, steer_run_queue
from lockfuzz.strategies import programs_for
from lockfuzz.targets.mutants import trio_mutants
from lockfuzz.targets.tas import TasLock
from lockfuzz.targets.ticket import TicketLock
from lockfuzz.targets.trio_locks import AnyioLock, TrioCapacityLimiter, TrioLock, TrioSemaphore, TrioStrictFIFOLock

NO_CANCELS = Settings(cancels=False)

_MS = 1_000_000


def _cs(lock: int = 0, budget_ns: int = 1_000_000_000, work_ns: int = 0) -> tuple:  # type: ignore[type-arg]
    return (Lock(lock, budget_ns),) + ((Work(work_ns),) if work_ns else ()) + (Unlock(lock),)


def _cpus(*tasks) -> tuple:  # type: ignore[no-untyped-def,type-arg]
    return tuple(CpuProgram(task=t) for t in tasks)


def same_run(a: lockfuzz.RunResult, b: lockfuzz.RunResult) -> None:
    diff = a.trace.first_difference(b.trace)
    assert diff is None, (
        f"traces differ at event {diff}: direct {a.trace.events[diff:diff + 1]}, trio {b.trace.events[diff:diff + 1]}"
    )
    assert a.trace.contexts == b.trace.contexts and a.trace.cells == b.trace.cells
    assert a.decisions == b.decisions and a.branching == b.branching
    assert (a.steps, a.time_ns) == (b.steps, b.time_ns)
    assert (a.violation and a.violation.signature) == (b.violation and b.violation.signature)
    if a.violation:
        assert (a.violation.event_index, a.violation.time_ns) == (b.violation.event_index, b.violation.time_ns)
    assert a.trace.hash() == b.trace.hash()


# -- the differential test ------------------------------------------------------------------------
# Targets over cells, correct and broken: plain spinning, queueing, detection with timeouts, and
# mutants that end in a mutual-exclusion breach, a hang or an overrun (so runs that stop early are
# compared too).
CELL_TARGETS = ["tas", "ticket", "mcs", "rqspinlock", "nonatomic_tas", "lost_handoff", "budget_overrun"]


@pytest.mark.parametrize("name", CELL_TARGETS)
def test_cell_targets_give_equal_traces_on_both_drivers(name):  # type: ignore[no-untyped-def]
    cls = resolve_target(name)

    @settings(max_examples=15)
    @given(program=programs_for(cls, max_cpus=3, max_handlers=1), seed=st.integers(0, 2**32 - 1))
    def check(program, seed):  # type: ignore[no-untyped-def]
        try:
            a = Engine(cls, program, RandomWalk(seed)).run()
        except lockfuzz.ProgramError:
            with pytest.raises(lockfuzz.ProgramError):
                TrioEngine(cls, program, RandomWalk(seed)).run()
            return
        same_run(a, TrioEngine(cls, program, RandomWalk(seed)).run())  # the same source, step by step
        same_run(a, TrioEngine(cls, program, Schedule(a.decisions)).run())  # the recorded schedule

    check()


def test_detection_timeouts_and_interrupts_equal_on_both_drivers():
    # OwnerLock detects AA and ABBA with a wait that has a deadline; a hardirq retakes L0 above
    # its holder (AA through an interrupt), cpu1 and cpu2 make an ABBA pair.
    program = Program(
        cpus=(
            CpuProgram(task=_cs(0, work_ns=50), handlers=(Handler(Level.HARDIRQ, _cs(0, budget_ns=2 * _MS)),)),
            CpuProgram(task=(Lock(0), Work(10), Lock(1), Unlock(1), Unlock(0))),
            CpuProgram(task=(Lock(1), Work(10), Lock(0), Unlock(0), Unlock(1))),
        ),
        n_locks=2,
    )
    for seed in range(12):
        a = Engine(OwnerLock, program, RandomWalk(seed)).run()
        same_run(a, TrioEngine(OwnerLock, program, RandomWalk(seed)).run())
    fire = Scripted((holds("cpu0.task", 0), "cpu0.hardirq"))
    a = Engine(OwnerLock, program, fire).run()
    assert any(e[2] == ACQUIRED and e[4] == Status.EDEADLK for e in a.trace.events)  # the AA was seen
    same_run(a, TrioEngine(OwnerLock, program, Schedule(a.decisions)).run())


def test_options_and_sources_see_the_same_decision_points():
    program = Program(
        cpus=(
            CpuProgram(task=_cs(0, work_ns=3), handlers=(Handler(Level.HARDIRQ, (Work(1),)),)),
            CpuProgram(task=_cs(0)),
        ),
        n_locks=1,
    )
    seen: dict[str, list[object]] = {"direct": [], "trio": []}

    class Spy:
        def __init__(self, key: str) -> None:
            self.key, self.walk = key, RandomWalk(7)

        def choose(self, n, engine):  # type: ignore[no-untyped-def]
            opts = engine.options()
            assert len(opts) == n
            seen[self.key].append((opts, engine.machine.now))
            return self.walk.choose(n, engine)

    Engine(TicketLock, program, Spy("direct")).run()
    TrioEngine(TicketLock, program, Spy("trio")).run()
    assert seen["direct"] == seen["trio"] and seen["direct"]


# -- picking the driver ---------------------------------------------------------------------------
def test_the_target_class_picks_its_driver():
    program = Program(cpus=_cpus(_cs()), n_locks=1)
    assert driver_of(TrioLock) == "trio" and driver_of(TasLock) == "direct"
    assert type(make_engine(TrioLock, program)) is TrioEngine
    assert type(make_engine(TasLock, program)) is Engine
    bad = type("Bad", (TrioLock,), {"driver": "asyncio"})
    with pytest.raises(InvalidArgument, match=r"driver='asyncio', expected one of 'direct', 'trio'"):
        make_engine(bad, program)


def test_a_trio_target_on_the_direct_engine_is_a_target_fault_not_a_crash():
    engine = object.__new__(Engine)  # the direct engine itself, whatever Engine(...) dispatches to
    Engine.__init__(engine, TrioLock, Program(cpus=_cpus(_cs()), n_locks=1))
    result = Engine.run(engine)  # trio.move_on_after outside trio: RuntimeError, reported
    assert result.violation is not None and result.violation.oracle == "target-fault"


def test_the_run_queue_can_only_be_steered_inside_trio():
    with pytest.raises(UnsupportedTrio, match="trio"):
        steer_run_queue(lambda tasks: tasks)


# -- time, timeouts, interrupts, faults ------------------------------------------------------------
#: A semaphore or limiter of one permit is a lock: the programs below take exclusive acquisitions,
#: which the default (a capacity per lock, every acquisition shared) refuses.
AS_LOCK: dict[type, dict[str, int]] = {TrioSemaphore: {"capacity": 1}, TrioCapacityLimiter: {"capacity": 1}}

def test_budgets_fire_in_virtual_time_as_etimedout():
    # cpu0 holds L0 for 5 ms; cpu1 waits with a budget of 1 ms. No decision: cpu0 goes first.
    program = Program(cpus=_cpus(_cs(0, work_ns=5 * _MS), _cs(0, budget_ns=_MS)), n_locks=1)
    for cls in (TrioLock, TrioStrictFIFOLock, TrioSemaphore, TrioCapacityLimiter):
        r = run_trio(cls, program, [], params=AS_LOCK.get(cls))
        assert r.violation is None, r.violation
        start = next(e[0] for e in r.trace.events if e[2] == ACQUIRE and r.trace.contexts[e[1]] == "cpu1.task")
        end = next(e for e in r.trace.events if e[2] == ACQUIRED and r.trace.contexts[e[1]] == "cpu1.task")
        assert end[4] == Status.ETIMEDOUT
        assert _MS <= end[0] - start <= _MS + 5, f"{cls.__name__}: timed out after {end[0] - start} ns"
        assert 5 * _MS <= r.time_ns < 6 * _MS  # virtual time: the clock jumped, nothing slept


def test_trio_sees_the_virtual_clock():
    seen = []

    class Clocked(TrioLock):
        async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
            seen.append((trio.current_time(), ctx.now))
            await trio.sleep(0.001)  # a trio deadline of its own: the clock jumps to it
            seen.append((trio.current_time(), ctx.now))
            return await super().acquire(ctx, lock, budget_ns)

    r = run_trio(Clocked, Program(cpus=_cpus(_cs()), n_locks=1), [])
    assert r.violation is None
    for t, now in seen:
        assert t == now / 1e9
    # trio.sleep(1 ms): the clock jumped exactly 1 ms, and resuming took one step (1 ns).
    assert seen[1][1] - seen[0][1] == _MS + 1
    assert [e[0] for e in r.trace.events if e[2] == lockfuzz._engine._events.CLOCK][0] == seen[0][1] + _MS


def test_an_interrupt_handler_above_the_holder_waits_out_its_budget():
    program = Program(
        cpus=(CpuProgram(task=_cs(0, work_ns=10), handlers=(Handler(Level.HARDIRQ, _cs(0, budget_ns=_MS)),)),),
        n_locks=1,
    )
    for cls in (TrioLock, TrioSemaphore):
        r = run_trio(cls, program, Scripted((holds("cpu0.task", 0), "cpu0.hardirq")), params=AS_LOCK.get(cls))
        assert r.violation is None, r.violation
        names = r.trace.contexts
        handler = [e for e in r.trace.events if e[2] == ACQUIRED and names[e[1]] == "cpu0.hardirq#0"]
        assert [e[4] for e in handler] == [Status.ETIMEDOUT]
        # The task below did not run while its handler did.
        enter = next(i for i, e in enumerate(r.trace.events) if e[2] == IRQ_ENTER)
        leave = next(i for i, e in enumerate(r.trace.events) if e[2] == IRQ_EXIT)
        assert {names[e[1]] for e in r.trace.events[enter + 1 : leave] if e[1] >= 0} == {"cpu0.hardirq#0"}


def test_retaking_a_held_trio_lock_is_a_deserved_edeadlk():
    program = Program(cpus=_cpus((Lock(0), Lock(0), Unlock(0), Unlock(0))), n_locks=1)
    for cls in (TrioLock, TrioStrictFIFOLock, TrioCapacityLimiter):
        r = run_trio(cls, program, [], params=AS_LOCK.get(cls))
        assert r.violation is None, r.violation
        assert [e[4] for e in r.trace.events if e[2] == ACQUIRED][:2] == [Status.OK, Status.EDEADLK]


def test_every_trio_checkpoint_is_a_step_and_a_decision_point():
    # Two tasks, one trio.Lock. cpu0 starts and takes it (trio.Lock.acquire ends in a
    # cancel-shielded checkpoint); at that checkpoint cpu1 could run too: decision 1 runs it; it
    # queues behind cpu0 and parks; then only cpu0 can run (no decision) until it is done.
    # (Without cancellation decisions, which add options of their own: test_trio_cancel.py.)
    r = run_trio(TrioLock, Program(cpus=_cpus(_cs(), _cs()), n_locks=1), [0, 1], settings=NO_CANCELS)
    names = r.trace.contexts
    steps = [(names[e[1]], e[2]) for e in r.trace.events if e[2] < 20 and e[1] >= 0]
    assert steps[:3] == [("cpu0.task", START), ("cpu1.task", START), ("cpu0.task", CHECKPOINT)]
    assert r.decisions == [0, 1] and r.branching == [2, 2]
    assert r.steps == len(steps)  # every step is logged: start, checkpoints (trio's and lockfuzz's)


class _Forever(Target):
    driver = "trio"
    capabilities = Capabilities()

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        await trio.sleep_forever()

    async def release(self, ctx, lock):  # type: ignore[no-untyped-def]
        pass


class _Spinner(_Forever):
    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        while True:  # checkpoints while nothing changes: it waits, for ever
            await trio.sleep(0)


class _Churner(_Forever):
    def __init__(self, machine):  # type: ignore[no-untyped-def]
        super().__init__(machine)
        self.word = machine.cell("churn")

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        while True:  # changes memory for ever: a livelock
            await self.word.fetch_add(1)
            await trio.sleep(0)


class _Raiser(_Forever):
    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        await trio.sleep(0)
        raise ValueError("broken")


class _Shielded(_Forever):
    capabilities = Capabilities(timeouts=Timeouts(per_call=True))

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        with trio.CancelScope(shield=True):
            await trio.sleep_forever()


@pytest.mark.parametrize(
    "cls, signature",
    [
        (_Forever, ("hang", "no-cycle")),
        (_Spinner, ("hang", "no-cycle")),  # spinning is waiting: nothing will change
        (_Churner, ("livelock", "step-limit")),
        (_Raiser, ("target-fault", "raised-ValueError")),
        (_Shielded, ("hang", "no-cycle")),  # cancellation cannot reach it: the run is given up
    ],
)
def test_hangs_livelocks_and_faults_of_trio_targets(cls, signature):  # type: ignore[no-untyped-def]
    program = Program(cpus=_cpus(_cs(), _cs()), n_locks=1)
    r = run_trio(cls, program, [], settings=Settings(max_steps=300))
    assert r.violation is not None and r.violation.signature == signature
    assert r.trace.events and r.violation.event_index == len(r.trace.events) - 1  # the trace ends there
    # The driver is still usable afterwards.
    assert run_trio(TrioLock, program, []).violation is None


def test_runs_from_inside_trio_work_too():
    # Campaigns run inside trio.run, which cannot nest: the driver's guest run takes the thread's
    # trio state only while it ticks, and gives the caller's back.
    program = Program(cpus=_cpus(_cs(), _cs()), n_locks=1)

    async def gen():  # type: ignore[no-untyped-def]
        yield 1

    async def main():  # type: ignore[no-untyped-def]
        me, hooks = trio.lowlevel.current_task(), sys.get_asyncgen_hooks()
        h = run_trio(TrioLock, program, RandomWalk(3)).trace.hash()
        assert trio.lowlevel.current_task() is me and sys.get_asyncgen_hooks() == hooks
        await trio.sleep(0)
        assert [x async for x in gen()] == [1]  # the caller's async generator hooks still work
        return h

    assert trio.run(main) == run_trio(TrioLock, program, RandomWalk(3)).trace.hash()
    # And after a run outside trio, the thread can still start trio.run of its own.
    assert trio.run(main) == run_trio(TrioLock, program, RandomWalk(3)).trace.hash()
    assert sys.get_asyncgen_hooks() == (None, None)
    with pytest.raises(RuntimeError):
        trio.lowlevel.current_task()  # no trio state leaks into the caller's thread


def test_runs_from_other_threads_are_the_same_runs():
    # Each thread has a trio host of its own; none shares state with another.
    import threading

    program = Program(cpus=_cpus(_cs(work_ns=10), _cs(), _cs(budget_ns=5)), n_locks=1)
    reference = [run_trio(TrioLock, program, RandomWalk(seed)).trace.hash() for seed in range(6)]
    seen: dict[int, list[str]] = {}

    def worker(k: int) -> None:
        seen[k] = [run_trio(TrioLock, program, RandomWalk(seed)).trace.hash() for seed in range(6)]

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {k: reference for k in range(3)}


def test_runs_from_inside_asyncio_are_the_same_runs():
    # A pytest-asyncio test may call lockfuzz: anyio picks its backend when a Lock is made, from
    # the running event loop, so the target is made where sniffio says trio.
    import asyncio

    program = Program(cpus=_cpus(_cs(work_ns=10), _cs(), _cs(budget_ns=5)), n_locks=1)
    pytest.importorskip("anyio")
    for cls in (AnyioLock, TrioLock):
        outside = [run_trio(cls, program, RandomWalk(seed)) for seed in range(4)]

        async def inside():  # type: ignore[no-untyped-def]
            return [run_trio(cls, program, RandomWalk(seed)) for seed in range(4)]  # noqa: B023 - run at once

        for a, b in zip(outside, asyncio.run(inside())):
            assert b.violation is None
            same_run(a, b)


def test_deciding_inside_the_running_task_changes_no_trace(monkeypatch):  # type: ignore[no-untyped-def]
    # A step the decision keeps on the running context is decided inside its task, without a
    # pass of trio's run loop (TrioEngine._decide_in_task), and a context whose own step blocked
    # it jumps the clock itself when the next pass could do nothing else (_jump_in_task): the
    # trace must be the one that deciding every step at a pass gives, for trio's own locks
    # (cancel scopes, parking lots, deadlines firing) and for interrupts.
    handler = Handler(Level.HARDIRQ, _cs(budget_ns=3 * _MS))
    program = Program(
        cpus=(CpuProgram(task=_cs(work_ns=2 * _MS) * 2, handlers=(handler,)),
              CpuProgram(task=_cs(budget_ns=_MS) + _cs(budget_ns=5 * _MS, work_ns=_MS)),
              CpuProgram(task=_cs(budget_ns=1) + _cs(work_ns=_MS // 2))),
        n_locks=1,
    )  # fmt: skip
    seen = {"in_task": 0, "woken_in_task": 0}
    decide_in_task, jump_in_task = TrioEngine._decide_in_task, TrioEngine._jump_in_task

    def counting(self, ctx):  # type: ignore[no-untyped-def]
        kept = decide_in_task(self, ctx)
        seen["in_task"] += kept
        return kept

    def jumping(self, ctx):  # type: ignore[no-untyped-def]
        jump_in_task(self, ctx)
        seen["woken_in_task"] += not ctx.blocked

    for cls in (TrioLock, TrioSemaphore, AnyioLock, resolve_target("rqspinlock")):
        for seed in range(12):
            monkeypatch.setattr(TrioEngine, "_decide_in_task", counting)
            monkeypatch.setattr(TrioEngine, "_jump_in_task", jumping)
            fast = run_trio(cls, program, RandomWalk(seed), params=AS_LOCK.get(cls))
            monkeypatch.setattr(TrioEngine, "_decide_in_task", lambda self, ctx: False)
            monkeypatch.setattr(TrioEngine, "_jump_in_task", lambda self, ctx: None)
            same_run(run_trio(cls, program, RandomWalk(seed), params=AS_LOCK.get(cls)), fast)
    assert seen["in_task"] > 100  # the fast paths were taken, often
    assert seen["woken_in_task"] > 20


# -- determinism ----------------------------------------------------------------------------------
def test_the_same_schedule_gives_the_same_trace():
    program = Program(cpus=_cpus(_cs(work_ns=100), _cs(budget_ns=50), _cs(work_ns=10)), n_locks=1)
    for seed in range(10):
        a = run_trio(TrioLock, program, RandomWalk(seed))
        b = run_trio(TrioLock, program, a.decisions)
        assert a.trace.events == b.trace.events and a.trace.hash() == b.trace.hash()


def test_trace_hash_is_stable_across_processes_and_hash_seeds():
    script = textwrap.dedent(
        """
        import json, sys
        sys.path.insert(0, sys.argv[1])
        from support import RandomWalk
        from lockfuzz import CpuProgram, Lock, Program, Unlock, Work
        from lockfuzz._trio._driver import run_trio
        from lockfuzz.targets.trio_locks import TrioLock
        cs = (Lock(0, 60), Work(40), Unlock(0))
        p = Program(cpus=(CpuProgram(task=cs), CpuProgram(task=cs), CpuProgram(task=cs)), n_locks=1)
        print(json.dumps([run_trio(TrioLock, p, RandomWalk(s)).trace.hash() for s in range(8)]))
        """
    )
    tests_dir = os.path.dirname(os.path.dirname(__file__))
    outs = []
    for seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        proc = subprocess.run(
            [sys.executable, "-c", script, tests_dir], env=env, capture_output=True, text=True, check=True
        )
        outs.append(json.loads(proc.stdout))
    assert outs[0] == outs[1]
    assert len(set(outs[0])) > 1


class _ConditionLockRaisingRelease(Target):
    """The monitor lock on a ``trio.Condition`` whose release notifies, then raises: the run
    stops there (``target-fault``) with the notified waiter owed the condition's lock and the
    others parked in ``Condition.wait``, whose bare ``except:`` retakes that lock, shielded."""

    driver = "trio"
    capabilities = lockfuzz.Capabilities(timeouts=lockfuzz.Timeouts(per_call=True))

    def __init__(self, machine):  # type: ignore[no-untyped-def]
        super().__init__(machine)
        self.cond = trio.Condition()
        self.held = False

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        async with self.cond:
            while self.held:
                await self.cond.wait()
            self.held = True
        return lockfuzz.Status.OK

    async def release(self, ctx, lock):  # type: ignore[no-untyped-def]
        async with self.cond:
            self.held = False
            self.cond.notify()
            raise ValueError("release failed")


def test_a_run_stopped_beside_condition_waiters_leaves_the_host_serving():
    # A stopped run used to close each context's coroutine (GeneratorExit). Condition.wait
    # catches that in a bare except, waits for the condition's lock (shielded), and so left its
    # shielded scope open on the task: trio's run was corrupt, and a later run on the same host
    # ended in a TrioInternalError. Now the driver unwinds a stopped run as trio unwinds a
    # cancelled task (``_unwind``), and the host serves run after run.
    from lockfuzz._trio._driver import _host

    program = Program(cpus=_cpus(_cs(work_ns=10), _cs(work_ns=10), _cs(work_ns=10), _cs(work_ns=10)), n_locks=1)
    host = _host()
    for _ in range(4):
        r = run_trio(_ConditionLockRaisingRelease, program, [])
        assert r.violation is not None and r.violation.signature[0] == "target-fault", r.violation
        assert "release failed" in r.violation.message
    assert _host() is host and not host.retired
    assert run_trio(TrioLock, program, RandomWalk(0)).violation is None


class _CleansUpOnTheWayOut(Target):
    """cpu0 takes the lock (a cell) and its release raises, which stops the run while cpu1 sleeps
    in trio inside ``acquire``. cpu1's ``finally`` then checkpoints (trio answers: cancelled) and
    stores to the cell (a lockfuzz request: refused, the run is over); ``stubborn``, it swallows
    every refusal and asks again."""

    driver = "trio"
    capabilities = lockfuzz.Capabilities(timeouts=lockfuzz.Timeouts(per_call=True))
    stubborn = False
    seen: list[str] = []

    def __init__(self, machine):  # type: ignore[no-untyped-def]
        super().__init__(machine)
        self.word = machine.cell("L0")

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        if ctx.cpu == 0:
            await self.word.store(1)
            return lockfuzz.Status.OK
        try:
            await trio.sleep(1)
        finally:
            try:
                await trio.sleep(0)
            except trio.Cancelled:
                self.seen.append("cancelled")
            self.seen.append("finally")
            while self.stubborn:
                try:
                    await self.word.store(0)
                except _Stopped:  # the stubborn target under test swallows the stop
                    self.seen.append("refused")
            await self.word.store(0)
        return lockfuzz.Status.OK  # pragma: no cover - the run stops first

    async def release(self, ctx, lock):  # type: ignore[no-untyped-def]
        raise ValueError("release failed")


@pytest.mark.parametrize("stubborn", [False, True])
def test_a_stopped_run_unwinds_its_targets_as_trio_would(stubborn):
    # The stopped task's finally runs: its checkpoint is answered by trio (cancelled), its cell
    # request refused. A target that swallows the refusals is closed after _UNWIND_REQUESTS.
    from lockfuzz._trio._driver import _UNWIND_REQUESTS, _host

    cls = type("Cleans", (_CleansUpOnTheWayOut,), {"stubborn": stubborn, "seen": []})
    program = Program(cpus=_cpus((Lock(0), Work(10), Unlock(0)), (Work(5), Lock(0), Unlock(0))), n_locks=1)
    r = run_trio(cls, program, [])
    assert r.violation is not None and "release failed" in r.violation.message
    assert cls.seen[:2] == ["cancelled", "finally"]
    assert cls.seen.count("refused") == (_UNWIND_REQUESTS if stubborn else 0)
    assert not _host().retired and run_trio(TrioLock, program, []).violation is None


class _CtrlCLock(TrioLock):
    """trio.Lock, where the third acquisition of a run presses Ctrl-C (``times`` times) the way
    the driver's SIGINT handler sees it."""

    times = 1

    def __init__(self, machine):  # type: ignore[no-untyped-def]
        super().__init__(machine)
        self.calls = 0

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == 3:
            from lockfuzz._trio._driver import _host

            for _ in range(self.times):
                _host().guest._on_sigint(2, None)
        return await super().acquire(ctx, lock, budget_ns)


@pytest.mark.parametrize("times", [1, 2])
def test_ctrl_c_in_a_run_stops_it_cleanly_and_the_host_serves_on(times):  # type: ignore[no-untyped-def]
    # Once: held, raised between two ticks, the run's tasks stopped and ended, the same host
    # serves the next run. Twice: raised at once, inside the task; still a KeyboardInterrupt.
    from lockfuzz._trio._driver import _host

    program = Program(cpus=_cpus(_cs(work_ns=10), _cs(work_ns=10), _cs(work_ns=10)), n_locks=1)
    host = _host()
    cls = type("CtrlC", (_CtrlCLock,), {"times": times})
    with pytest.raises(KeyboardInterrupt):
        run_trio(cls, program, RandomWalk(0))
    assert _host() is host and not host.retired and host.engine is None
    assert run_trio(TrioLock, program, RandomWalk(0)).violation is None


def test_ctrl_c_during_trio_runs_is_a_keyboard_interrupt_and_the_driver_goes_on():
    # Ctrl-C lands anywhere, trio's run loop included: it must come out as KeyboardInterrupt
    # (never lost, never a TrioInternalError), leave Python's handler in place, and leave the
    # driver and trio.run usable. In a subprocess, so that the signal cannot reach pytest.
    script = textwrap.dedent(
        """
        import os, signal, sys, trio
        sys.path.insert(0, sys.argv[1])
        from support import RandomWalk
        from lockfuzz import CpuProgram, Lock, Program, Unlock, Work
        from lockfuzz._trio._driver import run_trio
        from lockfuzz.targets.trio_locks import TrioLock
        cs = (Lock(0, 10**6), Work(1000), Unlock(0))
        p = Program(cpus=(CpuProgram(task=cs),) * 3, n_locks=1)
        signal.signal(signal.SIGALRM, lambda *a: os.kill(os.getpid(), signal.SIGINT))
        interrupted = 0
        for trial in range(25):
            signal.setitimer(signal.ITIMER_REAL, 0.002 + trial * 0.0007)
            try:
                for _ in range(100_000):
                    run_trio(TrioLock, p, RandomWalk(trial))
            except KeyboardInterrupt:
                interrupted += 1
            assert run_trio(TrioLock, p, RandomWalk(1)).violation is None
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        async def main():
            return run_trio(TrioLock, p, RandomWalk(1)).violation
        assert trio.run(main) is None
        print(interrupted)
        """
    )
    tests_dir = os.path.dirname(os.path.dirname(__file__))
    # SIGINT at its default in the child, as in a process started from a terminal: a child inherits
    # an ignored SIGINT (a test run from a shell's background job, a pool starting its workers), and
    # Python then leaves it ignored, so the Ctrl-C under test would never come.
    proc = subprocess.run(
        [sys.executable, "-c", script, tests_dir], capture_output=True, text=True, timeout=300,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["25"]
    assert "Exception ignored" not in proc.stderr and "TrioInternalError" not in proc.stderr, proc.stderr[-3000:]


# -- real trio locks: no violation --------------------------------------------------------------------
def _anyio_on_trio() -> None:
    anyio = pytest.importorskip("anyio")

    async def probe() -> None:
        async with anyio.Lock():
            pass

    try:
        trio.run(probe)
    except Exception as exc:  # noqa: BLE001 - an anyio too new for this trio
        from importlib.metadata import version

        pytest.skip(f"anyio {version('anyio')} does not run on trio {trio.__version__}: {exc}")


REAL = [TrioLock, TrioStrictFIFOLock, TrioSemaphore, TrioCapacityLimiter, AnyioLock]


@pytest.mark.parametrize("cls", REAL, ids=lambda c: c.__name__)
def test_real_trio_locks_keep_their_promises(cls):  # type: ignore[no-untyped-def]
    # FIFO with per-call budgets: a waiter whose budget has run out leaves trio's queue when its
    # deadline passes and returns ETIMEDOUT only when it next runs; a later arrival that takes the
    # lock in between does not overtake it. The fairness oracle must see it so (a waiter whose
    # budget has run out is no longer waiting), or it reports trio.Lock as unfair.
    if cls is AnyioLock:
        _anyio_on_trio()

    @settings(max_examples=25)
    @given(program=programs_for(cls), seed=st.integers(0, 2**32 - 1))
    def fuzz(program, seed):  # type: ignore[no-untyped-def]
        for i in range(4):
            r = run_trio(cls, program, RandomWalk(seed + i))
            assert r.violation is None, f"{r.violation}\n{program.describe()}"

    fuzz()


def test_trio_lock_fairness_is_checked():
    # Three tasks queue on one trio.Lock: FIFO holds under every schedule the walk tries, and the
    # same program on the LIFO mutant (same capabilities) is caught: the oracle is really on.
    # (Without cancellation decisions, which a uniform walk takes often: they cut lines short.)
    program = trio_mutants.SCENARIOS["trio_wrong_waiter"]
    assert all(run_trio(TrioLock, program, RandomWalk(s), settings=NO_CANCELS).violation is None for s in range(40))
    found = [
        run_trio(trio_mutants.WrongWaiterLock, program, RandomWalk(s), settings=NO_CANCELS).violation
        for s in range(40)
    ]
    assert any(v is not None and v.signature == ("fairness", "overtaken") for v in found)


# -- broken trio locks: found, by the right oracle, and shrunk ---------------------------------------
@pytest.mark.parametrize("name", sorted(trio_mutants.MUTANTS))
def test_each_trio_mutant_is_found_where_its_base_is_clean(name):  # type: ignore[no-untyped-def]
    mutant = resolve_target(trio_mutants.MUTANTS[name])
    base = resolve_target(trio_mutants.BASES[name])
    program = trio_mutants.SCENARIOS[name]
    oracle = trio_mutants.EXPECTED[name]
    found = None
    for seed in range(200):
        assert run_trio(base, program, RandomWalk(seed)).violation is None
        r = run_trio(mutant, program, RandomWalk(seed))
        if r.violation is not None:
            found = r
            break
    assert found is not None, f"{name}: not found in 200 runs"
    assert found.violation.oracle == oracle, found.violation
    replay = run_trio(mutant, program, found.decisions)  # the failing schedule replays exactly
    assert replay.trace.hash() == found.trace.hash() and replay.violation.signature == found.violation.signature


@pytest.mark.parametrize("name", sorted(trio_mutants.MUTANTS))
def test_each_trio_mutant_is_found_and_shrunk_by_a_campaign(name, monkeypatch):  # type: ignore[no-untyped-def]
    import lockfuzz._campaigns._campaign
    import lockfuzz._campaigns._minimise

    # Until lockfuzz.run/fuzz dispatch on the target's driver themselves (see make_engine), this
    # test routes the campaign's and the minimiser's engines through make_engine.
    monkeypatch.setattr(lockfuzz._campaigns._campaign, "Engine", make_engine)
    monkeypatch.setattr(lockfuzz._campaigns._minimise, "Engine", make_engine)
    mutant = resolve_target(trio_mutants.MUTANTS[name])
    report = lockfuzz.fuzz(mutant, runs=3_000, runs_per_program=20, strategy="random", seed=1)
    assert report.found, f"{name}: nothing found in {report.runs} runs"
    failure = report.found[0].failure
    assert failure.signature[0] == trio_mutants.EXPECTED[name], failure.violation
    program = failure.program
    assert program.n_cpus <= 3 and sum(len(cp.task) for cp in program.cpus) <= 12, program.describe()
    assert sum(1 for d in failure.schedule if d) <= 3, failure.schedule
    # The minimised case replays to the same trace.
    again = run_trio(mutant, program, failure.schedule)
    assert again.violation is not None and again.violation.signature == failure.signature
    assert again.trace.hash() == failure.trace_hash


def test_a_run_leaves_nothing_to_the_cyclic_garbage_collector():
    # Engine._unlink (and TrioEngine's): everything a run made (engine, contexts, trio tasks and cancel scopes,
    # the ground truth, the oracles) is freed by reference counting once the result is dropped,
    # for a trio target (cancellations and deadlines included) and for one over cells.
    program = Program(
        cpus=(
            CpuProgram(task=_cs(0, budget_ns=_MS - 1, work_ns=_MS // 2)),
            CpuProgram(task=_cs(0, budget_ns=_MS, work_ns=_MS)),
            CpuProgram(task=_cs(0, budget_ns=2 * _MS, work_ns=_MS // 4)),
        ),
        n_locks=1,
    )
    for cls in (TrioLock, TicketLock):
        for seed in range(5):
            TrioEngine(cls, program, RandomWalk(seed)).run()  # the host and every cache made first
        statuses = set()
        with left_to_the_collector() as left:
            for seed in range(40):
                result = TrioEngine(cls, program, RandomWalk(seed)).run()
                assert result.violation is None, result.violation
                statuses.update(e[4] for e in result.trace.events if e[2] == ACQUIRED)
                del result
        assert left == [], (cls.__name__, sorted(set(left)))
        if cls is TrioLock:
            assert len(statuses) > 1  # timeouts or cancellations as well as OKs
