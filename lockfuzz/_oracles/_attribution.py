"""Shared by the EDEADLK oracles: whether a declared exception covers an EDEADLK."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from ._truth import Attempt


def excused(attempt: Attempt, exceptions: frozenset[str]) -> str | None:
    """The name of the declared exception that covers this EDEADLK, or None."""
    if "held-table-view" in exceptions and attempt.table_view:
        return "held-table-view"
    if "nested-trylock-fallback" in exceptions and attempt.fallback and attempt.contended:
        return "nested-trylock-fallback"
    if "age-backoff" in exceptions and attempt.holding and attempt.contended:
        return "age-backoff"
    return None
