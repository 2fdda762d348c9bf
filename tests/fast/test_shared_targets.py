"""The shared and counted targets of #12: the queued rwlock, trio's Semaphore and CapacityLimiter
with a capacity, the reader-writer lock on trio.Condition, and the correct bases of the shared
mutants. Each runs clean under a bounded, derandomized campaign; the queued rwlock's two reader
paths are pinned with exact programs and schedules; capacities are checked and declared per
instance."""

from __future__ import annotations

import pytest
from support import Scripted, waits

import lockfuzz
import lockfuzz.strategies
from lockfuzz import CpuProgram, Handler, Level, Lock, Machine, Program, Sharing, Unlock, Work
from lockfuzz._engine._run import Engine
from lockfuzz._engine._events import ACQUIRED
from lockfuzz._engine._machine import OP_NAMES, WAIT
from lockfuzz.targets.mutants.barging_reader import BargingReaderQRWLock
from lockfuzz.targets.qrwlock import QR_BIAS, QW_WAITING, QRWLock
from lockfuzz.targets.trio_locks import TrioCapacityLimiter, TrioRWLock, TrioSemaphore

# Correct targets and the parameters to run them with: bundled ones by name, the mutants' correct
# bases by import path (``targets/mutants/scenarios.py``: BASES).
CLEAN = [
    ("qrwlock", {}),
    ("trio_rwlock", {}),
    ("trio_semaphore", {"capacity": 3}),
    ("trio_capacity_limiter", {"capacity": 2}),
    ("lockfuzz.targets.mutants.extra_permit:CountingSemaphore", {}),
    ("lockfuzz.targets.mutants.trio_rwlocks:TrioBoundedReaderRWLock", {}),
]
RUNS = 200


@pytest.mark.parametrize("name, params", CLEAN, ids=[n.rpartition(":")[2] + str(p or "") for n, p in CLEAN])
def test_correct_shared_targets_run_clean(name, params):  # type: ignore[no-untyped-def]
    # The campaign draws for what the target promises as its parameters build it: a capacity
    # above 1 makes a counted lock of shared acquisitions (the class attribute says capacity 1).
    seen: set[bool] = set()

    def modes(record: lockfuzz.RunRecord) -> bool:
        seen.update(a.shared for a in record.acquisitions)
        return True

    report = lockfuzz.fuzz(name, params=params, runs=RUNS, seed=3, max_failures=3, properties=[modes])
    assert report.ok, [f.failure.violation for f in report.found]
    assert report.runs == RUNS
    sharing = lockfuzz.strategies.capabilities_for(lockfuzz.resolve_target(name), params).sharing
    assert seen == {True} if not sharing.exclusive else seen == {True, False}


def test_the_cli_draws_for_the_capacity_it_is_given(capsys, tmp_path):  # type: ignore[no-untyped-def]
    from lockfuzz._frontends._cli import main

    for target in ("trio_semaphore", "trio_capacity_limiter"):
        args = ["fuzz", target, "--param", "capacity=3", "--runs", "100", "--quiet", "--failure-dir", str(tmp_path)]
        assert main(args) == 0, capsys.readouterr()
        assert main([*args, "--workers", "2"]) == 0, capsys.readouterr()  # the shards build it as well


# -- capacities: each lock's from the program, or a parameter declared on the instance ------------
@pytest.mark.parametrize("cls", [TrioSemaphore, TrioCapacityLimiter])
def test_capacity_is_declared_per_instance(cls):  # type: ignore[no-untyped-def]
    machine = Machine(n_cpus=2, n_locks=2)
    per_lock = Sharing(exclusive=False, capacity=2, preference="fifo", doorway_steps=0, capacity_range=(1, 4))
    assert cls.capabilities.sharing == per_lock  # the default: a capacity per lock, from the program
    assert cls(machine).capabilities.sharing == per_lock
    three = cls(machine, capacity=3)
    assert three.capabilities.sharing == Sharing(exclusive=False, capacity=3, preference="fifo", doorway_steps=0)
    assert three.capabilities.fairness == cls.capabilities.fairness  # the rest of the promise is kept
    assert cls(machine, capacity=1).capabilities.sharing is None  # one permit: an exclusive lock
    assert cls.capabilities.sharing == per_lock  # the class attribute is untouched


