"""Ownership: only the holder releases. A release of an unheld lock is the *program's* error."""

from __future__ import annotations

from .._model._errors import ProgramError
from .._engine._events import RELEASE
from ._base import Oracle


class Ownership(Oracle):
    name = "ownership"
    kinds = (RELEASE,)

    def observe(self, engine, index, ctx, kind, obj, value) -> None:  # type: ignore[no-untyped-def]
        if kind == RELEASE:
            holder = engine.truth.released_holder
            if holder is not ctx:
                who = holder.name if holder is not None else "nobody"
                raise ProgramError(
                    f"{ctx.name} releases L{obj}, held by {who} (event #{index}, t={engine.machine.now}ns): "
                    "only the holder may release a lock"
                )
