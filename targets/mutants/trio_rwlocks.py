"""Broken reader-writer locks on ``trio.Condition``, each one small change to a correct one.

Two correct bases: the bundled ``TrioRWLock`` (``targets/trio_locks.py``: writer preference),
and ``TrioBoundedReaderRWLock`` below, which prefers readers but lets at most
``reader_overtakes`` of them pass a waiting writer, then holds new readers back until no writer
waits. Each mutant's docstring says what is Broken and which oracle catches it.

``MUTANTS``/``EXPECTED``/``BASES`` follow ``targets/mutants/__init__.py`` and ``scenarios.py``:
name -> import path, name -> oracle, name -> the correct target that runs its scenario cleanly.
"""

from __future__ import annotations

from dataclasses import replace

import trio

from lockfuzz.targets.trio_locks import RWLock, TrioRWLock

from lockfuzz import Capabilities, InvalidArgument, Machine, Sharing, Timeouts

__all__ = [
    "BASES", "BoundedReaderRWLock", "ConcurrentPassersRWLock", "EXPECTED", "ForgetfulWriterRWLock", "MUTANTS",
    "StarvingRWLock", "TrioBoundedReaderRWLock", "WriterBesideReaderRWLock",
]  # fmt: skip


class ForgetfulWriterRWLock(RWLock):
    """``RWLock`` whose writer waits only for another writer (see ``WriterBesideReaderRWLock``)."""

    _writer: bool  # RWLock's (declared again: a type checker run over targets/ sees that base as Any)

    async def acquire(self) -> None:
        async with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer:  # BUG: the readers already inside are forgotten
                    await self._cond.wait()
            except BaseException:
                self._writers_waiting -= 1
                self._cond.notify_all()
                raise
            self._writers_waiting -= 1
            self._writer = True


class WriterBesideReaderRWLock(TrioRWLock):
    """Mutant of the bundled ``trio_rwlock``: a writer gets in while a reader holds.

    Broken: the writer's wait predicate tests only for another writer (``while self._writer``),
    not for the readers inside (``or self._readers``). Its ``_writers_waiting`` count keeps *new*
    readers out, which is what its author had in mind; the readers that already hold the lock
    are forgotten, and the writer takes the lock beside them. One reader holding and one writer
    arriving show it, without any preemption. Caught by: **mutual-exclusion** (an exclusive
    holder beside a shared one).
    """

    def make(self) -> RWLock:
        return ForgetfulWriterRWLock()


class BoundedReaderRWLock(RWLock):
    """A reader-preferring rwlock with a bound: readers may go ahead of a waiting writer, at most
    ``limit`` of them while writers keep waiting; then new readers wait until no writer does.

    ``_passed`` counts the readers let in while a writer waited, and is reset only when no writer
    waits any more: every writer's wait lies inside one such stretch, so no writer is passed by
    more than ``limit`` readers that arrived after it (readers that arrived before it count too,
    which only makes the bound tighter)."""

    _writer: bool  # RWLock's (declared again: a type checker run over targets/ sees that base as Any)

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit
        self._passed = 0  # readers admitted while a writer waited, in this stretch of waiting writers

    async def acquire_shared(self) -> None:
        async with self._cond:
            while self._writer or (self._writers_waiting and self._passed >= self._limit):
                await self._cond.wait()
            if self._writers_waiting:
                self._passed += 1
            self._readers += 1

    async def acquire(self) -> None:
        async with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    await self._cond.wait()
            except BaseException:  # cancelled, or timed out: leave, and let held-back readers go
                self._writer_leaves()
                self._cond.notify_all()
                raise
            self._writer_leaves()
            self._writer = True

    def _writer_leaves(self) -> None:
        self._writers_waiting -= 1
        if not self._writers_waiting:
            self._passed = 0  # the stretch of waiting writers is over: readers start afresh


class TrioBoundedReaderRWLock(TrioRWLock):
    """Correct: ``BoundedReaderRWLock`` as a target. Promises reader preference with at most
    ``reader_overtakes`` (``--param reader_overtakes=2``; default 1) readers ahead of a waiting
    writer, after an empty doorway (a writer is counted in ``_writers_waiting`` before any
    reader that began after it can look: the condition's lock is a FIFO ``trio.Lock``)."""

    capabilities = Capabilities(
        timeouts=Timeouts(per_call=True),
        sharing=Sharing(exclusive=True, preference="readers", reader_overtakes=1, doorway_steps=0),
    )

    def __init__(self, machine: Machine, reader_overtakes: int = 1) -> None:
        if not isinstance(reader_overtakes, int) or isinstance(reader_overtakes, bool) or reader_overtakes < 0:
            raise InvalidArgument(f"reader_overtakes={reader_overtakes!r}: expected an int >= 0")
        self.limit = reader_overtakes
        sharing = Sharing(exclusive=True, preference="readers", reader_overtakes=reader_overtakes, doorway_steps=0)
        self.capabilities = replace(type(self).capabilities, sharing=sharing)
        super().__init__(machine)

    def make(self) -> RWLock:
        return BoundedReaderRWLock(self.limit)


class ConcurrentPassersRWLock(BoundedReaderRWLock):
    """``BoundedReaderRWLock`` that bounds the passers holding at once (see ``StarvingRWLock``)."""

    async def release_shared(self) -> None:
        with trio.CancelScope(shield=True):
            async with self._cond:
                self._readers -= 1
                if self._passed:
                    self._passed -= 1  # BUG: a passer that leaves gives its place to the next
                self._cond.notify_all()


class StarvingRWLock(TrioBoundedReaderRWLock):
    """Mutant of ``TrioBoundedReaderRWLock``: readers pass a waiting writer past the bound.

    Broken: a reader that leaves gives its pass back (``_passed -= 1`` in ``release_shared``), so
    the lock bounds how many readers that passed a waiting writer *hold at once*, not how many
    passed it: readers that come and go keep passing the writer for as long as they keep coming,
    one more at each release, while the lock still declares ``reader_overtakes=1``. A reader that
    holds, a writer that waits behind it and a second reader that takes the lock twice show it.
    Caught by: **fairness** (a waiting writer overtaken by more readers than declared).
    """

    def make(self) -> RWLock:
        return ConcurrentPassersRWLock(self.limit)


_P = "lockfuzz.targets.mutants.trio_rwlocks"

MUTANTS: dict[str, str] = {
    "trio_rwlock_writer_beside_reader": f"{_P}:WriterBesideReaderRWLock",
    "trio_rwlock_starves_writers": f"{_P}:StarvingRWLock",
}

EXPECTED: dict[str, str] = {
    "trio_rwlock_writer_beside_reader": "mutual-exclusion",
    "trio_rwlock_starves_writers": "fairness",
}

BASES: dict[str, str] = {
    "trio_rwlock_writer_beside_reader": "lockfuzz.targets.trio_locks:TrioRWLock",
    "trio_rwlock_starves_writers": f"{_P}:TrioBoundedReaderRWLock",
}
