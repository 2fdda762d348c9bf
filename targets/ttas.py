"""Test-and-test-and-set spinlock.

Sources: L. Rudolph and Z. Segall, "Dynamic decentralized cache schemes for MIMD parallel
processors", ISCA 1984 (the "test" loop that spins in the cache before the atomic); T. E.
Anderson, "The performance of spin lock alternatives for shared-memory multiprocessors", IEEE
TPDS 1(1), 1990, section 3; M. Herlihy and N. Shavit, "The Art of Multiprocessor Programming",
section 7.3.

One word per lock. Acquire reads the word until it is 0 (plain loads, the "test"), then tries
``xchg(1)`` (the "test-and-set"); if another CPU got there first it goes back to reading.
Release stores 0 (as the test-and-set lock it extends). Every load and the xchg are one step each; the read loop is a
``wait_until`` so a long spin costs a few steps.
"""

from __future__ import annotations

from lockfuzz import Capabilities, Context, Status
from lockfuzz.targets.tas import TasLock, _is_zero


class TtasLock(TasLock):
    """Test-and-test-and-set: spin reading the word until it is free, then ``xchg(1)``; a lost
    race sends the waiter back to reading. Promises mutual exclusion only: no timeouts (budgets
    are ignored), no deadlock detection, and no fairness (whoever's xchg lands first after a
    release wins, so a waiter can be overtaken any number of times)."""

    capabilities = Capabilities()

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        word = self.words[lock]
        while True:
            await word.wait_until(_is_zero)  # test: while (READ_ONCE(*word)) cpu_relax();
            if await word.xchg(1) == 0:  # test-and-set
                return Status.OK
