"""Exhaustive search up to k preemptions (iterative context bounding: Musuvathi and Qadeer,
"Iterative Context Bounding for Systematic Testing of Multithreaded Programs", PLDI 2007).

A preemption is a nonzero decision. Level 0 is the schedule of all zeros; each schedule of
level j+1 is a schedule of level j with one more nonzero decision placed after the last one it
already has, so every schedule is generated exactly once, level by level: the first failing
schedule found has the fewest preemptions any schedule of this program can have. That makes
it the minimiser's yardstick. Meant for small programs: level j holds about (points x options)^j / j!
schedules.
"""

from __future__ import annotations

from typing import Any, Iterator

from .._engine._run import Schedule
from .._model._program import Program
from ._base import Search, SearchStrategy


def bounded_schedules(max_preemptions: int) -> Search:
    """Every schedule with at most ``max_preemptions`` nonzero decisions, fewest first.

    Iterative deepening: level k is a depth-first walk over schedules with exactly k nonzero
    decisions, so memory stays proportional to k, not to the size of a level (which grows as
    (points x options)^k / k!). The walk re-runs the shorter prefixes it extends (a few runs per
    level); the order is still fewest preemptions first.
    """
    for k in range(max_preemptions + 1):
        result = yield Schedule([])
        if k == 0:
            continue
        stack = [_extensions([], result)]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                continue
            result = yield Schedule(child)
            if len(stack) < k:
                stack.append(_extensions(child, result))


def _extensions(prefix: list[int], result: Any) -> Iterator[list[int]]:
    """The schedules with one more nonzero decision, placed after the last one of ``prefix``."""
    decisions, branching = list(result.decisions), list(result.branching)
    for i in range(len(prefix), len(decisions)):
        if decisions[i] != 0:
            return  # the fair default preempted here: what follows is not ours to vary
        for alternative in range(1, branching[i]):
            yield decisions[:i] + [alternative]


class ExhaustiveSearch(SearchStrategy):
    name = "exhaustive"

    def __init__(self, max_preemptions: int = 2) -> None:
        self.max_preemptions = max_preemptions

    def describe(self) -> str:
        return f"exhaustive(max_preemptions={self.max_preemptions})"

    def search(self, program: Program, seed: int) -> Search:
        return bounded_schedules(self.max_preemptions)
