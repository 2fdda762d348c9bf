"""Wound/wait mutexes (ww_mutex): Wait-Die and Wound-Wait deadlock avoidance by transaction age.

Sources: Documentation/locking/ww-mutex-design.rst; kernel/locking/ww_mutex.h
(``__ww_ctx_less``, ``__ww_mutex_kill``, ``__ww_mutex_check_kill``, ``__ww_mutex_wound``, and the
reset of ``ctx->wounded`` when a context holding nothing locks again); D. J. Rosenkrantz, R. E.
Stearns and P. M. Lewis, "System level concurrency control for distributed database systems",
ACM TODS 3(2), 1978 (where Wait-Die and Wound-Wait come from).

Model. Each context's line is one transaction (the kernel's ``ww_acquire_ctx``): its stamp comes
from a global counter (``fetch_add``) at its first acquisition and is kept across retries, so a
retrying transaction ages; older = smaller stamp. A lock is one word holding its holder's stamp
(0 = free; the kernel keeps a pointer to the holder's context, ``ww->ctx``). A waiter waits until
the word changes and then tries again, so it re-judges every new holder (the kernel's wake-ups of
waiters that must die or be wounded when a lock changes hands). What the transaction itself
counts (``acquired``) is private to it, as in the kernel, and costs no step.
- Wait-Die: a requester that holds locks and meets an older holder returns EDEADLK (dies); a
  younger holder, or any holder if it holds nothing, is waited for.
- Wound-Wait: a requester that holds locks and meets a younger holder wounds it (sets its
  ``wounded`` flag and, if it is waiting on another lock, wakes it), then waits; a wounded
  transaction that holds locks returns EDEADLK at its next contended lock, or at once if it is
  already waiting. (A transaction that holds nothing is on no cycle of lock waits: it neither
  dies nor wounds, it waits.)
Both: re-locking a lock the transaction holds returns EALREADY. The kernel's stamp-sorted wait
list is not modelled (waiters retry on every change of the word instead): it orders hand-over,
which neither guarantee depends on, and makes kernel Wait-Die also kill a waiter that holds locks
and queues behind an older waiter; here only the holder's age counts. Unlike the kernel's wound
(made under the lock's wait lock), the model's wound can land on a transaction that has just released that lock; it then
dies at a later contended lock, still holding a lock, as a wounded kernel transaction would.
"""

from __future__ import annotations

from lockfuzz import Capabilities, Cell, Context, Detection, Machine, Mark, Status, Target

WOUNDED = 1  # bit 0 of a transaction's state word; bits 1.. = 1 + the lock it waits on (0 = none)

#: Campaigns draw no interrupt handlers for these locks (``Capabilities(interrupts=False)``): a
#: ww_mutex, like every mutex, sleeps and "may not be used in hardware or software interrupt
#: contexts" (Documentation/locking/mutex-design.rst). Programs with handlers were legal here,
#: but most of them deadlocked through a handler waiting for its own CPU's task, a program
#: error that the campaign rejects (three in five drawn programs). A program given by hand
#: (``--program``, ``lockfuzz.run``) may still have handlers.
_INTERRUPTS = False

#: Detection latency, on the cycle's clock (edeadlk_complete: it runs only while the whole
#: cycle waits and some party sleeps on a deadline of its own). A waiter here sleeps with no
#: deadline, and the cycle is broken by the steps of the dying (or wounded) party: 0, to the
#: nanosecond. A variant that waited on a timer before it backed off would be caught; one that
#: never backs off hangs, and is caught at the hang.
LATENCY_NS = 0


class _Txn:
    """One transaction (a context's ww_acquire_ctx)."""

    __slots__ = ("acquired", "stamp", "state")

    def __init__(self, state: Cell) -> None:
        self.stamp = 0
        self.acquired = 0
        self.state = state  # cell: WOUNDED | (1 + awaited lock) << 1


