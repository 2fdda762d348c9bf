"""Seeded random walk: at every decision point, a uniform choice among the options.

The baseline every other strategy is measured against (DESIGN.md: it found a rare three-CPU
bug in about 480 runs where PCT did worse). Cheap: one ``randrange`` per decision.
"""

from __future__ import annotations

import random

from .._model._program import Program
from ._base import CANCEL_KEEP, Search, SearchStrategy, cancel_options, derive_seed


class RandomWalk:
    """A decision source: uniform choices from a seeded generator."""

    __slots__ = ("_random",)

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed).random

    def choose(self, n: int, engine: object) -> int:
        # int(random() * n) rather than randrange(n): a third of the cost, and as deterministic
        # (Mersenne Twister doubles are the same on every platform).
        d = int(self._random() * n)
        k = cancel_options(engine)
        if k and d >= n - k and self._random() >= CANCEL_KEEP:
            d = int(self._random() * (n - k))  # a cancellation, mostly declined (CANCEL_KEEP)
        return d


class RandomWalkSearch(SearchStrategy):
    name = "random"

    def search(self, program: Program, seed: int) -> Search:
        i = 0
        while True:
            yield RandomWalk(derive_seed("random", seed, i))
            i += 1
