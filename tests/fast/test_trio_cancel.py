"""Cancellation as a decision (issue 11): at each of trio's checkpoints inside a trio target's
``acquire`` or ``release``, the schedule may cancel the call's scope, as a nursery being
cancelled would (``Settings.cancels``).

- the cancellation is an option of the decision point (after the runs and the handlers), in the
  recorded schedule, on the timeline, and it replays, from a failure file too;
- both sides are explored: a cancelled acquisition returns ECANCELED and leaves the lock as if it
  never tried (the bundled correct trio locks stay clean under a walk that cancels often);
- a cancelled release must still release: one that does not is named by the final check;
- failure files written before these decisions existed replay without them;
- targets over cells offer none: the drivers still give equal traces.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from support import RandomWalk

import lockfuzz
from lockfuzz import Capabilities, Context, CpuProgram, Engine, Lock, Machine, Program, Settings, Status, Target
from lockfuzz import Unlock, Work
from lockfuzz._engine._events import ACQUIRED, CANCEL, event_text
from lockfuzz._reports._failure_file import load_failure, replay
from lockfuzz._reports._report import timeline
from lockfuzz._search.pct import Pct
from lockfuzz._search.random_walk import RandomWalk as SeededWalk
from lockfuzz._search.swarm import SparseWalk
from lockfuzz._model._target import resolve_target
from lockfuzz._trio._driver import TrioEngine, run_trio
from lockfuzz.strategies import programs_for
from lockfuzz.targets.trio_locks import AnyioLock, TrioCapacityLimiter, TrioLock, TrioSemaphore, TrioStrictFIFOLock

NO_CANCELS = Settings(cancels=False)


def _two(work_ns: int = 10) -> Program:
    task = (Lock(0, 1_000_000_000), Work(work_ns), Unlock(0))
    return Program(cpus=(CpuProgram(task=task), CpuProgram(task=task)), n_locks=1)


class CancelWhen:
    """Decision 0, except: cancel ``name``'s call the first time that is an option and
    ``when(engine)`` holds. Records every option list it saw."""

    def __init__(self, name: str, when: Any = lambda engine: True) -> None:
        self.name, self.when, self.done = name, when, False
        self.seen: list[list[tuple[Any, ...]]] = []

    def choose(self, n: int, engine: Engine) -> int:
        opts = engine.options()
        assert len(opts) == n
        self.seen.append(opts)
        if not self.done and ("cancel", self.name) in opts and self.when(engine):
            self.done = True
            return opts.index(("cancel", self.name))
        return 0


def cancels_of(result: lockfuzz.RunResult) -> list[tuple[str, int, int]]:
    return [(result.trace.contexts[e[1]], e[3], e[4]) for e in result.trace.events if e[2] == CANCEL]


def acquired(result: lockfuzz.RunResult, name: str) -> list[int]:
    i = result.trace.contexts.index(name)
    return [e[4] for e in result.trace.events if e[2] == ACQUIRED and e[1] == i]


# -- a decision, on the timeline, replayed -----------------------------------------------------------
def test_a_cancellation_is_an_option_of_the_decision_point_and_is_shown_and_replayed():
    # cpu0 takes L0 and works; cpu1 queues in trio.Lock's ParkingLot: waiting in trio, inside its
    # acquire, so it may be cancelled. The cancellation is the last option, then cpu1's acquire
    # raises trio.Cancelled: ECANCELED, and its line ends (its Unlock never runs).
    source = CancelWhen("cpu1.task")
    r = run_trio(TrioLock, _two(work_ns=100), source)
    assert r.violation is None
    assert cancels_of(r) == [("cpu1.task", 0, 0)]  # L0, inside acquire
    assert acquired(r, "cpu1.task") == [Status.ECANCELED] and acquired(r, "cpu0.task") == [Status.OK]
    assert any(opts[-1] == ("cancel", "cpu1.task") for opts in source.seen)
    chosen = [d for d, n in zip(r.decisions, r.branching) if d == n - 1 and d]
    assert chosen, (r.decisions, r.branching)
    text = timeline(r.trace, None)
    assert "cancelled (in acquire L0)" in text and "acquire L0 -> ECANCELED" in text
    event = next(e for e in r.trace.events if e[2] == CANCEL)
    assert event_text(event, r.trace.contexts, r.trace.cells) == "cancelled (in acquire L0)"
    again = run_trio(TrioLock, _two(work_ns=100), r.decisions)  # a plain schedule: the same run
    assert again.trace.hash() == r.trace.hash()
    # Without cancellation decisions, no such option and no such event.
    off = CancelWhen("cpu1.task")
    r = run_trio(TrioLock, _two(work_ns=100), off, settings=NO_CANCELS)
    assert not cancels_of(r) and all(o[0] != "cancel" for opts in off.seen for o in opts)
    assert acquired(r, "cpu1.task") == [Status.OK]


def test_cancellation_options_only_inside_calls_into_the_target():
    # The options name only contexts that are inside acquire or release at one of trio's
    # checkpoints: never one working in its critical section or done.
    class Spy:
        def __init__(self) -> None:
            self.bad: list[Any] = []
            self.walk = random.Random(3)

        def choose(self, n: int, engine: Engine) -> int:
            truth = engine.truth
            for opt in engine.options():
                if opt[0] == "cancel":
                    ctx = next(c for c in engine.contexts if c.name == opt[1])
                    inside = ctx.index in truth.attempts or any(truth.releaser[i] is ctx for i in range(1))
                    if not inside:
                        self.bad.append((opt, engine.machine.now))
            return self.walk.randrange(n)

    for _ in range(20):
        spy = Spy()
        run_trio(TrioLock, _two(work_ns=100), spy)
        assert not spy.bad


def test_a_failure_found_through_a_cancellation_replays_from_its_file(tmp_path):  # type: ignore[no-untyped-def]
    report = lockfuzz.fuzz("trio_forgotten_handoff", runs=2_000, seed=1, failure_dir=tmp_path)
    assert report.found
    path = report.found[0].path
    failure = load_failure(path)
    assert failure.settings.cancels is True
    outcome = replay(failure)
    assert outcome.result.violation is not None and outcome.result.violation.signature == failure.signature
    assert outcome.result.trace.hash() == failure.trace_hash
    assert cancels_of(outcome.result)  # the minimal schedule still cancels: the bug needs it


# -- both sides: a cancelled acquire leaves the lock as if it never tried -----------------------------
class CancelOften:
    """A seeded walk that takes a cancellation whenever one is offered with probability 1/3."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.cancelled = 0

    def choose(self, n: int, engine: Engine) -> int:
        k = sum(1 for o in engine.options() if o[0] == "cancel")
        if k and self.rng.random() < 1 / 3:
            self.cancelled += 1
            return n - k + self.rng.randrange(k)
        return self.rng.randrange(n - k)


