"""Fairness: no waiter is overtaken by later arrivals more often than the target declares.

Arrival is after the attempt's first ``doorway_steps`` steps (Lamport's doorway): when X takes the
first step of its attempt on L (begins its doorway), every attempt on L that has passed its
doorway is *ahead* of X, whenever it called ``acquire``; if X then acquires L while one of those
is still waiting, that waiter was overtaken once. A waiter whose per-call budget has run out is
leaving, not waiting: a trio waiter leaves the lock's queue when its deadline passes and returns
ETIMEDOUT only when it next runs, and a later arrival that takes the lock in between has not
overtaken it. So is a waiter whose scope the schedule cancelled.
"""

from __future__ import annotations

from .._model._errors import Violation
from .._engine._events import ACQUIRED
from .._model._status import Status
from ._base import Oracle
from ._truth import Attempt


class FairnessOracle(Oracle):
    name = "fairness"
    kinds: tuple[int, ...] = (ACQUIRED,)

    def start(self, engine) -> None:  # type: ignore[no-untyped-def]
        # The ground truth keeps, per attempt, the attempts that arrived before it
        # (``Attempt.before``, settled at its first step: ``GroundTruth.opened``), so the oracle
        # reads that and needs no ACQUIRE of its own.
        self.fairness = f = engine.capabilities.fairness
        if f is None:
            self.kinds = ()
        self.overtaken: dict[Attempt, int] = {}

    def observe(self, engine, index, ctx, kind, obj, value) -> None:  # type: ignore[no-untyped-def]
        f = self.fairness
        if f is None or engine.phase != "run":
            return
        truth = engine.truth
        a = truth.returned
        self.overtaken.pop(a, None)
        if value != Status.OK or not a.before:
            return
        still = set(map(id, truth.on_lock[obj]))
        timeouts = engine.capabilities.timeouts
        now = engine.machine.now
        for b in a.before:
            if id(b) in still:
                if b.cancelled:
                    continue  # cancelled: it is leaving, not waiting
                if timeouts is not None and timeouts.per_call and now - b.start >= b.budget:
                    continue  # its budget has run out: it is leaving (ETIMEDOUT), not waiting
                if a.shared and b.shared and not truth.at_capacity(obj):
                    continue  # two readers with room for both are admitted together (preference.py)
                n = self.overtaken.get(b, 0) + 1
                self.overtaken[b] = n
                if n > f.overtakes:
                    raise Violation(
                        self.name, "overtaken",
                        f"{b.ctx.name} (waiting for L{obj} since t={b.start}ns) was overtaken {n} time(s), "
                        f"last by {ctx.name}; the target declares at most {f.overtakes}",
                        contexts=(b.ctx.name, ctx.name), locks=(obj,), time_ns=engine.machine.now,
                        event_index=index,
                    )
