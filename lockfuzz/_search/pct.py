"""PCT: probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi and Nagarakatte,
"A Randomized Scheduler with Probabilistic Guarantees of Finding Bugs", ASPLOS 2010).

Each context (and each interrupt handler, as a thread that may start) gets a random distinct
priority above ``depth``; ``depth - 1`` change points are drawn uniformly among the ``k``
expected decision points; at each point the highest-priority option runs, and at the ``j``-th
change point the running context drops to priority ``depth - j``. A bug of depth ``d`` is found
with probability at least 1 / (n k^(d-1)) per run. ``k`` is learnt from the runs so far.

Our spinners block until memory changes (``Cell.wait_until``), so a high-priority spinner does
not livelock the holder it waits for (DESIGN.md, "Measured costs").
"""

from __future__ import annotations

import random
from typing import Any

from .._model._program import Program
from ._base import Search, SearchStrategy, derive_seed


class Pct:
    def __init__(self, seed: int, depth: int, k: int) -> None:
        self.rng = random.Random(seed)
        self.depth = depth
        self.change_points = {self.rng.randint(1, max(1, k)): j for j in range(1, depth)}
        self.priority: dict[Any, float] = {}
        self.point = 0
        # Cancellation decisions (trio targets): never by priority; in half the runs, one
        # cancellation at the first decision point from a random one on that offers any. Its
        # own generator, so that runs without cancellations draw what they drew before.
        cancels = random.Random(f"pct-cancel-{seed}")
        self.cancel_at = cancels.randint(1, max(1, k)) if cancels.random() < 0.5 else 0

    def rng_cancel(self, k: int) -> int:
        return (self.point * 2654435761) % k  # which one: a fixed function of the point

    def _prio(self, key: Any) -> float:
        p = self.priority.get(key)
        if p is None:
            p = self.priority[key] = self.depth + self.rng.random()
        return p

    def choose(self, n: int, engine: Any) -> int:
        self.point += 1
        options = engine.options()
        if options[-1][0] == "cancel":
            k = sum(1 for opt in options if opt[0] == "cancel")
            if self.cancel_at and self.point >= self.cancel_at:
                self.cancel_at = 0
                return len(options) - k + self.rng_cancel(k)
            options = options[:-k]
        keys = [opt[1] if opt[0] == "run" else opt for opt in options]
        j = self.change_points.get(self.point)
        if j is not None and engine.cur is not None:
            self.priority[engine.cur.name] = float(self.depth - j)
        best, best_p = 0, -1.0
        for i, key in enumerate(keys):
            p = 0.5 if key == ("wait",) else self._prio(key)
            if p > best_p:
                best, best_p = i, p
        return best


class PctSearch(SearchStrategy):
    name = "pct"

    def __init__(self, depth: int = 3) -> None:
        self.depth = depth

    def describe(self) -> str:
        return f"pct(depth={self.depth})"

    def search(self, program: Program, seed: int) -> Search:
        k = 50
        i = 0
        while True:
            result = yield Pct(derive_seed("pct", seed, i), self.depth, k)
            k = max(k, len(result.decisions))
            i += 1
