"""Mutual exclusion: at most one context holds a lock, per the target's OK returns and releases
(and, for a target that marks the step that takes a lock, from that step: ``Mark.TAKEN``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import Violation
from .._events import ACQUIRED, MARK, RELEASE
from .._status import Mark, Status
from ._base import Oracle

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from .._engine import Context, Engine


class MutualExclusion(Oracle):
    name = "mutual-exclusion"
    kinds = (ACQUIRED, RELEASE, MARK)

    def start(self, engine: Engine) -> None:
        self.holder: list[Context | None] = [None] * engine.program.n_locks
        self.took: set[int] = set()  # contexts whose attempt in progress marked the lock taken

    def observe(self, engine: Engine, index: int, ctx: Context | None, kind: int, obj: int, value: int) -> None:
        assert ctx is not None  # lock events always have a context
        if kind == RELEASE:
            if self.holder[obj] is ctx:
                self.holder[obj] = None
            return
        if kind == MARK and value != Mark.TAKEN:
            return
        if kind == ACQUIRED:
            took = ctx.index in self.took
            self.took.discard(ctx.index)
            if value != Status.OK:
                return  # a lock it marked taken stays held: a leak, for the final check
            if took and self.holder[obj] is ctx:
                return  # held since the step it marked
        else:
            self.took.add(ctx.index)
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
