"""Shared and counted locks (#12): programs with modes, the ground truth of shared holders, and
each oracle verdict on an exact program and schedule, over small reader-writer locks and
semaphores written here (correct ones, and one broken way each)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from hypothesis import given

import lockfuzz
from lockfuzz import Capabilities, Detection, InvalidArgument, Program, ProgramError, Sharing, Status, Target, Timeouts
from lockfuzz._engine._events import ACQUIRE, ACQUIRED, FINAL
from lockfuzz._reports._failure_file import SCHEMA, Failure, load_failure, replay, write_failure
from lockfuzz._model._program import CpuProgram, Lock, Unlock
from lockfuzz._reports._report import timeline
from lockfuzz._trio._adapter import trio_target
from lockfuzz.strategies import budgets, programs, programs_for

W = 1 << 31  # a writer holds the lock
WAITING = 1 << 16  # one writer announced (bits 16-30 count them)
READERS = 0xFFFF  # the shared holders (bits 0-15)
MASK = (1 << 32) - 1
_MS = 1_000_000


class RwLock(Target):
    """Correct reader-writer lock over one word, writer preference: a writer first announces
    itself (one fetch_add: its doorway), and readers stay out while one is announced or holds."""

    capabilities = Capabilities(sharing=Sharing(preference="writers"))
    writers_first = True  # readers stay out while a writer is announced
    writer_checks_readers = True
    readers_exclude_readers = False
    withdraws_on_timeout = True
    detects_aa = False  # EDEADLK for an attempt that waits for its own CPU (a re-take, an upgrade, a handler)
    blames_readers = False  # EDEADLK for an exclusive attempt while anyone reads
    handler_readers_pass = False  # readers in interrupt handlers ignore announced writers
    timed = False

    def __init__(self, machine):  # type: ignore[no-untyped-def]
        super().__init__(machine)
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]
        # Who holds, by CPU (Python side, for the deadlock checks): readers, and the writer.
        self.reading: list[list[int]] = [[] for _ in range(machine.n_locks)]
        self.writing: list[int | None] = [None] * machine.n_locks

    def reader_may_enter(self, v: int) -> bool:
        if v & W or (self.writers_first and v & ~W & ~READERS):
            return False
        return not (self.readers_exclude_readers and v & READERS)

    @staticmethod
    def handler_may_enter(v: int) -> bool:
        return not v & W

    def writer_may_enter(self, v: int) -> bool:
        return not v & W and (not self.writer_checks_readers or not v & READERS)

    async def acquire(self, ctx, lock, budget_ns, shared=False):  # type: ignore[no-untyped-def]
        word = self.words[lock]
        deadline = ctx.now + budget_ns if self.timed else None
        if shared:
            if self.detects_aa and self.writing[lock] == ctx.cpu:
                return Status.EDEADLK  # the writer is this CPU's, below us or ourselves
            may_enter = self.reader_may_enter
            if self.handler_readers_pass and ctx.level != lockfuzz.Level.TASK:
                may_enter = self.handler_may_enter
            while True:
                v = await word.load()
                if may_enter(v):
                    if await word.cmpxchg(v, v + 1) == v:
                        self.reading[lock].append(ctx.cpu)
                        return Status.OK
                    continue
                if deadline is not None and ctx.now >= deadline:
                    return Status.ETIMEDOUT
                await word.wait_until(may_enter, deadline)
        if self.detects_aa and ctx.cpu in (self.writing[lock], *self.reading[lock]):
            return Status.EDEADLK
        if self.blames_readers and self.reading[lock]:
            return Status.EDEADLK
        if self.writers_first:
            await word.fetch_add(WAITING)
        while True:
            v = await word.load()
            if self.writer_may_enter(v):
                new = ((v - WAITING) & MASK if self.writers_first else v) | W
                if await word.cmpxchg(v, new) == v:
                    self.writing[lock] = ctx.cpu
                    return Status.OK
                continue
            if deadline is not None and ctx.now >= deadline:
                if self.writers_first and self.withdraws_on_timeout:
                    await word.fetch_add(MASK + 1 - WAITING)
                return Status.ETIMEDOUT
            await word.wait_until(self.writer_may_enter, deadline)

    async def release(self, ctx, lock, shared=False):  # type: ignore[no-untyped-def]
        # Forgotten only once the word says so: a handler landing in between waits for us.
        if shared:
            await self.words[lock].fetch_add(MASK)  # - 1
            self.reading[lock].remove(ctx.cpu)
        else:
            await self.words[lock].fetch_and(~W & MASK)
            self.writing[lock] = None

    def check(self):  # type: ignore[no-untyped-def]
        return [f"L{i} = {w.value:#x}" for i, w in enumerate(self.words) if w.value]


class BrokenRwLock(RwLock):
    """Broken: the writer looks only for another writer, never for readers."""

    writer_checks_readers = False


class ReaderRwLock(RwLock):
    """Reader preference, and says so without a bound: readers pass announced writers."""

    capabilities = Capabilities(sharing=Sharing(preference="readers"))
    writers_first = False


class StarvingRwLock(ReaderRwLock):
    """Broken: promises that at most one reader passes a waiting writer, and lets any number by."""

    capabilities = Capabilities(sharing=Sharing(preference="readers", reader_overtakes=1))


class ClaimsWriterPreference(ReaderRwLock):
    """Broken: promises writer preference, and is a reader-preference lock."""

    capabilities = Capabilities(sharing=Sharing(preference="writers"))


class ClaimsFifo(RwLock):
    """Broken: a writer-preference lock that promises FIFO across modes."""

    capabilities = Capabilities(sharing=Sharing(preference="fifo"))


class BoundedRwLock(RwLock):
    """Correct: writer preference is reader preference with a bound of zero overtaking readers."""

    capabilities = Capabilities(sharing=Sharing(preference="readers", reader_overtakes=0))


TIMED = Timeouts(per_call=True, slack_ns=10_000)


class TimedRwLock(RwLock):
    """Correct, with per-call budgets."""

    capabilities = Capabilities(timeouts=TIMED, sharing=Sharing(preference="writers"))
    timed = True


class ReadersWaitForReaders(TimedRwLock):
    """Broken: a reader waits for other readers to leave (as if it were a writer), asleep while
    the lock is open to it, and times out there."""

    capabilities = Capabilities(timeouts=TIMED, sharing=Sharing())
    writers_first = False
    readers_exclude_readers = True


class StaleAnnouncement(TimedRwLock):
    """Broken: a writer that times out does not withdraw its announcement, so readers stay out
    for ever; only a shared acquisition (the final check's) can tell."""

    withdraws_on_timeout = False


class UpgradeDetector(RwLock):
    """Correct: says EDEADLK for an attempt that would wait for a holder on its own CPU (a reader
    asking for its lock exclusively, a re-take, a handler above a holder): AA deadlocks."""

    capabilities = Capabilities(detection=Detection(classes=frozenset({"AA"})), sharing=Sharing())
    writers_first = False
    detects_aa = True


class BlamesReaders(UpgradeDetector):
    """Broken: EDEADLK for a writer whenever anyone reads (waiting for readers is no deadlock)."""

    blames_readers = True


class ClaimsUpgradeDetection(RwLock):
    """Broken: claims to detect AA deadlocks and never looks."""

    capabilities = Capabilities(detection=Detection(classes=frozenset({"AA"})), sharing=Sharing())
    writers_first = False


class Semaphore(Target):
    """Correct counting semaphore over one word of permits; ``capacity`` is a parameter, so the
    instance declares it (``self.capabilities``)."""

    capabilities = Capabilities(sharing=Sharing(exclusive=False, capacity=2))
    extra = 0

    def __init__(self, machine, capacity=2):  # type: ignore[no-untyped-def]
        super().__init__(machine)
        self.capabilities = Capabilities(sharing=Sharing(exclusive=False, capacity=capacity))
        self.start = capacity + self.extra
        self.permits = [machine.cell(f"S{i}", self.start) for i in range(machine.n_locks)]

    async def acquire(self, ctx, lock, budget_ns, shared=False):  # type: ignore[no-untyped-def]
        assert shared, "a semaphore is only ever asked for a permit"
        cell = self.permits[lock]
        while True:
            v = await cell.load()
            if v and await cell.cmpxchg(v, v - 1) == v:
                return Status.OK
            if not v:
                await cell.wait_until(lambda x: x > 0)

    async def release(self, ctx, lock, shared=False):  # type: ignore[no-untyped-def]
        assert shared
        await self.permits[lock].fetch_add(1)

    def check(self):  # type: ignore[no-untyped-def]
        return [f"S{i} has {c.value} permits" for i, c in enumerate(self.permits) if c.value != self.start]


class GenerousSemaphore(Semaphore):
    """Broken: starts with one permit more than its capacity."""

    extra = 1


# Over trio (the trio driver): trio's own semaphore, declared right and declared one permit short.
TrioSemaphore2 = trio_target(
    lambda: trio.Semaphore(2), name="TrioSemaphore2", sharing=Sharing(exclusive=False, capacity=2)
)
TrioSemaphore3As2 = trio_target(
    lambda: trio.Semaphore(3), name="TrioSemaphore3As2", sharing=Sharing(exclusive=False, capacity=2)
)


def run(target, text, schedule=(), **kw):  # type: ignore[no-untyped-def]
    return lockfuzz.run(target, Program.from_text(text), list(schedule), **kw)


def signature(result):  # type: ignore[no-untyped-def]
    return result.violation.signature if result.violation is not None else None


# -- programs with modes ---------------------------------------------------------------------
def test_the_text_and_json_forms_of_a_shared_acquisition():
    p = Program.from_text("cpu0.task: lock L0 shared; lock L1 shared (5ms); lock L2 (1ms); unlock L2; unlock L1; "
                          "unlock L0")
    assert p.cpus[0].task[:3] == (Lock(0, shared=True), Lock(1, 5 * _MS, shared=True), Lock(2, _MS))
    assert "lock L0 shared; lock L1 shared (5ms); lock L2 (1ms)" in p.describe()
    ops = p.to_json()["cpus"][0]["task"]
    assert ops[:3] == [["lock", 0, 1_000_000_000, "shared"], ["lock", 1, 5 * _MS, "shared"], ["lock", 2, _MS]]
    assert Program.from_json(p.to_json()) == p
    assert p.modes == {"exclusive", "shared"}


@pytest.mark.parametrize(
    "op, message",
    [
        (["lock", 0, 5, "read"], r"expected \['lock', L, budget\] or \['lock', L, budget, 'shared'\]"),
        (["lock", 0, 5, "shared", 1], r"expected \['lock', L, budget\] or \['lock', L, budget, 'shared'\]"),
    ],
)
def test_a_malformed_json_acquisition_is_refused(op, message):
    data = {"n_locks": 1, "cpus": [{"task": [op, ["unlock", 0]]}]}
    with pytest.raises(InvalidArgument, match=message):
        Program.from_json(data)


def test_shared_must_be_a_bool():
    with pytest.raises(InvalidArgument, match=r"shared=1, expected True or False"):
        Program(cpus=(CpuProgram(task=(Lock(0, shared=1), Unlock(0))),), n_locks=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"operation 'lock L0 read'"):
        Program.from_text("cpu0.task: lock L0 read; unlock L0")


@given(programs(max_cpus=3, max_locks=3, max_handlers=1, budgets=budgets(), modes=("exclusive", "shared")))
def test_programs_with_modes_round_trip_through_text_and_json(program):
    assert Program.from_text(program.describe()) == program
    assert Program.from_json(json.loads(json.dumps(program.to_json()))) == program


@given(programs_for(Semaphore))
def test_a_semaphore_gets_only_shared_acquisitions(program):
    assert program.modes == {"shared"}


@given(programs_for(RwLock))
def test_programs_for_a_lock_without_timeouts_stay_ordered_in_both_modes(program):
    # Ordered: a context never takes a lock again inside its own section, in either mode.
    for cp in program.cpus:
        for ops in (cp.task, *(h.ops for h in cp.handlers)):
            held: list[int] = []
            for op in ops:
                if isinstance(op, Lock):
                    assert all(op.lock > x for x in held), program.describe()
                    held.append(op.lock)
                elif isinstance(op, Unlock):
                    held.pop()


def test_programs_for_a_reader_writer_lock_draw_both_modes_and_shrink_toward_exclusive():
    from hypothesis import find

    both = find(programs_for(RwLock), lambda p: p.modes == {"exclusive", "shared"})
    assert both.modes == {"exclusive", "shared"}
    smallest = find(programs_for(RwLock), lambda p: True)
    assert smallest.modes == {"exclusive"}
    assert find(programs_for(lockfuzz.resolve_target("tas")), lambda p: True).modes == {"exclusive"}


def test_a_mode_the_target_does_not_declare_is_refused_up_front():
    with pytest.raises(InvalidArgument, match=r"shared acquisition at cpu0.task\[0\] \(lock L0 shared\), but "
                                              r"TicketLock declares no sharing"):
        run("ticket", "cpu0.task: lock L0 shared; unlock L0")
    with pytest.raises(InvalidArgument, match=r"exclusive acquisition at cpu1.task\[0\] \(lock L0\), but Semaphore "
                                              r"declares Sharing\(exclusive=False\)"):
        run(Semaphore, "cpu0.task: lock L0 shared; unlock L0\ncpu1.task: lock L0; unlock L0")
    with pytest.raises(InvalidArgument, match="TicketLock declares no sharing"):
        lockfuzz.fuzz("ticket", program=Program.from_text("cpu0.task: lock L0 shared; unlock L0"), runs=1)


# -- mutual exclusion ---------------------------------------------------------------------------
WRITER_AFTER_READER = """
cpu0.task: lock L0 shared; work 10us; unlock L0
cpu1.task: lock L0; unlock L0
"""


def test_a_writer_admitted_beside_a_reader():
    result = run(BrokenRwLock, WRITER_AFTER_READER)
    assert signature(result) == ("mutual-exclusion", "writer-beside-reader")
    assert "cpu1.task acquired L0 exclusively while cpu0.task holds it shared" in result.violation.message
    assert signature(run(RwLock, WRITER_AFTER_READER)) is None


def test_readers_share_and_the_timeline_shows_the_modes():
    result = run(RwLock, "cpu0.task: lock L0 shared; work 10us; unlock L0\ncpu1.task: lock L0 shared; unlock L0")
    assert result.ok
    texts = [result.trace.text(i) for i in range(len(result.trace))]
    assert texts.count("acquire L0 shared") == 3  # two readers, and the final check's shared acquisition
    assert "release L0 shared done" in texts
    assert "acquire L0" in texts  # the final check takes it exclusively too
    shown = timeline(result.trace)
    assert "acquire L0 shared ..." in shown and "release L0 shared ..." in shown
    # Its return says the mode too (it did not: "acquire L0 -> OK" under "acquire L0 shared ...").
    assert shown.count("acquire L0 shared -> OK") == 2 and "  acquire L0 -> OK" not in shown.replace("final", "")


def test_a_semaphore_that_hands_out_one_permit_too_many():
    three = "\n".join(f"cpu{c}.task: lock L0 shared; work 10us; unlock L0" for c in range(3))
    result = run(GenerousSemaphore, three)
    assert signature(result) == ("mutual-exclusion", "over-capacity")
    assert "holder number 3; L0 admits at most 2" in result.violation.message
    assert run(Semaphore, three).ok
    # The capacity is the instance's (a parameter): three holders are fine for three permits.
    assert run(Semaphore, three, params={"capacity": 3}).ok


def test_the_same_broken_semaphore_is_clean_when_its_capacity_allows_it():
    four = "\n".join(f"cpu{c}.task: lock L0 shared; work 10us; unlock L0" for c in range(4))
    assert signature(run(GenerousSemaphore, four, params={"capacity": 3})) == ("mutual-exclusion", "over-capacity")
    assert run(Semaphore, four, params={"capacity": 4}).ok


def test_shared_acquisitions_over_trio():
    three = "\n".join(f"cpu{c}.task: lock L0 shared; work 10us; unlock L0" for c in range(3))
    assert run(TrioSemaphore2, three).ok
    result = run(TrioSemaphore3As2, three)
    assert signature(result) == ("mutual-exclusion", "over-capacity")
    # Cancelled lines (the trio driver's decisions) release their permits in shared mode.
    report = lockfuzz.fuzz(TrioSemaphore2, runs=300, runs_per_program=10, seed=1)
    assert report.ok, [f.failure.violation for f in report.found]


# -- fairness across modes ----------------------------------------------------------------------
# A reader holds for 100 us; a writer arrives at 10 us; a second context reads twice from 20 us.
READERS_PASS_A_WRITER = """
cpu0.task: lock L0 shared; work 100us; unlock L0
cpu1.task: work 10us; lock L0; unlock L0
cpu2.task: work 20us; lock L0 shared; unlock L0; lock L0 shared; unlock L0
"""


def test_readers_starve_a_writer_past_the_declared_bound():
    result = run(StarvingRwLock, READERS_PASS_A_WRITER)
    assert signature(result) == ("fairness", "writer-starved")
    assert "2 readers that arrived after it got L0 while it waited, last cpu2.task" in result.violation.message
    assert "cpu1.task (exclusive" in result.violation.message
    assert run(ReaderRwLock, READERS_PASS_A_WRITER).ok  # no bound promised: no verdict
    assert run(BoundedRwLock, READERS_PASS_A_WRITER).ok  # a writer-preference lock keeps a bound of 0
    assert run(RwLock, READERS_PASS_A_WRITER).ok


def test_a_reader_overtakes_a_writer_under_writer_preference():
    result = run(ClaimsWriterPreference, READERS_PASS_A_WRITER)
    assert signature(result) == ("fairness", "reader-overtook-writer")
    assert result.violation.contexts == ("cpu1.task", "cpu2.task")


class HandlerReadersPass(RwLock):
    """Correct: writer preference, except for readers in interrupt handlers (the qrwlock's rule)."""

    capabilities = Capabilities(sharing=Sharing(preference="writers", handler_readers_overtake=True))
    handler_readers_pass = True


def test_readers_in_handlers_may_pass_a_waiting_writer_where_declared():
    from support import Scripted

    def writer_announced(engine):  # type: ignore[no-untyped-def]
        attempts = engine.truth.attempts.values()
        return any(a.ctx.name == "cpu1.task" and a.ctx.steps - a.start_steps >= 1 for a in attempts)

    text = """
    cpu0.task: lock L0 shared; work 100us; unlock L0
    cpu1.task: work 10us; lock L0; unlock L0
    cpu2.task: work 200us
    cpu2.softirq#0: lock L0 shared; unlock L0
    """
    program = Program.from_text(text)
    result = lockfuzz.run(HandlerReadersPass, program, Scripted((writer_announced, "cpu2.softirq")))
    assert result.ok
    assert "irq-enter cpu2.softirq#0" in [result.trace.text(i) for i in range(len(result.trace))]
    result = lockfuzz.run(ClaimsWriterPreference, program, Scripted((writer_announced, "cpu2.softirq")))
    assert signature(result) == ("fairness", "reader-overtook-writer")
    assert result.violation.contexts == ("cpu1.task", "cpu2.softirq#0")
    # Without the exemption, writer preference keeps the handler's reader out too.
    result = lockfuzz.run(RwLock, program, Scripted((writer_announced, "cpu2.softirq")))
    assert result.ok and "irq-enter cpu2.softirq#0" in [result.trace.text(i) for i in range(len(result.trace))]


def test_a_writer_overtakes_a_reader_under_fifo_across_modes():
    # A writer holds; a reader waits from 10 us; a second writer arrives at 20 us and, with
    # writer preference, goes first when the holder leaves.
    text = """
    cpu0.task: lock L0; work 100us; unlock L0
    cpu1.task: work 10us; lock L0 shared; unlock L0
    cpu2.task: work 20us; lock L0; unlock L0
    """
    result = run(ClaimsFifo, text)
    assert signature(result) == ("fairness", "fifo-across-modes")
    assert result.violation.contexts == ("cpu1.task", "cpu2.task")
    assert run(RwLock, text).ok


def test_readers_admitted_together_overtake_nobody_under_fifo():
    # Two readers wait behind a writer; whichever returns first, both were admitted together.
    text = """
    cpu0.task: lock L0; work 100us; unlock L0
    cpu1.task: work 10us; lock L0 shared; unlock L0
    cpu2.task: work 20us; lock L0 shared; unlock L0
    """
    for schedule in ([], [0] * 40 + [2] * 10, [1] * 50):
        assert run(ClaimsFifo, text, schedule).ok


# -- the wait-for graph, EDEADLK and ETIMEDOUT by mode ----------------------------------------
RECURSIVE_READ = """
cpu0.task: lock L0 shared; work 10us; lock L0 shared; unlock L0; unlock L0
cpu1.task: work 5us; lock L0; unlock L0
"""


def test_a_reader_retaking_its_lock_behind_a_queued_writer_is_the_programs_deadlock():
    # Under writer preference the second read waits for the writer, which waits for the first:
    # a cycle in the ground truth, so the hang is the program's (the lock promised neither
    # timeouts nor detection), not a hang with no deadlock blamed on the lock.
    with pytest.raises(ProgramError, match=r"the program deadlocks .*cpu0.task waits for L0 shared, held shared by "
                                           r"cpu0.task, queued behind cpu1.task"):
        run(RwLock, RECURSIVE_READ)
    assert run(ReaderRwLock, RECURSIVE_READ).ok  # reader preference: the second read goes in


def test_edeadlk_for_an_upgrade_is_deserved_and_for_a_writer_behind_readers_is_not():
    upgrade = "cpu0.task: lock L0 shared; lock L0; unlock L0; unlock L0"
    result = run(UpgradeDetector, upgrade)
    assert result.ok
    assert "acquire L0 = EDEADLK" in [result.trace.text(i) for i in range(len(result.trace))]
    result = run(BlamesReaders, WRITER_AFTER_READER)
    assert signature(result) == ("edeadlk-sound", "no-cycle")
    assert run(UpgradeDetector, WRITER_AFTER_READER).ok


def test_an_upgrade_is_an_aa_deadlock_for_a_lock_that_claims_to_detect_them():
    result = run(ClaimsUpgradeDetection, "cpu0.task: lock L0 shared; lock L0; unlock L0; unlock L0")
    assert signature(result) == ("edeadlk-complete", "missed-AA")


def test_etimedout_is_deserved_by_mode_and_by_preference():
    # A writer behind a reader that holds for 5 ms, with a 1 ms budget: deserved.
    assert run(TimedRwLock, "cpu0.task: lock L0 shared; work 5ms; unlock L0\n"
                            "cpu1.task: work 10us; lock L0 (1ms); unlock L0").ok
    # A reader behind an announced writer: open to its mode, closed by the preference: deserved.
    result = run(TimedRwLock, """
    cpu0.task: lock L0 shared; work 5ms; unlock L0
    cpu1.task: work 10us; lock L0 (10ms); unlock L0
    cpu2.task: work 20us; lock L0 shared (1ms); unlock L0
    """)
    assert result.ok
    statuses = [result.trace.text(i) for i in range(len(result.trace)) if result.trace.events[i][2] == ACQUIRED]
    assert "acquire L0 = ETIMEDOUT" in statuses


def test_a_reader_asleep_beside_readers_has_lost_its_wakeup():
    result = run(ReadersWaitForReaders, "cpu0.task: lock L0 shared; work 5ms; unlock L0\n"
                                        "cpu1.task: work 10us; lock L0 shared (1ms); unlock L0")
    assert signature(result) == ("etimedout", "undeserved")
    assert result.violation.details["free_ns"] > 900_000


def test_the_final_check_takes_every_lock_in_each_mode():
    text = "cpu0.task: lock L0 shared; work 5ms; unlock L0\ncpu1.task: work 10us; lock L0 (1ms); unlock L0"
    result = run(StaleAnnouncement, text)
    # Only the final check's shared acquisition can fail: the exclusive one went first, and passed.
    assert signature(result) == ("final-state", "dirty-lock")
    events = result.trace.events
    final = [i for i in range(events.index(next(e for e in events if e[2] == FINAL)), len(events))]
    assert [result.trace.text(i) for i in final if events[i][2] in (ACQUIRE, ACQUIRED)] == [
        "acquire L0", "acquire L0 = OK", "acquire L0 shared", "acquire L0 = ETIMEDOUT",
    ]
    assert run(TimedRwLock, text).ok


# -- failure files ---------------------------------------------------------------------------
def test_a_shared_failure_saves_in_the_current_schema_and_replays(tmp_path):
    program = Program.from_text(WRITER_AFTER_READER)
    result = lockfuzz.run(BrokenRwLock, program)
    failure = Failure.from_run(BrokenRwLock, {}, program, result, lockfuzz.Settings())
    path = write_failure(failure, tmp_path)
    data = json.loads(path.read_text())
    assert data["schema"] == SCHEMA == 3
    assert data["program"]["cpus"][0]["task"][0] == ["lock", 0, 1_000_000_000, "shared"]
    assert load_failure(path).program == program
    assert replay(path).status == "reproduced"


SCHEMA_1 = Path(__file__).parent.parent / "replay" / "schema1"


@pytest.mark.parametrize("name", sorted(p.name for p in SCHEMA_1.glob("*.json")))
def test_failure_files_of_schema_1_still_replay(name):
    # Written by lockfuzz before modes existed (commit 59ef9e8): the same trace hash today.
    path = SCHEMA_1 / name
    assert json.loads(path.read_text())["schema"] == 1
    outcome = replay(path)
    assert outcome.status == "reproduced", outcome.message


def test_schema_1_has_no_shared_acquisition(tmp_path):
    data = json.loads(next(iter(sorted(SCHEMA_1.glob("nonatomic*.json")))).read_text())
    data["program"]["cpus"][0]["task"][0].append("shared")
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    with pytest.raises(lockfuzz.ReplayError, match=r"operation=\['lock', 0, 1000000000, 'shared'\]"):
        load_failure(path)


# -- campaigns ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "target, params",
    [(RwLock, {}), (ReaderRwLock, {}), (TimedRwLock, {}), (UpgradeDetector, {}), (HandlerReadersPass, {}),
     (Semaphore, {}), (Semaphore, {"capacity": 3})],
    ids=["rwlock", "reader-rwlock", "timed-rwlock", "detecting-rwlock", "handler-readers", "semaphore-2",
         "semaphore-3"],
)
def test_correct_shared_locks_are_clean_under_a_small_campaign(target, params):
    report = lockfuzz.fuzz(target, params=params, runs=1000, runs_per_program=10, seed=1)
    assert report.ok, [f.failure.violation for f in report.found]


@pytest.mark.parametrize(
    "target, params, expected",
    [
        (BrokenRwLock, {}, ("mutual-exclusion", "writer-beside-reader")),
        (GenerousSemaphore, {}, ("mutual-exclusion", "over-capacity")),
    ],
)
def test_a_small_campaign_finds_the_broken_ones(target, params, expected):
    report = lockfuzz.fuzz(target, params=params, runs=1000, runs_per_program=10, seed=1, minimise=False)
    assert [f.failure.signature for f in report.found] == [expected]