@pytest.mark.parametrize("cls", [TrioLock, TrioStrictFIFOLock, TrioSemaphore, TrioCapacityLimiter, AnyioLock])
def test_correct_trio_locks_stay_clean_when_cancelled_anywhere(cls):  # type: ignore[no-untyped-def]
    if cls is AnyioLock:
        pytest.importorskip("anyio")
    total = []

    @settings(max_examples=20)
    @given(program=programs_for(cls), seed=st.integers(0, 2**32 - 1))
    def fuzz(program, seed):  # type: ignore[no-untyped-def]
        for i in range(3):
            source = CancelOften(seed + i)
            r = run_trio(cls, program, source)
            assert r.violation is None, f"{r.violation}\n{program.describe()}\n{timeline(r.trace, r.violation)}"
            total.append(source.cancelled)

    fuzz()
    assert sum(total) > 0  # the walks did cancel


# -- a cancelled release must still release --------------------------------------------------------
class _AsyncReleaseFlag(Target):
    """A flag lock whose release awaits once before it clears the flag."""

    driver: ClassVar[str] = "trio"
    capabilities = Capabilities()

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.held = [False] * machine.n_locks
        self.lots = [trio.lowlevel.ParkingLot() for _ in range(machine.n_locks)]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        await trio.lowlevel.checkpoint_if_cancelled()
        while self.held[lock]:
            await self.lots[lock].park()
        self.held[lock] = True
        await trio.lowlevel.cancel_shielded_checkpoint()
        return Status.OK

    def free(self, lock: int) -> None:
        self.held[lock] = False
        self.lots[lock].unpark_all()

    def check(self) -> list[str]:
        return [f"L{i} is still held" for i, h in enumerate(self.held) if h]


