"""Target coverage of rqspinlock campaigns, guided and unguided, and what measuring it costs.

For rqspinlock with up to 3 CPUs, 2 locks and an interrupt handler per CPU (the command line's
defaults), runs campaigns of a fixed number of runs per seed, with coverage measured, once
unguided (the default search) and once guided (``guided=True``), and reports the branch and
line coverage of ``targets/rqspinlock.py`` each reached, and which of the lock's notable paths
it ran: the queue head's timeout, the teardown that tells waiters to leave, the ABBA check (run,
and finding a deadlock), the AA check, the queue head's deadlock hand-over, the trylock fallback,
the held-table overflow. Then the cost of measuring: an unguided campaign without coverage and
with it, one after the other.

A third mode, ``unguided/12``, is the unguided search with 12 runs per program instead of the
campaign's 50: guided search leaves a program once it stops showing anything new, so it tries
more programs for the same runs, and this shows how much of its gain that alone explains.

    python bench/coverage.py [--runs 2000] [--seeds 3] [--jobs 2]

Last line: JSON with ``guided_branch_pct`` and ``unguided_branch_pct`` (means over the seeds),
per-seed figures, the paths each mode reached (in how many seeds), and ``runs_per_second``
without and with coverage (``coverage_cost``: their ratio).
"""

from __future__ import annotations

import os
import sys

# This file is named coverage.py, and ``python bench/coverage.py`` puts bench/ first on the path:
# take it off, or ``import coverage`` would import this script instead of coverage.py.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
from typing import Any  # noqa: E402

import lockfuzz  # noqa: E402
from lockfuzz.strategies import programs_for  # noqa: E402
from lockfuzz.targets import rqspinlock  # noqa: E402

TARGET = rqspinlock.RqSpinlock
MODES = ("unguided", "guided", "unguided/12")

#: Notable paths of rqspinlock, each a line of its source (found by text, so that edits to the
#: model move them along): the path ran if that line ran.
PATHS = {
    "queue-head timeout": ("if ret:  # T:", 1),
    "teardown: told to leave": ("told to leave: go to T", 0),
    "teardown: tells successor": ("store(RES_TIMEOUT_VAL)", 0),
    "ABBA check": ("ret = await self._check_abba(", 0),
    "ABBA found": ("for j in range(own_cnt - 1):", 2),
    "AA found": ("# Q0: never queue behind ourselves", 1),
    "queue-head deadlock (Q8)": ("# Q8:", 1),
    "trylock fallback (Q2)": ("# Q2:", 1),
    "pending waiter timeout (S6)": ("# S6:", 1),
    "held-table overflow": ("if cnt <= RES_NR_HELD:  # past 31", None),
}


def path_lines() -> dict[str, tuple[int, int | None]]:
    """Each path's line number (and for a branch, the line it must *not* go to)."""
    with open(rqspinlock.__file__, encoding="utf-8") as f:
        source = f.read().splitlines()
    out: dict[str, tuple[int, int | None]] = {}
    for name, (marker, offset) in PATHS.items():
        hits = [i + 1 for i, text in enumerate(source) if marker in text]
        if len(hits) != 1:
            raise SystemExit(f"bench/coverage.py: marker {marker!r} found {len(hits)} times in rqspinlock.py")
        out[name] = (hits[0] + offset, None) if offset is not None else (hits[0], hits[0] + 1)
    return out


def reached(result: Any, lines: dict[str, tuple[int, int | None]]) -> dict[str, bool]:
    f = result.file(rqspinlock.__name__)
    out = {}
    for name, (line, not_to) in lines.items():
        if not_to is None:
            out[name] = f.reached(line)
        else:  # a branch line that took its exit other than to ``not_to`` (the next line)
            out[name] = f.reached(line) and not any(a[0] == line and a[1] != not_to for a in f.missing_branches)
    return out


