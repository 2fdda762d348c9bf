"""The MCS queue lock.

Sources: J. M. Mellor-Crummey and M. L. Scott, "Algorithms for scalable synchronization on
shared-memory multiprocessors", ACM TOCS 9(1), 1991, figure 5 (the list-based queuing lock);
the kernel's kernel/locking/mcs_spinlock.h (``mcs_spin_lock``, ``mcs_spin_unlock``).

Each lock is one word, the queue *tail*: a pointer to the last waiter's node, or NULL. A node is
two words, ``next`` and ``locked``. Pointers are node numbers (0 is NULL).

Acquire (``mcs_spin_lock``), one step per shared-memory access:
  1. ``node.locked = 0``   2. ``node.next = NULL``   3. ``prev = xchg(tail, node)``
  if prev is NULL the lock is ours; else 4. ``prev.next = node`` and spin until ``node.locked``.
Release (``mcs_spin_unlock``): read ``node.next``; if NULL, ``cmpxchg(tail, node, NULL)`` and
done if it worked, else wait for the successor to link itself; then ``next.locked = 1``.

Nodes: an MCS node lives from acquire to release (the kernel's users put it on the stack), and
a context holds several locks at once when it nests them, so a node is per (CPU, level, lock):
the kernel's four per-CPU contexts (task, softirq, hardirq, NMI), each with a node per lock it
may hold. No two live acquisitions share one: a handler only fires above the level it
interrupts, and a context cannot hold a lock twice without deadlocking on itself.
"""

from __future__ import annotations

from lockfuzz import Capabilities, Cell, Context, Fairness, Machine, Mark, Status, Target

LEVELS = 4  # task, softirq, hardirq, NMI

#: Steps of ``acquire`` up to and including the xchg of the tail: after it the waiter's place
#: in the queue is fixed, and the lock is handed down the queue in that order.
DOORWAY_STEPS = 3


class McsLock(Target):
    """The classic MCS lock: each waiter swaps its node into the lock's tail word, links itself
    behind its predecessor and spins on its own node until the predecessor hands the lock over.
    Promises mutual exclusion and strict FIFO order after the doorway, which is the three steps
    up to and including the xchg of the tail (two node initialisations, then the xchg): the
    hand-over follows the queue that the xchg builds, so no waiter that has passed the xchg is
    ever overtaken. No timeouts (budgets are ignored), no deadlock detection."""

    capabilities = Capabilities(fairness=Fairness(overtakes=0, doorway_steps=DOORWAY_STEPS))

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        n = machine.n_locks
        self.n_locks = n
        self.tails = [machine.cell(f"L{i}.tail") for i in range(n)]
        self.next: list[Cell] = []
        self.locked: list[Cell] = []
        for cpu in range(machine.n_cpus):
            for level in range(LEVELS):
                for lock in range(n):
                    name = f"cpu{cpu}.node[{level}][L{lock}]"
                    self.next.append(machine.cell(f"{name}.next"))
                    self.locked.append(machine.cell(f"{name}.locked"))

    def _node(self, ctx: Context, lock: int) -> int:
        """This acquisition's node number (1-based: 0 is NULL)."""
        return ((ctx.cpu * LEVELS + int(ctx.level)) * self.n_locks + lock) + 1

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        node = self._node(ctx, lock)
        await self.locked[node - 1].store(0)
        await self.next[node - 1].store(0)
        prev = await self.tails[lock].xchg(node)  # the doorway ends here
        if prev:
            await self.next[prev - 1].store(node)
            await self.locked[node - 1].wait_until(_nonzero)
        ctx.mark(Mark.TAKEN, lock)  # the head of an MCS queue holds the lock
        return Status.OK

    async def release(self, ctx: Context, lock: int) -> None:
        node = self._node(ctx, lock)
        nxt = await self.next[node - 1].load()
        if not nxt:
            if await self.tails[lock].cmpxchg(node, 0) == node:
                return
            # A successor swapped itself into the tail but has not linked itself yet.
            nxt = await self.next[node - 1].wait_until(_nonzero)
        await self.locked[nxt - 1].store(1)

    def check(self) -> list[str]:
        return [f"L{i} tail is node {t.value}, expected NULL" for i, t in enumerate(self.tails) if t.value]


def _nonzero(value: int) -> bool:
    return value != 0
