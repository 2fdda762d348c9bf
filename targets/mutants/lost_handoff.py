"""Mutant of a minimal MCS queue lock: the release loses the hand-off to a successor.

``McsQueueLock`` (correct) is the classic MCS lock (Mellor-Crummey and Scott, ACM TOCS 1991):
one ``tail`` word per lock; each context has a node per lock with ``locked`` and ``next``; an
arrival resets its node, swaps itself into ``tail`` (the doorway), links itself behind the old
tail and waits on its own ``locked``. The holder hands over by writing its successor's
``locked``; if it has none yet it tries ``cmpxchg(tail: me -> 0)``, and when that fails a
successor is between its swap and its link, so the holder waits for the link, then hands over.
Written here so that the mutant does not depend on another target module.

Broken (``LostHandoffLock``): when the ``cmpxchg`` fails the release returns at once instead of
waiting for the successor to link itself. The successor links into a node nobody reads and waits
for a hand-off that never comes; every later arrival queues behind it. It takes one preemption:
the successor stopped between its swap of ``tail`` and its link while the holder releases.
Caught by: **hang** (every context waits forever, with no deadlock cycle).
"""

from __future__ import annotations

from lockfuzz import Capabilities, Context, Fairness, Machine, Status, Target

N_LEVELS = 4  # task, softirq, hardirq, NMI: one context per level and CPU at a time


class McsQueueLock(Target):
    """Classic MCS queue lock: FIFO after its 3-step doorway (two node resets and the tail swap)."""

    capabilities = Capabilities(fairness=Fairness(overtakes=0, doorway_steps=3))

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.n_locks = machine.n_locks
        self.tails = [machine.cell(f"L{i}.tail") for i in range(machine.n_locks)]
        n_nodes = machine.n_cpus * N_LEVELS * machine.n_locks
        self.locked = [machine.cell(f"node{n}.locked") for n in range(n_nodes)]
        self.next = [machine.cell(f"node{n}.next") for n in range(n_nodes)]

    def _node(self, ctx: Context, lock: int) -> int:
        """The node of ``ctx`` for ``lock`` (a context holds a given lock at most once)."""
        return (ctx.cpu * N_LEVELS + int(ctx.level)) * self.n_locks + lock

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        me = self._node(ctx, lock)
        await self.next[me].store(0)
        await self.locked[me].store(0)
        prev = await self.tails[lock].xchg(me + 1)
        if prev:
            await self.next[prev - 1].store(me + 1)
            await self.locked[me].wait_until(_nonzero)
        return Status.OK

    async def release(self, ctx: Context, lock: int) -> None:
        me = self._node(ctx, lock)
        succ = await self.next[me].load()
        if not succ:
            if await self.tails[lock].cmpxchg(me + 1, 0) == me + 1:
                return  # no successor: the lock is free
            succ = await self._await_successor(me)
            if not succ:
                return
        await self.locked[succ - 1].store(1)

    async def _await_successor(self, me: int) -> int:
        """A successor swapped itself into ``tail``: wait until it links into our node."""
        return await self.next[me].wait_until(_nonzero)

    def check(self) -> list[str]:
        return [f"L{i} tail is node {t.value - 1}, expected empty" for i, t in enumerate(self.tails) if t.value]


class LostHandoffLock(McsQueueLock):
    """MCS lock whose release gives up when a successor has swapped ``tail`` but not linked yet."""

    async def _await_successor(self, me: int) -> int:
        return 0  # BUG: "no successor linked, nothing to hand over": the successor is lost


def _nonzero(value: int) -> bool:
    return value != 0
