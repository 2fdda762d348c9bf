"""The kernel's queued reader-writer lock (qrwlock).

Sources: kernel/locking/qrwlock.c (``queued_read_lock_slowpath``, ``queued_write_lock_slowpath``,
Linux 5.x/6.x), include/asm-generic/qrwlock.h (the fast paths ``queued_read_lock``,
``queued_write_lock`` and the unlocks) and include/asm-generic/qrwlock_types.h (the layout).
Design: Waiman Long, "qrwlock: A queue read/write lock implementation" (Linux 3.16, 2014).

Each lock is a 32-bit ``cnts`` word and a ``wait_lock``, which is a qspinlock: the bundled
``targets/qspinlock.py``, sharing the per-CPU MCS nodes as every qspinlock in a kernel does.
``cnts`` holds the writer byte in bits 0-7 (``_QW_LOCKED = 0xff``: a writer holds the lock), a
writer-waiting bit (``_QW_WAITING = 0x100``), and the reader count from bit 9 up (each reader
adds ``_QR_BIAS = 1 << 9``). ``_QW_WMASK = 0x1ff`` is "a writer holds or waits".

Readers (``queued_read_lock``) add their bias first and keep the lock if no writer holds or
waits. Otherwise, in ``queued_read_lock_slowpath``: a reader in interrupt context
(``in_interrupt()``: softirq, hardirq, NMI) keeps its bias and spins only until no writer
*holds* the lock: it passes a waiting writer, because the writer may be waiting for the very
reader it interrupted (rwlocks are recursive for readers in interrupts). A reader in process
context takes its bias back, queues on ``wait_lock``, adds its bias again and, as the queue's
head, waits until the writer byte clears; then it hands ``wait_lock`` on. Writers
(``queued_write_lock``) take a free lock with one ``cmpxchg(0 -> _QW_LOCKED)``; otherwise, in
``queued_write_lock_slowpath``, they queue on ``wait_lock``, try once more for a free lock, set
``_QW_WAITING`` (from then on new process-context readers go to the slow path and queue behind
it) and wait until ``cnts == _QW_WAITING`` (the readers have drained) to swap it for
``_QW_LOCKED``, then release ``wait_lock``. A writer unlocks with a byte store of 0 to the
writer byte (``smp_store_release(&lock->wlocked, 0)``), a reader with ``atomic_sub(_QR_BIAS)``.

What it promises (``Sharing``): exclusive and shared modes, any number of readers; writer
preference (``preference="writers"``) with readers in interrupt handlers exempt
(``handler_readers_overtake``): a process-context reader that arrives while a writer waits with
``_QW_WAITING`` set finds the bit on its fast path and queues on ``wait_lock`` behind the writer.
Until a writer has set the bit it promises nothing across modes: it may still be queued on
``wait_lock`` behind a reader (which came first in the queue) or behind another writer, and
readers that arrive meanwhile take the lock on the fast path. So a writer arrives, for the
declared order, at the step that sets the bit, which it marks ``Mark.PENDING``
(``doorway_steps=None``), not after a fixed number of steps: that step comes after queueing on
``wait_lock``, a varying number of steps (28 on the longest path with nothing in the way, more
while others flicker the word). Any fixed doorway is either a false alarm on this correct lock
(with 1 step, a reader that queued on ``wait_lock`` before the writer is reported as overtaking
it) or blind to a reader that barges past a writer that has set the bit
(``mutants/barging_reader.py``). From the marked step on, every
process-context waiter that comes after it waits behind it. No timeouts (budgets are ignored:
the kernel's rwlocks spin until they get the lock), no deadlock detection, no FIFO among writers
(``wait_lock`` is a qspinlock, whose fast path and pending bit are not FIFO).
"""

from __future__ import annotations

from lockfuzz.targets.qspinlock import QSpinlock

from lockfuzz import Capabilities, Context, Level, Machine, Mark, Sharing, Status, Target

__all__ = ["QR_BIAS", "QRWLock", "QW_LOCKED", "QW_WAITING", "QW_WMASK"]

QW_WAITING = 0x100  # _QW_WAITING: a writer is waiting
QW_LOCKED = 0x0FF  # _QW_LOCKED: a writer holds the lock (the whole writer byte)
QW_WMASK = 0x1FF  # _QW_WMASK: a writer holds or waits
QR_SHIFT = 9  # _QR_SHIFT: the reader count's first bit
QR_BIAS = 1 << QR_SHIFT  # _QR_BIAS: one reader
_MASK32 = 0xFFFF_FFFF


