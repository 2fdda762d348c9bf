"""The shared and counted targets of #12, clean over 20,000 runs each: the deep version of
``tests/fast/test_shared_targets.py``'s bounded campaigns.

Slow (about half a minute to three minutes a target here): it runs under the "deep" profile only,
``LOCKFUZZ_PROFILE=deep pytest tests/slow/test_shared_deep.py`` or ``tox -e deep``; CI runs its
bounded form, the same campaigns at 200 runs (``test_correct_shared_targets_run_clean``). Each
runs as ``lockfuzz fuzz NAME --runs 20000 [--param capacity=3]`` does.
"""

from __future__ import annotations

import os

import pytest

import lockfuzz

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("LOCKFUZZ_PROFILE") != "deep", reason="20,000 runs a target: the deep profile"),
]

RUNS = 20_000
DEEP = [
    ("qrwlock", {}),
    ("trio_rwlock", {}),
    ("trio_semaphore", {"capacity": 3}),
    ("trio_capacity_limiter", {"capacity": 3}),
    ("lockfuzz.targets.mutants.extra_permit:CountingSemaphore", {}),
    ("lockfuzz.targets.mutants.trio_rwlocks:TrioBoundedReaderRWLock", {}),
]


@pytest.mark.parametrize("name, params", DEEP, ids=[n.rpartition(":")[2] + str(p or "") for n, p in DEEP])
def test_shared_targets_clean_over_20000_runs(name, params):  # type: ignore[no-untyped-def]
    report = lockfuzz.fuzz(name, params=params, runs=RUNS, seed=0, max_failures=3)
    assert report.ok, [f.failure.violation for f in report.found]
    assert report.runs == RUNS
