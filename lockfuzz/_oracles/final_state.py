"""Final state: once every line has unwound, a fresh context takes every lock at once.

The engine runs that context (phase ``final``) and then the target's ``check()``; this oracle
judges the fresh context's acquisitions: each must return OK. When the schedule cancelled calls
on that lock (the trio driver), the message names them: the likely leak.
"""

from __future__ import annotations

from .._model._errors import Violation
from .._engine._events import ACQUIRED, CANCEL
from .._model._status import Status
from ._base import Oracle


class FinalState(Oracle):
    name = "final-state"
    kinds = (ACQUIRED,)
    statuses = (Status.EDEADLK, Status.ETIMEDOUT, Status.EALREADY)

    def observe(self, engine, index, ctx, kind, obj, value) -> None:  # type: ignore[no-untyped-def]
        if kind == ACQUIRED and engine.phase == "final" and value != Status.OK:
            raise Violation(
                self.name, "dirty-lock",
                f"after every program unwound, a fresh acquisition of L{obj} returned {Status(value).name}"
                + cancelled_calls(engine, obj),
                contexts=(ctx.name,), locks=(obj,), time_ns=engine.machine.now, event_index=index,
            )


def cancelled_calls(engine, lock: int) -> str:  # type: ignore[no-untyped-def]
    """"; cancelled on L<lock>: cpu0.task's release at t=2ns, ..." or "" (cancellation decisions
    of the trio driver, which a target must survive: the likely cause of a lock left held)."""
    names = [c.name for c in engine.contexts]
    calls = [
        f"{names[e[1]]}'s {'release' if e[4] else 'acquire'} at t={e[0]}ns"
        for e in engine.events
        if e[2] == CANCEL and e[3] == lock and e[4] < 2
    ]
    return f"; cancelled on L{lock} before: {', '.join(calls)}" if calls else ""
