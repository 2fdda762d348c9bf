"""The two pieces of Hypothesis's private machinery lockfuzz touches, and why.

Since 6.131, Hypothesis sometimes draws a "local constant": a literal found in the source of
any module under the current directory that happens to be imported (``hypothesis.internal.
conjecture.providers._get_local_constants``). Which modules are imported changes from process to
process (the tests that ran before, the targets a user imported), and their parsing is cut off
after 100 ms of real time, so the same campaign, with the same seed, drew different programs in
different processes: a test suite found a mutant when run alone and missed it after other tests
had imported more modules. lockfuzz's promise is the opposite: the same inputs give the same
runs, in any process, on any machine (DESIGN.md, "Search and shrinking").

So, while a campaign runs Hypothesis, ``stable_draws`` makes the local constants empty and gives
Hypothesis a cache of constants of its own (its global cache may hold entries computed with the
real local constants). Only Hypothesis's built-in constants remain, which are the same
everywhere. On Hypothesis versions without the feature it does nothing. What it relies on:
``providers._get_local_constants`` (a function of no required argument returning a
``Constants``), ``providers.CONSTANTS_CACHE`` (an ``LRUCache``) and
``constants_ast.Constants()``; if any is missing or changed, it does nothing and the campaign
is only as deterministic as Hypothesis makes it (tests/fast/test_search.py would show it).

The second pin is in the shrinker. Its ``pass_to_descendant`` pass tries the labels of the shrink
target's spans in the order of ``str(label)`` (``Shrinker.distinct_labels``). A strategy's label
is a number Hypothesis computes from ``hash()`` of its callable's key or its elements
(``conjecture.utils.calc_label_from_hash``): strings hash differently in every process
(``PYTHONHASHSEED``), and a key that holds a nested code object's repr holds its address. So the
same failing example shrank along different paths in different processes: a ``lost_wakeup``
campaign (1,500 runs, seed 0) ran other programs from its 1,050th run on in about one process of
two. While a campaign runs, ``distinct_labels`` lists the labels in the order their first span
comes in the shrink target instead: a function of the example alone. What it relies on:
``Shrinker.spans_by_label`` (a dict, built in span order) being read through
``distinct_labels``; if either is missing, the shrinker is left as it is.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

__all__ = ["stable_draws"]

_lock = threading.Lock()
_depth = 0
_saved: tuple[Any, Any] | None = None
_saved_labels: Any = None


def _shrinker() -> Any:
    try:
        from hypothesis.internal.conjecture.shrinker import Shrinker
    except ImportError:  # pragma: no cover - Hypothesis moved its shrinker
        return None
    needed = isinstance(Shrinker.__dict__.get("distinct_labels"), property) and isinstance(
        getattr(Shrinker, "spans_by_label", None), property
    )
    return Shrinker if needed else None


def _labels_in_span_order(shrinker: Any) -> list[int]:
    """``Shrinker.distinct_labels`` while pinned: each label once, in the order of its first span
    in the shrink target (``spans_by_label`` is built in span order); never ordered by value."""
    return list(shrinker.spans_by_label)


def _providers() -> tuple[Any, Any, Any] | None:
    try:
        from hypothesis.internal import cache, constants_ast
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - a Hypothesis older than local constants
        return None
    needed = (
        callable(getattr(providers, "_get_local_constants", None))
        and hasattr(providers, "CONSTANTS_CACHE")
        and hasattr(constants_ast, "Constants")
        and hasattr(cache, "LRUCache")
    )
    return (providers, constants_ast.Constants, cache.LRUCache) if needed else None


@contextlib.contextmanager
def stable_draws() -> Iterator[None]:
    """While the block runs: no local constants in Hypothesis's draws, and its shrinker tries
    labels in span order, not by value (module doc)."""
    global _depth, _saved, _saved_labels
    found = _providers()
    shrinker = _shrinker()
    with _lock:
        if _depth == 0:
            if found is not None:
                providers, constants, lru = found
                empty = constants()
                _saved = (providers._get_local_constants, providers.CONSTANTS_CACHE)
                providers._get_local_constants = lambda *args, **kwargs: empty
                providers.CONSTANTS_CACHE = lru(1024)
            if shrinker is not None:
                _saved_labels = shrinker.__dict__["distinct_labels"]
                shrinker.distinct_labels = property(_labels_in_span_order)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                if found is not None and _saved is not None:
                    providers, _, _ = found
                    providers._get_local_constants, providers.CONSTANTS_CACHE = _saved
                    _saved = None
                if shrinker is not None and _saved_labels is not None:
                    shrinker.distinct_labels = _saved_labels
                    _saved_labels = None