class LeakingRelease(_AsyncReleaseFlag):
    async def release(self, ctx: Context, lock: int) -> None:
        await trio.sleep(0)  # "let the waiters get ready": a cancellation here skips the rest
        self.free(lock)


class SafeRelease(_AsyncReleaseFlag):
    async def release(self, ctx: Context, lock: int) -> None:
        try:
            await trio.sleep(0)
        finally:
            self.free(lock)


def _releasing(name: str) -> Any:
    return lambda engine: any(engine.truth.releaser[i] is c for c in engine.contexts if c.name == name for i in (0,))


def test_a_release_cancelled_inside_must_still_release():
    program = Program(cpus=(CpuProgram(task=(Lock(0), Unlock(0))),), n_locks=1)
    leak = run_trio(LeakingRelease, program, CancelWhen("cpu0.task", _releasing("cpu0.task")))
    assert cancels_of(leak) == [("cpu0.task", 0, 1)]  # inside release
    assert leak.violation is not None and leak.violation.oracle == "final-state", leak.violation
    assert "cancelled on L0 before: cpu0.task's release at t=" in str(leak.violation)  # the leak, named
    safe = run_trio(SafeRelease, program, CancelWhen("cpu0.task", _releasing("cpu0.task")))
    assert cancels_of(safe) == [("cpu0.task", 0, 1)] and safe.violation is None
    # Never cancelled, the leaky one is fine: the bug is the cancellation's.
    assert run_trio(LeakingRelease, program, [], settings=NO_CANCELS).violation is None


def test_a_line_cancelled_while_holding_releases_under_cancellation():
    # cpu0 holds L0 and L1 when its acquire of L1 is cancelled after it took it (trio.Lock's fast
    # path ends in a shielded checkpoint: the cancellation waits for the next checkpoint, which is
    # in the releases that unwind the line). The releases run cancelled: the leaky release loses
    # both locks, the safe one frees both.
    program = Program(cpus=(CpuProgram(task=(Lock(0), Lock(1), Work(5), Unlock(1), Unlock(0))),), n_locks=2)

    def in_lock1(engine: Engine) -> bool:
        a = engine.truth.attempts.get(0)
        return a is not None and a.lock == 1

    leak = run_trio(LeakingRelease, program, CancelWhen("cpu0.task", in_lock1))
    assert cancels_of(leak) == [("cpu0.task", 1, 0)]
    assert leak.violation is not None and leak.violation.oracle == "final-state"
    safe = run_trio(SafeRelease, program, CancelWhen("cpu0.task", in_lock1))
    assert safe.violation is None and cancels_of(safe) == [("cpu0.task", 1, 0)]
    assert acquired(safe, "cpu0.task") == [Status.OK, Status.OK]
    released = [e[3] for e in safe.trace.events if e[2] == 28 and e[1] == 0]  # RELEASED, newest first
    assert released == [1, 0]


def test_the_natural_condition_lock_unshielded_leaks_under_cancellation():
    # The monitor written without shielding its release (tests/natural_locks.py's is shielded): a
    # line cancelled while it holds the lock releases under cancellation, `async with cond` raises
    # at once and the flag stays set. A real bug of that code, which the final check names.
    from natural_locks import TrioConditionLock

    class Unshielded(TrioConditionLock):
        async def release(self, ctx: Context, lock: int) -> None:
            cond = self.conds[lock]
            async with cond:
                self.held[lock] = False
                cond.notify()

    program = Program(cpus=(CpuProgram(task=(Lock(0, 1_000_000), Work(5), Unlock(0))),), n_locks=1)
    source = CancelWhen("cpu0.task")
    r = run_trio(Unshielded, program, source)
    assert cancels_of(r) and r.violation is not None and r.violation.oracle == "final-state"
    assert run_trio(TrioConditionLock, program, CancelWhen("cpu0.task")).violation is None


