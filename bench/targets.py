"""Runs per second for each bundled correct target: the engine on one program, and a campaign.

Engine: the program is bench/engine.py's: 3 CPUs, 2 locks, nested acquisitions in one order and
one hardirq handler (on a CPU whose task never takes the handler's lock), so it cannot deadlock
on a lock that detects nothing. Each run is a fresh machine with every oracle on and a seeded
random walk (trio_lock runs on the trio driver).

Campaign: ``lockfuzz fuzz TARGET --runs N`` (the target's own programs: up to 3 CPUs, 2 locks,
interrupt handlers, holds past its timeouts if they are fixed), searching only: its runs/s, the
share of its time spent in the engine (bench/campaign.py), and its runs/s against ticket's in
the same run (issue #13: rqspinlock and resilient_tas within 2x of ticket).

Prints a table for the engine (runs/s, mean steps and events per run, runs with a violation)
and one for the campaigns (runs/s, engine share, runs/s over ticket's; each target's fastest of
``--rounds`` campaigns, run in rounds over every target so that load from other work on the
machine spreads over all of them), then, as the last line, a JSON object with ``runs_per_s``,
``campaign_runs_per_s`` and ``engine_share``, each mapping target name to its figure.

    python bench/targets.py [--runs 2000] [--campaign-runs 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import lockfuzz
from lockfuzz._search import RandomWalk

# bench/ is the script's directory.
from campaign import CampaignCost, campaign_cost  # noqa: E402
# The engine benchmark's program: 3 CPUs, 2 locks, nested acquisitions, one interrupt handler.
from engine import PROGRAM  # noqa: E402

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


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000, help="engine runs per target (default 2000)")
    ap.add_argument("--campaign-runs", type=int, default=2000, help="campaign runs per target (default 2000)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="campaigns per target, one per round over every target; the fastest counts (default 3)")
    args = ap.parse_args(argv)
    for name in ("runs", "campaign_runs", "rounds"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')}={getattr(args, name)}: expected an int >= 1")
    engine: dict[str, float] = {}
    print(f"engine: {args.runs} runs per target; program: {PROGRAM.describe().splitlines()[0]}, one hardirq handler")
    print(f"{'target':15} {'runs/s':>10} {'steps/run':>10} {'events/run':>11} {'violations':>11}")
    for name in TARGETS:
        cls = lockfuzz.resolve_target(name)
        bench(cls, min(200, args.runs))  # warm up
        r = bench(cls, args.runs)
        print(f"{name:15} {r['runs_per_s']:10,.0f} {r['steps']:10.1f} {r['events']:11.1f} {r['violations']:11d}")
        engine[name] = round(r["runs_per_s"])
    # Campaigns, interleaved: each round runs every target once, so that a burst of other work on
    # the machine slows one round of every target rather than every round of one; the fastest
    # round of each target is the least disturbed.
    print(f"\ncampaign: lockfuzz fuzz TARGET --runs {args.campaign_runs} --seed 0, searching only; "
          f"the fastest of {args.rounds} round(s)")
    for name in TARGETS:
        campaign_cost(name, min(200, args.campaign_runs), seed=1)  # warm up (Hypothesis, the target's programs)
    best: dict[str, CampaignCost] = {}
    for _ in range(args.rounds):
        for name in TARGETS:
            c = campaign_cost(name, args.campaign_runs)
            if name not in best or c.runs_per_s > best[name].runs_per_s:
                best[name] = c
    base = best["ticket"].runs_per_s
    print(f"{'target':15} {'runs/s':>10} {'engine share':>13} {'x ticket':>9}")
    for name in TARGETS:
        c = best[name]
        print(f"{name:15} {c.runs_per_s:10,.0f} {c.engine_share:13.0%} {c.runs_per_s / base:9.2f}"
              + (f"  ({c.failures} failures)" if c.failures else ""))
    out = {
        "runs_per_s": engine,
        "campaign_runs_per_s": {t: round(c.runs_per_s) for t, c in best.items()},
        "engine_share": {t: round(c.engine_share, 3) for t, c in best.items()},
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    sys.exit(main() and 0)
