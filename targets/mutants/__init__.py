"""Known-broken locks: each a small change to a correct target, each caught by an oracle.

``MUTANTS`` maps a name (as ``lockfuzz fuzz NAME`` takes it) to an import path; ``EXPECTED``
maps the same name to the oracle that must catch it. Each module's docstring says what is broken
and why that oracle sees it; ``scenarios.SCENARIOS`` has a small program that shows each one.
"""

_P = "lockfuzz.targets.mutants"

MUTANTS: dict[str, str] = {
    "nonatomic_tas": f"{_P}.nonatomic_tas:NonatomicTasLock",
    "torn_ticket": f"{_P}.torn_ticket:TornTicketLock",
    "unfair_ticket": f"{_P}.unfair_ticket:UnfairTicketLock",
    "lost_handoff": f"{_P}.lost_handoff:LostHandoffLock",
    "timeout_as_deadlock": f"{_P}.timeout_as_deadlock:TimeoutAsDeadlockLock",
    "blind_aa": f"{_P}.blind_aa:BlindAaLock",
    "budget_overrun": f"{_P}.budget_overrun:BudgetOverrunLock",
    "bystander_edeadlk": f"{_P}.bystander_edeadlk:BystanderEdeadlkLock",
    "dirty_after_timeout": f"{_P}.dirty_after_timeout:DirtyAfterTimeoutLock",
    "early_timeout": f"{_P}.early_timeout:EarlyTimeoutLock",
    "lost_wakeup": f"{_P}.lost_wakeup:LostWakeupLock",
    # Shared and counted locks (#12).
    "semaphore_extra_permit": f"{_P}.extra_permit:ExtraPermitSemaphore",
    "qrwlock_barging_reader": f"{_P}.barging_reader:BargingReaderQRWLock",
}

EXPECTED: dict[str, str] = {
    "nonatomic_tas": "mutual-exclusion",
    "torn_ticket": "mutual-exclusion",
    "unfair_ticket": "fairness",
    "lost_handoff": "hang",
    "timeout_as_deadlock": "edeadlk-sound",
    "blind_aa": "edeadlk-complete",
    "budget_overrun": "bounded-waiting",
    "bystander_edeadlk": "innocent-bystander",
    "dirty_after_timeout": "final-state",
    "early_timeout": "etimedout",
    "lost_wakeup": "etimedout",
    "semaphore_extra_permit": "mutual-exclusion",
    "qrwlock_barging_reader": "fairness",
}

# Known-broken locks over real trio primitives, run on the trio driver.
from lockfuzz.targets.mutants import trio_mutants as _trio  # noqa: E402 - after the dicts it extends

MUTANTS.update(_trio.MUTANTS)
EXPECTED.update(_trio.EXPECTED)

# Reader-writer locks on trio.Condition (#12).
from lockfuzz.targets.mutants import trio_rwlocks as _rw  # noqa: E402 - after the dicts it extends

MUTANTS.update(_rw.MUTANTS)
EXPECTED.update(_rw.EXPECTED)
