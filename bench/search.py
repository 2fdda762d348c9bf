"""Search strategies against the mutants: how fast each finds each bug, and how small the report.

For each mutant (``lockfuzz.targets.mutants``) and each strategy, runs a campaign per seed and
reports runs per second, runs and seconds to the first failure (median over the seeds), whether
it was found, and the shrunk report's preemptions against the exhaustive minimum for that program.
Also measures how much of the engine's raw speed a campaign keeps inside Hypothesis examples.

    python bench/search.py [--seeds 3] [--runs 5000] [--strategies swarm,random,pct]

Last line: JSON with ``mutants``, ``found`` (per strategy), ``minimal_preemptions`` (per strategy:
reports whose schedule met the exhaustive minimum), ``median_seconds`` (per strategy and mutant),
``default_never_slower`` (the default strategy's median time <= the random walk's on every
mutant, within 10 ms of timer noise) and ``hypothesis_efficiency`` (campaign runs/s over raw runs/s).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import lockfuzz
from lockfuzz import Engine
from lockfuzz._campaigns._minimise import preemptions
from lockfuzz._search import DEFAULT_STRATEGY, bounded_schedules
from lockfuzz.targets.mutants import MUTANTS

from campaign import campaign_cost  # noqa: E402 - bench/ is the script's directory


def exhaustive_minimum(target_cls, program, signature, limit: int = 5_000) -> int | None:  # type: ignore[no-untyped-def]
    gen = bounded_schedules(4)
    source = next(gen)
    for _ in range(limit):
        try:
            r = Engine(target_cls, program, source).run()
        except lockfuzz.ProgramError:
            return None
        if r.violation is not None and r.violation.signature == signature:
            return preemptions(r.decisions)
        try:
            source = gen.send(r)
        except StopIteration:
            return None
    return None


def efficiency(runs: int = 5000) -> float:
    """A campaign's runs/s over the engine's own runs/s on the same programs and schedules: the
    share of the campaign's time spent inside engine runs (the rest is Hypothesis drawing and
    shrinking programs, and the search's bookkeeping)."""
    cost = campaign_cost("tas", runs, seed=1)
    print(f"campaign on tas: {cost.runs_per_s:,.0f} runs/s; the engine alone on the same runs: "
          f"{cost.engine_runs_per_s:,.0f} runs/s")
    return cost.engine_share


def main(argv: list[str] | None = None) -> dict:  # type: ignore[type-arg]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=5000)
    ap.add_argument("--strategies", default="swarm,random,pct")
    args = ap.parse_args(argv)
    strategies = args.strategies.split(",")
    found: dict[str, int] = {s: 0 for s in strategies}
    minimal: dict[str, int] = {s: 0 for s in strategies}
    median_s: dict[str, dict[str, float]] = {s: {} for s in strategies}
    print(f"{'mutant':22} {'strategy':8} {'found':>6} {'runs/s':>8} {'runs->1st':>10} {'s->1st':>8} "
          f"{'preempt':>8} {'minimum':>8}")
    for name in sorted(MUTANTS):
        target_cls = lockfuzz.resolve_target(name)
        for strategy in strategies:
            times, runs_to, rates, shrunk = [], [], [], []
            hits = 0
            for seed in range(args.seeds):
                report = lockfuzz.fuzz(name, strategy=strategy, runs=args.runs, seed=seed)
                rates.append(report.runs_per_second)
                if report.found:
                    f = report.found[0]
                    hits += 1
                    times.append(f.seconds_to_find)
                    runs_to.append(f.runs_to_find)
                    shrunk.append(f.failure)
            ok = hits == args.seeds
            found[strategy] += ok
            med_t = statistics.median(times) if times else float("inf")
            median_s[strategy][name] = round(med_t, 4)
            k = preemptions(shrunk[0].schedule) if shrunk else None
            minimum = exhaustive_minimum(target_cls, shrunk[0].program, shrunk[0].signature) if shrunk else None
            if shrunk and k == minimum:
                minimal[strategy] += 1
            print(f"{name:22} {strategy:8} {hits:>3}/{args.seeds} {statistics.median(rates):>8,.0f} "
                  f"{statistics.median(runs_to) if runs_to else '-':>10} {med_t:>8.3f} {k!s:>8} {minimum!s:>8}")
    default = DEFAULT_STRATEGY
    never_slower = (
        all(median_s[default][m] <= median_s["random"][m] + 0.01 for m in MUTANTS)
        if default in strategies and "random" in strategies else None
    )
    eff = efficiency()
    out = {
        "mutants": len(MUTANTS), "found": found, "minimal_preemptions": minimal, "median_seconds": median_s,
        "default_never_slower": never_slower, "hypothesis_efficiency": round(eff, 3),
    }
    print(f"default strategy ({default}) never slower than the random walk: {never_slower}; "
          f"campaign keeps {eff:.0%} of the engine's raw runs/s")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    sys.exit(main() and 0)
