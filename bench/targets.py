"""Runs per second for each bundled correct target, on one program and one search.

The program is bench/engine.py's: 3 CPUs, 2 locks, nested acquisitions in one order and one
hardirq handler (on a CPU whose task never takes the handler's lock), so it cannot deadlock on a
lock that detects nothing. Each run is a fresh machine with every oracle on and a seeded random
walk (trio_lock runs on the trio driver). Prints a table (runs/s,
mean steps and events per run, runs with a violation), then, as the last line, a JSON object
mapping target name to runs per second.

    python bench/targets.py [--runs 2000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import lockfuzz
from lockfuzz._search import RandomWalk

# The engine benchmark's program: 3 CPUs, 2 locks, nested acquisitions, one interrupt handler.
from engine import PROGRAM  # noqa: E402 - bench/ is the script's directory

TARGETS = (
    "tas", "ticket", "ttas", "mcs", "qspinlock", "rqspinlock", "resilient_tas", "ww_wait_die", "ww_wound_wait",
    "trio_lock",
)  # fmt: skip


def bench(target_cls, runs: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    steps = events = violations = 0
    t0 = time.perf_counter()
    for seed in range(runs):
        result = lockfuzz.run(target_cls, PROGRAM, RandomWalk(seed))
        steps += result.steps
        events += len(result.trace)
        violations += result.violation is not None
    dt = time.perf_counter() - t0
    return {"runs_per_s": runs / dt, "steps": steps / runs, "events": events / runs, "violations": violations}


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000, help="runs per target (default 2000)")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error(f"--runs={args.runs}: expected an int >= 1")
    out: dict[str, float] = {}
    print(f"{args.runs} runs per target; program: {PROGRAM.describe().splitlines()[0]}, one hardirq handler")
    print(f"{'target':15} {'runs/s':>10} {'steps/run':>10} {'events/run':>11} {'violations':>11}")
    for name in TARGETS:
        cls = lockfuzz.resolve_target(name)
        bench(cls, min(200, args.runs))  # warm up
        r = bench(cls, args.runs)
        print(f"{name:15} {r['runs_per_s']:10,.0f} {r['steps']:10.1f} {r['events']:11.1f} {r['violations']:11d}")
        out[name] = round(r["runs_per_s"])
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    sys.exit(main() and 0)
