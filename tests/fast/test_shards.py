"""Sharded campaigns (issue 13): a shard is a pure function of (seed, shard); a merged report is
the union of its shards' findings, the smallest case of each signature kept, and the same
whichever shard finished first. Everything here runs in this process; ``test_scale_cli.py``
runs the command line, the process pool and Dask."""

from __future__ import annotations

import copy
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

import lockfuzz
from lockfuzz._model._errors import InvalidArgument
from lockfuzz._campaigns._shards import (
    Merger, ShardResult, ShardSpec, _merge_coverage, load_summaries, merge, plan, run_shard, settle, write_summary,
)  # fmt: skip

MUTANT = "lockfuzz.targets.mutants.nonatomic_tas:NonatomicTasLock"


def canon(report: Any) -> Any:
    """What a report says, without its times."""
    return (
        report.target, report.strategy, report.runs, report.examples, report.rejected,
        [(f.failure.signature, f.failure.trace_hash, f.failure.schedule, f.failure.program.to_json(),
          f.failure.found_by, f.runs_to_find, f.raw_schedule) for f in report.found],
        None if report.coverage is None else (report.coverage.lines(), report.coverage.features),
    )


def shard_canon(result: ShardResult) -> Any:
    data = result.to_json()
    for key in ("seconds", "engine_seconds"):
        data.pop(key)
    for f in data["found"]:
        f.pop("seconds_to_find")
    return data


@pytest.fixture(scope="module")
def raw_shards() -> list[ShardResult]:
    """Four shards of a mutant, cases not minimised: each shard finds its own case of the same
    signature."""
    return [run_shard(spec) for spec in plan(4, target=MUTANT, seed=3, runs=240, minimise=False)]


def test_shards_share_out_the_runs_and_have_their_own_seeds() -> None:
    specs = plan(3, target=MUTANT, seed=7, runs=10)
    assert [s.shard_runs for s in specs] == [4, 3, 3]
    assert len({s.shard_seed for s in specs}) == 3 and 7 not in {s.shard_seed for s in specs}
    assert [s.label for s in specs] == ["1/3", "2/3", "3/3"]
    assert plan(1, target=MUTANT, seed=7, runs=10)[0].shard_seed == 7  # one shard is the campaign itself
    with pytest.raises(InvalidArgument, match="3/2"):
        ShardSpec(target=MUTANT, seed=0, index=2, count=2, runs=10)
    with pytest.raises(InvalidArgument, match="at most one shard per run"):
        plan(11, target=MUTANT, seed=0, runs=10)


def test_a_shard_is_a_pure_function_of_its_spec(raw_shards: list[ShardResult]) -> None:
    spec = plan(4, target=MUTANT, seed=3, runs=240, minimise=False)[2]
    assert shard_canon(run_shard(spec)) == shard_canon(raw_shards[2])
    # ... and the shards differ from each other: their seeds are their own.
    assert len({f["failure"]["trace"]["hash"] for r in raw_shards for f in r.found}) > 1


def test_one_shard_is_the_plain_campaign() -> None:
    (spec,) = plan(1, target=MUTANT, seed=5, runs=200)
    plain = lockfuzz.fuzz(MUTANT, runs=200, seed=5)
    assert canon(merge([run_shard(spec)])) == canon(plain)


def test_merged_report_is_the_union_of_its_shards_smallest_kept(raw_shards: list[ShardResult]) -> None:
    merged = merge(raw_shards)
    assert merged.runs == sum(r.runs for r in raw_shards)
    assert merged.examples == sum(r.examples for r in raw_shards)
    assert {f.failure.signature for f in merged.found} == {s for r in raw_shards for s in r.signatures()}
    (kept,) = merged.found
    cases = [f["failure"] for r in raw_shards for f in r.found]
    smallest = min(cases, key=lambda c: (sum(1 for d in c["schedule"] if d), len(c["schedule"]),
                                         len(str(c["program"])), c["trace"]["hash"]))
    assert kept.failure.trace_hash == smallest["trace"]["hash"]
    # Whatever order the shards come in, the same report.
    for order in itertools.permutations(raw_shards):
        assert canon(merge(list(order))) == canon(merged)


