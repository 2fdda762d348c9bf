"""Mutant of ``targets/ticket.py``: FIFO is declared but later arrivals can overtake.

Broken: the ticket is drawn with a compare-and-swap loop (load the word, ``cmpxchg`` it to
``next + 1``, retry on failure), as a port to a machine without ``fetch_add`` might do, while
the lock still declares FIFO after a one-step doorway. A waiter whose load has been done (it
has arrived) but whose ``cmpxchg`` fails because a later arrival's succeeded first gets the later
ticket: the later arrival overtakes it. Mutual exclusion still holds. It takes one preemption
between the first waiter's load and its ``cmpxchg``. Caught by: **fairness**.
"""

from __future__ import annotations

from lockfuzz.targets.ticket import TicketLock

from lockfuzz import Context, Status


class UnfairTicketLock(TicketLock):
    """Ticket lock drawing tickets with a load + cmpxchg loop; still declares FIFO after 1 step."""

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        word = self.words[lock]
        while True:  # BUG: the doorway is no longer one step
            old = await word.load()
            if await word.cmpxchg(old, old + (1 << 16)) == old:
                break
        ticket = old >> 16
        if old & 0xFFFF != ticket:
            await word.wait_until(lambda v: v & 0xFFFF == ticket)
        return Status.OK
