"""Bounded waiting: with timeouts, every acquisition returns in time.

- A target that honours per-call budgets returns by start + budget + slack.
- A target with fixed timeouts never leaves a waiter ``max_quiet_ns`` (+ slack) of the lock's
  own time (``Attempt.quiet_ns``: the clock's jumps, not the steps) without the lock making
  progress (an acquisition of it returning, or a release): the kernel's queued waiters wait for
  the holder and for the waiters ahead, each of whom gives up in time.
- A target that declares ``Timeouts.way_out_ns`` returns no more than that of the lock's own
  time after its ``EXPIRED`` or ``TOLD`` mark (``Attempt.out_ns``): ``way-out``.

- A target that wakes its waiters (``Timeouts.wakes_waiters``) does not let one sleep through a
  free lock until its time is up and then take it (``lost-wake-up``): an acquisition that returns
  OK only after its budget (per-call) or the shortest fixed timeout ran out, having slept through
  a free lock for more than ``grace_ns``, the stretch that makes an ETIMEDOUT undeserved
  (``etimedout``). Such a waiter, which took the lock within the slack, was judged by nobody (a
  newcomer's lock that re-read its wake-up counter too late). Only past its time: a lock may
  sleep on purpose inside ``acquire`` (a pause, a back-off), and an OK within the budget is no
  lost wake-up the caller sees.

- A target that marks its timeout clock (``Mark.ARMED``, ``Mark.EXPIRED``) and declares
  ``Timeouts.late_ns`` finds it expired no more than that late, in the waiter's own time (asleep
  in timed waits past the clock's end, and the poll it takes on waking), and at the step where
  it first reads a time past the end (``Context.now``): ``late``.

Time during which the waiter's CPU ran a handler above it is not counted: a waiter cannot time
out while it is not running. Checked where it can first happen, so an overrun is reported where
it happens, not only when (or if) the acquisition returns: a per-call budget at every return and
clock jump; quiet time and the way out, which are the lock's own time, at every clock jump (the
only events where they grow: between two jumps the handler time they subtract can only grow).
"""

from __future__ import annotations

from .._model._errors import Violation
from .._engine._events import ACQUIRED, CLOCK, MARK
from .._model._status import Mark, Status
from ._base import Oracle
from .etimedout import grace_advice


