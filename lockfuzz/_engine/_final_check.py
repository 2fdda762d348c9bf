"""The final check: once every line has unwound, a fresh context takes every lock at once.

A lock left held (a release that did not release, a permit not given back, a reader left
counted) is invisible to the oracles while nobody else wants it; the fresh context wants every
lock, in each mode the target declares, so the leak shows as an acquisition that does not return
OK (the final-state oracle) or as a hang. Then the target's own ``check()`` runs. Also here:
``check_modes``, the refusal, before any context runs, of a program the target cannot take.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .._model._errors import InvalidArgument, Violation
from .._model._program import Lock, OnError, Program, Unlock
from .._model._status import Level
from . import _watchdog
from ._events import FINAL
from ._interpreter import PASS_THROUGH

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from ._run import Engine

__all__ = ["check_modes", "final_check"]


def final_check(engine: Engine) -> None:
    """A fresh context takes every lock at once; then the target's own invariants."""
    engine.phase = "final"
    engine.log(None, FINAL, 0, 0)
    sharing = getattr(engine.capabilities, "sharing", None)
    modes = sharing.modes if sharing is not None else ("exclusive",)
    ops = _final_ops(engine.program.n_locks, engine.settings.final_budget_ns, tuple(modes))
    engine._push(engine._new_context(0, Level.TASK, -1, ops, _NO_RETRY))
    engine.cur = None
    engine.run_len = 0
    engine._loop()
    try:
        problems = list(engine.target.check() or ())
    except PASS_THROUGH:
        raise
    except BaseException as exc:  # noqa: BLE001 - SystemExit included: the target's fault
        if isinstance(exc, _watchdog.NoYield):
            raise no_yield("check()", exc) from exc
        name = type(exc).__name__
        raise Violation("target-fault", f"raised-{name}", f"check() raised {name}: {exc}") from exc
    if problems:
        raise Violation("final-state", "invariant", "after every program unwound: " + "; ".join(map(str, problems)))


#: The final context stops at its first error (no retry).
_NO_RETRY = OnError()


@lru_cache(maxsize=256)
def _final_ops(n_locks: int, budget: int, modes: tuple[str, ...]) -> tuple[Any, ...]:
    """The final context's line: every lock exclusively, then (a lock with shared holders) every
    lock shared, so that a reader left counted, a permit not given back, shows in the mode it
    breaks. Cached: every run ends with it, and operations are frozen values."""
    ops: tuple[Any, ...] = ()
    for shared in (False, True):
        if ("shared" if shared else "exclusive") not in modes:
            continue
        ops += tuple(Lock(i, budget, shared=shared) for i in range(n_locks)) + tuple(
            Unlock(i) for i in reversed(range(n_locks))
        )
    return ops


def no_yield(where: str, exc: BaseException) -> Violation:
    return Violation("target-fault", "no-yield", f"{where}: {exc}")


def check_modes(program: Program, capabilities: Any, name: str) -> None:
    """Refuse, before any context runs, a program that asks for a mode the target does not
    declare (``Capabilities.sharing``): its acquisitions would call ``acquire`` with a keyword
    the target never promised to take, and every verdict would be about the wrong lock."""
    sharing = getattr(capabilities, "sharing", None)
    if program.capacities:
        _check_capacities(program.capacities, sharing, name)
    modes = sharing.modes if sharing is not None else ("exclusive",)
    if program.modes.issubset(modes):
        return  # every run checks this: a cached set, not a walk over the program's operations
    for mode, shared in (("shared", True), ("exclusive", False)):
        if mode in modes:
            continue
        where = program.first_lock(shared)
        if where is not None:
            declared = (
                "declares no sharing (Capabilities.sharing is None): it takes exclusive acquisitions only"
                if sharing is None
                else f"declares Sharing(exclusive={sharing.exclusive}): it takes {' and '.join(modes)} "
                "acquisitions only"
            )
            article = "an" if mode == "exclusive" else "a"
            raise InvalidArgument(
                f"the program asks for {article} {mode} acquisition at {where}, but {name} {declared}"
            )


def _check_capacities(capacities: tuple[int, ...], sharing: Any, name: str) -> None:
    """Refuse capacities the target is not built with: it would make each lock with its own, and
    the oracles would hold it to capacities it never had. Runs with every run of such a program:
    the message is built only when it refuses."""
    span = getattr(sharing, "capacity_range", None)
    if span is None:
        given = ", ".join(f"L{k} {c}" for k, c in enumerate(capacities))
        raise InvalidArgument(
            f"the program gives its locks capacities ({given}), but {name} takes none from programs "
            "(its Sharing.capacity_range is None): drop them from the program"
        )
    low, high = span
    for k, c in enumerate(capacities):
        if not low <= c <= high:
            raise InvalidArgument(
                f"the program gives L{k} capacity {c}, but {name} is built with capacities from {low} to {high} "
                "(Sharing.capacity_range)"
            )


