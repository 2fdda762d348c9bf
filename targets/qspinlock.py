"""The kernel's queued spinlock (qspinlock).

Sources: kernel/locking/qspinlock.c (``queued_spin_lock_slowpath``, with the ``idx >= MAX_NODES``
trylock fallback added in Linux 5.1), include/asm-generic/qspinlock.h (fast path, trylock,
unlock), include/asm-generic/qspinlock_types.h (the word's layout), kernel/locking/mcs_spinlock.h
(the MCS hand-over). Background: Mellor-Crummey & Scott, ACM TOCS 9(1), 1991.

The lock is one 32-bit word: bits 0-7 the locked byte, bits 8-15 the pending byte, bits 16-17
the tail's node index and bits 18-31 the tail's CPU + 1 (``encode_tail(cpu, idx) = (cpu+1) <<
18 | idx << 16``; 0 is no queue). Each CPU has 4 MCS nodes (task, softirq, hardirq, NMI) and a
nesting count kept in node 0; a node is only used while its context waits in the queue.

Acquire: the fast path is ``cmpxchg(0 -> LOCKED)``. The slow path, one step per shared-memory
access: wait (at most ``_Q_PENDING_LOOPS`` extra reads) for a pending->locked hand-over; if only
the owner is there, set the pending bit with ``fetch_or`` and, if nobody else came, wait for the
owner to leave and take the lock with one half-word store; otherwise queue: take a node
(``count++``), initialise it, trylock once more, swap the tail (a half-word xchg), link behind
the previous tail and spin on the node until it is the queue head; the head waits for locked and
pending to clear, then takes the lock (clearing the tail if it is the last waiter) and hands the
head role to its successor. A CPU nested deeper than its nodes spins on trylock instead.
Release is a byte store of 0 to the locked byte. The generic ``_Q_PENDING_LOOPS`` of 1 is used
(x86 overrides it to 512 under paravirt only).
"""

from __future__ import annotations

from lockfuzz import Capabilities, Cell, Context, Machine, Mark, Status, Target

LOCKED = 1
PENDING = 1 << 8
LOCKED_MASK = 0xFF
LOCKED_PENDING_MASK = 0xFFFF
TAIL_MASK = 0xFFFF0000
TAIL_IDX_SHIFT = 16
TAIL_CPU_SHIFT = 18
MAX_NODES = 4
PENDING_LOOPS = 1


def encode_tail(cpu: int, idx: int) -> int:
    return (cpu + 1) << TAIL_CPU_SHIFT | idx << TAIL_IDX_SHIFT


class QueueNodes(Target):
    """The lock words and the per-CPU MCS nodes (``qnodes``: a count on node 0, then ``locked``
    and ``next`` on each of 4) that qspinlock and the locks copied from it (the BPF arena lock)
    share, with ``decode_tail``, the release (clear the locked byte) and the final check."""

    def _init_nodes(self, machine: Machine, node: str, word: str = "L{}") -> None:
        """The lock words (named ``word.format(i)``) and the per-CPU nodes (``cpu<n>.<node>[i]``)."""
        self.words = [machine.cell(word.format(i)) for i in range(machine.n_locks)]
        self.count = machine.per_cpu(lambda cpu: machine.cell(f"cpu{cpu}.{node}[0].count"))
        self.locked = machine.per_cpu(
            lambda cpu: [machine.cell(f"cpu{cpu}.{node}[{i}].locked") for i in range(MAX_NODES)]
        )
        # node.next holds the successor's tail code (0 is NULL), as decode_tail() would map it.
        self.next = machine.per_cpu(lambda cpu: [machine.cell(f"cpu{cpu}.{node}[{i}].next") for i in range(MAX_NODES)])

    def _decode(self, tail: int) -> tuple[Cell, Cell]:
        cpu = (tail >> TAIL_CPU_SHIFT) - 1
        idx = (tail >> TAIL_IDX_SHIFT) & 3
        return self.locked[cpu][idx], self.next[cpu][idx]

    async def release(self, ctx: Context, lock: int) -> None:
        await self.words[lock].store_field(0, 8, 0)  # queued_spin_unlock: clear the locked byte

    def check(self) -> list[str]:
        problems = [f"{w.name} word is {w.value:#x}, expected 0" for w in self.words if w.value]
        problems += [f"cpu{cpu} node count is {c.value}, expected 0" for cpu, c in enumerate(self.count) if c.value]
        return problems


