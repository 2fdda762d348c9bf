"""The shared and counted targets of #12, clean over 20,000 runs each: the deep version of
``tests/fast/test_shared_targets.py``'s bounded campaigns.

Slow (about half a minute to three minutes a target here): it runs under the "deep" profile only,
``LOCKFUZZ_PROFILE=deep pytest tests/slow/test_shared_deep.py`` or ``tox -e deep``; CI's profile
skips it. The bundled targets run as ``lockfuzz fuzz NAME --runs 20000`` does; the ones built with
a capacity get programs drawn for the instance their parameters build (campaigns draw from the
class, whose default is capacity 1).
"""

from __future__ import annotations

import os

import pytest

import lockfuzz
from lockfuzz import Machine

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
    from lockfuzz.strategies import programs_for

    programs = programs_for(lockfuzz.resolve_target(name)(Machine(n_cpus=1, n_locks=1), **params)) if params else None
    report = lockfuzz.fuzz(name, params=params, programs=programs, runs=RUNS, seed=0, max_failures=3)
    assert report.ok, [f.failure.violation for f in report.found]
    assert report.runs == RUNS
