"""Mutant of a wake-one sleeping lock with per-call budgets: a timed-out waiter loses a wake-up.

``WakeOneLock`` (correct) is a test-and-set word per lock with sleeping waiters, the shape of a
futex-based mutex: a waiter that finds the lock taken sets its bit in the lock's ``waiters``
mask, tests the word once more (a release between its first test and its registration saw no
waiter) and sleeps on its own ``go`` flag. Its timer has a tick's resolution, as the kernel's
``schedule_timeout()`` has a jiffy's: it sleeps until ``go`` is set or the first tick at or after
its deadline (``TICK_NS``, 1 ms: HZ=1000), so it may wake up to a tick after its budget is spent
(declared as slack). A release stores 0 to the word, then wakes ONE waiter: it claims the lowest
bit of ``waiters`` (``fetch_and`` clears it; if the bit was already gone, that waiter left
meanwhile and it tries the next) and sets that waiter's ``go``. A woken waiter retries the word
(and sleeps again if a newcomer took it first; that newcomer's release wakes someone in turn).
A waiter that wakes with its budget spent clears its own bit and returns ETIMEDOUT; if its bit
was already clear, a release claimed it for the wake-up (between its deadline and its tick), and
it passes the wake-up on to the next waiter before it leaves.

Broken (``LostWakeupLock``): a waiter woken after its budget is spent returns ETIMEDOUT without
passing the wake-up on. The release that woke it woke nobody else, so the next waiter sleeps on
its ``go`` flag, which nobody will set, while the lock is free and nobody else wants it, until
its own budget runs out: an ETIMEDOUT it did not deserve. It takes a release between a waiter's
deadline and its next tick (the scenario's holder keeps the lock for 1.5 ms, the first waiter
has a 1 ms budget) and a second waiter, with a longer budget, queued behind it; no preemption.
Caught by: **etimedout** (an ETIMEDOUT to a waiter that slept on a free lock).
"""

from __future__ import annotations

from lockfuzz import Capabilities, Context, Machine, Status, Target, Timeouts

__all__ = ["LostWakeupLock", "WakeOneLock"]

N_LEVELS = 4  # task, softirq, hardirq, NMI: one context per level and CPU at a time
TICK_NS = 1_000_000  # the timer's resolution: a waiter wakes at the first tick at or after its deadline


class WakeOneLock(Target):
    """Test-and-set word with sleeping waiters, each release waking one; per-call budgets."""

    # Slack: up to a tick late, and the steps of leaving (and passing a wake-up on) after it.
    capabilities = Capabilities(timeouts=Timeouts(per_call=True, slack_ns=TICK_NS + 100_000))

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        n_slots = machine.n_cpus * N_LEVELS
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]
        self.waiters = [machine.cell(f"L{i}.waiters") for i in range(machine.n_locks)]
        # go[lock][slot]: set by a release to wake that context (slots as in _slot).
        self.go = [[machine.cell(f"L{i}.go{s}") for s in range(n_slots)] for i in range(machine.n_locks)]
        self.mask = (1 << n_slots) - 1

    @staticmethod
    def _slot(ctx: Context) -> int:
        """One slot per context that can be waiting at once: its CPU and level."""
        return ctx.cpu * N_LEVELS + int(ctx.level)

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        deadline = ctx.now + budget_ns
        tick = -(-deadline // TICK_NS) * TICK_NS  # when its timer fires: the first tick >= deadline
        word, waiters = self.words[lock], self.waiters[lock]
        me = self._slot(ctx)
        bit = 1 << me
        go = self.go[lock][me]
        while True:
            if await word.cmpxchg(0, 1) == 0:
                return Status.OK
            if ctx.now >= deadline:
                return Status.ETIMEDOUT
            await go.store(0)
            await waiters.fetch_or(bit)  # from here a release may claim us for its wake-up
            if await word.cmpxchg(0, 1) == 0:
                # Got it after all. A wake-up that claimed us meanwhile is ours now: the release
                # we will make wakes the next waiter.
                await waiters.fetch_and(self.mask & ~bit)
                return Status.OK
            await go.wait_until(_is_set, tick)
            if ctx.now >= deadline:  # its timer fired, or a release woke it after its deadline
                if await waiters.fetch_and(self.mask & ~bit) & bit:
                    return Status.ETIMEDOUT  # left before any release claimed us
                # A release claimed us for its wake-up (its go store may still be on its way),
                # and it woke no one else: pass it on.
                await self._timed_out_woken(lock)
                return Status.ETIMEDOUT
            # Woken (a release cleared our bit): try the word again.

    async def _timed_out_woken(self, lock: int) -> None:
        """A waiter woken after its deadline gives up: the wake-up goes on to the next waiter."""
        await self._wake_one(lock)

    async def release(self, ctx: Context, lock: int) -> None:
        await self.words[lock].store(0)
        await self._wake_one(lock)

    async def _wake_one(self, lock: int) -> None:
        """Claim the lowest waiter still registered and set its ``go``."""
        waiters = self.waiters[lock]
        mask = await waiters.load()
        while mask:
            bit = mask & -mask
            old = await waiters.fetch_and(self.mask & ~bit)
            if old & bit:
                await self.go[lock][bit.bit_length() - 1].store(1)
                return
            mask = old & ~bit  # that waiter left meanwhile: the next one

    def check(self) -> list[str]:
        problems = [f"L{i} word is {w.value}, expected 0" for i, w in enumerate(self.words) if w.value]
        problems += [f"L{i} waiters mask is {w.value:#x}, expected 0" for i, w in enumerate(self.waiters) if w.value]
        return problems


class LostWakeupLock(WakeOneLock):
    """Wake-one lock whose waiter, woken after its deadline, leaves without passing the wake-up on."""

    async def _timed_out_woken(self, lock: int) -> None:
        return  # BUG: "my budget is spent, so I am out": the wake-up dies with this waiter


def _is_set(value: int) -> bool:
    return value != 0