@pytest.mark.parametrize("cls", [TrioSemaphore, TrioCapacityLimiter])
@pytest.mark.parametrize("bad", [0, -1, True, "3", 1.5])
def test_a_bad_capacity_is_named(cls, bad):  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=rf"capacity={bad!r}: expected an int >= 1 \(the"):
        cls(Machine(n_cpus=1, n_locks=1), capacity=bad)


def test_semaphore_of_three_holds_three_and_no_more():
    # Four CPUs each take a permit and hold it: with no preemption, the fourth waits until the
    # first gives one back; at most three hold at once, and the run is clean.
    program = Program(
        cpus=tuple(CpuProgram(task=(Lock(0, shared=True), Work(1000), Unlock(0))) for _ in range(4)), n_locks=1
    )
    result = lockfuzz.run(TrioSemaphore, program, [], params={"capacity": 3})
    assert result.violation is None
    got = [(t, ctx) for t, ctx, kind, _, _ in result.trace.events if kind == ACQUIRED][:4]  # then the final check
    assert [ctx for _, ctx in got] == [0, 1, 2, 3]
    assert got[3][0] >= 1000  # the fourth got its permit only after the first hold ended


def test_cli_refuses_a_bad_capacity(capsys):  # type: ignore[no-untyped-def]
    from lockfuzz._frontends._cli import main

    assert main(["fuzz", "trio_semaphore", "--param", "capacity=0", "--runs", "1"]) == 2
    assert "capacity=0: expected an int >= 1" in capsys.readouterr().err


