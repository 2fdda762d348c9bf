"""Ticket spinlock (include/asm-generic/ticket_spinlock.h): strictly FIFO.

Each lock is two 16-bit halves of one word, as in the kernel: ``next`` (high half) and ``owner``
(low half). Acquire takes a ticket with one ``fetch_add`` of ``1 << 16`` (the doorway) and waits
until ``owner`` equals it; release increments ``owner``. Promises mutual exclusion and FIFO order
after the one-step doorway; no timeouts, no deadlock detection.
"""

from __future__ import annotations

from lockfuzz import Capabilities, Context, Fairness, Machine, Status, Target


class TicketLock(Target):
    """Ticket lock: fetch_add a ticket, wait for the owner field to reach it; FIFO after one step."""

    capabilities = Capabilities(fairness=Fairness(overtakes=0, doorway_steps=1))

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        word = self.words[lock]
        old = await word.fetch_add(1 << 16)
        ticket = old >> 16
        if old & 0xFFFF != ticket:
            await word.wait_until(lambda v: v & 0xFFFF == ticket)
        return Status.OK

    async def release(self, ctx: Context, lock: int) -> None:
        word = self.words[lock]
        # The owner half is only written by the holder: a half-word store, as the kernel does.
        owner = (await word.load()) & 0xFFFF
        await word.store_field(0, 16, (owner + 1) & 0xFFFF)

    def check(self) -> list[str]:
        return [
            f"L{i}: next ticket {w.value >> 16} != owner {w.value & 0xFFFF}"
            for i, w in enumerate(self.words)
            if w.value >> 16 != w.value & 0xFFFF
        ]
