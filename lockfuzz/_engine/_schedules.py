"""What decides a run, and the machine settings it runs under.

A *decision source* answers at each decision point (``Engine`` documents what the options mean).
``Schedule`` is the plain-data one: a list of decisions replayed in order, then the engine's fair
default (shuttle's idea: a schedule is data, a failure is replayed from it). ``Settings`` are the
machine's knobs, saved in failure files beside the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from .._model._errors import InvalidArgument

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from ._run import Engine

__all__ = ["DecisionSource", "Schedule", "Settings"]


class DecisionSource(Protocol):
    """Where decisions come from (a schedule, a random walk, PCT, Hypothesis...).

    ``choose(n, engine)`` is called at each decision point with ``n >= 2`` options and returns
    an int in ``[0, n)`` (larger values are taken modulo ``n``) or ``None`` when the source has
    no more decisions, after which the engine's fair default decides. ``engine.options()``
    describes the options, for sources that care which is which (PCT does).
    """

    def choose(self, n: int, engine: Engine) -> int | None: ...  # pragma: no cover


class Schedule:
    """A decision source that replays a list of decisions, then lets the fair default run."""

    __slots__ = ("decisions", "position")

    def __init__(self, decisions: Sequence[int] = ()) -> None:
        self.decisions = list(decisions)
        for d in self.decisions:
            if not isinstance(d, int) or d < 0:
                raise InvalidArgument(f"schedule decision {d!r}: expected an int >= 0")
        self.position = 0

    def choose(self, n: int, engine: Engine) -> int | None:
        i = self.position
        if i < len(self.decisions):
            self.position = i + 1
            return self.decisions[i]
        return None


@dataclass(frozen=True)
class Settings:
    """Machine settings of a run (saved in failure files)."""

    step_ns: int = 1
    max_steps: int = 500_000
    fair_slice: int = 64
    final_check: bool = True
    final_budget_ns: int = 10_000_000_000
    #: Cancellation decisions (the trio driver only): at each of trio's checkpoints inside a
    #: target's ``acquire`` or ``release``, the schedule may cancel the call's scope, as a
    #: nursery being cancelled would. Failure files written before these decisions existed
    #: have no ``cancels`` key and replay with it off (``from_json``).
    cancels: bool = True

    def __post_init__(self) -> None:
        for name in ("step_ns", "max_steps", "fair_slice", "final_budget_ns"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (0 if name == "step_ns" else 1):
                raise InvalidArgument(f"{name}={v!r}: expected an int >= {0 if name == 'step_ns' else 1}")
        if not isinstance(self.cancels, bool):
            raise InvalidArgument(f"cancels={self.cancels!r}: expected True or False")

    def to_json(self) -> dict[str, Any]:
        keys = ("step_ns", "max_steps", "fair_slice", "final_check", "final_budget_ns", "cancels")
        return {k: getattr(self, k) for k in keys}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        return cls(**{"cancels": False, **data})  # older files: no cancellation decisions


_DEFAULT_SETTINGS = Settings()