def test_targets_lists_the_modes(capsys):  # type: ignore[no-untyped-def]
    from lockfuzz._frontends._cli import main

    assert main(["targets"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    qrw = text[text.index("qrwlock "):]
    assert "modes: exclusive and shared, any number of shared holders; writer preference" in qrw
    assert "readers in interrupt handlers may pass a waiting writer" in qrw
    assert "modes: exclusive and shared" in text[text.index("trio_rwlock "):]


# -- the queued rwlock's reader paths, pinned -----------------------------------------------------
def _writer_waits(engine: Engine) -> bool:
    """cpu1's writer has set _QW_WAITING (and waits for the reader to leave)."""
    return bool(engine.target.cnts[0].value & QW_WAITING)


#: cpu0's task reads L0 and holds it; cpu1's task writes L0; a third reader comes in after the
#: writer has set _QW_WAITING: from a hardirq on cpu0 (above the holding reader), or a task on cpu2.
_HOLD = (Lock(0, shared=True), Work(1000), Unlock(0))
_READ = (Lock(0, shared=True), Unlock(0))
_WRITE = (Lock(0), Unlock(0))


def _order(result) -> list[str]:  # type: ignore[no-untyped-def]
    """The contexts of the program in the order they got their locks (not the final check's)."""
    names = result.trace.contexts
    got = [names[ctx] for _, ctx, kind, _, _ in result.trace.events if kind == ACQUIRED]
    return [name for name in got if not name.endswith(".final")]


def test_qrwlock_reader_in_a_handler_passes_a_waiting_writer():
    program = Program(
        cpus=(CpuProgram(task=_HOLD, handlers=(Handler(Level.HARDIRQ, _READ),)), CpuProgram(task=_WRITE)), n_locks=1
    )
    source = Scripted((waits("cpu1.task", 0), "cpu1.task"), (_writer_waits, "cpu0.hardirq"))
    result = lockfuzz.run(QRWLock, program, source)
    assert result.violation is None
    # The handler's reader kept its bias and got L0 past the writer (in_interrupt()): it did not
    # wait behind the writer that waits for the reader it interrupted.
    assert _order(result) == ["cpu0.task", "cpu0.hardirq#0", "cpu1.task"]


def test_qrwlock_task_reader_queues_behind_a_waiting_writer():
    program = Program(cpus=(CpuProgram(task=_HOLD), CpuProgram(task=_WRITE), CpuProgram(task=_READ)), n_locks=1)
    source = Scripted((waits("cpu1.task", 0), "cpu1.task"), (_writer_waits, "cpu2.task"))
    result = lockfuzz.run(QRWLock, program, source)
    assert result.violation is None
    assert _order(result) == ["cpu0.task", "cpu1.task", "cpu2.task"]
    # The same schedule on the mutant whose fast path tests _QW_LOCKED: the late reader barges in
    # past the writer that set _QW_WAITING, which arrived at that marked step (doorway_steps=None).
    mutant = lockfuzz.run(BargingReaderQRWLock, program, result.decisions)
    assert _order(mutant) == ["cpu0.task", "cpu2.task"]  # and the run stops there:
    assert mutant.violation is not None and mutant.violation.signature == ("fairness", "reader-overtook-writer")


def test_qrwlock_word_after_readers_and_a_waiting_writer():
    # Two readers hold, then a writer comes: its fast path fails, it takes the wait_lock (the
    # bundled qspinlock, free: one cmpxchg), finds two readers' biases in the word and sets
    # _QW_WAITING beside them; it gets in once both are gone (cnts == _QW_WAITING).
    program = Program(cpus=(CpuProgram(task=_HOLD), CpuProgram(task=_HOLD), CpuProgram(task=_WRITE)), n_locks=1)
    result = lockfuzz.run(QRWLock, program, [])
    assert result.violation is None
    assert _order(result) == ["cpu0.task", "cpu1.task", "cpu2.task"]
    layout = QRWLock(Machine(n_cpus=3, n_locks=1))
    cnts, wait_lock = layout.cnts[0].index, layout.wait_lock.words[0].index
    writer = result.trace.contexts.index("cpu2.task")
    names = [
        (OP_NAMES[op], "cnts" if cell == cnts else "wait_lock", value)
        for _, ctx, op, cell, value in result.trace.events
        if ctx == writer and op <= WAIT and cell in (cnts, wait_lock)  # its memory steps and waits on the two
    ]
    assert names == [
        ("cmpxchg", "cnts", 2 * QR_BIAS),  # queued_write_lock: the word is not 0
        ("cmpxchg", "wait_lock", 0),  # arch_spin_lock(&lock->wait_lock): free, taken
        ("load", "cnts", 2 * QR_BIAS),  # two readers: no direct cmpxchg to _QW_LOCKED
        ("fetch_or", "cnts", 2 * QR_BIAS),  # atomic_or(_QW_WAITING): returns the old word
        ("wait", "cnts", 2 * QR_BIAS | QW_WAITING),  # cond_read(VAL == _QW_WAITING): not yet
        ("wait", "cnts", QW_WAITING),  # the readers have drained
        ("cmpxchg", "cnts", QW_WAITING),  # _QW_WAITING -> _QW_LOCKED
        ("store_field", "wait_lock", 0),  # arch_spin_unlock: the locked byte cleared (the word after)
        ("store_field", "cnts", 0),  # queued_write_unlock: the writer byte cleared (the word after)
    ]


def test_qrwlock_reuses_the_bundled_qspinlock():
    from lockfuzz.targets.qspinlock import QSpinlock

    target = QRWLock(Machine(n_cpus=2, n_locks=3))
    assert type(target.wait_lock) is QSpinlock and not target.wait_lock.marks
    assert [w.name for w in target.wait_lock.words] == ["L0.wait_lock", "L1.wait_lock", "L2.wait_lock"]


def test_trio_rwlock_writer_waits_for_readers_and_holds_new_ones_back():
    program = Program(cpus=(CpuProgram(task=_HOLD), CpuProgram(task=_WRITE), CpuProgram(task=_READ)), n_locks=1)
    result = lockfuzz.run(TrioRWLock, program, [])
    assert result.violation is None
    assert _order(result) == ["cpu0.task", "cpu1.task", "cpu2.task"]
