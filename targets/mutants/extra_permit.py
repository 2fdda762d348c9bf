"""A counting semaphore over one cell, and a mutant that hands out one permit too many.

``CountingSemaphore`` (correct) keeps the number of permits taken in one word: an acquisition
loads it and, below ``capacity``, claims a permit with ``cmpxchg(taken -> taken + 1)`` (retrying
when another CPU changed the word in between), else waits until a permit comes back; a release
is ``fetch_add(-1)``. Every acquisition is shared; it promises at most ``capacity`` holders
(``--param capacity=3``; default 2), no order, no timeouts.

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

    capabilities = Capabilities(sharing=Sharing(exclusive=False, capacity=2))

    def __init__(self, machine: Machine, capacity: int = 2) -> None:
        super().__init__(machine)
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise InvalidArgument(f"capacity={capacity!r}: expected an int >= 1 (the number of permits)")
        self.capacity = capacity
        # The promise of this instance, which the engine reads for each run (the class attribute
        # describes the default, 2 permits).
        self.capabilities = Capabilities(sharing=Sharing(exclusive=False, capacity=capacity))  # type: ignore[misc]
        self.taken = [machine.cell(f"L{i}.taken") for i in range(machine.n_locks)]

    def has_permit(self, taken: int) -> bool:
        """Whether a permit is left when ``taken`` are out."""
        return taken < self.capacity

    async def acquire(self, ctx: Context, lock: int, budget_ns: int, shared: bool = False) -> Status:
        word = self.taken[lock]
        taken = await word.load()
        while True:
            if not self.has_permit(taken):
                taken = await word.wait_until(self.has_permit)
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

    def has_permit(self, taken: int) -> bool:
        return taken <= self.capacity  # BUG: off by one: capacity + 1 holders
