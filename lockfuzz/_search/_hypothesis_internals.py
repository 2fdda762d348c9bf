"""The one piece of Hypothesis's private machinery lockfuzz touches, and why.

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
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

__all__ = ["stable_draws"]

_lock = threading.Lock()
_depth = 0
_saved: tuple[Any, Any] | None = None


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
    """No local constants in Hypothesis's draws while the block runs (module doc)."""
    global _depth, _saved
    found = _providers()
    if found is None:  # pragma: no cover - nothing to pin on this Hypothesis
        yield
        return
    providers, constants, lru = found
    with _lock:
        if _depth == 0:
            empty = constants()
            _saved = (providers._get_local_constants, providers.CONSTANTS_CACHE)
            providers._get_local_constants = lambda *args, **kwargs: empty
            providers.CONSTANTS_CACHE = lru(1024)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                providers._get_local_constants, providers.CONSTANTS_CACHE = _saved
                _saved = None
