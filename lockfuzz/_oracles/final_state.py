"""Final state: once every line has unwound, a fresh context takes every lock at once.

The engine runs that context (phase ``final``) and then the target's ``check()``; this oracle
judges the fresh context's acquisitions: each must return OK.
"""

from __future__ import annotations

from .._errors import Violation
from .._events import ACQUIRED
from .._status import Status
from ._base import Oracle


class FinalState(Oracle):
    name = "final-state"
    kinds = (ACQUIRED,)
    statuses = (Status.EDEADLK, Status.ETIMEDOUT, Status.EALREADY)

    def observe(self, engine, index, ctx, kind, obj, value) -> None:  # type: ignore[no-untyped-def]
        if kind == ACQUIRED and engine.phase == "final" and value != Status.OK:
            raise Violation(
                self.name, "dirty-lock",
                f"after every program unwound, a fresh acquisition of L{obj} returned {Status(value).name}",
                contexts=(ctx.name,), locks=(obj,), time_ns=engine.machine.now, event_index=index,
            )