class QSpinlock(QueueNodes):
    """Linux's qspinlock: a locked byte, a pending bit for the first waiter and an MCS queue of
    per-CPU nodes (4 per CPU) for the rest, all in one 32-bit word, without rqspinlock's timeouts
    or held-locks table; a CPU nested deeper than its nodes spins on trylock. Promises mutual
    exclusion only: it never gives up (budgets are ignored), detects no deadlock, and is not
    FIFO (a newcomer's fast path or trylock may take the lock ahead of queued waiters).
    Parameter ``max_nodes`` (default 4, the kernel's) lets a test reach the trylock fallback."""

    capabilities = Capabilities()

    def __init__(self, machine: Machine, max_nodes: int = MAX_NODES) -> None:
        super().__init__(machine)
        if not isinstance(max_nodes, int) or not 1 <= max_nodes <= MAX_NODES:
            raise ValueError(f"max_nodes={max_nodes!r}: expected an int from 1 to {MAX_NODES}")
        self.max_nodes = max_nodes
        self.marks = True
        self._init_nodes(machine, "node")

    @classmethod
    def inner(cls, machine: Machine, word: str) -> QSpinlock:
        """One qspinlock per lock of the program, used as a part of another lock (the queued
        rwlock's ``wait_lock``, ``targets/qrwlock.py``): its words are named ``word.format(i)``,
        it shares the per-CPU ``qnodes`` as every kernel qspinlock does, and it marks nothing,
        because holding it is not holding the program's lock."""
        self = cls.__new__(cls)
        Target.__init__(self, machine)
        self.max_nodes = MAX_NODES
        self.marks = False
        self._init_nodes(machine, "node", word)
        return self

    def _mark(self, ctx: Context, what: Mark, lock: int) -> None:
        if self.marks:
            ctx.mark(what, lock)

    async def _trylock(self, word: Cell) -> bool:
        if await word.load():
            return False
        return await word.cmpxchg(0, LOCKED) == 0

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        word = self.words[lock]
        val = await word.cmpxchg(0, LOCKED)
        if val == 0:
            self._mark(ctx, Mark.TAKEN, lock)
            return Status.OK
        # -- slow path ------------------------------------------------------------------
        if val == PENDING:  # a pending->locked hand-over is in flight: re-read a bounded number of times
            for _ in range(PENDING_LOOPS + 1):
                val = await word.load()
                if val != PENDING:
                    break
        if not val & ~LOCKED_MASK:
            val = await word.fetch_or(PENDING)
            if not val & ~LOCKED_MASK:
                # We are the pending waiter: wait for the owner, then take it (0,1,0 -> 0,0,1).
                self._mark(ctx, Mark.PENDING, lock)
                if val & LOCKED_MASK:
                    await word.wait_until(_unlocked)
                await word.store_field(0, 16, LOCKED)
                self._mark(ctx, Mark.TAKEN, lock)
                return Status.OK
            if not val & PENDING:  # undo the pending bit we set
                await word.store_field(8, 8, 0)
        await self._queue(ctx, lock, word)
        return Status.OK

    async def _queue(self, ctx: Context, lock: int, word: Cell) -> None:
        cpu = ctx.cpu
        count = self.count[cpu]
        idx = await count.fetch_add(1)
        if idx >= self.max_nodes:
            # Out of nodes (NMIs nested too deep): spin on trylock, unqueued and unfair.
            while True:
                await word.wait_until(_is_zero)
                if await word.cmpxchg(0, LOCKED) == 0:
                    self._mark(ctx, Mark.TAKEN, lock)
                    break
            await count.fetch_add(-1)
            return
        tail = encode_tail(cpu, idx)
        my_locked, my_next = self.locked[cpu][idx], self.next[cpu][idx]
        await my_locked.store(0)
        await my_next.store(0)
        if await self._trylock(word):
            self._mark(ctx, Mark.TAKEN, lock)
            await count.fetch_add(-1)
            return
        old = await word.xchg_field(16, 16, tail >> 16)  # xchg_tail: p,*,* -> n,*,*
        nxt = 0
        if old & TAIL_MASK:
            _, prev_next = self._decode(old & TAIL_MASK)
            await prev_next.store(tail)
            await my_locked.wait_until(_nonzero)  # arch_mcs_spin_lock_contended
            nxt = await my_next.load()
        # Queue head: wait for the owner and the pending waiter to go away.
        self._mark(ctx, Mark.HEAD, lock)
        val = await word.wait_until(_no_locked_pending)
        if val & TAIL_MASK == tail and await word.cmpxchg(val, LOCKED) == val:  # last: n,0,0 -> 0,0,1
            self._mark(ctx, Mark.TAKEN, lock)
            await count.fetch_add(-1)
            return
        await word.store_field(0, 8, LOCKED)  # set_locked: *,*,0 -> *,0,1
        self._mark(ctx, Mark.TAKEN, lock)  # held from here, while it hands the queue on
        if not nxt:
            nxt = await my_next.wait_until(_nonzero)
        next_locked, _ = self._decode(nxt)
        await next_locked.store(1)  # arch_mcs_spin_unlock_contended
        await count.fetch_add(-1)


def _is_zero(value: int) -> bool:
    return value == 0


def _nonzero(value: int) -> bool:
    return value != 0


def _unlocked(value: int) -> bool:
    return not value & LOCKED_MASK


def _no_locked_pending(value: int) -> bool:
    return not value & LOCKED_PENDING_MASK
