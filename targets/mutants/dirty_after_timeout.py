"""Mutant of a resilient test-and-set lock with a pending bit: a timeout leaves the bit set.

``PendingTasLock`` (correct) is ``ResilientTasLock`` plus rqspinlock's pending bit (the S4-S7
steps of /work/shared/specs/rqspinlock.md; ``clear_pending`` on error in kernel/bpf/rqspinlock.c):
the word has a locked byte (``LOCKED`` = 1) and a pending byte (``PENDING`` = 1 << 8). A waiter that
finds the lock held and nobody pending sets ``PENDING`` with ``fetch_or`` and becomes *the*
pending waiter: it waits for the locked byte alone to clear, then stores ``LOCKED`` (clearing
``PENDING``) and owns the lock; while ``PENDING`` is set nobody else can take the lock (the
``cmpxchg(0 -> LOCKED)`` fails), so the hand-off to the pending waiter is safe. Other waiters wait
for the whole word to be 0, as in the plain fallback. Release clears the locked byte only. On an
error the pending waiter must clear ``PENDING``: the kernel's comment, "once a stuck owner has
been recovered, the lock must be restored to a valid state, hence removing the pending bit is
necessary". Same table, checks, timeout and promises as ``ResilientTasLock``.

Broken (``DirtyAfterTimeoutLock``): the pending waiter that times out (or gets EDEADLK: the same
error path) returns without clearing ``PENDING``. When the owner releases, the word stays
``PENDING`` forever and every later acquisition times out. No preemption needed: a holder that
keeps the lock for more than a second does it (an AA or ABBA that the pending waiter detects
does it in microseconds). Caught by: **final-state** (a fresh acquisition after the programs,
which times out on the dirty word).
"""

from __future__ import annotations

from lockfuzz.targets.resilient_tas import ResilientTasLock, _is_zero, _Timer

from lockfuzz import Cell, Context, Status

LOCKED = 1
PENDING = 1 << 8


class PendingTasLock(ResilientTasLock):
    """Resilient TAS with rqspinlock's pending bit: one waiter at a time waits for the locked byte
    alone and takes the lock as soon as it clears; the others wait for the whole word."""

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        word = self.words[lock]
        await self._grab_entry(ctx.cpu, lock)
        timer = _Timer(self._duration(budget_ns))
        val = await word.load()
        while True:
            if val == 0 and await word.cmpxchg(0, LOCKED) == 0:
                return Status.OK
            if not val & PENDING:
                old = await word.fetch_or(PENDING)
                if not old & PENDING:  # we are the pending waiter
                    return await self._pending_wait(ctx, lock, word, old, timer)
            ret = await self._check_timeout(ctx, lock, timer)
            if ret:
                await self._release_entry(ctx.cpu)
                return ret
            val = await word.wait_until(_is_zero, self._next_check(timer))

    async def _pending_wait(self, ctx: Context, lock: int, word: Cell, val: int, timer: _Timer) -> Status:
        while val & LOCKED:
            ret = await self._check_timeout(ctx, lock, timer)
            if ret:
                await self._clear_pending(word)
                await self._release_entry(ctx.cpu)
                return ret
            val = await word.wait_until(_unlocked, self._next_check(timer))
        # Only the pending bit is set, and nobody else can set the locked byte while it is.
        await word.store(LOCKED)
        return Status.OK

    async def _clear_pending(self, word: Cell) -> None:
        await word.fetch_and(~PENDING & 0xFFFFFFFF)

    async def release(self, ctx: Context, lock: int) -> None:
        await self.words[lock].store_field(0, 8, 0)  # the locked byte only: PENDING stays
        await self._release_entry(ctx.cpu)


class DirtyAfterTimeoutLock(PendingTasLock):
    """Pending-bit TAS whose pending waiter leaves ``PENDING`` set when it gives up."""

    async def _clear_pending(self, word: Cell) -> None:
        pass  # BUG: the error path forgets clear_pending()


def _unlocked(value: int) -> bool:
    return not value & LOCKED
