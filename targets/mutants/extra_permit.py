"""A counting semaphore over one cell, and a mutant that hands out one permit too many.

``CountingSemaphore`` (correct) keeps the number of permits taken in one word: an acquisition
loads it and, below ``capacity``, claims a permit with ``cmpxchg(taken -> taken + 1)`` (retrying
when another CPU changed the word in between), else waits until a permit comes back; a release
is ``fetch_add(-1)``. Every acquisition is shared; each lock promises at most its capacity of
holders, no order, no timeouts. The capacity is the program's for each lock (``capacities L0 3,
L1 1``, drawn from 1 to 4; 2 for a lock the program gives none), or ``--param capacity=3`` for
every lock.

Broken (``ExtraPermitSemaphore``): the test before the claim is ``taken <= capacity``, an
off-by-one (the count of permits *taken* compared as if it were the index of the last one), so
with every permit out one more acquisition still succeeds: ``capacity + 1`` holders. It takes
``capacity + 1`` contexts holding at once and no preemption. Caught by: **mutual-exclusion**
(more holders than the declared capacity).
"""

from __future__ import annotations

from lockfuzz import Capabilities, Context, InvalidArgument, Machine, Sharing, Status, Target

__all__ = ["CountingSemaphore", "ExtraPermitSemaphore"]


class CountingSemaphore(Target):
    """Correct: a semaphore of ``capacity`` permits over one cell (see the module doc)."""

    #: A lock the program gives no capacity has this many permits.
    default_capacity = 2
    capabilities = Capabilities(sharing=Sharing(exclusive=False, capacity=default_capacity, capacity_range=(1, 4)))

    def __init__(self, machine: Machine, capacity: int | None = None) -> None:
        super().__init__(machine)
        if capacity is not None and (not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1):
            raise InvalidArgument(
                f"capacity={capacity!r}: expected an int >= 1 (the permits of every lock), or none given "
                "(each lock's from the program)"
            )
        if capacity is not None:
            # The promise of this instance, which the engine reads for each run (the class
            # attribute describes the default: a capacity per lock).
            self.capabilities = Capabilities(sharing=Sharing(exclusive=False, capacity=capacity))  # type: ignore[misc] # an instance's own promise
        self.capacity = [
            machine.capacity(i, self.default_capacity) if capacity is None else capacity for i in range(machine.n_locks)
        ]
        self.taken = [machine.cell(f"L{i}.taken") for i in range(machine.n_locks)]

    def has_permit(self, lock: int, taken: int) -> bool:
        """Whether a permit of ``lock`` is left when ``taken`` are out."""
        return taken < self.capacity[lock]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int, shared: bool = False) -> Status:
        word = self.taken[lock]
        taken = await word.load()
        while True:
            if not self.has_permit(lock, taken):
                taken = await word.wait_until(lambda t: self.has_permit(lock, t))
                continue
            seen = await word.cmpxchg(taken, taken + 1)
            if seen == taken:
                return Status.OK
            taken = seen  # another CPU took or gave back a permit meanwhile: look again

    async def release(self, ctx: Context, lock: int, shared: bool = False) -> None:
        await self.taken[lock].fetch_add(-1)

    def check(self) -> list[str]:
        return [f"{w.name} is {w.value}, expected 0 permits taken" for w in self.taken if w.value]


class ExtraPermitSemaphore(CountingSemaphore):
    """``CountingSemaphore`` that hands out one permit too many (see the module doc)."""

    def has_permit(self, lock: int, taken: int) -> bool:
        return taken <= self.capacity[lock]  # BUG: off by one: capacity + 1 holders
