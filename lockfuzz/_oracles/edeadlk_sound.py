"""EDEADLK attribution (sound): an EDEADLK needs a deadlock.

An acquisition that returns EDEADLK must have been on a cycle of the ground-truth wait-for
graph at some moment of its attempt, unless a declared exception covers it. This oracle reports
the *false deadlock*: no cycle existed anywhere while it waited. (A cycle that existed but did
not include the waiter is the innocent-bystander oracle's finding.)

One case the ground truth cannot decide for a target that marks nothing: a handler asks for the
lock that the context it interrupted is still acquiring. That acquisition may already have taken
the lock (its compare-and-swap succeeded, it had not returned yet), and then the handler is on a
real AA deadlock that the ground truth, which counts a lock held from the OK return, cannot see.
Such an EDEADLK is not reported; a target that marks the step that takes its lock
(``Mark.TAKEN``) is judged exactly instead.
"""

from __future__ import annotations

from .._model._errors import Violation
from .._engine._events import ACQUIRED
from .._model._status import Status
from ._attribution import excused
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
        if a.on_cycle or a.any_cycle or excused(a, self.exceptions):
            return
        if not truth.marked and self._below_may_hold(engine, ctx, obj):
            return
        raise Violation(
            self.name, "no-cycle",
            f"{ctx.name} got EDEADLK on L{obj} (attempt from t={a.start}ns) but no deadlock cycle existed "
            "while it waited, and no declared exception covers it",
            contexts=(ctx.name,), locks=(obj,), time_ns=engine.machine.now, event_index=index,
        )

    @staticmethod
    def _below_may_hold(engine, ctx, lock) -> bool:  # type: ignore[no-untyped-def]
        """Is a context that ``ctx`` interrupted still acquiring ``lock`` (module doc)?"""
        attempts = engine.truth.attempts
        for below in engine.stacks[ctx.cpu]:
            if below is ctx:
                return False
            b = attempts.get(below.index)
            if b is not None and b.lock == lock:
                return True
        return False
