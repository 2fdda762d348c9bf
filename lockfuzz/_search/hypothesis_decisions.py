"""Decisions drawn from Hypothesis, with the program: one schedule per example.

Hypothesis draws the program and a list of decisions together (``lockfuzz.strategies.schedules``),
so it shrinks both jointly and its example database and coverage guidance see the schedule too.
The price (DESIGN.md, "Measured costs"): a Hypothesis example costs milliseconds, so this finds
bugs tens of times later than the in-example strategies; it is here for joint shrinking, and as
the yardstick the fast strategies are measured against. The decisions are drawn as one list per
example, not one draw per decision (one draw costs about 50 engine steps).
"""

from __future__ import annotations

from typing import Any, Sequence

from .._engine._run import Schedule
from .._model._program import Program
from ._base import Search, SearchStrategy


class HypothesisSearch(SearchStrategy):
    name = "hypothesis"
    #: The campaign draws a schedule with each program and passes it to ``search``.
    draws_schedule = True

    def __init__(self, max_size: int = 200, max_decision: int = 7) -> None:
        self.max_size = max_size
        self.max_decision = max_decision

    def describe(self) -> str:
        return f"hypothesis(max_size={self.max_size})"

    def schedule_strategy(self) -> Any:
        from lockfuzz.strategies import schedules

        return schedules(max_size=self.max_size, max_decision=self.max_decision)

    def search(self, program: Program, seed: int, schedule: Sequence[int] = ()) -> Search:
        yield Schedule(schedule)
