"""Small decision sources and test locks shared by the tests."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import random
from typing import Any, Callable, Iterator

import lockfuzz
from lockfuzz import (
    Capabilities, CpuProgram, Detection, Handler, Level, Lock, Program, Status, Target, Timeouts, Unlock, Work,
)  # fmt: skip
from lockfuzz._engine._run import Engine
from lockfuzz._oracles.edeadlk_complete import EdeadlkComplete


class RandomWalk:
    """Uniform choice at every decision point, from a seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choose(self, n: int, engine: Engine) -> int:
        return self.rng.randrange(n)


class Scripted:
    """Decision 0 everywhere, except: switch to the context named ``run`` or fire the handler
    of ``fire`` (a context-name prefix such as ``cpu0.hardirq``) when ``when(engine)`` holds,
    each rule once, in order."""

    def __init__(self, *rules: tuple[Callable[[Engine], bool], str]) -> None:
        self.rules = list(rules)

    def choose(self, n: int, engine: Engine) -> int:
        if self.rules:
            when, what = self.rules[0]
            if when(engine):
                for i, opt in enumerate(engine.options()):
                    name = opt[1] if opt[0] == "run" else f"cpu{opt[1]}.{opt[2]}#{opt[3]}" if opt[0] == "fire" else ""
                    if name.startswith(what):
                        self.rules.pop(0)
                        return i
        return 0


def behind(hold: int, waiters: int) -> Program:
    """cpu0 holds L0 for ``hold`` ns; ``waiters`` (1 or 2) other CPUs ask for it meanwhile, 10 and
    20 ns in (for rqspinlock the first becomes the pending waiter, the second the queue head)."""
    return Program(
        cpus=(CpuProgram(task=(Lock(0), Work(hold), Unlock(0))),)
        + tuple(CpuProgram(task=(Work(10 * w), Lock(0), Unlock(0))) for w in (1, 2)[:waiters]),
        n_locks=1,
    )