class BoundedWaiting(Oracle):
    name = "bounded-waiting"
    kinds: tuple[int, ...] = (ACQUIRED, CLOCK)

    def start(self, engine) -> None:  # type: ignore[no-untyped-def]
        self.timeouts = engine.capabilities.timeouts
        if self.timeouts is None:
            self.kinds = ()  # nothing promised: ETIMEDOUT itself is the etimedout oracle's finding
        elif self.timeouts.late_ns is not None:
            self.kinds = (ACQUIRED, CLOCK, MARK)  # a marked timeout clock: how late it was found expired
        elif not self.timeouts.per_call:
            # The lock's own time alone (it passes only at clock jumps), and the returns, for a
            # lost wake-up.
            self.kinds = (ACQUIRED, CLOCK) if self.timeouts.wakes_waiters else (CLOCK,)

    def observe(self, engine, index, ctx, kind, obj, value) -> None:  # type: ignore[no-untyped-def]
        t = self.timeouts
        if t is None or engine.phase != "run":
            return
        if kind == MARK:  # only with a marked clock (``start``): of the marks, EXPIRED is judged
            if value == Mark.EXPIRED:
                self._late(engine, index, ctx, kind, obj, value)
            return
        if t.late_ns is not None and kind != CLOCK:
            self._late(engine, index, ctx, kind, obj, value)
        if kind == ACQUIRED and value == Status.OK and t.wakes_waiters:
            self._slept_through(engine, index, ctx, obj)
        if not t.per_call and kind != CLOCK:
            # Fixed timeouts are judged on the lock's own time (quiet time, the way out), which
            # passes only when the clock jumps: between two CLOCK events it can only shrink (the
            # handler time it subtracts grows; progress restarts it). So the CLOCK events say all.
            return
        now = engine.machine.now
        truth = engine.truth
        returned = truth.returned
        if returned is not None and returned.end == now and kind != CLOCK:
            attempts = [*truth.attempts.values(), returned]
        elif truth.attempts:
            attempts = truth.attempts.values()
        else:
            return  # nobody waits (most events)
        for a in attempts:
            if t.per_call:
                waited, bound = a.elapsed_ns(now), a.budget + t.slack_ns
            else:
                waited, bound = a.quiet_ns(now), t.max_quiet_ns + t.slack_ns
            if waited > bound:
                what = (
                    f"its budget of {a.budget} ns" if t.per_call
                    else f"the {t.max_quiet_ns} ns the target may wait without the lock making progress"
                )
                raise Violation(
                    self.name, "overrun",
                    f"{a.ctx.name} has waited {waited} ns for L{a.lock}, beyond {what} (+{t.slack_ns} ns slack)"
                    + ("" if t.per_call else " (the lock's own time: while no context could run)"),
                    contexts=(a.ctx.name,), locks=(a.lock,), time_ns=now, event_index=index,
                    details={"waited_ns": waited},
                )
            if t.way_out_ns is not None and a.out_at >= 0:
                out = a.out_ns(now)
                if out > t.way_out_ns:
                    how = (
                        f"found its timeout on L{a.lock} expired" if a.expired >= 0
                        else f"was told to leave L{a.lock}"
                    )
                    raise Violation(
                        self.name, "way-out",
                        f"{a.ctx.name} {how} at {a.out_at} ns, then spent {out} ns of the lock's own "
                        f"time (while no context could run) before it returned; the target declares at most "
                        f"{t.way_out_ns} ns (Timeouts.way_out_ns)",
                        contexts=(a.ctx.name,), locks=(a.lock,), time_ns=now, event_index=index,
                        details={"way_out_ns": out},
                    )

    def _slept_through(self, engine, index, ctx, obj) -> None:  # type: ignore[no-untyped-def]
        """An acquisition returned OK after its time ran out: it did not sleep through a free lock
        for more than the grace first (``Attempt.free_ns``, in stretches, as ``etimedout`` judges
        an ETIMEDOUT)."""
        a = engine.truth.returned
        t = self.timeouts
        now = engine.machine.now
        need = a.budget if t.per_call else t.min_ns
        if now - a.start < need:
            return  # within its time: a pause it made on purpose is the lock's business
        free = a.free_ns(now)
        if free > t.grace_ns:
            time = f"its budget of {a.budget} ns" if t.per_call else f"the shortest timeout, {t.min_ns} ns,"
            raise Violation(
                self.name, "lost-wake-up",
                f"{ctx.name} got L{obj} only after {time} ran out, and L{obj} sat free for {free} ns of it while "
                f"{ctx.name} slept and no other acquisition of it was on its way to the lock: a lost wake-up that "
                f"the late OK hides (an undeserved ETIMEDOUT had it given up; {grace_advice(t)})",
                contexts=(ctx.name,), locks=(obj,), time_ns=engine.machine.now, event_index=index,
                details={"free_ns": free},
            )

    def _late(self, engine, index, ctx, kind, obj, value) -> None:  # type: ignore[no-untyped-def]
        """``Timeouts.late_ns``: at its ``EXPIRED`` mark, or when it returns without one, an attempt
        with a marked timeout clock was no later than declared past the clock's end, in its own
        time (``Context.late``, which the engine adds to when a wait ends: ``Context.end_wait``)."""
        if kind == MARK:
            if value != Mark.EXPIRED:
                return
            a = engine.truth.attempts[ctx.index]
        else:
            a = engine.truth.returned
            if a is None or a.ctx is not ctx or a.armed < 0 or a.expired >= 0:
                return  # no clock marked, or judged at its EXPIRED mark
        if kind == MARK and 0 <= ctx.looked < ctx.steps:
            raise Violation(
                self.name, "late",
                f"{ctx.name} read the time past the end of its timeout on L{a.lock} (armed at {a.armed} ns for "
                f"{a.armed_ns} ns: {a.armed + a.armed_ns} ns) and went on; it found it expired "
                f"{ctx.steps - ctx.looked} step(s) later. A check that reads a time past its clock's end gives up "
                "at that step (Timeouts.late_ns)",
                contexts=(ctx.name,), locks=(a.lock,), time_ns=engine.machine.now, event_index=index,
                details={"late_steps": ctx.steps - ctx.looked},
            )
        late = ctx.late
        if late > self.timeouts.late_ns:
            end = a.armed + a.armed_ns
            raise Violation(
                self.name, "late",
                f"{ctx.name} was {late} ns of its own time past the end of its timeout on L{a.lock} (armed at "
                f"{a.armed} ns for {a.armed_ns} ns: {end} ns) before it "
                + ("found it expired" if kind == MARK else "returned")
                + f"; the target declares at most {self.timeouts.late_ns} ns (Timeouts.late_ns). Own time: asleep "
                "in timed waits and the poll on waking, not time runnable but unscheduled or under a handler",
                contexts=(ctx.name,), locks=(a.lock,), time_ns=engine.machine.now, event_index=index,
                details={"late_ns": late},
            )