class _WwMutex(Target):
    wound_wait = False

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.words = [machine.cell(f"L{i}.ctx") for i in range(machine.n_locks)]
        self.counter = machine.cell("ww_class.stamp")
        self.txns: dict[int, _Txn] = {}  # ctx.index -> its transaction
        self.by_stamp: dict[int, _Txn] = {}  # what the holder pointer in a lock word leads to

    def _txn(self, ctx: Context) -> _Txn:
        t = self.txns.get(ctx.index)
        if t is None:
            t = self.txns[ctx.index] = _Txn(self.machine.cell(f"{ctx.name}.ww_ctx"))
        return t

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        t = self._txn(ctx)
        if not t.stamp:
            t.stamp = await self.counter.fetch_add(1) + 1
            self.by_stamp[t.stamp] = t
        if self.wound_wait and not t.acquired:
            await t.state.store(0)  # holding nothing, nobody can have a claim on us: unwound
        word = self.words[lock]
        while True:
            holder = await word.cmpxchg(0, t.stamp)
            if holder == 0:
                ctx.mark(Mark.TAKEN, lock)  # held from here, while it checks the waiters
                t.acquired += 1
                if self.wound_wait:
                    await self._check_waiters(t, lock)
                return Status.OK
            if holder == t.stamp:
                return Status.EALREADY
            if self.wound_wait:
                # Publish what we wait on first (the kernel adds the waiter to the wait list and
                # wounds the owner under one wait_lock): then either a new owner that takes the
                # lock after this sees us (_check_waiters), or we see it below.
                old = await t.state.fetch_or((lock + 1) << 1)
                if old & WOUNDED and t.acquired:
                    await t.state.fetch_and(WOUNDED)
                    return Status.EDEADLK  # wounded: back off
                holder = await word.load()
                if holder == 0:
                    await t.state.fetch_and(WOUNDED)
                    continue  # released meanwhile: try again
                if t.acquired and holder > t.stamp:  # a younger transaction holds it: wound it
                    # The wound wakes it if it waits (the kernel's wake_up_process): it waits
                    # on its state cell too.
                    await self.by_stamp[holder].state.fetch_or(WOUNDED)
                await self.machine.wait_until(
                    [word, t.state], lambda v, s, h=holder: v != h or bool(s & WOUNDED and t.acquired)
                )
                await t.state.fetch_and(WOUNDED)
            else:
                if t.acquired and holder < t.stamp:
                    return Status.EDEADLK  # an older transaction holds it: die
                # mypy cannot type a lambda whose default argument binds the value (python/mypy#15459).
                await word.wait_until(lambda v, h=holder: v != h)  # type: ignore[misc]

    async def _check_waiters(self, t: _Txn, lock: int) -> None:
        """__ww_mutex_check_waiters: a new owner with an older transaction waiting for the lock
        (one that holds something) is wounded at once, as if that waiter had wounded it."""
        for other in list(self.txns.values()):  # a snapshot: others may start meanwhile
            if other is t or not other.stamp:
                continue
            state = await other.state.load()
            if state >> 1 == lock + 1 and other.acquired and other.stamp < t.stamp:
                await t.state.fetch_or(WOUNDED)
                return

    async def release(self, ctx: Context, lock: int) -> None:
        self.txns[ctx.index].acquired -= 1
        await self.words[lock].store(0)

    def check(self) -> list[str]:
        problems = [f"L{i} held by stamp {w.value}" for i, w in enumerate(self.words) if w.value]
        problems += [
            f"transaction stamp {t.stamp} still counts {t.acquired} lock(s)" for t in self.txns.values() if t.acquired
        ]
        return problems


class WaitDieMutex(_WwMutex):
    """ww_mutex with the Wait-Die algorithm (``DEFINE_WD_CLASS``): a transaction that holds locks
    and meets an older holder backs off with EDEADLK; otherwise it waits. Promises mutual
    exclusion; that the oldest transaction never backs off (it never meets an older holder); and
    that every deadlock cycle among waiting transactions makes one back off, because around a
    cycle someone waits for an older holder, and it dies as soon as it sees that holder.
    Declared: detection of every deadlock cycle with no interrupt edge (``task-cycle``) within
    1 ms. Not declared: cycles through interrupt handlers (a handler holding nothing waits,
    whatever the age of what it waits for, so a cycle through an interrupted holder is never
    broken); no timeouts (budgets are ignored); no fairness. By design it also returns EDEADLK
    without any deadlock (dying is decided by age alone): the ``age-backoff`` exception."""

    capabilities = Capabilities(
        detection=Detection(classes=frozenset({"ABBA", "task-cycle"}), latency_ns=LATENCY_NS),
        exceptions=frozenset({"age-backoff"}),
        interrupts=_INTERRUPTS,  # a sleeping lock: never taken in interrupt context
    )
    wound_wait = False


class WoundWaitMutex(_WwMutex):
    """ww_mutex with the Wound-Wait algorithm (``DEFINE_WW_CLASS``): a transaction that holds
    locks and meets a younger holder wounds it and waits; a wounded transaction that holds locks backs off with
    EDEADLK at its next contended lock (at once if it is already waiting). Promises mutual
    exclusion; that the oldest transaction never backs off (nobody is older, so nobody wounds
    it); and that every deadlock cycle among waiting transactions makes one back off: around a
    cycle someone waits for a younger holder, which it has wounded and woken. Declared: detection
    of every deadlock cycle with no interrupt edge (``task-cycle``) within 1 ms. Not declared:
    cycles through interrupt handlers (an interrupted holder cannot run to see its wound); no
    timeouts; no fairness. By design a wounded transaction also returns EDEADLK where no deadlock
    exists: the ``age-backoff`` exception."""

    capabilities = Capabilities(
        detection=Detection(classes=frozenset({"ABBA", "task-cycle"}), latency_ns=LATENCY_NS),
        exceptions=frozenset({"age-backoff"}),
        interrupts=_INTERRUPTS,  # a sleeping lock: never taken in interrupt context
    )
    wound_wait = True
