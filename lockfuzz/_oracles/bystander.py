"""Innocent bystander: a waiter that was never on a cycle gets no EDEADLK.

A deadlock existed while it waited, but the target blamed a waiter that took no part in it
(and no declared exception covers it). A target that marks nothing is given the benefit of the
doubt where an interrupted acquisition may already have taken its lock
(``_attribution.maybe_taken``); by the same doubt, a cycle that exists only if such an
acquisition took its lock counts as one, off which the waiter was (``maybe_a_cycle``).
"""

from __future__ import annotations

from .._model._errors import Violation
from .._engine._events import ACQUIRED
from .._model._status import Status
from ._attribution import excused, maybe_a_cycle, maybe_taken
from ._base import Oracle


class InnocentBystander(Oracle):
    name = "innocent-bystander"
    kinds = (ACQUIRED,)
    statuses = (Status.EDEADLK,)

    def start(self, engine) -> None:  # type: ignore[no-untyped-def]
        self.exceptions = engine.capabilities.exceptions

    def observe(self, engine, index, ctx, kind, obj, value) -> None:  # type: ignore[no-untyped-def]
        if kind != ACQUIRED or value != Status.EDEADLK:
            return
        truth = engine.truth
        a = truth.returned
        if a.on_cycle or excused(a, self.exceptions) or maybe_taken(truth, a):
            return
        if a.any_cycle:
            where = "the deadlock cycle that existed meanwhile"
        elif maybe_a_cycle(truth):
            where = (
                "the deadlock cycle that exists if an interrupted acquisition has taken its lock (the target "
                "marks no Mark.TAKEN, so lockfuzz assumes it may have)"
            )
        else:
            return  # no cycle anywhere: a deadlock invented (``edeadlk_sound``)
        raise Violation(
            self.name, "not-on-cycle",
            f"{ctx.name} got EDEADLK on L{obj} but was never on {where}",
            contexts=(ctx.name,), locks=(obj,), time_ns=engine.machine.now, event_index=index,
        )
