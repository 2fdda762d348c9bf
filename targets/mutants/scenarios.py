"""One small program per mutant, in which a seeded random walk finds its bug.

``SCENARIOS`` maps a mutant name (a key of ``MUTANTS``) to a ``Program`` of 2-3 CPUs and 1-2
locks (no interrupt handler is needed); ``BASES`` maps it to the correct target it was made from,
which must run the same program under the same schedules without a violation (so that what the
oracle reports about the mutant is the bug, not a false alarm). A uniform seeded random walk
finds each bug in the first few runs (tests/quality/test_mutants_found.py); the search
strategies reuse the programs.

Why these programs: the race mutants (non-atomic TAS, torn ticket) need two CPUs in their
doorways at once, and a short critical section to overlap in; the queue mutants (lost hand-off,
unfair ticket) need a successor and a later arrival; the timeout and EDEADLK-attribution mutants
of the resilient TAS need a holder that keeps its lock past the bug's time scale (1 ms, a 1.5 ms
budget, or 1 s for the pending bit's timeout); the AA mutant a relock; the bystander mutant a
relock and another CPU that waits for the relocked lock; the lost wake-up a release that reaches
a waiter after its deadline, and a second waiter, with a longer budget, left asleep behind it.
"""

from __future__ import annotations

from lockfuzz import CpuProgram, Lock, Program, Unlock, Work

__all__ = ["BASES", "SCENARIOS"]

_MS = 1_000_000
_S = 1_000_000_000


def _cs(lock: int, work_ns: int = 0, *, shared: bool = False) -> tuple[Lock | Unlock | Work, ...]:
    """Lock (shared: as a reader, or for a permit), optionally work, unlock."""
    return (Lock(lock, shared=shared),) + ((Work(work_ns),) if work_ns else ()) + (Unlock(lock),)


def _cpus(*tasks: tuple[Lock | Unlock | Work, ...]) -> tuple[CpuProgram, ...]:
    return tuple(CpuProgram(task=t) for t in tasks)


# Two CPUs racing for one lock, each twice, holding it a little while.
_RACE = Program(cpus=_cpus(_cs(0, 10) * 2, _cs(0, 10) * 2), n_locks=1)
# Three CPUs, one lock: a queue with a successor and a later arrival.
_QUEUE = Program(cpus=_cpus(_cs(0), _cs(0), _cs(0)), n_locks=1)
# cpu1 takes L0 and takes it again in the same context (AA); cpu0 wants L0 too.
_RELOCK = Program(cpus=_cpus(_cs(0), (Lock(0), Lock(0), Unlock(0), Unlock(0))), n_locks=1)
# A holder that keeps the lock for 3 ms, and a waiter (with a 1.5 ms budget where budgets count).
_HOLD_3MS = Program(cpus=_cpus(_cs(0, 3 * _MS), (Lock(0, 3 * _MS // 2), Unlock(0))), n_locks=1)
# A holder that keeps the lock for 1.5 ms, a waiter whose 1 ms budget is spent when the holder
# releases (its timer fires at 2 ms), and a waiter with a 5 ms budget queued behind it: the
# wake-up lost with the first waiter leaves the second asleep on a free lock from 1.5 ms on.
_WAKE_AFTER_DEADLINE = Program(
    cpus=_cpus(_cs(0, 3 * _MS // 2), (Lock(0, _MS), Unlock(0)), (Lock(0, 5 * _MS), Unlock(0))), n_locks=1
)
# A holder that keeps the lock for longer than the resilient locks' 1 s timeout, and a waiter.
_LONG_HOLD = Program(cpus=_cpus(_cs(0, 3 * _S // 2), _cs(0)), n_locks=1)

SCENARIOS: dict[str, Program] = {
    "nonatomic_tas": _RACE,
    "torn_ticket": _RACE,
    "unfair_ticket": _QUEUE,
    "lost_handoff": _QUEUE,
    "timeout_as_deadlock": _HOLD_3MS,
    "early_timeout": _HOLD_3MS,
    "budget_overrun": _HOLD_3MS,
    # cpu1 retakes the lock it holds (AA within one context) while cpu0 contends for it. (A
    # hardirq taking the lock above its holder shows the same bug, but a uniform random walk
    # fires the handler while the task holds the lock in only about 1.5% of runs.)
    "blind_aa": _RELOCK,
    # cpu1 relocks L0 (AA within one context) while cpu0, a bystander, waits for L0.
    "bystander_edeadlk": _RELOCK,
    "dirty_after_timeout": _LONG_HOLD,
    "lost_wakeup": _WAKE_AFTER_DEADLINE,
    # A semaphore of 2 permits and three CPUs that take one each, holding it a little while.
    "semaphore_extra_permit": Program(cpus=_cpus(*[_cs(0, 100, shared=True)] * 3), n_locks=1),
    # A reader holding (long), a writer that queues behind it and sets _QW_WAITING, and a
    # reader arriving after that: the mutant lets it in past the waiting writer.
    "qrwlock_barging_reader": Program(
        cpus=_cpus(_cs(0, 1000, shared=True), _cs(0), _cs(0, 10, shared=True)), n_locks=1
    ),
    # A reader holding and a writer arriving.
    "trio_rwlock_writer_beside_reader": Program(cpus=_cpus(_cs(0, 100, shared=True), _cs(0)), n_locks=1),
    # A reader holding, a writer waiting behind it, and a reader that takes the lock twice: twice
    # past the writer, against a declared bound of one.
    "trio_rwlock_starves_writers": Program(
        cpus=_cpus(_cs(0, 1000, shared=True), _cs(0), _cs(0, 10, shared=True) * 2), n_locks=1
    ),
}

_TAS = "lockfuzz.targets.tas:TasLock"
_TICKET = "lockfuzz.targets.ticket:TicketLock"
_RTAS = "lockfuzz.targets.resilient_tas:ResilientTasLock"
_MCS = "lockfuzz.targets.mutants.lost_handoff:McsQueueLock"

BASES: dict[str, str] = {
    "nonatomic_tas": _TAS,
    "torn_ticket": _TICKET,
    "unfair_ticket": _TICKET,
    "lost_handoff": _MCS,
    "timeout_as_deadlock": _RTAS,
    "early_timeout": _RTAS,
    "budget_overrun": "lockfuzz.targets.mutants.budget_overrun:BudgetTasLock",
    "blind_aa": _RTAS,
    "bystander_edeadlk": _RTAS,
    "dirty_after_timeout": "lockfuzz.targets.mutants.dirty_after_timeout:PendingTasLock",
    "lost_wakeup": "lockfuzz.targets.mutants.lost_wakeup:WakeOneLock",
    "semaphore_extra_permit": "lockfuzz.targets.mutants.extra_permit:CountingSemaphore",
    "qrwlock_barging_reader": "lockfuzz.targets.qrwlock:QRWLock",
}

# The trio mutants' own scenarios and bases.
from lockfuzz.targets.mutants import trio_mutants as _trio  # noqa: E402 - after the dicts it extends

SCENARIOS.update(_trio.SCENARIOS)
BASES.update(_trio.BASES)

from lockfuzz.targets.mutants import trio_rwlocks as _rw  # noqa: E402 - after the dicts it extends

BASES.update(_rw.BASES)