#: The resilient locks' grid test (tests/fast/test_resilient_tas.py, test_rqspinlock.py): cpu0's
#: task takes L0 then waits for L1, which cpu1 holds for 5 ms; cpu0's hardirq takes L2 and works
#: 1.5 ms, so the change to cpu0's held table comes from a handler above the waiter.
HANDLER_CHANGES_THE_TABLE = Program(
    cpus=(
        CpuProgram(
            task=(Lock(0), Lock(1), Unlock(1), Unlock(0)),
            handlers=(Handler(Level.HARDIRQ, (Lock(2), Work(3_000_000 // 2), Unlock(2))),),
        ),
        CpuProgram(task=(Lock(1), Work(5_000_000), Unlock(1))),
    ),
    n_locks=3,
)


class FireWhileItSleeps:
    """For ``HANDLER_CHANGES_THE_TABLE``: cpu0 takes L0, cpu1 takes L1; fire cpu0's handler once
    its task sleeps after 1 ms."""

    def choose(self, n: int, engine: Engine) -> int:
        options, holder = engine.options(), engine.truth.holder
        if holder[0] is not None and holder[1] is None and ("run", "cpu1.task") in options:
            return options.index(("run", "cpu1.task"))
        if engine.machine.now > 1_000_000 and engine.contexts[0].blocked and ("fire", 0, "hardirq", 0) in options:
            return options.index(("fire", 0, "hardirq", 0))
        return 0


def holds(ctx_name: str, lock: int) -> Callable[[Engine], bool]:
    def check(engine: Engine) -> bool:
        h = engine.truth.holder[lock]
        return h is not None and h.name == ctx_name

    return check


def waits(ctx_name: str, lock: int) -> Callable[[Engine], bool]:
    def check(engine: Engine) -> bool:
        return any(a.ctx.name == ctx_name and a.lock == lock for a in engine.truth.attempts.values())

    return check


def always(engine: Engine) -> bool:
    return True


CHECK_NS = 100_000


class OwnerLock(Target):
    """A detecting lock for the oracle tests: the lock word holds its owner's slot; a waiter
    walks the chain owner -> the lock that owner waits for -> its owner ... and returns EDEADLK
    when the chain comes back to itself or to a context its own CPU runs below it (which cannot
    run until it returns); per-call budgets, checked every 100 us.

    Correct on the programs the oracle tests give it, not in general: the walk starts from the
    owner its compare-and-swap saw and does not re-read it, so an owner that released the lock
    meanwhile and went on to wait elsewhere yields a false EDEADLK. lockfuzz finds it:
    ``cd tests && lockfuzz fuzz support:OwnerLock --cpus 5 --strategy swarm --seed 3`` reports
    ``edeadlk-sound/no-cycle`` after 3,946 runs (a lock nobody wrote as a mutant)."""

    capabilities = Capabilities(
        timeouts=Timeouts(per_call=True, slack_ns=10_000),
        detection=Detection(classes=frozenset({"AA", "ABBA"}), latency_ns=2 * CHECK_NS),
    )

    def __init__(self, machine):  # type: ignore[no-untyped-def]
        super().__init__(machine)
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]
        # waiting[slot] = lock + 1 that the context in that slot (cpu * 4 + level) waits for.
        self.waiting = [machine.cell(f"wait{s}") for s in range(4 * machine.n_cpus)]

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        me = ctx.cpu * 4 + int(ctx.level) + 1
        deadline = ctx.now + budget_ns
        word = self.words[lock]
        await self.waiting[me - 1].store(lock + 1)
        while True:
            owner = await word.cmpxchg(0, me)
            if owner == 0:
                status = Status.OK
            elif await self.deadlocked(ctx, me, owner):
                status = Status.EDEADLK
            elif ctx.now >= deadline:
                status = Status.ETIMEDOUT
            else:
                await word.wait_until(lambda v: v == 0, min(deadline, ctx.now + CHECK_NS))
                continue
            await self.waiting[me - 1].store(0)
            return status

    async def deadlocked(self, ctx, me, owner):  # type: ignore[no-untyped-def]
        for _ in range(len(self.waiting)):
            if owner == me or ((owner - 1) // 4 == ctx.cpu and (owner - 1) % 4 < int(ctx.level)):
                return True
            awaited = await self.waiting[owner - 1].load()
            if not awaited:
                return False
            owner = await self.words[awaited - 1].load()
            if not owner:
                return False
        return False

    async def release(self, ctx, lock):  # type: ignore[no-untyped-def]
        await self.words[lock].store(0)

    def check(self):  # type: ignore[no-untyped-def]
        return [f"L{i} owned by slot {w.value - 1}" for i, w in enumerate(self.words) if w.value]


class _CycleClocks(EdeadlkComplete):
    """edeadlk-complete that also keeps the most any cycle's clock read when it was judged."""

    most = 0

    def _judge(self, engine, index, key, clock, now, forever=False):  # type: ignore[no-untyped-def]
        self.most = max(self.most, clock.read(now))
        super()._judge(engine, index, key, clock, now, forever)


def cycle_clock(target, program, schedule, **kwargs) -> int:  # type: ignore[no-untyped-def]
    """The most a deadlock cycle's clock (``edeadlk_complete``: time the whole cycle waited on the
    lock's own deadlines) read in one run of ``target``, which must pass."""
    clocks = _CycleClocks()
    result = lockfuzz.run(target, program, schedule, oracles=[clocks], **kwargs)
    assert result.violation is None, result.violation
    return clocks.most


def declaring(base: type[Target], **changes: int) -> type[Target]:
    """``base`` with its own behaviour and a declaration tighter by ``changes`` (ns per field)."""
    t = base.capabilities.timeouts
    assert t is not None
    fields = {k: getattr(t, k) + v for k, v in changes.items()}

    class Tighter(base):  # type: ignore[misc, valid-type] # a class built from a parameter
        def __init__(self, machine: Any, **params: Any) -> None:
            super().__init__(machine, **params)
            caps = self.capabilities  # the instance's: it may depend on the parameters
            self.capabilities = dataclasses.replace(  # type: ignore[misc] # this instance's promise
                caps, timeouts=dataclasses.replace(caps.timeouts, **fields)
            )

    return Tighter


@contextlib.contextmanager
def left_to_the_collector() -> Iterator[list[str]]:
    """The type names of what the block leaves to Python's cyclic garbage collector, filled in
    when the block ends: everything it made and dropped that reference counting could not free
    (collected with ``DEBUG_SAVEALL``, so that the test sees it)."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    left: list[str] = []
    try:
        yield left
        gc.collect()
        left.extend(type(o).__qualname__ for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
