"""Correct locks written the natural way: the false-alarm zoo.

The bundled targets (``targets/``) are written *for* lockfuzz: every spin is a
``cell.wait_until(...)``, so a long wait costs a few steps. Outside authors do not write locks
that way. They spin with a plain loop of loads (``while await word.load(): pass``), read the
clock in the loop to honour a budget, spin in trio with ``await trio.sleep(0)``, or build a
lock from a condition variable. Every lock here is *correct* (mutual exclusion, no lost
hand-off, timeouts that are deserved and on time, FIFO where FIFO is declared), and each
declares exactly what it promises, no more. So any violation lockfuzz reports against one of
them, used as its ``irq_safe`` says (below), is a false alarm: that is what ``tests/fast/test_natural_locks.py`` and
``bench/false_alarms.py`` measure.

Two families:

- over cells (the direct driver): ``PlainSpinTas``, ``PlainSpinTtas``, ``SpinTasWithTimeout``,
  ``BackoffTas``, ``BudgetBackoffTtas``, ``SpinThenParkTas``, ``PlainTicket``, ``PlainMcs``;
- over trio (``driver = "trio"``): ``TrioSleepZeroSpinLock``, ``TrioPollLock``,
  ``TrioConditionLock``, ``AnyioConditionLock``, ``TrioEventQueueLock``.

Left out on purpose: Peterson's two-thread lock. It is correct for two CPUs only, and a target
cannot refuse a program with three (``programs_for`` draws up to ``--cpus`` of them), so it
would be reported broken for a reason that is the program's, not lockfuzz's.

Each class says ``irq_safe``: whether ``programs_for(cls)`` (what ``lockfuzz fuzz`` draws) is a
correct use of it. For a lock with budgets those programs let an interrupt handler take a lock
that the task it interrupted holds, waits for or is releasing, so only a lock whose every wait,
in ``acquire`` and in ``release``, is bounded keeps its promises; for a lock with no timeouts
``programs_for`` draws only ordered programs (handlers take locks no task takes), where the
question does not arise. Every lock here is irq-safe except ``TrioConditionLock`` (its
docstring says why), which is used correctly with ``programs_for(cls, ordered=True)``.
``KNOWN_REAL`` lists what lockfuzz rightly finds when it is used without that discipline.
``NATURAL_LOCKS`` maps a short name to each class. Import the module with ``tests/`` on
``sys.path`` (``tests/conftest.py`` puts it there for the test suite; ``bench/false_alarms.py``
does it itself): a campaign then names a lock ``natural_locks:PlainSpinTas``.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

import trio

from lockfuzz import Capabilities, Context, Fairness, Machine, Status, Target, Timeouts

__all__ = [
    "AnyioConditionLock", "BackoffTas", "BudgetBackoffTtas", "KNOWN_REAL", "NATURAL_LOCKS", "PlainMcs", "PlainSpinTas",
    "PlainSpinTtas", "PlainTicket", "SpinTasWithTimeout", "SpinThenParkTas", "TrioConditionLock", "TrioEventQueueLock",
    "TrioPollLock", "TrioSleepZeroSpinLock",
]  # fmt: skip

#: Per-call budgets with the bundled targets' slack (``targets/trio_locks.py``): the steps
#: between a deadline passing and the timed-out waiter running again.
BUDGETS = Timeouts(per_call=True, slack_ns=100_000)


# ---------------------------------------------------------------------------------------------
# Over cells (the direct driver)
# ---------------------------------------------------------------------------------------------
class _WordLock(Target):
    """One cell per lock, 0 = free, 1 = held; release stores 0."""

    capabilities = Capabilities()
    irq_safe: ClassVar[bool] = True

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]

    async def release(self, ctx: Context, lock: int) -> None:
        await self.words[lock].store(0)

    def check(self) -> list[str]:
        return [f"L{i} word is {w.value}, expected 0" for i, w in enumerate(self.words) if w.value]


class PlainSpinTas(_WordLock):
    """Test-and-set spinning on the xchg itself, no ``wait_until``.

    Who writes it this way: everyone's first spinlock, the textbook one (``while
    (atomic_xchg(&lock, 1)) cpu_relax();``, Herlihy and Shavit section 7.2), and anyone porting C
    to lockfuzz line by line. Promises mutual exclusion only: budgets ignored, no deadlock
    detection, no fairness (a waiter may lose every race).
    """

    capabilities = Capabilities()

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        word = self.words[lock]
        while await word.xchg(1):
            pass
        return Status.OK


class PlainSpinTtas(_WordLock):
    """Test-and-test-and-set with a plain read loop.

    Who writes it this way: the C idiom ``for (;;) { while (READ_ONCE(*l)) cpu_relax(); if
    (!xchg(l, 1)) break; }`` (Rudolph and Segall, ISCA 1984; Anderson, IEEE TPDS 1990), written
    out as loads. Promises mutual exclusion only.
    """

    capabilities = Capabilities()

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        word = self.words[lock]
        while True:
            while await word.load():
                pass
            if not await word.xchg(1):
                return Status.OK


class SpinTasWithTimeout(_WordLock):
    """Test-and-set that honours its budget by reading the clock in its spin loop.

    Who writes it this way: a kernel author's ``ktime_get()``-bounded spin (rqspinlock's own
    ``check_timeout`` is the same shape), or a user-space lock with ``clock_gettime`` in the
    loop. It returns ETIMEDOUT once its budget has passed (on the virtual clock, which includes
    time its CPU spent in handlers: so it never leaves early) and checks the clock after every
    failed xchg (so it never leaves late by more than a step). Promises per-call timeouts; no
    deadlock detection, no fairness.
    """

    capabilities = Capabilities(timeouts=BUDGETS)

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        word = self.words[lock]
        start = ctx.now
        while await word.xchg(1):
            if ctx.now - start >= budget_ns:
                return Status.ETIMEDOUT
        return Status.OK


class BackoffTas(_WordLock):
    """Test-and-set with bounded exponential back-off between attempts.

    Who writes it this way: Anderson (IEEE TPDS 1990, section 3.2) and Herlihy and Shavit's
    ``BackoffLock`` (section 7.4): after a failed xchg, wait a delay that doubles up to a cap.
    The delay is a sleep on the virtual clock (``machine.sleep_until``). This one is a control:
    it should be cheap today, since it does not spin step by step. Promises mutual exclusion
    only.
    """

    capabilities = Capabilities()
    MIN_DELAY_NS: ClassVar[int] = 100
    MAX_DELAY_NS: ClassVar[int] = 50_000

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        word = self.words[lock]
        delay = self.MIN_DELAY_NS
        while await word.xchg(1):
            await self.machine.sleep_until(ctx.now + delay)
            delay = min(2 * delay, self.MAX_DELAY_NS)
        return Status.OK


class BudgetBackoffTtas(_WordLock):
    """Test-and-test-and-set under a budget, with exponential back-off sleeps between looks.

    Who writes it this way: a user-space lock with ``nanosleep`` back-off and a deadline
    (Anderson's back-off with a timeout, as in Scott and Scherer's "Scalable queue-based spin
    locks with timeout", PPoPP 2001, for the TATAS lock). It looks at the word, tries the xchg
    only if the word looked free, and sleeps 1 us, 2, 4, ... up to 64 us between looks, never past
    its deadline. Its longest sleep is its declared wake-up grace (``Timeouts.grace_ns``), as the
    manual says a lock that polls by sleeping declares. Each time the holder frees the lock and
    takes it back within one of its sleeps, it sleeps through a free lock for up to 64 us: fair,
    each time (it was once judged on the sum over its sleeps: a false alarm).
    """

    MIN_SLEEP_NS: ClassVar[int] = 1_000
    MAX_SLEEP_NS: ClassVar[int] = 64_000
    capabilities = Capabilities(timeouts=Timeouts(per_call=True, slack_ns=100_000, grace_ns=64_000))

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        word = self.words[lock]
        deadline = ctx.now + budget_ns
        sleep = self.MIN_SLEEP_NS
        while True:
            if await word.load() == 0 and await word.xchg(1) == 0:
                return Status.OK
            now = ctx.now
            if now >= deadline:
                return Status.ETIMEDOUT
            await self.machine.sleep_until(min(now + sleep, deadline))
            sleep = min(2 * sleep, self.MAX_SLEEP_NS)


class SpinThenParkTas(_WordLock):
    """Spin a few tries, then sleep until the word changes: a spin-then-park lock.

    Who writes it this way: every adaptive mutex (glibc's ``PTHREAD_MUTEX_ADAPTIVE_NP``, the
    kernel's mutex optimistic spinning, ``parking_lot``'s ``SpinWait`` then park): spinning is
    cheap for short holds, sleeping for long ones. Its spin counts its tries in a local
    variable, so behind a long hold lockfuzz must run the tries in steps (a counting loop) for
    the park path to run at all. Promises mutual exclusion only.
    """

    TRIES: ClassVar[int] = 40

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        word = self.words[lock]
        while True:
            for _ in range(self.TRIES):
                if await word.xchg(1) == 0:
                    return Status.OK
            await word.wait_until(lambda v: v == 0)


class PlainTicket(Target):
    """Ticket lock over two words, ``next`` and ``owner``, with a plain spin on ``owner``.

    Who writes it this way: the classic (Mellor-Crummey and Scott, ACM TOCS 1991, figure 2;
    Linux's pre-2008 x86 ticket lock) as anyone writes it from the paper: ``my =
    fetch_add(&next, 1); while (READ_ONCE(owner) != my) cpu_relax();`` and release
    ``owner++`` by the holder alone. Promises mutual exclusion and FIFO after the one-step doorway
    (the fetch_add); no timeouts (budgets ignored), no deadlock detection.
    """

    capabilities = Capabilities(fairness=Fairness(overtakes=0, doorway_steps=1))
    irq_safe: ClassVar[bool] = True

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.next = [machine.cell(f"L{i}.next") for i in range(machine.n_locks)]
        self.owner = [machine.cell(f"L{i}.owner") for i in range(machine.n_locks)]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        my = await self.next[lock].fetch_add(1)  # the doorway
        while await self.owner[lock].load() != my:
            pass
        return Status.OK

    async def release(self, ctx: Context, lock: int) -> None:
        owner = self.owner[lock]
        await owner.store(await owner.load() + 1)  # only the holder writes owner

    def check(self) -> list[str]:
        return [
            f"L{i}: next ticket {n.value} != owner {o.value}"
            for i, (n, o) in enumerate(zip(self.next, self.owner))
            if n.value != o.value
        ]


#: Contexts a CPU can run at once (task, softirq, hardirq, NMI): one MCS node each per lock.
_LEVELS = 4


class PlainMcs(Target):
    """The MCS queue lock with plain spin loops on the per-node flags.

    Who writes it this way: straight from Mellor-Crummey and Scott (ACM TOCS 1991, figure 5) or
    Herlihy and Shavit's ``MCSLock`` (section 7.5.2): ``while (node->locked) cpu_relax();`` and,
    in release, ``while (!node->next) cpu_relax();`` for a successor that has swapped itself into
    the tail but not linked itself yet. Nodes are per (CPU, level, lock), as the kernel's per-CPU
    MCS nodes (a context holds each node from its acquire to its release). Promises mutual
    exclusion and FIFO after the doorway of three steps (two node stores, then the xchg of the
    tail); no timeouts, no deadlock detection.
    """

    capabilities = Capabilities(fairness=Fairness(overtakes=0, doorway_steps=3))
    irq_safe: ClassVar[bool] = True

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        n = machine.n_locks
        self.n_locks = n
        self.tails = [machine.cell(f"L{i}.tail") for i in range(n)]
        self.next = []
        self.locked = []
        for cpu in range(machine.n_cpus):
            for level in range(_LEVELS):
                for lock in range(n):
                    name = f"cpu{cpu}.node[{level}][L{lock}]"
                    self.next.append(machine.cell(f"{name}.next"))
                    self.locked.append(machine.cell(f"{name}.locked"))

    def _node(self, ctx: Context, lock: int) -> int:
        """This acquisition's node number, 1-based (0 is NULL)."""
        return (ctx.cpu * _LEVELS + int(ctx.level)) * self.n_locks + lock + 1

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        me = self._node(ctx, lock)
        await self.next[me - 1].store(0)
        await self.locked[me - 1].store(1)  # 1: must wait
        prev = await self.tails[lock].xchg(me)  # the doorway ends here
        if prev:
            await self.next[prev - 1].store(me)
            while await self.locked[me - 1].load():
                pass
        return Status.OK

    async def release(self, ctx: Context, lock: int) -> None:
        me = self._node(ctx, lock)
        succ = await self.next[me - 1].load()
        if not succ:
            if await self.tails[lock].cmpxchg(me, 0) == me:
                return
            while not (succ := await self.next[me - 1].load()):
                pass  # the successor swapped the tail but has not linked itself yet
        await self.locked[succ - 1].store(0)

    def check(self) -> list[str]:
        return [f"L{i} tail is node {t.value}, expected NULL" for i, t in enumerate(self.tails) if t.value]


# ---------------------------------------------------------------------------------------------
# Over trio (the trio driver)
# ---------------------------------------------------------------------------------------------
class _FlagLock(Target):
    """A held flag per lock, in plain Python: trio tasks only switch at checkpoints."""

    driver: ClassVar[str] = "trio"
    capabilities = Capabilities(timeouts=BUDGETS)
    irq_safe: ClassVar[bool] = True

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.held = [False] * machine.n_locks

    async def release(self, ctx: Context, lock: int) -> None:
        self.held[lock] = False

    def check(self) -> list[str]:
        return [f"L{i} is still held" for i, h in enumerate(self.held) if h]


class TrioSleepZeroSpinLock(_FlagLock):
    """A flag, and ``await trio.sleep(0)`` until it is clear.

    Who writes it this way: the trio (and asyncio: ``await asyncio.sleep(0)``) user who needs a
    lock "for a moment" and knows that tasks only switch at an await: nothing can run between
    the last test of the flag and setting it, so the test-and-set is atomic. The budget is a
    ``trio.move_on_after`` scope: every ``sleep(0)`` is a checkpoint where it can fire. Promises
    per-call timeouts; no fairness (a spinner may lose to a later arrival every time).
    """

    capabilities = Capabilities(timeouts=BUDGETS)

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        with trio.move_on_after(budget_ns / 1e9):
            while self.held[lock]:
                await trio.sleep(0)
            self.held[lock] = True
            return Status.OK
        return Status.ETIMEDOUT


class TrioPollLock(_FlagLock):
    """A flag polled every 10 us with ``await trio.sleep(POLL_S)``.

    Who writes it this way: the same user, once ``sleep(0)`` showed up in a profile. A control:
    it sleeps on the virtual clock, so it should be cheap today. Promises per-call timeouts; no
    fairness.
    """

    capabilities = Capabilities(timeouts=BUDGETS)
    POLL_S: ClassVar[float] = 10e-6

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        with trio.move_on_after(budget_ns / 1e9):
            while self.held[lock]:
                await trio.sleep(self.POLL_S)
            self.held[lock] = True
            return Status.OK
        return Status.ETIMEDOUT


class TrioConditionLock(_FlagLock):
    """A held flag guarded by a ``trio.Condition``.

    Who writes it this way: anyone who learned locks from ``threading.Condition`` (the monitor
    pattern, Hoare CACM 1974; Python's docs for ``Condition``): acquire ``async with cond: while
    held: await cond.wait(); held = True`` under ``trio.move_on_after``; release ``async with
    cond: held = False; cond.notify()``. Correct under cancellation: a cancelled ``wait``
    re-takes the condition's lock before it raises (trio's documented behaviour), and a waiter
    notified just before its deadline cannot lose the wake-up, since ``notify`` moves it onto the
    condition lock's queue, which it then owns (there is no checkpoint between ``notify`` and the
    release of the condition lock). Promises per-call timeouts; no fairness (a newcomer queued
    on the condition's lock can get the flag before the notified waiter).

    Not correct under cancellation other than its own deadline, a real finding (``KNOWN_REAL``):
    a waiter that ``notify`` re-parked onto the condition lock's queue is still inside
    ``Condition.wait``'s park, and a cancellation there (its caller's scope, not the budget)
    raises from it: trio's ``wait`` re-takes the condition's lock and raises, and the wake-up it
    was given is gone. The next waiter sleeps on a free flag until its budget:
    ``etimedout/undeserved``. asyncio's ``Condition`` had the same hole until Python 3.13
    (python/cpython#112202: a cancelled, notified waiter now wakes another), and so did anyio's
    (agronholm/anyio#1075). The fix in the lock: catch the cancellation around ``wait`` and
    ``notify()`` before re-raising. Found by ``python bench/false_alarms.py --runs 20000 --seed
    43`` at ``--cpus 5`` (swarm: after 2,183 runs). ``AnyioConditionLock`` runs that schedule
    clean, since its notify sets an event and the cancellation lands elsewhere; whether it has
    the same hole under other schedules was not searched for.

    Not irq-safe (``irq_safe = False``), for a reason that is real under lockfuzz's interrupt
    model, not a false alarm: ``notify`` re-parks the waiter onto the condition lock's queue
    without it running, so that lock can be handed to a task whose CPU is running a handler
    above it. If that handler holds L0 and releases it, its release waits for the condition
    lock, owned by the task it interrupted, which cannot run until the handler returns: a
    deadlock through the condition's own lock, invisible to the ground truth (it sees only L0),
    so lockfuzz reports it as ``hang/no-cycle`` (the manual's "Honest limits": a cycle through a
    queue position of a lock that declares no order). ``AnyioConditionLock`` does not have it:
    anyio's ``notify`` sets an event, and the waiter re-queues for the lock only when it runs.
    Use it the kernel's way for irq-unsafe locks: interrupt handlers only take locks that no
    task takes (``programs_for(..., ordered=True)``).
    """

    capabilities = Capabilities(timeouts=BUDGETS)
    irq_safe: ClassVar[bool] = False

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.conds = [trio.Condition() for _ in range(machine.n_locks)]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        cond = self.conds[lock]
        with trio.move_on_after(budget_ns / 1e9):
            async with cond:
                while self.held[lock]:
                    await cond.wait()
                self.held[lock] = True
            return Status.OK
        return Status.ETIMEDOUT

    async def release(self, ctx: Context, lock: int) -> None:
        # Shielded, as trio's docs ask of async clean-up: a release runs when an ``async with``
        # of this lock exits, often because its body was cancelled; unshielded, ``async with
        # cond`` would raise Cancelled at once and leave the flag set for ever (lockfuzz finds
        # that: tests/fast/test_trio_cancel.py).
        cond = self.conds[lock]
        with trio.CancelScope(shield=True):
            async with cond:
                self.held[lock] = False
                cond.notify()

    def check(self) -> list[str]:
        problems = super().check()
        problems += [f"L{i}: the condition's lock is still held" for i, c in enumerate(self.conds) if c.locked()]
        return problems


class AnyioConditionLock(_FlagLock):
    """The same monitor over ``anyio.Condition`` (on the trio backend), budgets by
    ``anyio.move_on_after``.

    Who writes it this way: library authors who support both asyncio and trio through anyio.
    Correct under cancellation: anyio's ``Condition.wait`` re-takes the lock (shielded) before it
    raises, and a waiter cancelled after it was notified passes the notification on to the next
    waiter (anyio >= 4.x does this itself). Promises per-call timeouts; no fairness (anyio
    documents none).
    """

    capabilities = Capabilities(timeouts=BUDGETS)

    def __init__(self, machine: Machine) -> None:
        import anyio  # a test dependency; the trio driver makes targets while sniffio says trio

        super().__init__(machine)
        self._anyio = anyio
        self.conds = [anyio.Condition() for _ in range(machine.n_locks)]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        cond = self.conds[lock]
        with self._anyio.move_on_after(budget_ns / 1e9):
            async with cond:
                while self.held[lock]:
                    await cond.wait()
                self.held[lock] = True
            return Status.OK
        return Status.ETIMEDOUT

    async def release(self, ctx: Context, lock: int) -> None:
        cond = self.conds[lock]
        with self._anyio.CancelScope(shield=True):  # as TrioConditionLock's release, and why
            async with cond:
                self.held[lock] = False
                cond.notify()

    def check(self) -> list[str]:
        problems = super().check()
        problems += [f"L{i}: the condition's lock is still held" for i, c in enumerate(self.conds) if c.locked()]
        return problems


class TrioEventQueueLock(_FlagLock):
    """A FIFO of ``trio.Event`` hand-offs: release hands the lock to the longest waiter.

    Who writes it this way: trio users who want strict FIFO and read how ``trio.Lock`` is built
    (a ``ParkingLot``), then write it with public API: a ``deque`` of events. The fast path
    follows ``trio.Lock.acquire``: ``checkpoint_if_cancelled`` first, take the free lock, then a
    ``cancel_shielded_checkpoint`` (a checkpoint that cannot lose what was taken). A waiter that
    is cancelled leaves the queue; if it was handed the lock just as it gave up (its event set,
    its cancellation already delivered), it passes the lock on. Promises per-call timeouts and
    FIFO with an empty doorway: an attempt takes the lock or joins the queue before its first
    checkpoint, and a hand-off keeps the flag set, so the lock is never free with waiters queued.
    """

    capabilities = Capabilities(timeouts=BUDGETS, fairness=Fairness(overtakes=0, doorway_steps=0))

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.waiters: list[deque[trio.Event]] = [deque() for _ in range(machine.n_locks)]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        with trio.move_on_after(budget_ns / 1e9):
            await trio.lowlevel.checkpoint_if_cancelled()
            if not self.held[lock]:
                self.held[lock] = True
                await trio.lowlevel.cancel_shielded_checkpoint()
                return Status.OK
            turn = trio.Event()
            self.waiters[lock].append(turn)
            try:
                await turn.wait()
            except trio.Cancelled:
                if turn.is_set():
                    self._hand_off(lock)  # handed the lock as we gave up: pass it on
                else:
                    self.waiters[lock].remove(turn)
                raise
            return Status.OK
        return Status.ETIMEDOUT

    async def release(self, ctx: Context, lock: int) -> None:
        self._hand_off(lock)

    def _hand_off(self, lock: int) -> None:
        queue = self.waiters[lock]
        if queue:
            queue.popleft().set()  # the flag stays set: the lock is the next waiter's now
        else:
            self.held[lock] = False

    def check(self) -> list[str]:
        problems = super().check()
        problems += [f"L{i} has {len(q)} waiter(s) queued" for i, q in enumerate(self.waiters) if q]
        return problems


#: Findings that are real, not false alarms: natural lock name -> {signature: why}. Only these
#: may be reported against a natural lock used without the discipline it needs (see ``irq_safe``).
KNOWN_REAL: dict[str, dict[str, str]] = {
    "trio_condition": {
        "hang/no-cycle": "not irq-safe: a handler's release waits for the trio.Condition's own lock, "
        "handed (by notify's re-park) to the task the handler interrupted",
        "etimedout/undeserved": "a notified waiter cancelled before it runs leaves Condition.wait with "
        "the wake-up, which nobody passes on: the next waiter sleeps on a free flag until its budget",
    },
}

#: Every natural lock, by a short name (the bench's and the tests' parameter ids).
NATURAL_LOCKS: dict[str, type] = {
    "plain_spin_tas": PlainSpinTas,
    "plain_spin_ttas": PlainSpinTtas,
    "spin_tas_with_timeout": SpinTasWithTimeout,
    "backoff_tas": BackoffTas,
    "budget_backoff_ttas": BudgetBackoffTtas,
    "spin_then_park_tas": SpinThenParkTas,
    "plain_ticket": PlainTicket,
    "plain_mcs": PlainMcs,
    "trio_sleep_zero_spin": TrioSleepZeroSpinLock,
    "trio_poll": TrioPollLock,
    "trio_condition": TrioConditionLock,
    "anyio_condition": AnyioConditionLock,
    "trio_event_queue": TrioEventQueueLock,
}
