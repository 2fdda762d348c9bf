"""What a campaign costs, and how much of it is the engine: shared by bench/targets.py and
bench/search.py (not a script of its own).

A campaign's time is the engine's runs plus Hypothesis (drawing and shrinking programs) and the
search's bookkeeping; ``CampaignReport.engine_seconds`` times the runs alone, so its share of
the campaign's seconds (``engine_share``) says where the time went: near 1, the engine (the
target's steps, the oracles) is the cost; far below 1, the machinery around it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import lockfuzz


@dataclass(frozen=True)
class CampaignCost:
    target: str
    runs: int
    runs_per_s: float  # the campaign's, Hypothesis included
    engine_runs_per_s: float  # the engine's alone, on the same programs and schedules
    engine_share: float  # of the campaign's time, inside engine runs
    failures: int


def campaign_cost(target: str, runs: int, seed: int = 0) -> CampaignCost:
    """``lockfuzz fuzz TARGET --runs RUNS --seed SEED`` (its default programs: up to 3 CPUs,
    2 locks, an interrupt handler), searching only: a failure is counted, not shrunk."""
    report = lockfuzz.fuzz(target, runs=runs, seed=seed, minimise=False)
    engine = report.runs / report.engine_seconds if report.engine_seconds else 0.0
    return CampaignCost(target, report.runs, report.runs_per_second, engine, report.engine_share, len(report.found))
