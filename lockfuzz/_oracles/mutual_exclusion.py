"""Mutual exclusion: at most one context holds a lock, per the target's OK returns and releases
(and, for a target that marks the step that takes a lock, from that step: ``Mark.TAKEN``).

For a lock with shared holders (``Capabilities.sharing``): no exclusive holder beside any other
holder, and at most ``capacity`` holders at once. The signatures:

- ``two-holders``: two contexts hold the lock exclusively at once;
- ``recursive``: a context took exclusively a lock it already held exclusively;
- ``writer-beside-reader``: an exclusive holder and a shared one at once (either came second;
  the same context in both modes included: an upgrade the lock let through);
- ``over-capacity``: more shared holders than the declared ``capacity`` (a semaphore that hands
  out one permit too many).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._model._errors import Violation
from .._engine._events import ACQUIRED, MARK, RELEASE
from .._model._status import Mark, Status
from ._base import Oracle

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from .._engine._run import Context, Engine


class MutualExclusion(Oracle):
    name = "mutual-exclusion"
    kinds = (ACQUIRED, RELEASE, MARK)

    def start(self, engine: Engine) -> None:
        n = engine.program.n_locks
        self.holder: list[Context | None] = [None] * n
        # Our own copy of the shared holders, as for ``holder``: the ground truth has already
        # taken in the event this oracle judges.
        self.sharers: list[list[Context]] = [[] for _ in range(n)]
        self.took: set[int] = set()  # contexts whose attempt in progress marked the lock taken
        #: Each lock's capacity, as the ground truth (started before the oracles) reads it.
        self.capacity = engine.truth.capacity

    def observe(self, engine: Engine, index: int, ctx: Context | None, kind: int, obj: int, value: int) -> None:
        assert ctx is not None  # lock events always have a context
        if kind == RELEASE:
            if value:  # a shared release
                sharers = self.sharers[obj]
                for i in range(len(sharers) - 1, -1, -1):
                    if sharers[i] is ctx:
                        del sharers[i]
                        break
            elif self.holder[obj] is ctx:
                self.holder[obj] = None
            return
        if kind == MARK and value != Mark.TAKEN:
            return
        attempt = engine.truth.attempts.get(ctx.index) if kind == MARK else engine.truth.returned
        shared = attempt is not None and attempt.shared
        if kind == ACQUIRED:
            took = ctx.index in self.took
            self.took.discard(ctx.index)
            if value != Status.OK:
                return  # a lock it marked taken stays held: a leak, for the final check
            if took and (ctx in self.sharers[obj] if shared else self.holder[obj] is ctx):
                return  # held since the step it marked
        else:
            self.took.add(ctx.index)
        if shared:
            self._shared(engine, index, ctx, obj)
            return
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
        if self.sharers[obj]:
            readers = self.sharers[obj]
            raise Violation(
                self.name, "writer-beside-reader",
                f"{ctx.name} acquired L{obj} exclusively while {_names(readers)} "
                f"{'holds' if len(readers) == 1 else 'hold'} it shared",
                contexts=(*_unique(readers), ctx.name), locks=(obj,), time_ns=engine.machine.now,
                event_index=index,
            )
        self.holder[obj] = ctx

    def _shared(self, engine: Engine, index: int, ctx: Context, obj: int) -> None:
        prev = self.holder[obj]
        if prev is not None:
            raise Violation(
                self.name, "writer-beside-reader",
                f"{ctx.name} acquired L{obj} shared while {prev.name} holds it exclusively",
                contexts=(prev.name, ctx.name), locks=(obj,), time_ns=engine.machine.now, event_index=index,
            )
        sharers = self.sharers[obj]
        sharers.append(ctx)
        capacity = self.capacity[obj]
        if capacity is not None and len(sharers) > capacity:
            raise Violation(
                self.name, "over-capacity",
                f"{ctx.name} acquired L{obj} shared as its holder number {len(sharers)}; L{obj} admits "
                f"at most {capacity} (holders: {_names(sharers)})",
                contexts=_unique(sharers), locks=(obj,), time_ns=engine.machine.now, event_index=index,
                details={"holders": len(sharers), "capacity": capacity},
            )


def _unique(contexts: list[Context]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c.name for c in contexts))


def _names(contexts: list[Context]) -> str:
    return ", ".join(c.name for c in contexts)
