"""Mutant of ``targets/resilient_tas.py``: it times out too early.

Broken: the test-and-set fallback's timeout is written with the wrong unit, ``NSEC_PER_MSEC``
instead of ``NSEC_PER_SEC``: it gives up after 1 ms while it still declares a fixed 1 s timeout.
A waiter behind a holder that keeps the lock for more than a millisecond gets ETIMEDOUT long
before it has waited the declared second. No preemption needed: the holder's critical section
does it. Caught by: **etimedout**.
"""

from __future__ import annotations

from lockfuzz.targets.resilient_tas import ResilientTasLock


class EarlyTimeoutLock(ResilientTasLock):
    """Resilient TAS giving up after 1 ms while declaring 1 s."""

    timeout_ns = 1_000_000  # BUG: NSEC_PER_MSEC, not NSEC_PER_SEC
