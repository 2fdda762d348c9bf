"""Mutual exclusion: at most one context holds a lock, per the target's OK returns and releases."""

from __future__ import annotations

from .._errors import Violation
from .._events import ACQUIRED, RELEASE
from .._status import Status
from ._base import Oracle


class MutualExclusion(Oracle):
    name = "mutual-exclusion"
    kinds = (ACQUIRED, RELEASE)
    statuses = (Status.OK,)

    def start(self, engine) -> None:  # type: ignore[no-untyped-def]
        self.holder = [None] * engine.program.n_locks

    def observe(self, engine, index, ctx, kind, obj, value) -> None:  # type: ignore[no-untyped-def]
        if kind == ACQUIRED and value == Status.OK:
            # engine.truth has already recorded ctx as the holder; compare with our own copy,
            # which still has the holder from before this event.
            prev = self.holder[obj]
            if prev is not None:
                kind_ = "recursive" if prev is ctx else "two-holders"
                raise Violation(
                    self.name, kind_,
                    f"{ctx.name} acquired L{obj} while {prev.name} holds it",
                    contexts=(prev.name, ctx.name), locks=(obj,), time_ns=engine.machine.now, event_index=index,
                )
            self.holder[obj] = ctx
        elif kind == RELEASE:
            if self.holder[obj] is ctx:
                self.holder[obj] = None
