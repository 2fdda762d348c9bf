"""EDEADLK attribution (sound): an EDEADLK needs a deadlock.

An acquisition that returns EDEADLK must have been on a cycle of the ground-truth wait-for
graph at some moment of its attempt, unless a declared exception covers it. This oracle reports
the *false deadlock*: no cycle existed anywhere while it waited. (A cycle that existed but did
not include the waiter is the innocent-bystander oracle's finding.)

A target that marks nothing is given the benefit of the doubt where an interrupted acquisition
may already have taken its lock (``_attribution.maybe_taken``); where that would make a cycle
that does not include the waiter, the verdict is the bystander's (``maybe_a_cycle``), not this
one, whose "no cycle existed" would be untrue.
"""

from __future__ import annotations

from .._model._errors import Violation
from .._engine._events import ACQUIRED
from .._model._status import Status
from ._attribution import excused, maybe_a_cycle, maybe_taken
from ._base import Oracle


class EdeadlkSound(Oracle):
    name = "edeadlk-sound"
    kinds = (ACQUIRED,)
    statuses = (Status.EDEADLK,)

    def start(self, engine) -> None:  # type: ignore[no-untyped-def]
        self.exceptions = engine.capabilities.exceptions

    def observe(self, engine, index, ctx, kind, obj, value) -> None:  # type: ignore[no-untyped-def]
        if kind != ACQUIRED or value != Status.EDEADLK:
            return
        truth = engine.truth
        a = truth.returned
        if a.on_cycle or a.any_cycle or excused(a, self.exceptions) or maybe_taken(truth, a):
            return
        if maybe_a_cycle(truth):
            return  # the bystander's finding (module doc)
        raise Violation(
            self.name, "no-cycle",
            f"{ctx.name} got EDEADLK on L{obj} (attempt from t={a.start}ns) but no deadlock cycle existed "
            "while it waited, and no declared exception covers it",
            contexts=(ctx.name,), locks=(obj,), time_ns=engine.machine.now, event_index=index,
        )

