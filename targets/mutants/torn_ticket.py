"""Mutant of ``targets/ticket.py``: the ticket is taken with a torn increment.

Broken: instead of one ``fetch_add`` on the ``next`` half, the doorway loads the word and then
stores ``next + 1`` back with a half-word store. Two CPUs that load before either stores draw
the same ticket, and both enter when ``owner`` reaches it. It takes one preemption between a
waiter's load and its store. Caught by: **mutual-exclusion**.
"""

from __future__ import annotations

from lockfuzz.targets.ticket import TicketLock

from lockfuzz import Capabilities, Context, Fairness, Status


class TornTicketLock(TicketLock):
    """Ticket lock whose ``next`` increment is a load and a separate store (not atomic)."""

    # Its doorway is now two steps (load, store): declared as such, so that what breaks is
    # mutual exclusion, not the FIFO promise of a one-step doorway.
    capabilities = Capabilities(fairness=Fairness(overtakes=0, doorway_steps=2))

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        word = self.words[lock]
        old = await word.load()  # BUG: a read-modify-write in two steps
        ticket = old >> 16
        await word.store_field(16, 16, (ticket + 1) & 0xFFFF)
        if old & 0xFFFF != ticket:
            await word.wait_until(lambda v: v & 0xFFFF == ticket)
        return Status.OK