# -- schedules and files -----------------------------------------------------------------------------
def test_settings_say_whether_cancellations_are_decisions_and_old_files_have_none():
    assert Settings().cancels is True
    assert Settings.from_json(Settings().to_json()) == Settings()
    assert Settings.from_json(NO_CANCELS.to_json()) == NO_CANCELS
    old = {k: v for k, v in Settings().to_json().items() if k != "cancels"}  # a file from before
    assert Settings.from_json(old).cancels is False
    with pytest.raises(lockfuzz.InvalidArgument, match="cancels"):
        Settings(cancels=1)  # type: ignore[arg-type]


def test_the_search_strategies_take_cancellations_sometimes_and_deterministically():
    program = _two(work_ns=100)
    for make in (lambda s: SeededWalk(s), lambda s: SparseWalk(s, 1 / 3), lambda s: Pct(s, 3, 20)):
        runs = [run_trio(TrioLock, program, make(s)) for s in range(60)]
        with_cancel = sum(1 for r in runs if cancels_of(r))
        assert 0 < with_cancel < len(runs), with_cancel  # both sides of the decision
        again = [run_trio(TrioLock, program, make(s)).trace.hash() for s in range(60)]
        assert again == [r.trace.hash() for r in runs]


@pytest.mark.parametrize("name", ["tas", "ticket", "lost_handoff"])
def test_targets_over_cells_offer_no_cancellation(name):  # type: ignore[no-untyped-def]
    cls = resolve_target(name)
    for seed in range(10):
        program = Program(cpus=(CpuProgram(task=(Lock(0), Work(3), Unlock(0))),) * 3, n_locks=1)
        a = Engine(cls, program, RandomWalk(seed)).run()
        b = TrioEngine(cls, program, RandomWalk(seed)).run()
        c = TrioEngine(cls, program, RandomWalk(seed), NO_CANCELS).run()
        assert a.trace.hash() == b.trace.hash() == c.trace.hash()
        assert a.branching == b.branching == c.branching and not cancels_of(b)


def test_the_timeline_shows_trio_checkpoints_and_deadlines_as_they_pass():
    # cpu1's 20 ns budget runs out while it waits in trio.Lock's queue: the clock jumps to the
    # deadline, which wakes it; the timeline says so where it happens, and shows trio's
    # checkpoints (the interpreter's own stay hidden). Cancellation decisions off: the default
    # schedule would take none anyway, and this is about deadlines.
    program = Program(
        cpus=(CpuProgram(task=(Lock(0), Work(100), Unlock(0))), CpuProgram(task=(Lock(0, 20), Unlock(0)))), n_locks=1
    )
    r = run_trio(TrioLock, program, [], settings=NO_CANCELS)
    assert cancels_of(r) == [("cpu1.task", 0, 2)]  # value 2: a deadline, in acquire
    deadline = next(e for e in r.trace.events if e[2] == CANCEL)
    assert deadline[0] == 4 + 20  # its acquire began at t=4 with a 20 ns budget
    assert acquired(r, "cpu1.task") == [Status.ETIMEDOUT]
    text = timeline(r.trace, None)
    assert "deadline passed (in acquire L0)" in text and "trio checkpoint" in text
    assert "trio checkpoint" not in timeline(r.trace, None, steps=False)
    # A deadline is no cancellation decision: the waiter is not "leaving" for the oracles until
    # it returns, and nothing changes when decisions are on but none is taken.
    again = run_trio(TrioLock, program, [])
    assert again.trace.hash() == r.trace.hash()
