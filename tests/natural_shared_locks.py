"""Shared locks written the way their authors write them, not for lockfuzz (issue 12's judgement).

Four correct reader-writer locks and two broken ones, each broken in a way its author would not
see in review:

- ``SpinRW``: one 32-bit word over cells, the writer as all ones (``-1`` in C), else the reader
  count; plain ``load``/``cmpxchg`` spin loops, no waiting primitive, no promise beyond mutual
  exclusion across modes. ``TornSpinRW`` counts a reader in with a load and a store instead of
  one atomic step: two readers that race lose a count, and a writer later enters beside the one
  still reading.
- ``ReadersFirst``: the textbook readers-preference lock (Courtois, Heymans and Parnas, CACM
  1971: the first reader in takes the resource, the last one out gives it back) on trio, with a
  ``trio.Lock`` guarding the count and a ``trio.Semaphore(1)`` as the resource, its releases
  shielded as trio asks. Broken under cancellation, which the textbook never met: the first
  reader counts itself before it has the resource, so a reader cancelled (or timed out) while
  waiting for it leaves the count raised, and the next reader walks in beside the writer that
  holds it. ``CancelSafeReadersFirst`` counts a reader only once the resource is its own.

- ``ConditionFifoRW``: readers and writers served in arrival order (FIFO across modes,
  consecutive readers together) on one ``trio.Condition``, written by a newcomer for the
  false-alarm hunt: a queue of entries under the condition's lock, a ``while`` loop around
  ``wait``, ``notify_all`` on every change, shielded releases. Correct; with interrupts forced on,
  a handler's shared acquire landing in its task's shared release waits for the condition's lock
  the release holds, which was once judged a lost wake-up (``etimedout/undeserved``).

- ``WritersFirstSpinRW``: a writer-preferring spin reader-writer lock with per-call budgets (a
  writer announces itself, and readers stay out while one waits), declaring no preference, as
  most authors would: it promises none. Correct; a reader timing out behind a waiting writer was
  once judged a lost wake-up (``etimedout/undeserved``), as if no declared order meant "readers
  first".

Import with ``tests/`` on ``sys.path`` (``tests/conftest.py`` puts it there): a campaign names a
lock ``natural_shared_locks:SpinRW``.
"""

from __future__ import annotations

from typing import Any

import trio

import lockfuzz
from lockfuzz import Capabilities, Context, Machine, Sharing, Status, Target, Timeouts

__all__ = [
    "BROKEN", "CORRECT", "CancelSafe", "ConditionFifoRW", "SpinRW", "TextbookReadersFirst", "TornSpinRW",
    "WritersFirstSpinRW",
]

WRITER = 0xFFFF_FFFF  # -1 in the 32-bit word (cells are unsigned words, as a C u32 is)


class SpinRW(Target):
    capabilities = Capabilities(sharing=Sharing(exclusive=True))

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int, shared: bool = False) -> Status:
        word = self.words[lock]
        while True:
            v = await word.load()
            if shared and v != WRITER:
                if await word.cmpxchg(v, v + 1) == v:
                    return Status.OK
            elif not shared and v == 0:
                if await word.cmpxchg(0, WRITER) == 0:
                    return Status.OK

    async def release(self, ctx: Context, lock: int, shared: bool = False) -> None:
        word = self.words[lock]
        if shared:
            await word.fetch_add(-1)
        else:
            await word.store(0)


class TornSpinRW(SpinRW):
    """``SpinRW`` whose reader counts itself in with a load and a store (not atomic)."""

    async def acquire(self, ctx: Context, lock: int, budget_ns: int, shared: bool = False) -> Status:
        if not shared:
            return await super().acquire(ctx, lock, budget_ns)
        word = self.words[lock]
        while True:
            v = await word.load()
            if v != WRITER:
                await word.store(v + 1)
                return Status.OK


class WritersFirstSpinRW(Target):
    """Writer-preferring: one word, readers in the low bits, the writer's bit, waiting writers
    above; a reader enters only when no writer holds or waits (module doc)."""

    capabilities = Capabilities(timeouts=Timeouts(per_call=True), sharing=Sharing(exclusive=True))
    HELD = 1 << 16
    WAITING = 1 << 20

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.words = [machine.cell(f"L{i}", 0) for i in range(machine.n_locks)]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int, shared: bool = False) -> Status:
        word = self.words[lock]
        deadline = ctx.now + budget_ns
        if shared:
            while True:
                v = await word.load()
                if v < self.HELD:  # no writer holds or waits
                    if await word.cmpxchg(v, v + 1) == v:
                        return Status.OK
                    continue
                if ctx.now >= deadline:
                    return Status.ETIMEDOUT
                await word.wait_until(lambda x: x < self.HELD, deadline)
        await word.fetch_add(self.WAITING)
        while True:
            v = await word.load()
            if v & (self.HELD | 0xFFFF) == 0:
                if await word.cmpxchg(v, v - self.WAITING + self.HELD) == v:
                    return Status.OK
                continue
            if ctx.now >= deadline:
                await word.fetch_add(-self.WAITING)
                return Status.ETIMEDOUT
            await word.wait_until(lambda x: x & (self.HELD | 0xFFFF) == 0, deadline)

    async def release(self, ctx: Context, lock: int, shared: bool = False) -> None:
        await self.words[lock].fetch_add(-1 if shared else -self.HELD)