def _relabelled(raw_shards: list[ShardResult]) -> list[ShardResult]:
    """The four shards, with shards 2 and 3 finding other signatures than 1 and 4."""
    out = copy.deepcopy(raw_shards)
    for r, oracle in ((out[1], "oracle-b"), (out[2], "oracle-c")):
        for f in r.found:
            f["failure"]["signature"] = {"oracle": oracle, "kind": "k"}
    return out


@pytest.mark.parametrize(("max_failures", "counted", "signatures"), [
    (1, 1, ["mutual-exclusion/two-holders"]),
    (2, 2, ["mutual-exclusion/two-holders", "oracle-b/k"]),
    (5, 4, ["mutual-exclusion/two-holders", "oracle-b/k", "oracle-c/k"]),
])
def test_max_failures_stop_is_the_same_whichever_shard_finishes_first(
    raw_shards: list[ShardResult], max_failures: int, counted: int, signatures: list[str]
) -> None:
    shards = _relabelled(raw_shards)
    expected = merge(shards[:counted], max_failures=max_failures)
    assert ["/".join(f.failure.signature) for f in expected.found] == signatures
    for order in itertools.permutations(shards):
        merger = Merger(len(shards), max_failures)
        arrived: set[int] = set()
        for r in order:
            merger.add(r)
            arrived.add(r.index)
            if merger.stop:
                break
        # It stops only once shards 1..counted have all finished, and reports exactly them.
        assert arrived >= set(range(counted))
        assert [r.index for r in merger.counted()] == list(range(counted))
        assert canon(merger.report()) == canon(expected)


def test_merge_refuses_shards_of_another_campaign(raw_shards: list[ShardResult]) -> None:
    other = copy.deepcopy(raw_shards[1])
    other.seed = 4
    with pytest.raises(InvalidArgument, match="another campaign"):
        merge([raw_shards[0], other])
    with pytest.raises(InvalidArgument, match="shard 1/4 given more than once"):
        merge([raw_shards[0], raw_shards[0]])
    with pytest.raises(InvalidArgument, match="no shard results"):
        merge([])


def test_the_failure_folder_keeps_one_file_per_signature(tmp_path: Path) -> None:
    specs = plan(3, target=MUTANT, seed=3, runs=180, minimise=False, failure_dir=str(tmp_path))
    results = [run_shard(s) for s in specs]
    assert len(list(tmp_path.glob("*.json"))) == 3  # each shard wrote its own case as it found it
    report = merge(results)
    settle(report, results, tmp_path)
    settle(report, results, None)  # no folder: nothing to do
    (only,) = tmp_path.glob("*.json")
    assert only == report.found[0].path
    kept = lockfuzz.load_failure(only)
    assert kept.trace_hash == report.found[0].failure.trace_hash
    assert kept.found_by["shard"] in ("1/3", "2/3", "3/3")
    assert lockfuzz.replay(only).reproduced


def test_summary_round_trip(raw_shards: list[ShardResult], tmp_path: Path) -> None:
    for r in raw_shards:
        d = tmp_path / f"s{r.index}"
        with_files = copy.deepcopy(r)
        for f in with_files.found:  # the files a --shard job writes beside its summary
            f["path"] = str(lockfuzz.write_failure(lockfuzz.Failure.from_json(f["failure"]), d))
        write_summary(with_files, d)
    loaded = [r for i in range(4) for r in load_summaries(tmp_path / f"s{i}")]
    assert canon(merge(loaded)) == canon(merge(raw_shards))
    assert not list((tmp_path / "s0").glob("*.json.tmp"))
    with pytest.raises(InvalidArgument, match="no shard summary"):
        load_summaries(tmp_path)
    with pytest.raises(InvalidArgument, match="not a folder"):
        load_summaries(tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "shard-1-of-2.lockfuzz-shard").write_text("{\"format\": \"other\"}")
    with pytest.raises(InvalidArgument, match="not a lockfuzz shard summary"):
        load_summaries(tmp_path / "bad")
    (tmp_path / "bad" / "shard-1-of-2.lockfuzz-shard").write_text("{")
    with pytest.raises(InvalidArgument, match="unreadable shard summary"):
        load_summaries(tmp_path / "bad")
    (tmp_path / "bad" / "shard-1-of-2.lockfuzz-shard").write_text('{"format": "lockfuzz-shard", "schema": 1}')
    with pytest.raises(InvalidArgument, match="broken shard summary"):
        load_summaries(tmp_path / "bad")