class QRWLock(Target):
    """Linux's queued rwlock: a reader count and a writer byte in one word, a qspinlock as the
    wait queue; readers in interrupts pass a waiting writer. See the module doc."""

    capabilities = Capabilities(
        sharing=Sharing(
            exclusive=True, capacity=None, preference="writers", handler_readers_overtake=True,
            doorway_steps=None,  # a writer arrives when it sets _QW_WAITING (Mark.PENDING)
        )
    )

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.cnts = [machine.cell(f"L{i}.cnts") for i in range(machine.n_locks)]
        # arch_spinlock_t wait_lock: the bundled qspinlock, one per lock, marking nothing of
        # its own (holding the wait queue is not holding the rwlock).
        self.wait_lock = QSpinlock.inner(machine, "L{}.wait_lock")

    # -- acquire ----------------------------------------------------------------------------
    async def acquire(self, ctx: Context, lock: int, budget_ns: int, shared: bool = False) -> Status:
        if shared:
            await self.read_lock(ctx, lock)
        else:
            await self.write_lock(ctx, lock)
        return Status.OK

    async def read_lock(self, ctx: Context, lock: int) -> None:
        """``queued_read_lock``: add a reader; keep it if no writer holds or waits."""
        cnts = (await self.cnts[lock].fetch_add(QR_BIAS) + QR_BIAS) & _MASK32  # atomic_add_return_acquire
        if not self.reader_backs_off(cnts):
            ctx.mark(Mark.TAKEN, lock)
            return
        await self.read_lock_slowpath(ctx, lock)

    def reader_backs_off(self, cnts: int) -> bool:
        """Whether a reader whose bias made ``cnts`` leaves the fast path: a writer holds or
        waits (``cnts & _QW_WMASK``)."""
        return bool(cnts & QW_WMASK)

    async def read_lock_slowpath(self, ctx: Context, lock: int) -> None:
        """``queued_read_lock_slowpath``."""
        cnts = self.cnts[lock]
        if ctx.level > Level.TASK:
            # in_interrupt(): keep the bias and wait only for a writer that *holds* the lock
            # (atomic_cond_read_acquire(&lock->cnts, !(VAL & _QW_LOCKED))). A waiting writer
            # cannot go past our bias, so from the moment the writer byte is clear we hold it.
            await cnts.wait_until(_no_writer_holds)
            ctx.mark(Mark.TAKEN, lock)
            return
        await cnts.fetch_add(-QR_BIAS & _MASK32)  # atomic_sub(_QR_BIAS): not a reader yet
        await self.wait_lock.acquire(ctx, lock, 0)  # arch_spin_lock(&lock->wait_lock)
        old = await cnts.fetch_add(QR_BIAS)  # atomic_add(_QR_BIAS)
        if not (old + QR_BIAS) & QW_LOCKED:
            ctx.mark(Mark.TAKEN, lock)  # no writer holds it: our bias keeps writers out from here
            await cnts.wait_until(_no_writer_holds)  # the kernel's cond_read, which reads once
        else:
            await cnts.wait_until(_no_writer_holds)  # atomic_cond_read_acquire(!(VAL & _QW_LOCKED))
            ctx.mark(Mark.TAKEN, lock)
        await self.wait_lock.release(ctx, lock)  # arch_spin_unlock(&lock->wait_lock)

    async def write_lock(self, ctx: Context, lock: int) -> None:
        """``queued_write_lock``: take a free lock in one cmpxchg, else the slow path."""
        if await self.cnts[lock].cmpxchg(0, QW_LOCKED) == 0:
            ctx.mark(Mark.TAKEN, lock)
            return
        await self.write_lock_slowpath(ctx, lock)

    async def write_lock_slowpath(self, ctx: Context, lock: int) -> None:
        """``queued_write_lock_slowpath``."""
        cnts = self.cnts[lock]
        await self.wait_lock.acquire(ctx, lock, 0)  # arch_spin_lock(&lock->wait_lock)
        # Try to acquire the lock directly if no reader is present.
        if await cnts.load() == 0 and await cnts.cmpxchg(0, QW_LOCKED) == 0:
            ctx.mark(Mark.TAKEN, lock)
        else:
            # atomic_or(_QW_WAITING): from here new process-context readers queue behind us.
            await cnts.fetch_or(QW_WAITING)
            ctx.mark(Mark.PENDING, lock)
            while True:  # do { cond_read(VAL == _QW_WAITING) } while (!try_cmpxchg(-> _QW_LOCKED))
                seen = await cnts.wait_until(_only_waiting)
                if await cnts.cmpxchg(seen, QW_LOCKED) == seen:
                    break
            ctx.mark(Mark.TAKEN, lock)
        await self.wait_lock.release(ctx, lock)  # arch_spin_unlock(&lock->wait_lock)

    # -- release ----------------------------------------------------------------------------
    async def release(self, ctx: Context, lock: int, shared: bool = False) -> None:
        if shared:
            await self.cnts[lock].fetch_add(-QR_BIAS & _MASK32)  # queued_read_unlock: atomic_sub_return_release
        else:
            await self.cnts[lock].store_field(0, 8, 0)  # queued_write_unlock: smp_store_release(&wlocked, 0)

    def check(self) -> list[str]:
        problems = [f"{c.name} is {c.value:#x}, expected 0" for c in self.cnts if c.value]
        return problems + self.wait_lock.check()


def _no_writer_holds(value: int) -> bool:
    return not value & QW_LOCKED


def _only_waiting(value: int) -> bool:
    return value == QW_WAITING