class ReadersFirst:
    """The textbook readers-preference lock on trio (module doc)."""

    def __init__(self) -> None:
        self.readers = 0
        self.guard = trio.Lock()
        self.resource = trio.Semaphore(1)

    async def acquire_shared(self) -> None:
        async with self.guard:
            self.readers += 1
            if self.readers == 1:
                await self.resource.acquire()

    async def release_shared(self) -> None:
        with trio.CancelScope(shield=True):
            async with self.guard:
                self.readers -= 1
                if self.readers == 0:
                    self.resource.release()

    async def acquire(self) -> None:
        await self.resource.acquire()

    def release(self) -> None:
        self.resource.release()


class CancelSafeReadersFirst(ReadersFirst):
    """The same, counting a reader only once the resource is its own."""

    async def acquire_shared(self) -> None:
        async with self.guard:
            if self.readers == 0:
                await self.resource.acquire()
            self.readers += 1


class FifoRW:
    """Readers and writers in arrival order on one ``trio.Condition`` (module doc)."""

    def __init__(self) -> None:
        self.cond = trio.Condition()
        self.queue: list[list[Any]] = []  # [is_writer, identity] per waiter, in arrival order
        self.readers = 0
        self.writer = False

    def _may_enter(self, entry: list[Any]) -> bool:
        if self.writer:
            return False
        ahead = self.queue[: next(i for i, e in enumerate(self.queue) if e is entry)]
        if entry[0]:
            return not ahead and self.readers == 0
        return not any(e[0] for e in ahead)

    async def _enter(self, writer: bool) -> None:
        async with self.cond:
            entry = [writer, object()]
            self.queue.append(entry)
            try:
                while not self._may_enter(entry):
                    await self.cond.wait()
            except BaseException:
                self.queue.remove(entry)
                self.cond.notify_all()  # the ones behind it may enter now
                raise
            self.queue.remove(entry)
            if writer:
                self.writer = True
            else:
                self.readers += 1
                self.cond.notify_all()  # the readers queued right behind it enter too

    async def acquire(self) -> None:
        await self._enter(True)

    async def acquire_shared(self) -> None:
        await self._enter(False)

    async def release(self) -> None:
        with trio.CancelScope(shield=True):
            async with self.cond:
                self.writer = False
                self.cond.notify_all()

    async def release_shared(self) -> None:
        with trio.CancelScope(shield=True):
            async with self.cond:
                self.readers -= 1
                if self.readers == 0:
                    self.cond.notify_all()


def _held(rw: Any) -> bool:
    return bool(rw.resource.value == 0)


_READERS = Sharing(exclusive=True, preference="readers")  # writers may starve: nothing more promised
TextbookReadersFirst = lockfuzz.trio_target(ReadersFirst, name="TextbookReadersFirst", held=_held, sharing=_READERS)
CancelSafe = lockfuzz.trio_target(CancelSafeReadersFirst, name="CancelSafe", held=_held, sharing=_READERS)

ConditionFifoRW = lockfuzz.trio_target(
    FifoRW, name="ConditionFifoRW", held=lambda rw: rw.writer or rw.readers > 0,
    sharing=Sharing(exclusive=True, preference="fifo", doorway_steps=0),
)

#: The correct ones, by short name: a campaign finds nothing.
CORRECT: dict[str, Any] = {
    "spin_rw": SpinRW, "cancel_safe_readers_first": CancelSafe, "condition_fifo_rw": ConditionFifoRW,
    "writers_first_spin_rw": WritersFirstSpinRW,
}
#: The broken ones: (class, the violation a default campaign reports).
BROKEN: dict[str, tuple[Any, tuple[str, str]]] = {
    "torn_spin_rw": (TornSpinRW, ("mutual-exclusion", "writer-beside-reader")),
    "textbook_readers_first": (TextbookReadersFirst, ("mutual-exclusion", "writer-beside-reader")),
}
