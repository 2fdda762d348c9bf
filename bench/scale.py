"""Runs per second of one campaign on 1 worker, 2 workers and a local Dask cluster of 2 workers.

The same campaign each time: a correct target (nothing found, so every run is made), the same
seed and the same shards (``--shards``, default 4), so the three do exactly the same runs and
differ only in where they run: one after another in this process (``--workers 1``), on a spawn
process pool of 2 (``--workers 2``), on a ``LocalCluster`` of 2 worker processes of one thread
(``--dask local --workers 2``). Times are wall-clock from the call to the merged report, starting
the pool or the cluster included (that is what a user waits for). Prints each figure, the ratios
to one worker and the machine's core count; the last line is a JSON object
``{"workers_1": ..., "workers_2": ..., "dask_2": ..., "cores": ...}`` (runs per second).

    python bench/scale.py [--target ticket] [--runs 8000] [--shards 4]

Needs the dask extra for the Dask figure (``pip install 'lockfuzz[dask]'``); without it,
``dask_2`` is null.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from lockfuzz._model._target import resolve_target, target_path
from lockfuzz._campaigns._workers import available_cores, fuzz_sharded


def campaign(target: str, runs: int, shards: int, workers: int, dask: str | None) -> tuple[float, Any]:
    t0 = time.perf_counter()
    report, _ = fuzz_sharded(shards=shards, workers=workers, dask=dask, failure_dir=None, max_failures=1,
                             target=target, seed=1, runs=runs)
    return time.perf_counter() - t0, report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="ticket", help="a correct bundled target (default ticket)")
    ap.add_argument("--runs", type=int, default=8000, help="runs of the campaign (default 8000)")
    ap.add_argument("--shards", type=int, default=4, help="shards of the campaign (default 4)")
    args = ap.parse_args(argv)
    if args.runs < args.shards or args.shards < 1:
        ap.error(f"--runs {args.runs} --shards {args.shards}: expected 1 <= shards <= runs")
    target = target_path(resolve_target(args.target))
    cores = available_cores()
    print(f"{args.target}: {args.runs:,} runs in {args.shards} shards, seed 1; this machine: {cores} cores")
    out: dict[str, Any] = {}
    modes = [("workers_1", 1, None), ("workers_2", 2, None), ("dask_2", 2, "local")]
    for name, workers, dask in modes:
        if dask is not None:
            try:
                import distributed  # noqa: F401
            except ImportError:
                print(f"{name:10} skipped: dask is not installed (pip install 'lockfuzz[dask]')")
                out[name] = None
                continue
        seconds, report = campaign(target, args.runs, args.shards, workers, dask)
        assert report.runs == args.runs and report.ok, (report.runs, [f.failure.signature for f in report.found])
        out[name] = round(report.runs / seconds, 1)
        print(f"{name:10} {seconds:7.2f} s  {out[name]:8,.1f} runs/s  (engine {report.engine_seconds:.1f} s "
              f"over all shards)")
    base = out["workers_1"]
    for name in ("workers_2", "dask_2"):
        if out[name] is not None:
            print(f"{name} / workers_1: {out[name] / base:.2f}")
    out["cores"] = cores
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