def campaign(job: tuple[int, int, str, bool]) -> dict[str, Any]:
    seed, runs, mode, measure = job
    programs = programs_for(TARGET, max_cpus=3, max_locks=2, max_handlers=1)
    report = lockfuzz.fuzz(
        TARGET, programs=programs, runs=runs, seed=seed, coverage=measure, guided=mode == "guided",
        runs_per_program=12 if mode == "unguided/12" else 50, minimise=False, max_failures=100, failure_dir=None,
    )
    out: dict[str, Any] = {
        "seed": seed, "mode": mode, "coverage": measure, "runs": report.runs,
        "runs_per_second": report.runs / report.engine_seconds if report.engine_seconds else 0.0,
        "failures": sorted("/".join(f.failure.signature) for f in report.found),
    }
    if measure:
        assert report.coverage is not None and report.coverage.target is not None
        t = report.coverage.target
        out.update(branch_pct=t.branch_pct, line_pct=t.line_pct, features=len(report.coverage.features),
                   paths=reached(t, path_lines()), corpus=report.coverage.corpus, core=t.core)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000, help="runs per campaign (default 2000)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds per mode (default 3)")
    ap.add_argument("--jobs", type=int, default=2, help="campaigns run at once (default 2)")
    args = ap.parse_args(argv)
    path_lines()  # fail early if a marker moved
    jobs = [(seed, args.runs, mode, True) for seed in range(args.seeds) for mode in MODES]
    if args.jobs > 1:
        with multiprocessing.Pool(args.jobs) as pool:
            measured = pool.map(campaign, jobs, chunksize=1)
    else:
        measured = [campaign(j) for j in jobs]
    # The cost of measuring: one unguided campaign without and with coverage, one after the
    # other in this process (campaigns running side by side would skew each other's speed).
    cost_runs = min(args.runs, 500)
    plain, measured_one = campaign((0, cost_runs, "unguided", False)), campaign((0, cost_runs, "unguided", True))

    print(f"rqspinlock, up to 3 CPUs, 2 locks, 1 handler per CPU; {args.runs:,} runs per campaign; "
          f"Python {platform.python_version()}, coverage.py core {measured[0]['core']}")
    print(f"{'seed':>4} {'mode':11} {'branches':>9} {'lines':>7} {'features':>8} {'corpus':>6} {'runs/s':>7}  failures")
    for r in measured:
        print(f"{r['seed']:>4} {r['mode']:11} {r['branch_pct']:>8.1f}% "
              f"{r['line_pct']:>6.1f}% {r['features']:>8} {r['corpus']:>6} {r['runs_per_second']:>7.0f}  "
              f"{', '.join(r['failures']) or '-'}")
    modes = {mode: [r for r in measured if r["mode"] == mode] for mode in MODES}
    paths = {mode: {name: sum(r["paths"][name] for r in rs) for name in PATHS} for mode, rs in modes.items()}
    print(f"\n{'path (seeds that reached it)':32}" + "".join(f"{mode:>12}" for mode in MODES))
    for name in PATHS:
        print(f"{name:32}" + "".join(f"{paths[mode][name]:>10}/{args.seeds}" for mode in MODES))
    cost = plain["runs_per_second"] / measured_one["runs_per_second"] if measured_one["runs_per_second"] else 0.0
    print(f"\ncost of measuring ({cost_runs} runs, seed 0, unguided, engine time only): "
          f"{plain['runs_per_second']:,.0f} runs/s without coverage, {measured_one['runs_per_second']:,.0f} with: "
          f"{cost:.1f}x")
    mean = {mode: statistics.mean(r["branch_pct"] for r in rs) for mode, rs in modes.items()}
    g, u = mean["guided"], mean["unguided"]
    wins = sum(a["branch_pct"] > b["branch_pct"] for a, b in zip(modes["guided"], modes["unguided"]))
    print(f"branch coverage after {args.runs:,} runs, mean of {args.seeds} seeds: guided {g:.1f}%, unguided {u:.1f}% "
          f"(guided ahead in {wins} of {args.seeds} seeds); unguided with 12 runs per program "
          f"{mean['unguided/12']:.1f}%")
    out = {
        "target": "rqspinlock", "runs": args.runs, "seeds": args.seeds,
        "guided_branch_pct": round(g, 2), "unguided_branch_pct": round(u, 2),
        "unguided_12_branch_pct": round(mean["unguided/12"], 2),
        "guided_line_pct": round(statistics.mean(r["line_pct"] for r in modes["guided"]), 2),
        "unguided_line_pct": round(statistics.mean(r["line_pct"] for r in modes["unguided"]), 2),
        "per_seed": {mode: [round(r["branch_pct"], 2) for r in rs] for mode, rs in modes.items()},
        "guided_ahead_seeds": wins, "paths": paths,
        "runs_per_second": {"without_coverage": round(plain["runs_per_second"], 1),
                            "with_coverage": round(measured_one["runs_per_second"], 1)},
        "coverage_cost": round(cost, 2), "python": platform.python_version(), "core": measured[0]["core"],
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    sys.exit(main() and 0)
