"""Swarm search, the default: random walks of varied preemption density.

A uniform random walk preempts at almost every decision point, so the bugs that need a few
preemptions at the right places, and schedules short enough to read, come slowly. Swarm
testing (Groce et al., "Swarm Testing", ISSTA 2012) varies the configuration from run to run
instead of fixing one: here each run switches away from the current context with a probability
drawn from a fixed cycle (uniform, 1/3, 1/10, 1/30), so dense and sparse schedules are both
tried, and the sparse ones find low-preemption bugs with short schedules.
"""

from __future__ import annotations

import random

from .._model._program import Program
from ._base import CANCEL_KEEP, Search, SearchStrategy, cancel_options, derive_seed
from .random_walk import RandomWalk

# None: uniform. Otherwise the probability of a nonzero decision at each point.
DENSITIES = (None, 1 / 3, 1 / 10, 1 / 30)


class SparseWalk:
    """A decision source that keeps the current context with probability ``1 - p``."""

    __slots__ = ("_p", "_random", "_randrange")

    def __init__(self, seed: int, p: float) -> None:
        rng = random.Random(seed)
        self._random = rng.random
        self._randrange = rng.randrange
        self._p = p

    def choose(self, n: int, engine: object) -> int:
        if self._random() < self._p:
            d = 1 + self._randrange(n - 1)
            k = cancel_options(engine)
            if k and d >= n - k and self._random() >= CANCEL_KEEP:
                return 0  # a cancellation, mostly declined (CANCEL_KEEP)
            return d
        return 0


class SwarmSearch(SearchStrategy):
    name = "swarm"

    def search(self, program: Program, seed: int) -> Search:
        i = 0
        while True:
            p = DENSITIES[i % len(DENSITIES)]
            s = derive_seed("swarm", seed, i)
            yield RandomWalk(s) if p is None else SparseWalk(s, p)
            i += 1
