"""The oracle protocol: a property checked online, event by event.

``observe`` is called for every non-step event, after the ground truth (``engine.truth``) has
taken it in; it raises ``Violation`` (or ``ProgramError`` for a misuse) on a breach. Steps are
not shown to oracles: they change no ground truth, and the hot loop stays lean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from .._engine._run import Context, Engine


class Oracle:
    name = "oracle"
    #: The event kinds ``observe`` wants (an oracle may narrow them in ``start``).
    kinds: tuple[int, ...] = ()
    #: For ACQUIRED events, the statuses it wants (None: all): most oracles judge one status, and
    #: ACQUIRED is the most frequent event.
    statuses: tuple[int, ...] | None = None
    features: dict[str, Any] | None = None

    def start(self, engine: Engine) -> None:
        """A run begins (the target exists; no context has run)."""

    def observe(self, engine: Engine, index: int, ctx: Context | None, kind: int, obj: int, value: int) -> None:
        """A non-step event of one of ``kinds`` was appended at ``index``."""

    def finish(self, engine: Engine) -> None:
        """Every line has ended (before the final-state check)."""
