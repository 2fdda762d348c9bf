"""Shared locks nobody here wrote for lockfuzz (``tests/natural_shared_locks.py``): the correct
ones clean under every strategy, the broken ones found by a default campaign, with the bug their
authors would not see. The deep version: ``lockfuzz fuzz natural_shared_locks:SpinRW --runs
20000`` from ``tests/`` (and the same for ``CancelSafe``), clean."""

from __future__ import annotations

from typing import Any

import pytest
from natural_shared_locks import BROKEN, CORRECT, ConditionFifoRW, WritersFirstSpinRW

import lockfuzz
from lockfuzz._engine._events import ACQUIRED
from lockfuzz.strategies import programs_for

RUNS = 300


@pytest.mark.parametrize("strategy", ["swarm", "random", "pct"])
@pytest.mark.parametrize("name", sorted(CORRECT))
def test_a_correct_shared_lock_written_naturally_is_clean(name: str, strategy: str) -> None:
    programs = programs_for(CORRECT[name], max_cpus=3)
    report = lockfuzz.fuzz(CORRECT[name], programs=programs, runs=RUNS, strategy=strategy, seed=1, max_failures=3)
    assert report.ok, [f.failure.violation for f in report.found]
    assert report.runs == RUNS


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_shared_lock_written_naturally_is_caught(name: str) -> None:
    cls: Any
    cls, expected = BROKEN[name]
    report = lockfuzz.fuzz(cls, runs=2000)
    assert [f.failure.signature for f in report.found][:1] == [expected], [f.failure.violation for f in report.found]


#: A task takes L0 shared and releases it; a softirq on its CPU lands in the release (which holds
#: the condition's lock) and asks for L0 shared, with 900 us to wait.
HANDLER_IN_RELEASE = lockfuzz.Program.from_json({
    "cpus": [{
        "handlers": [{"level": "softirq", "ops": [["lock", 0, 900_000, "shared"], ["unlock", 0]]}],
        "task": [["lock", 0, 1, "shared"], ["unlock", 0]],
    }],
    "n_locks": 1,
})  # fmt: skip


def test_a_handler_waits_for_a_shared_release_it_interrupted() -> None:
    # The release cannot finish until the handler returns, and holds the lock's guard: the
    # handler's ETIMEDOUT is deserved (it waited on a cycle through its own CPU), not a lost
    # wake-up on a free lock.
    result = lockfuzz.run(ConditionFifoRW, HANDLER_IN_RELEASE, [0, 0, 0, 1])
    assert result.violation is None, str(result.violation)
    assert int(lockfuzz.Status.ETIMEDOUT) in {e[4] for e in result.trace.events if e[2] == ACQUIRED}


#: cpu1's task holds L0 shared; its softirq, a writer, waits for it (forever: a cycle through the
#: CPU) and announces itself; cpu0's reader then waits behind the waiting writer until its budget.
READER_BEHIND_A_WAITING_WRITER = lockfuzz.Program.from_json({
    "cpus": [
        {"handlers": [], "task": [["lock", 0, 900_000, "shared"], ["unlock", 0]]},
        {"handlers": [{"level": "softirq", "ops": [["lock", 0, 900_000], ["unlock", 0]]}],
         "task": [["lock", 0, 0, "shared"], ["unlock", 0]]},
    ],
    "n_locks": 1,
})  # fmt: skip


def test_a_reader_may_wait_behind_a_writer_where_no_order_is_declared() -> None:
    assert WritersFirstSpinRW.capabilities.sharing.preference is None
    result = lockfuzz.run(WritersFirstSpinRW, READER_BEHIND_A_WAITING_WRITER, [0, 1, 0, 0, 2])
    assert result.violation is None, str(result.violation)
    statuses = [(result.trace.contexts[e[1]], e[4]) for e in result.trace.events if e[2] == ACQUIRED]
    assert ("cpu0.task", int(lockfuzz.Status.ETIMEDOUT)) in statuses, statuses
