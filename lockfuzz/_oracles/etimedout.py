"""ETIMEDOUT attribution: a timeout must be deserved.

Deserved when the attempt lasted at least its budget (per-call budgets) or the target's
shortest fixed timeout; or, where the target declares it, when it gave up early because
another attempt on the same lock timed out meanwhile or had itself waited that long (a queue
torn down by its timed-out head). A target without timeouts must never return ETIMEDOUT.
"""

from __future__ import annotations

from .._errors import Violation
from .._events import ACQUIRED
from .._status import Status
from ._base import Oracle


class EtimedoutAttribution(Oracle):
    name = "etimedout"
    kinds = (ACQUIRED,)
    statuses = (Status.ETIMEDOUT,)

    def start(self, engine) -> None:  # type: ignore[no-untyped-def]
        self.timeouts = engine.capabilities.timeouts

    def observe(self, engine, index, ctx, kind, obj, value) -> None:  # type: ignore[no-untyped-def]
        if kind != ACQUIRED or value != Status.ETIMEDOUT or engine.phase != "run":
            return
        a = engine.truth.returned
        now = engine.machine.now
        t = self.timeouts
        lasted = now - a.start
        if t is None:
            raise Violation(
                self.name, "undeclared",
                f"{ctx.name} got ETIMEDOUT on L{obj}, but the target declares no timeouts",
                contexts=(ctx.name,), locks=(obj,), time_ns=now, event_index=index,
            )
        need = a.budget if t.per_call else t.min_ns
        if lasted >= need:
            return
        if t.early_when_another_times_out and (
            a.other_timed_out or any(now - b.start >= need for b in engine.truth.on_lock[obj])
        ):
            return
        raise Violation(
            self.name, "early",
            f"{ctx.name} got ETIMEDOUT on L{obj} after {lasted} ns; a timeout needs {need} ns",
            contexts=(ctx.name,), locks=(obj,), time_ns=now, event_index=index,
        )
