"""Search strategies: each finds a simple bug, all are deterministic, and the exhaustive search
goes fewest preemptions first."""

from __future__ import annotations

import pytest

import lockfuzz
from lockfuzz import CpuProgram, Engine, InvalidArgument, Lock, Program, Unlock, Work
from lockfuzz._campaigns._minimise import preemptions
from lockfuzz._search import STRATEGIES, bounded_schedules, derive_seed, get_strategy

CS = (Lock(0), Work(0), Unlock(0))
TWO = Program(cpus=(CpuProgram(task=CS), CpuProgram(task=CS)), n_locks=1)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_finds_a_non_atomic_test_and_set(strategy):
    report = lockfuzz.fuzz("nonatomic_tas", strategy=strategy, runs=3000)
    assert [f.failure.signature for f in report.found] == [("mutual-exclusion", "two-holders")]
    assert report.found[0].failure.minimal  # the minimiser proved it, whatever found it
    again = lockfuzz.fuzz("nonatomic_tas", strategy=strategy, runs=3000)
    assert again.found[0].failure.trace_hash == report.found[0].failure.trace_hash  # deterministic


def test_exhaustive_search_goes_fewest_preemptions_first_and_ends():
    gen = bounded_schedules(2)
    source = next(gen)
    first_seen: dict[tuple[int, ...], int] = {}  # each distinct run, in the order first tried
    try:
        while True:
            result = Engine(lockfuzz.resolve_target("tas"), TWO, source).run()
            first_seen.setdefault(tuple(result.decisions), preemptions(result.decisions))
            source = gen.send(result)
    except StopIteration:
        pass
    # Iterative deepening re-runs shorter prefixes, but every new schedule comes level by level.
    counts = list(first_seen.values())
    assert counts == sorted(counts) and counts[0] == 0 and counts[-1] == 2 and len(counts) > 10


def test_strategy_names_and_seeds():
    with pytest.raises(InvalidArgument, match=r"strategy='dfs': expected one of swarm, random, pct"):
        get_strategy("dfs")
    assert derive_seed("x", 1) == derive_seed("x", 1) != derive_seed("x", 2)
    assert get_strategy("pct").describe() == "pct(depth=3)"


def test_fuzz_inside_trio_says_how_to_call_it_instead():
    import functools

    import trio

    import lockfuzz

    async def main():  # type: ignore[no-untyped-def]
        with pytest.raises(RuntimeError, match=r"runs a trio loop of its own.*worker thread"):
            lockfuzz.fuzz("tas", runs=10)
        # The way the message gives works, and finds nothing in a correct lock.
        return await trio.to_thread.run_sync(functools.partial(lockfuzz.fuzz, "tas", runs=10))

    report = trio.run(main)
    assert report.runs >= 10 and not report.found
