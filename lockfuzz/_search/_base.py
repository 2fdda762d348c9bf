"""The search-strategy protocol.

A search strategy proposes schedules for one program. ``search(program, seed)`` is a
generator: it yields a decision source for the next run, and receives that run's ``RunResult``
back through ``send`` before it yields the next one, so that adaptive strategies (exhaustive
search, PCT's estimate of the run length) learn from each run. It never ends on its own unless
it has exhausted its space (the exhaustive search); the campaign decides how many runs to make.

Everything a strategy does follows from ``seed``: the same program and seed give the same
schedules in any process (``derive_seed`` hashes with SHA-256, never ``hash()``).
"""

from __future__ import annotations

import hashlib
from typing import Any, Generator

from .._engine._run import DecisionSource, RunResult
from .._model._program import Program

Search = Generator[DecisionSource, RunResult, None]

#: Cancellation decisions (the trio driver's ``Settings.cancels``) come last among a decision
#: point's options, one per context that may be cancelled (``engine._cancelable``). A random
#: source that lands on one keeps it with this probability, else chooses among the other
#: options: every checkpoint can still be cancelled, but most runs are not cut short by a
#: cancellation at their first checkpoint (a context whose call is cancelled ends its line).
CANCEL_KEEP = 1 / 8


def cancel_options(engine: Any) -> int:
    """How many of the options at ``engine``'s decision point are cancellations (the last ones)."""
    return len(getattr(engine, "_cancelable", ()))


def derive_seed(*parts: Any) -> int:
    """A 64-bit seed from any reprs, the same in every process."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big")


class SearchStrategy:
    """Base class: subclasses set ``name`` and implement ``search``."""

    name = "strategy"

    def search(self, program: Program, seed: int) -> Search:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    def describe(self) -> str:
        return self.name
