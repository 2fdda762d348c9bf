"""Mutant of a resilient test-and-set lock with per-call budgets: it sleeps past its deadline.

``BudgetTasLock`` (correct) is ``ResilientTasLock`` with the budget passed to ``acquire`` as its
timeout instead of the fixed second (``Timeouts(per_call=True)``): the deadline is armed at the
first poll, tested at every poll, and a waiter sleeps until the earlier of its next deadlock
check and its deadline. Same table, AA/ABBA checks and EDEADLK promises.

Broken (``BudgetOverrunLock``): the waiter sleeps until its next 1 ms deadlock check only,
forgetting that its deadline may come first, so the timeout is noticed up to a millisecond late:
a waiter with a budget of 1.5 ms behind a holder that keeps the lock for 3 ms returns at about
2 ms. No preemption needed: the holder's critical section does it.
Caught by: **bounded-waiting** (an acquisition overruns its budget plus the declared slack).
"""

from __future__ import annotations

from lockfuzz.targets.resilient_tas import DEADLOCK_CHECK_NS, ResilientTasLock, _Timer

from lockfuzz import Capabilities, Timeouts


class BudgetTasLock(ResilientTasLock):
    """Resilient TAS whose timeout is each acquisition's budget (checked at every poll)."""

    capabilities = Capabilities(
        # slack: the steps before the first poll arms the deadline, the strict `>`, and the steps
        # of the last check and of releasing the entry (as ResilientTasLock's slack).
        timeouts=Timeouts(per_call=True, slack_ns=100_000),
        detection=ResilientTasLock.capabilities.detection,
        exceptions=ResilientTasLock.capabilities.exceptions,
    )

    def _duration(self, budget_ns: int) -> int:
        return budget_ns


class BudgetOverrunLock(BudgetTasLock):
    """Budgeted resilient TAS that sleeps until its next deadlock check, past its deadline."""

    def _next_check(self, timer: _Timer) -> int:
        return timer.cur + DEADLOCK_CHECK_NS + 1  # BUG: the deadline is left out
