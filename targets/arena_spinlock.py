"""The BPF arena spin lock: qspinlock's slow path with wait loops that give up (known broken).

Sources: tools/testing/selftests/bpf/bpf_arena_spin_lock.h (``arena_spin_lock``,
``arena_spin_lock_slowpath``, ``arena_spin_unlock``; Meta, 2025);
tools/testing/selftests/bpf/bpf_atomic.h (the ``*_label`` wait macros: each loop iteration runs
``cond_break_label``, i.e. a ``may_goto`` that jumps to the error label when the budget is spent);
kernel/bpf/core.c ``bpf_check_timed_may_goto`` (the budget is a time slice of 250 ms per BPF
stack frame, and once spent every later ``may_goto`` in that frame breaks at once);
kernel/locking/qspinlock.c (the algorithm it copies).

The word, the 4 nodes per CPU and the algorithm are qspinlock's (see qspinlock.py), with these
differences, all the header's:
- ``arena_fetch_set_pending_acquire`` and ``xchg_tail`` are load + cmpxchg loops, as the header
  writes them (BPF has no 16-bit xchg), where qspinlock uses one fetch_or and one xchg;
- every wait loop (pending waiter on the owner, waiter on its node, queue head on the word,
  new owner on its successor's link) gives up when the frame's budget is spent and returns
  -ETIMEDOUT, after ``count--`` for the queue loops, and *repairs nothing*: the pending bit stays
  set, the node stays linked in the queue (and is reused by the CPU's next slow path), the tail
  still names it, and a new owner that gave up waiting for its successor keeps the lock;
- more nesting than nodes returns -EBUSY instead of spinning (unreachable here: lockfuzz runs at
  most 4 contexts per CPU, and an errno lockfuzz has no Status for, so it raises).
Its authors' intent, which this target declares: every acquisition returns 0 or an error within
its budget, and mutual exclusion. The cmpxchg loops also hold a ``cond_break``, but before them
only the bounded pending re-read runs, which cannot spend the budget, so they are modelled
without it.

Budget: the budget passed to ``acquire`` stands for the slow-path frame's may_goto time slice
(250 ms in the kernel: pass 250_000_000 to be faithful), counted from the start of the attempt
(``Mark.ARMED``). ``bpf_check_timed_may_goto`` breaks once ``time - timestamp >= slice``, so a
wait gives up at its first poll at or past start + budget (``Mark.EXPIRED``), never sooner, to
the step: a wait sleeps until a step before that poll, so that its waking step is the poll. How
late it may be is not promised beyond the per-call slack: the kernel reads the clock only every
``BPF_MAX_TIMED_LOOPS`` iterations of a loop.
"""

from __future__ import annotations

from typing import Callable

from lockfuzz import Capabilities, Cell, Context, Machine, Mark, Status, Timeouts

# The lock word's layout, the tail encoding and the spin conditions over them are qspinlock's
# (the arena lock copies them).
from lockfuzz.targets.qspinlock import (  # noqa: E402 - grouped with the constants they stand for
    LOCKED, LOCKED_MASK, LOCKED_PENDING_MASK, MAX_NODES, PENDING, PENDING_LOOPS, TAIL_MASK, QueueNodes,
    _no_locked_pending, _nonzero, _unlocked, encode_tail,
)  # fmt: skip


