"""The command line's sharded campaigns: ``lockfuzz fuzz --workers/--shards/--dask/--shard`` and
``lockfuzz merge`` (kept apart from ``_cli`` so that the command line itself only dispatches).

Bad combinations are usage errors (one line, exit 2), raised as ``UsageError``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ._cli import UsageError, _count, _display_path
from .._campaigns._shards import Merger, ShardSpec, load_summaries, merge, run_shard, settle, write_summary
from .._model._target import resolve_target, target_path
from .._campaigns._workers import Snapshot, available_cores, fuzz_sharded

__all__ = ["fuzz_shards", "merge_dirs"]


def _importable(target_cls: type) -> str:
    """The path by which another process imports the target (it must import the same class)."""
    path = target_path(target_cls)
    try:
        same = resolve_target(path) is target_cls
    except Exception:  # noqa: BLE001 - whatever importing it raises, it cannot be imported by path
        same = False
    if not same:
        raise UsageError(f"{path}: shards import the target by path, and this path does not import it")
    return path


def fuzz_shards(args: argparse.Namespace, target_cls: type, params: dict[str, Any], programs: dict[str, Any],
                failure_dir: Path, progress: Any) -> tuple[Any, str]:
    """A sharded ``lockfuzz fuzz``: the merged report, and what to add to its summary line."""
    if args.program is not None or args.properties:
        raise UsageError("--program and --property run in one process: not with --workers, --shards, --dask "
                         "or --shard (shards draw their programs, and check the built-in oracles)")
    if args.shard is not None and ((args.workers or 1) > 1 or args.dask or args.shards):
        raise UsageError("--shard K/M runs one shard alone: it takes no --workers, --shards or --dask")
    if args.dask not in (None, "local") and args.workers is not None:
        raise UsageError(f"--workers {args.workers}: a remote Dask cluster has its own workers "
                         "(--workers sets the processes of --dask local)")
    workers = args.workers or (available_cores() if args.dask == "local" else 1)
    count = args.shard[1] if args.shard is not None else args.shards
    if count is not None and count > args.runs:
        raise UsageError(f"{'--shard' if args.shard else '--shards'} {count} shards: more than --runs {args.runs} "
                         "(expected at most one shard per run)")
    spec: dict[str, Any] = {
        "target": _importable(target_cls), "seed": args.seed, "runs": args.runs, "params": params,
        "programs": programs, "strategy": args.strategy, "runs_per_program": args.runs_per_program,
        "coverage": args.coverage, "guided": args.guided,
        "deadline": None if args.time_limit is None else time.time() + args.time_limit,
        # What the one-process campaign would run with (cancellation decisions on or off).
        "settings": args.settings_in_force.to_json() if hasattr(args, "settings_in_force") else None,
    }
    if args.shard is not None:
        k, m = args.shard
        shard = ShardSpec(index=k - 1, count=m, failure_dir=str(failure_dir), max_failures=args.max_failures, **spec)
        started = time.perf_counter()

        def shard_progress(runs: int, signatures: list[tuple[str, str]]) -> None:
            progress(Snapshot(runs, time.perf_counter() - started, signatures))

        result = run_shard(shard, shard_progress)
        write_summary(result, failure_dir)
        return merge([result], max_failures=args.max_failures), f", shard {k}/{m}"
    report, count = fuzz_sharded(shards=args.shards, workers=workers, dask=args.dask, failure_dir=failure_dir,
                                 max_failures=args.max_failures, progress=progress, **spec)
    return report, f", {_count(count, 'shard')}"


def merge_dirs(args: argparse.Namespace) -> int:
    """``lockfuzz merge DIR...``: the report of every shard the folders hold."""
    results = [r for d in args.dirs for r in load_summaries(d)]
    first = results[0]
    merge(results)  # one campaign, each shard once (else InvalidArgument: exit 2)
    max_failures = args.max_failures or max(r.max_failures for r in results)
    merger = Merger(first.count, max_failures)
    for r in results:
        merger.add(r)
    missing = sorted(set(range(first.count)) - set(merger.results))
    if missing:
        print(f"lockfuzz: merge: {_count(len(missing), 'shard')} of {first.count} missing "
              f"({', '.join(f'{i + 1}/{first.count}' for i in missing)}): the report is of the others",
              file=sys.stderr)
    report = merger.report()
    failure_dir = args.failure_dir if args.failure_dir is not None else Path.cwd() / ".lockfuzz" / "failures"
    try:
        settle(report, merger.counted(), failure_dir)
    except OSError as exc:
        raise UsageError(f"cannot save failure files in {failure_dir}: {exc.strerror or exc}") from None
    out = sys.stdout
    for n, found in enumerate(report.found, 1):
        oracle, kind = found.failure.signature
        shard = found.failure.found_by.get("shard", f"1/{first.count}")
        print(f"FAILURE {n}: {oracle}/{kind} in {first.target}, found by shard {shard} after "
              f"{_count(found.runs_to_find, 'run')} ({found.seconds_to_find:.2f} s): {_display_path(found.path)}",
              file=out)
    if report.coverage is not None:
        print(report.coverage.text(), file=out)
    counted = len(merger.counted())
    print(f"lockfuzz: merged {counted} of {_count(first.count, 'shard')} of {first.target} ({first.strategy}, "
          f"seed {first.seed}): {_count(report.runs, 'run')}, the longest shard {report.seconds:.2f} s, "
          f"{_count(len(report.found), 'failure')}", file=out)
    return 1 if report.found else 0
