"""ETIMEDOUT attribution: a timeout must be deserved, as sharply as an EDEADLK.

Not early: the attempt lasted at least its budget (per-call budgets) or the target's shortest
fixed timeout; or, where the target declares it, it gave up early because another attempt on
the same lock timed out meanwhile or had itself waited that long, or it joined behind a waiter
that was leaving (a queue torn down by its timed-out head, waiter by waiter). A target without
timeouts must never return ETIMEDOUT. A target that marks its timeout clock (``Mark.ARMED``,
``Mark.EXPIRED``) is judged to the step: the check that found it expired came at least the armed
duration after the arming (``Timeouts.min_ns``, ``head_min_ns``), with no exemption.

Not undeserved: for its budget (less the declared ``grace_ns``) the lock was not available to
that waiter. Time counts against the lock (``Attempt.free_ns``) while nobody held or released
it, the waiter slept (blocked: not merely preempted, not held up by its own CPU's handlers),
no other waiter was on its way to the lock (running, or interrupted), and nobody the lock's
declared order puts first still waited. A timeout after more of that than the grace is a lost
wake-up: the report says how long the lock sat free, and names the other waiters still asleep on
the lock (the wake-up lost may be theirs: a lock handed to a waiter that never woke); a target
that promises no wake-up says ``Timeouts(wakes_waiters=False)``.
"""

from __future__ import annotations

from typing import Any

from .._model._errors import Violation
from .._engine._events import ACQUIRED
from .._model._status import Status
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
        if a.expired >= 0 and a.expired - a.armed < a.armed_ns:
            # Its own clock, marked: exact, with no grace and no early leaving (it was not told).
            raise Violation(
                self.name, "early",
                f"{ctx.name} found its timeout on L{obj} expired {a.expired - a.armed} ns after arming it "
                f"(at {a.armed} ns); the target declares that it gives up no sooner than {a.armed_ns} ns after "
                "arming (Timeouts.min_ns, head_min_ns; per-call: the budget)",
                contexts=(ctx.name,), locks=(obj,), time_ns=now, event_index=index,
                details={"armed_ns": a.armed_ns, "expired_after_ns": a.expired - a.armed},
            )
        need = a.budget if t.per_call else t.min_ns
        if lasted < need and not (
            t.early_when_another_times_out
            and (a.other_timed_out or a.teardown or any(now - b.start >= need for b in engine.truth.on_lock[obj]))
        ):
            raise Violation(
                self.name, "early",
                f"{ctx.name} got ETIMEDOUT on L{obj} after {lasted} ns; a timeout needs {need} ns",
                contexts=(ctx.name,), locks=(obj,), time_ns=now, event_index=index,
            )
        free = a.free_ns(now)  # closed at its budget's end by the ground truth
        if t.wakes_waiters and free > t.grace_ns:
            window = f"of its {a.budget} ns budget" if t.per_call else f"of the {lasted} ns it waited"
            # Other waiters asleep beside it: the lost wake-up may be theirs (a lock handed to one
            # of them that never woke), which the events alone cannot tell apart from its own.
            others = [b.ctx.name for b in engine.truth.on_lock[obj] if b is not a]
            beside = (
                f" (still waiting for L{obj} too, and asleep whenever it counted: {', '.join(others)}; the "
                "wake-up lost may be theirs)" if others else ""
            )
            raise Violation(
                self.name, "undeserved",
                f"{ctx.name} got ETIMEDOUT on L{obj}, but L{obj} sat free for {free} ns {window} while "
                f"{ctx.name} slept and no other acquisition of it was on its way to the lock{beside}: a lost "
                f"wake-up ({grace_advice(t)})",
                contexts=(ctx.name,), locks=(obj,), time_ns=now, event_index=index,
                details={"free_ns": free},
            )


def grace_advice(timeouts: Any) -> str:
    """What a lost-wake-up report says of the grace (here and ``bounded_waiting``'s)."""
    return (
        f"the target declares a grace of {timeouts.grace_ns} ns; a lock that polls or backs off by sleeping "
        "declares its longest sleep as Timeouts(grace_ns=...)"
    )
