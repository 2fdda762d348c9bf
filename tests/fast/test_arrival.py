"""Arrival is at the doorway, not at the call to ``acquire`` (Lamport's bakery: B is ahead of A when
B finished its doorway before A began its own, at A's first step). The ground truth settles each
attempt's order at its first step (``GroundTruth.opened``). Before, it took the waiters past their
doorway when ``acquire`` was called, which both raised a false alarm and hid real overtaking:

- ``BoundedReaderRwLock``, written for the false-alarm hunt by someone new to lockfuzz: a
  reader-preferring reader-writer lock that lets at most one reader pass a waiting writer
  (``Sharing(preference="readers", reader_overtakes=1, doorway_steps=1)``). Reader R1 calls
  ``acquire`` at t=1 but takes its first step after the writer's doorway (its fetch_add): R1
  arrived after the writer and passed it, using up the bound, so reader R2's ETIMEDOUT is
  deserved. Ordered by the call, it was ``etimedout/undeserved``; and the same lock letting two
  readers pass while declaring one was not flagged on that schedule.
- a ticket lock whose doorway is one step longer than it declares: a waiter that calls
  ``acquire`` after the holder-to-be but passes its declared doorway before the other's first step
  was not counted as overtaken.
"""

from __future__ import annotations

from test_tight_promises import THREE_ON_ONE, TicketLoadsFirst

import lockfuzz
from lockfuzz import Capabilities, Context, Machine, Mark, Program, Sharing, Status, Target, Timeouts
from lockfuzz._engine._events import ACQUIRE, ACQUIRED
from lockfuzz._engine._machine import WAIT

_N = 1
_READERS = 0xFF
_WRITER = 1 << 8
_WAITING_WRITER = 1 << 9
_WAITING_WRITERS = 0x7F << 9
_PASS = 1 << 16
_PASSES = 0xFF << 16


def _refill(v: int, passes: int) -> int:
    return (v & ~_PASSES) | (passes * _PASS) if v & _WAITING_WRITERS == 0 else v


def _reader_may_enter(v: int) -> bool:
    return not v & _WRITER and (v & _WAITING_WRITERS == 0 or v & _PASSES != 0)


class BoundedReaderRwLock(Target):
    """One word: readers, writer held, waiting writers, passes left (module doc)."""

    passes = _N  # readers let past a waiting writer (what it declares: ``_N``)

    capabilities = Capabilities(
        timeouts=Timeouts(per_call=True),
        sharing=Sharing(exclusive=True, preference="readers", reader_overtakes=_N, doorway_steps=1),
    )

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.words = [machine.cell(f"L{i}", self.passes * _PASS) for i in range(machine.n_locks)]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int, shared: bool = False) -> Status:
        word = self.words[lock]
        deadline = ctx.now + budget_ns
        if shared:
            while True:
                v = await word.load()
                if _reader_may_enter(v):
                    new = v + 1 if v & _WAITING_WRITERS == 0 else v + 1 - _PASS
                    if await word.cmpxchg(v, new) == v:
                        ctx.mark(Mark.TAKEN, lock)
                        return Status.OK
                    continue
                if ctx.now >= deadline:
                    return Status.ETIMEDOUT
                await word.wait_until(_reader_may_enter, deadline)
        await word.fetch_add(_WAITING_WRITER)  # the writer's doorway
        while True:
            v = await word.load()
            if v & (_READERS | _WRITER) == 0:
                if await word.cmpxchg(v, _refill(v - _WAITING_WRITER + _WRITER, self.passes)) == v:
                    ctx.mark(Mark.TAKEN, lock)
                    return Status.OK
                continue
            if ctx.now >= deadline:
                while True:  # leave: drop the announcement, refill the passes if it was the last
                    v = await word.load()
                    if await word.cmpxchg(v, _refill(v - _WAITING_WRITER, self.passes)) == v:
                        return Status.ETIMEDOUT
            await word.wait_until(lambda x: x & (_READERS | _WRITER) == 0, deadline)

    async def release(self, ctx: Context, lock: int, shared: bool = False) -> None:
        word = self.words[lock]
        if shared:
            await word.fetch_add(-1)
        else:
            await word.fetch_and(~_WRITER)


_EARLY_READER = Program.from_json({
    "cpus": [
        {"handlers": [], "task": [["lock", 0, 10_000_000, "shared"], ["work", 1_000_000], ["unlock", 0]]},
        {"handlers": [], "task": [["lock", 0, 10_000_000], ["unlock", 0]]},
        {"handlers": [], "task": [["lock", 0, 500_000, "shared"], ["unlock", 0]]},
    ],
    "n_locks": 1,
})  # fmt: skip


class TwoPassesDeclaredOne(BoundedReaderRwLock):
    """Lets two readers past a waiting writer, and still declares one."""

    passes = 2


#: Reader R1 (cpu0) calls ``acquire`` first and its first step comes after the writer's (cpu1)
#: fetch_add; reader R2 (cpu2) comes while R1 holds, with 500 us to wait.
EARLY_READER_LATE_DOORWAY = [0, 1, 0, 1]


def _first_steps(result: lockfuzz.RunResult) -> list[str]:
    """The contexts in the order of their first memory access."""
    order: list[str] = []
    for e in result.trace.events:
        name = result.trace.contexts[e[1]]
        if e[2] < WAIT and name not in order:  # a memory access: its first step here
            order.append(name)
    return order


def test_a_reader_that_passes_its_doorway_after_a_writer_counts_against_the_writers_bound():
    result = lockfuzz.run(BoundedReaderRwLock, _EARLY_READER, EARLY_READER_LATE_DOORWAY)
    assert result.violation is None, str(result.violation)
    # The schedule is the one that matters: R1 called first, the writer stepped first, R2 gave up.
    assert _first_steps(result)[:2] == ["cpu1.task", "cpu0.task"], _first_steps(result)
    assert Status.ETIMEDOUT in {e[4] for e in result.trace.events if e[2] == ACQUIRED}


def test_two_readers_past_a_writer_that_arrived_first_break_a_bound_of_one():
    result = lockfuzz.run(TwoPassesDeclaredOne, _EARLY_READER, EARLY_READER_LATE_DOORWAY)
    assert result.violation is not None
    assert result.violation.signature == ("fairness", "writer-starved"), str(result.violation)
    assert "2 readers that arrived after it" in result.violation.message


def test_a_later_caller_past_its_doorway_first_is_ahead():
    # cpu1 calls acquire after cpu0, but loads (its declared one-step doorway) before cpu0's
    # first step; cpu0 then draws the earlier ticket and takes the lock while cpu1 waits.
    result = lockfuzz.run(TicketLoadsFirst, THREE_ON_ONE, [0, 1, 0, 1, 0])
    assert result.violation is not None
    assert result.violation.signature == ("fairness", "overtaken"), str(result.violation)
    assert result.violation.contexts == ("cpu1.task", "cpu0.task")
    calls = [result.trace.contexts[e[1]] for e in result.trace.events if e[2] == ACQUIRE]
    assert calls.index("cpu0.task") < calls.index("cpu1.task")  # cpu0 called first