class ArenaSpinlock(QueueNodes):
    """The BPF arena spin lock (bpf_arena_spin_lock.h): qspinlock's algorithm whose every wait
    loop gives up with -ETIMEDOUT when the acquisition's budget is spent, without repairing the
    lock: the pending bit stays set, a waiter's node stays linked in the MCS queue (so the lock
    is handed to nobody and its tail stays set), and a new owner that gave up waiting for its
    successor keeps the lock. It declares what its authors intend: mutual exclusion, and that
    every acquisition returns within its budget (per-call timeouts). Known broken: lockfuzz
    finds the lock left unusable once every program is done (the final-state check times out
    on it), and two holders at once when a node left linked in one lock's queue is reused by an
    interrupt handler queued on another lock and handed the first lock's head role."""

    capabilities = Capabilities(timeouts=Timeouts(per_call=True))

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self._init_nodes(machine, "qnode")
        self.step_ns = machine.step_ns

    async def _wait(self, ctx: Context, lock: int, cell: Cell, done: Callable[[int], bool], deadline: int) -> int:
        """A wait loop with ``cond_break``: the value that satisfies ``done``, or -1 once the
        frame's time slice is spent (now >= deadline: ``Mark.EXPIRED``). It sleeps until a step
        before the deadline, so that the poll it wakes for is the first at or past it."""
        while True:
            seen = await cell.wait_until(done, deadline - self.step_ns)
            if done(seen):
                return seen
            if ctx.now >= deadline:
                ctx.mark(Mark.EXPIRED, lock)
                return -1

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        word = self.words[lock]
        deadline = ctx.now + budget_ns
        ctx.mark(Mark.ARMED, lock)  # the frame's time slice, from the start of the attempt
        val = await word.cmpxchg(0, LOCKED)
        if val == 0:
            ctx.mark(Mark.TAKEN, lock)
            return Status.OK
        # -- arena_spin_lock_slowpath ------------------------------------------------------
        if val == PENDING:
            for _ in range(PENDING_LOOPS + 1):
                val = await word.load()
                if val != PENDING:
                    break
        if not val & ~LOCKED_MASK:
            val = await word.load()  # arena_fetch_set_pending_acquire: a cmpxchg loop
            while True:
                seen = await word.cmpxchg(val, val | PENDING)
                if seen == val:
                    break
                val = seen
            if not val & ~LOCKED_MASK:
                ctx.mark(Mark.PENDING, lock)
                if val & LOCKED_MASK and await self._wait(ctx, lock, word, _unlocked, deadline) < 0:
                    return Status.ETIMEDOUT  # release_err: the pending bit stays set
                await word.store_field(0, 16, LOCKED)
                ctx.mark(Mark.TAKEN, lock)
                return Status.OK
            if not val & PENDING:
                await word.store_field(8, 8, 0)
        return await self._queue(ctx, lock, word, deadline)

    async def _queue(self, ctx: Context, lock: int, word: Cell, deadline: int) -> Status:
        cpu = ctx.cpu
        count = self.count[cpu]
        idx = await count.fetch_add(1)
        if idx >= MAX_NODES:
            raise RuntimeError("arena_spin_lock would return -EBUSY: more nested slow paths than nodes")
        tail = encode_tail(cpu, idx)
        my_locked, my_next = self.locked[cpu][idx], self.next[cpu][idx]
        await my_locked.store(0)
        await my_next.store(0)
        if not await word.load() and await word.cmpxchg(0, LOCKED) == 0:  # arena_spin_trylock
            ctx.mark(Mark.TAKEN, lock)
            await count.fetch_add(-1)
            return Status.OK
        old = await word.load()  # xchg_tail: a cmpxchg loop
        while True:
            seen = await word.cmpxchg(old, (old & LOCKED_PENDING_MASK) | tail)
            if seen == old:
                break
            old = seen
        nxt = 0
        if old & TAIL_MASK:
            _, prev_next = self._decode(old & TAIL_MASK)
            await prev_next.store(tail)
            if await self._wait(ctx, lock, my_locked, _nonzero, deadline) < 0:
                await count.fetch_add(-1)
                return Status.ETIMEDOUT  # release_node_err: our node stays linked in the queue
            nxt = await my_next.load()
        ctx.mark(Mark.HEAD, lock)
        val = await self._wait(ctx, lock, word, _no_locked_pending, deadline)
        if val < 0:
            await count.fetch_add(-1)
            return Status.ETIMEDOUT  # release_node_err: the tail may still name our node
        if val & TAIL_MASK == tail and await word.cmpxchg(val, LOCKED) == val:  # last in the queue
            ctx.mark(Mark.TAKEN, lock)
            await count.fetch_add(-1)
            return Status.OK
        await word.store_field(0, 8, LOCKED)  # set_locked
        ctx.mark(Mark.TAKEN, lock)  # held from here: giving up below keeps it (a leak)
        if not nxt:
            nxt = await self._wait(ctx, lock, my_next, _nonzero, deadline)
            if nxt < 0:
                await count.fetch_add(-1)
                return Status.ETIMEDOUT  # release_node_err: we hold the lock and say we failed
        next_locked, _ = self._decode(nxt)
        await next_locked.store(1)
        await count.fetch_add(-1)
        return Status.OK

