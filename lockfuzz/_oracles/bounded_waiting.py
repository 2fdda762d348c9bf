"""Bounded waiting: with timeouts, every acquisition returns in time.

- A target that honours per-call budgets returns by start + budget + slack.
- A target with fixed timeouts never leaves a waiter ``max_quiet_ns`` (+ slack) without the
  lock making progress (an acquisition of it returning, or a release): the kernel's queued
  waiters wait for the holder and for the waiters ahead, each of whom gives up in time.

Time during which the waiter's CPU ran a handler above it is not counted: a waiter cannot time
out while it is not running. Checked at every event and clock jump, so an overrun is reported
where it happens, not only when (or if) the acquisition returns.
"""

from __future__ import annotations

from .._model._errors import Violation
from .._engine._events import ACQUIRED, CLOCK
from ._base import Oracle


class BoundedWaiting(Oracle):
    name = "bounded-waiting"
    kinds: tuple[int, ...] = (ACQUIRED, CLOCK)

    def start(self, engine) -> None:  # type: ignore[no-untyped-def]
        self.timeouts = engine.capabilities.timeouts
        if self.timeouts is None:
            self.kinds = ()  # nothing promised: ETIMEDOUT itself is the etimedout oracle's finding

    def observe(self, engine, index, ctx, kind, obj, value) -> None:  # type: ignore[no-untyped-def]
        t = self.timeouts
        if t is None or engine.phase != "run":
            return
        now = engine.machine.now
        attempts = list(engine.truth.attempts.values())
        returned = engine.truth.returned
        if returned is not None and returned.end == now and kind != CLOCK:
            attempts.append(returned)
        for a in attempts:
            if t.per_call:
                waited, bound, what = a.elapsed_ns(now), a.budget + t.slack_ns, f"its budget of {a.budget} ns"
            else:
                waited, bound, what = a.quiet_ns(now), t.max_quiet_ns + t.slack_ns, (
                    f"the {t.max_quiet_ns} ns the target may wait without the lock making progress"
                )
            if waited > bound:
                raise Violation(
                    self.name, "overrun",
                    f"{a.ctx.name} has waited {waited} ns for L{a.lock}, beyond {what} (+{t.slack_ns} ns slack)",
                    contexts=(a.ctx.name,), locks=(a.lock,), time_ns=now, event_index=index,
                )