def test_a_shard_that_starts_after_the_time_limit_runs_nothing() -> None:
    (spec,) = plan(1, target=MUTANT, seed=0, runs=100, deadline=time.time() - 1)
    result = run_shard(spec)
    assert (result.runs, result.found) == (0, [])


def test_the_shared_driver_writes_remote_findings_and_shows_one_progress_line(
    raw_shards: list[ShardResult], tmp_path: Path
) -> None:
    from lockfuzz._campaigns._workers import ShardCampaign, Snapshot

    seen: list[Snapshot] = []
    specs = plan(4, target=MUTANT, seed=3, runs=240, minimise=False)
    campaign = ShardCampaign(specs, max_failures=5, failure_dir=tmp_path, progress=seen.append)
    campaign.on_progress(1, 7, [["mutual-exclusion", "two-holders"]])
    campaign.on_progress(2, 5, [])
    campaign.tick()
    assert (seen[-1].runs, seen[-1].found) == (12, [("mutual-exclusion", "two-holders")])
    assert seen[-1].runs_per_second > 0
    assert Snapshot(0, 0.0).runs_per_second == 0.0
    results = copy.deepcopy(raw_shards)  # as a remote worker returns them: no file written
    for r in results:
        for f in r.found:
            f["path"] = None
    for r in reversed(results):
        campaign.on_result(r)
        assert r.found[0]["path"] is not None and Path(r.found[0]["path"]).exists()  # written as it arrived
    report = campaign.report()
    assert seen[-1].runs == report.runs == sum(r.runs for r in raw_shards)
    assert [p.name for p in tmp_path.glob("*.json")] == [report.found[0].path.name]
    assert canon(report) == canon(merge(raw_shards))


# -- coverage ---------------------------------------------------------------------------------------
def _file(missing: list[int], missing_branches: list[list[int]], missed: dict[str, Any]) -> dict[str, Any]:
    return {"path": "/x/lock.py", "module": "lock", "statements": [1, 2, 3, 4, 5, 6, 7], "missing": missing,
            "branches": 4, "missing_branches": missing_branches, "missed": missed}


def test_merged_coverage_is_what_any_shard_reached() -> None:
    # Functions f (lines 1-3), g (4-5) and h (6-7).
    a = {"runs": 3, "core": "CTracer", "files": [_file(
        [2, 3, 5, 6], [[1, 2], [4, -1]],
        {"f": {"statements": [1, 2, 3], "lines": [2, 3], "branches": [[1, 2]]},
         "g": {"statements": [4, 5], "lines": [5], "branches": [[4, -1]]},
         "h": {"statements": [6, 7], "lines": [6], "branches": []}})]}
    b = {"runs": 4, "core": "CTracer", "files": [_file(
        [3, 7], [[1, 2]],
        {"f": {"statements": [1, 2, 3], "lines": [3], "branches": [[1, 2]]},
         "h": {"statements": [6, 7], "lines": [7], "branches": []}})]}
    merged = _merge_coverage([a, b])
    (f,) = merged.files
    assert merged.runs == 7
    assert f.missing == {3}  # line 2 reached by b, 5 and 6 by b, 7 by a
    assert f.missing_branches == ((1, 2),)
    assert set(f.missed) == {"f"}  # g and h: every line and branch reached by one shard or the other
    assert f.missed["f"].lines == (3,) and f.missed["f"].branches == ((1, 2),)


@pytest.mark.serial
def test_coverage_and_lock_states_of_real_shards_add_up() -> None:
    specs = plan(2, target="lockfuzz.targets.qspinlock:QSpinlock", seed=0, runs=120, coverage=True,
                 runs_per_program=4)
    results = [run_shard(s) for s in specs]
    merged = merge(results)
    assert merged.coverage is not None and merged.coverage.target is not None
    assert merged.coverage.runs == sum(r.coverage_runs for r in results) == 120
    for feature, runs in merged.coverage.features.items():
        assert runs == sum(n for r in results for f, n in r.features or () if tuple(f) == feature)
    (f,) = merged.coverage.target.files
    assert f.missing == set.intersection(*(set(r.coverage["files"][0]["missing"]) for r in results))  # type: ignore[index]
    assert merged.features["distinct"] == len(merged.coverage.features)
