"""Livelock: the run exceeds its step limit; the report shows the last events."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._model._errors import Violation
from .._engine._events import event_text

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from .._engine._run import Engine


def livelock_violation(engine: Engine) -> Violation:
    names = [c.name for c in engine.contexts]
    cells = [c.name for c in engine.machine.cells]
    last = [f"{names[e[1]] if e[1] >= 0 else '-'}: {event_text(e, names, cells)}" for e in engine.events[-8:]]
    oracle = "final-state" if engine.phase == "final" else "livelock"
    running = tuple(sorted({c.name for s in engine.stacks for c in s}))
    return Violation(
        oracle, "step-limit",
        f"no end after {engine.settings.max_steps} steps; last events: " + " | ".join(last),
        contexts=running, time_ns=engine.machine.now,
    )
