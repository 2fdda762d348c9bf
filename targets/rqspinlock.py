"""rqspinlock: the Linux kernel's resilient queued spinlock, one shared-memory access per step.

Modelled on mainline ``kernel/bpf/rqspinlock.c``, ``kernel/bpf/rqspinlock.h`` and
``include/asm-generic/rqspinlock.h`` (torvalds/linux) with the late-2025 series that grabs the
held-table entry before the fast path and clears it after the unlocking store (``Enclose
lock/unlock within lock entry acquisitions``), runs the AA check when a wait starts (``Perform
AA checks immediately``), gives up after one trylock in an NMI or with no free node (``Use
trylock fallback when per-CPU rqnode is busy``, ``Disable spinning for trylock fallback``),
checks AA before queueing (``Precede non-head waiter queueing with AA check``), keeps the queue
when its head detects a deadlock (``Disable queue destruction for deadlocks``, and 7a3c0289c3c8
``Reset tail when preserving queue on deadlock``, whose text we could not read: modelled as the
spec page says, reset the tail if it is still ours, else hand over to the successor) and
returns ETIMEDOUT to waiters told to leave (``Adjust return value for queue destruction``).
Step names S1..S7, Q0..Q10 and T are those of docs/rqspinlock-spec.md.

Modelling choices:

- Every kernel access to the lock word, to a per-CPU held-locks table (``cnt`` and 31 slots, a
  lock stored as ``lock + 1``, 0 = NULL) and to an MCS node (``locked``, ``next`` as the encoded
  node id ``tail >> 16``, 0 = NULL; ``count`` on node 0 only) is one cell access, so that a
  remote CPU's deadlock check reads a table one slot at a time, as the kernel does. Byte and
  half-word stores (locked byte, pending byte, ``clear_pending_set_locked``, ``xchg_tail``) are
  field accesses. Memory is sequentially consistent.
- Generic qspinlock helpers (``_Q_PENDING_BITS == 8``, fewer than 16K CPUs): the pending bit is
  set by one ``fetch_or`` (x86 uses ``btsl`` plus a load), ``_Q_PENDING_LOOPS`` is 1 (x86: 512).
- Poll interval. The kernel evaluates ``RES_CHECK_TIMEOUT`` at the first poll of a wait loop and
  then every 65,536 polls; the parameter ``poll_interval`` (1 = every poll, 65536 = the kernel)
  says how often. A blocked waiter is treated as polling once per ``max(1, step_ns)`` ns of
  virtual time, so a check falls due ``poll_interval * max(1, step_ns)`` ns after the previous
  one. A check that can do nothing touches no memory and is skipped: neither ``now >
  timeout_end`` nor more than 1 ms since the last ABBA check, or an ABBA check whose inputs (the
  lock word, every held table: a ``Machine.watch``) did not change since the last one, which
  would read the same and find nothing. The waiter sleeps in ``wait_until`` until the word
  satisfies its condition or the first due check that can act, and after an ABBA check until
  one of its inputs changes or the timeout, so a wait costs steps per change, not per
  millisecond. The ABBA checks of a waiter left alone fall on a grid fixed by the last one it
  ran (the first poll more than 1 ms after each); when a change wakes a waiter that slept
  through some of them, the next check is the first point of that grid after the change (or at
  once, if that point passed before the waiter could run again), where the kernel's would be.
  Time a waiter spends preempted or interrupted counts as polling time (the kernel would not
  poll then, so with a large interval the model checks a little earlier than the kernel).
- Timeouts to the step: ``check_timeout``'s first call arms the clock (``Mark.ARMED``; 250 ms for
  the pending waiter, 500 ms for the queue head) and the first poll past ``timeout_end`` gives up
  (``Mark.EXPIRED``). For the timeout the waiter wakes a step before that poll (a wait's deadline
  wakes it for its next step), so that the poll is its waking step, as in the kernel's loop; a
  waiter asleep on the watch whose deadline comes with nothing changed gives up at that step
  (the word, watched, still reads what it read). The ABBA re-check's poll is the step after its
  grid point, as before.

Worth knowing (see tests/fast/test_rqspinlock.py): hardirq or softirq handlers that queue as
non-head waiters behind each other's interrupted queue heads hang for good in this model, as in
the mainline code it follows; NMIs take the Q2 fallback instead.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Literal

from lockfuzz import Capabilities, Context, Detection, InvalidArgument, Machine, Mark, Status, Target, Timeouts
from lockfuzz.targets._held_table import RES_NR_HELD, CellArray, held_table

__all__ = ["RqSpinlock", "capabilities_for"]

LOCKED_MASK, PENDING_MASK, LOCKED_PENDING_MASK, TAIL_MASK = 0xFF, 0xFF00, 0xFFFF, 0xFFFF0000
LOCKED, PENDING = 1, 1 << 8
NSEC_PER_MSEC = 1_000_000
RES_DEF_TIMEOUT = 250 * NSEC_PER_MSEC
RES_TIMEOUT_VAL = 2
Q_MAX_NODES = 4
PENDING_LOOPS = 1


# Cached: every run makes a target, and building and checking the promise took longer than
# the rest of the constructor (Capabilities is frozen, so one value serves every run).
@lru_cache(maxsize=64)
def capabilities_for(poll_interval: int = 1, step_ns: int = 1) -> Capabilities:
    """What rqspinlock promises with this poll interval and step duration.

    ``g`` is the check granularity. Timeouts: no ETIMEDOUT before 250 ms (pending waiter 1x,
    queue head 2x) except for queued waiters told to leave by their timed-out head; the queue
    head gives up 500 ms after it became head (its predecessor's return), plus at most one
    check interval, so no waiter goes longer without the lock making progress. Detection: AA
    at the first poll, two-party ABBA at the first ABBA check more than 1 ms after the wait
    started or after the previous check, on the grid of g; tables hold 31 entries.
    """
    g = poll_interval * max(1, step_ns)
    late = g - 1 + max(0, step_ns - 1)
    # The latencies are on the cycle's clock (edeadlk_complete: it runs while the whole cycle
    # waits and a checker sleeps on its own deadline), to the nanosecond:
    # - AA at the first poll of a wait (check_timeout's first call, and again when the waiter
    #   becomes queue head: RES_RESET_TIMEOUT), before it sleeps at all: 0.
    # - ABBA at the first poll strictly more than 1 ms after the previous ABBA check, on the
    #   grid of g. From a check at ``cur`` that found nothing, that poll comes by cur + 1 ms
    #   + g, and the checker went to sleep only after the check's own reads, two steps or
    #   more after ``cur``. Woken by a change to what the check reads (the other party's table
    #   entry: until it is written the check cannot see the cycle), it counts the checks it
    #   slept through as run, the last at least 1 ns before the change, and it sleeps again
    #   a step after it: so at most 1 ms + g - 1 ns - a step of the cycle's clock (1 ms + g at
    #   a step of 0 ns). tests/fast/test_tight_promises.py shows how close the lock comes.
    abba = NSEC_PER_MSEC + g - (1 + step_ns if step_ns else 0)
    return Capabilities(
        # To the step, where the waiter marks its clock (Mark.ARMED, Mark.EXPIRED): it gives up
        # only when now > timeout_end, so at least the armed duration + 1 ns after arming it
        # (min_ns; head_min_ns once queue head: RES_RESET_TIMEOUT with twice the duration), and
        # at the first poll past that: a poll falls every g ns, and a wake may overshoot its
        # deadline by a step less 1 ns at a step coarser than 1 ns (late_ns).
        # What follows its EXPIRED (way_out_ns: the queue head waits for its successor, a
        # runnable context, to link, then tells it to leave; the pending waiter clears its bit)
        # sleeps nowhere: 0 of the lock's own time. So no waiter is quiet for longer than a
        # queue head's clock, on the lock's own time (the clock's jumps: the steps of the checks,
        # the hand-offs and of other CPUs take none of it): a head arms when it becomes head,
        # a few steps after the progress that made it head, and the waiters behind it have no
        # clock but its: max_quiet_ns = head_min_ns + late_ns, with no slack.
        timeouts=Timeouts(
            per_call=False, min_ns=RES_DEF_TIMEOUT + 1, max_quiet_ns=2 * RES_DEF_TIMEOUT + 1 + late,
            slack_ns=0, early_when_another_times_out=True,
            head_min_ns=2 * RES_DEF_TIMEOUT + 1, late_ns=late, way_out_ns=0,
        ),
        # Only the pending waiter and the queue head run the checks; waiters further back spin
        # on their MCS node with none (Q6), so a cycle through them waits for a head.
        detection=Detection(
            classes=frozenset({"AA", "ABBA"}), latency_ns=abba, max_held=RES_NR_HELD,
            first_waiter_only=True,
            class_latency_ns={"AA": 0},
            # The ABBA scan stops at the first other CPU listing the lock below its top.
            table_scan=True,
        ),
        fairness=None,
        exceptions=frozenset({"held-table-view", "nested-trylock-fallback"}),
    )


def _next_poll(last: int, poll: int, at: int) -> int:
    """The first poll on the grid ``last + k * poll`` (k >= 1) at or after ``at``."""
    return last + max(1, -(-(at - last) // poll)) * poll


def _skipped_abba(cur: int, last: int, poll: int, changed_ns: int) -> int:
    """``ts.cur`` after the ABBA checks a waiter skipped, with nothing changed, between its last
    check (ABBA at ``cur``, RES_CHECK_TIMEOUT at ``last``) and a change made at ``changed_ns``.

    Left alone, it checks ABBA at the first poll strictly more than 1 ms after ``cur``, then every
    ``period``: the smallest number of polls longer than 1 ms. Those before the change found
    nothing; the last of them is its ``ts.cur``. (A change made while it was still checking ends
    its wait at once, with ``woken_ns`` from an earlier wake, before ``cur``: nothing skipped.)"""
    first = _next_poll(last, poll, cur + NSEC_PER_MSEC + 1)
    if first >= changed_ns:
        return cur
    period = (NSEC_PER_MSEC // poll + 1) * poll
    return first + (changed_ns - 1 - first) // period * period


def _node_cpu_idx(node_id: int) -> tuple[int, int]:
    """decode_tail: the node id is ``tail >> 16``, i.e. ``(cpu + 1) << 2 | idx``."""
    return (node_id >> 2) - 1, node_id & 3


def _unlocked(v: int) -> bool:
    return not v & LOCKED_MASK


def _unlocked_no_pending(v: int) -> bool:
    return not v & LOCKED_PENDING_MASK


def _nonzero(v: int) -> bool:
    return v != 0


def _not_pending_only(v: int) -> bool:
    return v != PENDING


class RqSpinlock(Target):
    """The kernel's resilient queued spinlock: qspinlock's pending bit and MCS queue (4 nodes per
    CPU) plus a 31-entry per-CPU table of held and attempted locks, an AA check when a wait starts,
    an ABBA check at most once per ms, and fixed timeouts (250 ms pending waiter, 500 ms queue
    head, whose timeout tears the queue down). It promises mutual exclusion, AA and two-party
    ABBA reported as EDEADLK within about 1 ms, no ETIMEDOUT before 250 ms except for waiters
    told to leave, and no waiter quiet for more than 500 ms while its queue head runs; by design
    it may also return EDEADLK on what its tables show (attempts count as holds) and after one
    failed trylock in an NMI or with no free node.
    """

    capabilities = capabilities_for(1, 1)

    @classmethod
    def capabilities_for(cls, poll_interval: int = 1, step_ns: int = 1) -> Capabilities:
        return capabilities_for(poll_interval, step_ns)

    def __init__(self, machine: Machine, poll_interval: int = 1) -> None:
        super().__init__(machine)
        if not isinstance(poll_interval, int) or isinstance(poll_interval, bool) or poll_interval < 1:
            raise InvalidArgument(f"poll_interval={poll_interval!r}: expected an int >= 1 (65536 is the kernel's)")
        self.poll_ns = poll_interval * max(1, machine.step_ns)
        self.step_ns = machine.step_ns
        # What this instance promises (the class attribute is for poll_interval=1, step_ns=1).
        self.capabilities = capabilities_for(poll_interval, machine.step_ns)  # type: ignore[misc]
        self.word = [machine.cell(f"L{i}.val") for i in range(machine.n_locks)]
        self.cnt = machine.per_cpu(lambda c: machine.cell(f"cpu{c}.held.cnt"))
        self.count = machine.per_cpu(lambda c: machine.cell(f"cpu{c}.node0.count"))
        # MCS nodes, one per context level on a CPU; made as a run reaches them (``CellArray``).
        self.locked = machine.per_cpu(lambda c: CellArray(machine, lambda i: f"cpu{c}.node{i}.locked", Q_MAX_NODES))
        self.next = machine.per_cpu(lambda c: CellArray(machine, lambda i: f"cpu{c}.node{i}.next", Q_MAX_NODES))
        # Counts the writes to what a deadlock check on lock i reads (its word, every held table):
        # a check due when none changed since the last one would read the same and find the same,
        # so it is skipped (see _spin_checked). Bookkeeping of the model, not kernel memory.
        self.changes = [machine.watch(f"L{i}.check-inputs", [self.word[i], *self.cnt]) for i in range(machine.n_locks)]
        # The held tables' entries are made as the run reaches them (``held_table``), each joining
        # the watches above: most runs nest two or three deep, and making all 31 entries of every
        # CPU's table took a fifth of an rqspinlock campaign's time.
        self.slot = machine.per_cpu(lambda c: held_table(machine, c, self.changes))

    # -- the held-locks table (include/asm-generic/rqspinlock.h) ---------------------------------
    async def _grab_entry(self, cpu: int, lock: int) -> None:
        cnt = await self.cnt[cpu].fetch_add(1) + 1  # this_cpu_inc_return
        if cnt <= RES_NR_HELD:  # past 31: keep the increment, store nothing
            await self.slot[cpu][cnt - 1].store(lock + 1)

    async def _release_entry(self, cpu: int) -> None:
        cnt = await self.cnt[cpu].load()
        if cnt <= RES_NR_HELD:
            await self.slot[cpu][cnt - 1].store(0)
        await self.cnt[cpu].fetch_add(-1)  # this_cpu_dec

    # -- res_spin_lock / res_spin_unlock ------------------------------------------------------------
    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        # Fast path: grab the entry first, then CAS 0 -> LOCKED. The budget is ignored.
        await self._grab_entry(ctx.cpu, lock)
        val = await self.word[lock].cmpxchg(0, LOCKED)
        if val == 0:
            ctx.mark(Mark.TAKEN, lock)
            return Status.OK
        return await self._slowpath(ctx, lock, val)

    async def release(self, ctx: Context, lock: int) -> None:
        cpu = ctx.cpu
        await self.word[lock].store_field(0, 8, 0)  # smp_store_release(&lock->locked, 0) first
        cnt = await self.cnt[cpu].load()
        if cnt <= RES_NR_HELD:
            await self.slot[cpu][cnt - 1].store(0)
        await self.cnt[cpu].fetch_add(-1)

    # -- deadlock checks (kernel/bpf/rqspinlock.c) --------------------------------------------------
    async def _check_aa(self, cpu: int, lock: int) -> bool:
        """check_deadlock_AA: the lock below the top of our own table (the top is this attempt)."""
        cnt = min(RES_NR_HELD, await self.cnt[cpu].load())
        slots = self.slot[cpu]
        for i in range(cnt - 1):
            if await slots[i].load() == lock + 1:
                return True
        return False

    async def _check_abba(self, cpu: int, lock: int, mask: int) -> Status:
        """check_deadlock_ABBA: a CPU has our lock below its top, and its top below ours."""
        own_cnt = min(RES_NR_HELD, await self.cnt[cpu].load())
        word = self.word[lock]
        for c in range(len(self.cnt)):
            real = await self.cnt[c].load()
            cnt = min(RES_NR_HELD, real)
            if not await word.load() & mask:  # is_lock_released: what we wait for is gone
                return Status.OK
            if c == cpu or real < 2 or real > RES_NR_HELD:
                continue
            remote = await self.slot[c][cnt - 1].load()
            if not remote:  # raced with the remote CPU: inconclusive
                continue
            for i in range(cnt - 1):
                if await self.slot[c][i].load() != lock + 1:
                    continue
                for j in range(own_cnt - 1):  # the first match decides
                    if await self.slot[cpu][j].load() == remote:
                        return Status.EDEADLK
                return Status.OK
        return Status.OK

    async def _spin_checked(
        self, ctx: Context, lock: int, done: Callable[[int], bool], mask: int, duration: int
    ) -> tuple[int, Status | Literal[0]]:
        """res_smp_cond_load_acquire(&lock, done(VAL) || RES_CHECK_TIMEOUT(ts, ret, mask)).

        Returns (last value seen, 0 / EDEADLK / ETIMEDOUT). check_timeout: the first call runs
        the AA check and arms the timer; later ones return ETIMEDOUT once ``now > timeout_end``
        (timeout wins) and run the ABBA check when more than 1 ms passed since the last one.
        """
        cpu, machine, word, poll, changes = ctx.cpu, self.machine, self.word[lock], self.poll_ns, self.changes[lock]
        val = await word.load()  # the first poll
        if done(val):
            return val, 0
        if await self._check_aa(cpu, lock):
            return val, Status.EDEADLK
        cur = last = machine.now  # ts.cur, and the time of the last check
        end = cur + duration  # ts.timeout_end
        ctx.mark(Mark.ARMED, lock)  # the declared duration: 250 ms pending, 500 ms queue head (+ 1 ns)
        stale = True  # the ABBA check's inputs changed since it last ran (it has not run yet)
        seen = 0  # the count of changes to those inputs when it last ran (set when it runs)
        while True:
            # The timeout's poll is the first on the grid past ``end``. A wait's deadline wakes the
            # waiter for its next step, so wake it a step before that poll, and the step is the
            # poll (Timeouts.late_ns). The ABBA re-check wakes at its poll (the step after it).
            timeout = _next_poll(last, poll, end + 1) - self.step_ns
            if not stale:
                # Nothing the ABBA check reads (the word included) changed since it last ran:
                # only the timeout can act. Sleep until something changes, or the timeout.
                # mypy cannot type a lambda whose default argument binds the value (python/mypy#15459).
                now_seen = await changes.wait_until(lambda v, s=seen: v != s, deadline_ns=timeout)  # type: ignore[misc]
                if now_seen != seen:  # the checks it slept through found nothing: on the grid
                    cur = _skipped_abba(cur, last, poll, ctx.woken_ns)
                    stale = True
                elif ctx.now > end:  # its clock (ctx.now: a check of it, Timeouts.late_ns)
                    # Its deadline, and the word (watched) still reads ``val``: this step is the
                    # poll past the timeout, which the kernel's check would find expired.
                    ctx.mark(Mark.EXPIRED, lock)
                    return val, Status.ETIMEDOUT
            # Poll: re-read the word until it satisfies the condition or the next check that can
            # act falls due (the timeout, or the ABBA re-check).
            due = min(timeout, _next_poll(last, poll, cur + NSEC_PER_MSEC + 1)) if stale else timeout
            val = await word.wait_until(done, deadline_ns=due)
            if done(val):
                return val, 0
            now = ctx.now  # its clock (the grid's bookkeeping reads machine.now)
            if now > end:  # the timeout wins over the deadlock check
                ctx.mark(Mark.EXPIRED, lock)
                return val, Status.ETIMEDOUT
            # Not the timeout, so this is the poll the waiter slept until: the first strictly more
            # than 1 ms after the last ABBA check, whose inputs changed since (else it would have
            # slept until the timeout), or, at a step coarser than 1 ns, a poll just short of the
            # timeout's. Checks that could not act were skipped (module doc).
            if not (stale and cur + NSEC_PER_MSEC < now):
                continue
            cur = now
            seen, stale = changes.value, False  # before the reads: a write during them counts
            ret = await self._check_abba(cpu, lock, mask)
            if ret:
                return val, ret
            last = machine.now

    # -- resilient_queued_spin_lock_slowpath ------------------------------------------------------
    async def _trylock(self, lock: int) -> bool:
        """queued_spin_trylock: read the word; only if it is 0, CAS 0 -> LOCKED."""
        word = self.word[lock]
        if await word.load():
            return False
        return await word.cmpxchg(0, LOCKED) == 0

    async def _try_cmpxchg_tail(self, lock: int, tail: int) -> bool:
        """try_cmpxchg_tail(lock, tail, 0): clear the tail if it is still ours, keep the low 16 bits."""
        word = self.word[lock]
        old = await word.load()
        while (old & TAIL_MASK) == tail:
            seen = await word.cmpxchg(old, old & LOCKED_PENDING_MASK)
            if seen == old:
                return True
            old = seen
        return False

    async def _slowpath(self, ctx: Context, lock: int, val: int) -> Status:
        cpu, word = ctx.cpu, self.word[lock]
        # S1: the poll counter starts at 0 (RES_INIT_TIMEOUT): each wait loop checks at its first poll.
        if val == PENDING:  # S2: a pending -> locked hand-over in progress: re-read, boundedly
            deadline = self.machine.now + PENDING_LOOPS * max(1, self.machine.step_ns)
            val = await word.wait_until(_not_pending_only, deadline_ns=deadline)
        if val & ~LOCKED_MASK:  # S3: contention: queue
            return await self._queue(ctx, lock)
        old = await word.fetch_or(PENDING)  # S4: trylock || pending
        if old & ~LOCKED_MASK:
            if not old & PENDING_MASK:
                await word.store_field(8, 8, 0)  # undo our pending bit (clear_pending)
            return await self._queue(ctx, lock)
        ret = 0
        ctx.mark(Mark.PENDING, lock)  # every other waiter now waits behind us
        if old & LOCKED_MASK:  # S5: we are the pending waiter: wait for the owner, 250 ms
            _, ret = await self._spin_checked(ctx, lock, _unlocked, LOCKED_MASK, RES_DEF_TIMEOUT)
        if ret:  # S6: give the pending bit back
            await word.store_field(8, 8, 0)
            ctx.mark(Mark.LEFT, lock)  # nobody waits behind it now, though it has not returned
            await self._release_entry(cpu)
            return Status(ret)
        await word.store_field(0, 16, LOCKED)  # S7: clear_pending_set_locked
        ctx.mark(Mark.TAKEN, lock)
        return Status.OK

    async def _queue(self, ctx: Context, lock: int) -> Status:
        cpu, word, count = ctx.cpu, self.word[lock], self.count[ctx.cpu]
        if await self._check_aa(cpu, lock):  # Q0: never queue behind ourselves
            await self._release_entry(cpu)
            return Status.EDEADLK
        idx = await count.fetch_add(1)  # Q1: node = rqnodes[idx]
        node_id = (cpu + 1) << 2 | idx
        tail = node_id << 16  # encode_tail(cpu, idx)
        if idx >= Q_MAX_NODES or (ctx.in_nmi and idx > 0):  # Q2: trylock fallback, no spinning
            ok = await self._trylock(lock)
            if ok:
                ctx.mark(Mark.TAKEN, lock)
            await count.fetch_add(-1)
            if ok:
                return Status.OK
            await self._release_entry(cpu)
            return Status.EDEADLK
        my_locked, my_next = self.locked[cpu][idx], self.next[cpu][idx]
        await my_locked.store(0)  # Q3
        await my_next.store(0)
        if await self._trylock(lock):  # Q4
            ctx.mark(Mark.TAKEN, lock)
            await count.fetch_add(-1)
            return Status.OK
        old = await word.xchg_field(16, 16, node_id)  # Q5: xchg_tail
        nxt = 0
        ret = 0
        if old & TAIL_MASK:  # Q6: link behind prev; spin on our node, no timeout, no checks
            pcpu, pidx = _node_cpu_idx(old >> 16)
            await self.next[pcpu][pidx].store(node_id)
            if await my_locked.wait_until(_nonzero) == RES_TIMEOUT_VAL:
                ctx.mark(Mark.TOLD, lock)  # its way out starts here (Timeouts.way_out_ns)
                ret = Status.ETIMEDOUT  # told to leave: go to T
            else:
                nxt = await my_next.load()
        head = not ret  # a waiter told to leave (T, waiter to waiter) never became the head
        if head:  # Q7: queue head: wait for owner and pending waiter, 500 ms
            ctx.mark(Mark.HEAD, lock)
            val, ret = await self._spin_checked(
                ctx, lock, _unlocked_no_pending, LOCKED_PENDING_MASK, 2 * RES_DEF_TIMEOUT
            )
            if ret == Status.EDEADLK:  # Q8: keep the queue: hand the head role over, or reset the tail
                if nxt or not await self._try_cmpxchg_tail(lock, tail):
                    if not nxt:
                        nxt = await my_next.wait_until(_nonzero)
                    ncpu, nidx = _node_cpu_idx(nxt)
                    await self.locked[ncpu][nidx].store(1)
                ctx.mark(Mark.LEFT, lock)  # handed on, or the queue is empty: nobody waits behind it
                await count.fetch_add(-1)
                await self._release_entry(cpu)
                return Status.EDEADLK
        if ret:  # T: ETIMEDOUT tears the queue down: tell the successor to leave
            if not await self._try_cmpxchg_tail(lock, tail):
                nxt = await my_next.wait_until(_nonzero)
                ncpu, nidx = _node_cpu_idx(nxt)
                await self.locked[ncpu][nidx].store(RES_TIMEOUT_VAL)
            if head:
                ctx.mark(Mark.LEFT, lock)  # the successor told to leave, or the queue empty
            await count.fetch_add(-1)
            await self._release_entry(cpu)
            return Status.ETIMEDOUT
        if (val & TAIL_MASK) == tail and await word.cmpxchg(val, LOCKED) == val:  # Q9: claim, alone
            ctx.mark(Mark.TAKEN, lock)
            await count.fetch_add(-1)
            return Status.OK
        await word.store_field(0, 8, LOCKED)  # Q10: set_locked, then pass the MCS lock on
        ctx.mark(Mark.TAKEN, lock)  # held from here, while it waits to hand the queue on
        if not nxt:
            nxt = await my_next.wait_until(_nonzero)
        ncpu, nidx = _node_cpu_idx(nxt)
        await self.locked[ncpu][nidx].store(1)
        await count.fetch_add(-1)
        return Status.OK

    # -- invariants of the idle lock ----------------------------------------------------------------
    def check(self) -> list[str]:
        problems = [f"L{i}.val = {w.value:#x}, expected 0" for i, w in enumerate(self.word) if w.value]
        for cpu, cnt in enumerate(self.cnt):
            if cnt.value:
                problems.append(f"cpu{cpu} held-table cnt = {cnt.value}, expected 0")
            problems += [
                f"cpu{cpu} held-table slot {i} = L{s.value - 1}, expected NULL"
                for i, s in enumerate(self.slot[cpu]) if s.value
            ]
            if self.count[cpu].value:
                problems.append(f"cpu{cpu} node[0].count = {self.count[cpu].value}, expected 0")
        return problems
