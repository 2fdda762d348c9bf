"""Search strategies, one per module, behind one protocol (``_base.SearchStrategy``)."""

from __future__ import annotations

from typing import Any

from .._model._errors import InvalidArgument
from ._base import Search, SearchStrategy, derive_seed
from .exhaustive import ExhaustiveSearch, bounded_schedules
from .hypothesis_decisions import HypothesisSearch
from .pct import PctSearch
from .random_walk import RandomWalk, RandomWalkSearch
from .swarm import SwarmSearch

__all__ = [
    "DEFAULT_STRATEGY", "ExhaustiveSearch", "HypothesisSearch", "PctSearch", "RandomWalk", "RandomWalkSearch", "Search",
    "SearchStrategy", "SwarmSearch", "bounded_schedules", "derive_seed", "get_strategy", "STRATEGIES",
]  # fmt: skip

STRATEGIES: dict[str, Any] = {
    "swarm": SwarmSearch,
    "random": RandomWalkSearch,
    "pct": PctSearch,
    "exhaustive": ExhaustiveSearch,
    "hypothesis": HypothesisSearch,
}
DEFAULT_STRATEGY = "swarm"


def get_strategy(name: str | SearchStrategy) -> SearchStrategy:
    """A strategy instance from its name (``swarm``, ``random``, ``pct``, ``exhaustive``,
    ``hypothesis``)."""
    if isinstance(name, SearchStrategy):
        return name
    try:
        return STRATEGIES[name]()  # type: ignore[no-any-return]
    except KeyError:
        raise InvalidArgument(f"strategy={name!r}: expected one of {', '.join(STRATEGIES)}") from None
