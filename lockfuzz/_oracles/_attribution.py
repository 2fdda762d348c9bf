"""Shared by the EDEADLK oracles: whether a declared exception covers an EDEADLK, and whether the
ground truth could have missed the cycle the lock found.

The ground truth counts a lock held from the OK return, or from the step the target marks
``Mark.TAKEN``. For a target that marks nothing it cannot tell whether an acquisition still in
progress has taken its lock (its compare-and-swap succeeded, it has not returned). That matters
when the acquisition is interrupted: it cannot return until the handler does, and a handler that
waits for that lock, or for a context that waits for it, is on a real deadlock the ground truth
cannot see. So for such a target an EDEADLK that would be on a cycle if every interrupted
acquisition had taken its lock is not reported (``maybe_taken``). A target that marks the step
that takes its lock is judged exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _graph

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from ._truth import Attempt, GroundTruth


def excused(attempt: Attempt, exceptions: frozenset[str]) -> str | None:
    """The name of the declared exception that covers this EDEADLK, or None."""
    if "held-table-view" in exceptions and attempt.table_view:
        return "held-table-view"
    if "nested-trylock-fallback" in exceptions and attempt.fallback and attempt.contended:
        return "nested-trylock-fallback"
    if "age-backoff" in exceptions and attempt.holding and attempt.contended:
        return "age-backoff"
    return None


def maybe_taken(truth: GroundTruth, attempt: Attempt) -> bool:
    """For a target that marks nothing: would this EDEADLK be on a cycle had every interrupted
    acquisition taken its lock (module doc)?"""
    return not truth.marked and _graph.on_cycle_if_taken(truth, attempt)


def maybe_a_cycle(truth: GroundTruth) -> bool:
    """For a target that marks nothing: might a cycle exist now, somewhere, if every interrupted
    acquisition had taken its lock? Then an EDEADLK off it is a bystander's (module doc)."""
    return not truth.marked and _graph.cycle_if_taken(truth)
