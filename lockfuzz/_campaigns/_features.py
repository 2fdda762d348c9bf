"""Lock-state features: what a run made the lock do, as the engine's ground truth saw it.

Line and branch coverage (``_coverage``) says which code of the target ran; for a target whose
code is tiny (a test-and-set is three lines) that says little. These features say which *states*
were reached, from the events alone, for any target:

- ``("status", status, level)``: an acquisition returned ``status`` in a context of ``level``
  (``("status", "EDEADLK", "hardirq")``);
- ``("waiters", n)``: ``n`` acquisitions of one lock were in progress at once (the queue length);
- ``("cpu-attempts", level, n)``: an acquisition began in a context of ``level`` while ``n - 1``
  others were in progress on its CPU (a handler trying a lock over an interrupted waiter);
- ``("return", status, n)``: an acquisition returned ``status`` while ``n`` others were still
  in progress on the same lock (a queue head giving up with waiters behind it);
- ``("nesting", n)``: a context held ``n`` locks at once;
- ``("irq", level, below)``: a handler of ``level`` fired over a context that was ``holding`` a
  lock, ``waiting`` for one, or neither (``idle``);
- ``("cycle", cls)``: the ground-truth wait-for graph had a deadlock cycle of class ``AA``,
  ``ABBA`` or ``cycle``;
- ``("wait", status, digits)``: an acquisition returned ``status`` after a wait of ``digits``
  decimal digits of nanoseconds (``("wait", "ETIMEDOUT", 9)``: between 100 ms and 1 s);
- ``("attempt", status, on_cycle, contended)``: how an acquisition ended, whether it was ever on
  a deadlock cycle and whether its lock was ever contended meanwhile;
- ``("clock-jump",)``: every context waited and the virtual clock jumped to a deadline.

Features are tuples of strings, ints and bools: hashable, and the same in every process (sort
them before iterating: a set's order depends on ``PYTHONHASHSEED``). The final-state check of a
run (a fresh context taking every lock) is left out: it is the same in every run.

``Features`` is an observer in the oracle protocol (``_oracles._base``); the engine merges its
``features`` dict (``{"lock_state": set_of_features}``) into ``RunResult.features``. It is
added to the oracles only when a campaign measures coverage or is guided, so default runs pay
nothing for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .._engine._events import ACQUIRE, ACQUIRED, CLOCK, IRQ_ENTER
from .._oracles._base import Oracle
from .._model._status import Level, Status

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from .._engine._run import Context, Engine

__all__ = ["FEATURES_KEY", "Features", "summarise", "summary_lines"]

#: The key of the features in ``RunResult.features``.
FEATURES_KEY = "lock_state"

_STATUS_NAMES = {int(s): s.name for s in Status}
_LEVEL_NAMES = {int(v): str(v) for v in Level}


class Features(Oracle):
    """Collects the lock-state features of one run into ``self.features[FEATURES_KEY]``."""

    name = "features"
    kinds = (ACQUIRE, ACQUIRED, IRQ_ENTER, CLOCK)

    def start(self, engine: Engine) -> None:
        self.found: set[tuple[Any, ...]] = set()
        self.features = {FEATURES_KEY: self.found}

    def observe(self, engine: Engine, index: int, ctx: Context | None, kind: int, obj: int, value: int) -> None:
        if engine.phase != "run":
            return  # the final-state check is the same in every run
        add = self.found.add
        truth = engine.truth
        if kind == ACQUIRE:
            assert ctx is not None
            add(("waiters", len(truth.on_lock[obj])))
            cpu = ctx.cpu
            add(("cpu-attempts", str(ctx.level), sum(1 for a in truth.attempts.values() if a.ctx.cpu == cpu)))
            for cycle in truth.cycles:
                add(("cycle", cycle.cls))
        elif kind == ACQUIRED:
            assert ctx is not None
            status = _STATUS_NAMES.get(value, str(value))
            add(("status", status, str(ctx.level)))
            add(("return", status, len(truth.on_lock[obj])))
            attempt = truth.returned  # the attempt that just returned
            assert attempt is not None
            add(("wait", status, len(str(max(0, attempt.end - attempt.start)))))
            add(("attempt", status, attempt.on_cycle, attempt.contended))
            if value == Status.OK:
                add(("nesting", truth.held_by(ctx)))
            if attempt.shared:  # only for shared acquisitions: exclusive runs reach what they did
                add(("shared", status, len(truth.sharers[obj]), truth.at_capacity(obj)))
        elif kind == IRQ_ENTER:
            below = engine.stacks[obj][-2]  # a handler fires over a context of its CPU
            if truth.held_by(below):
                state = "holding"
            elif below.index in truth.attempts:
                state = "waiting"
            else:
                state = "idle"
            add(("irq", _LEVEL_NAMES.get(value, str(value)), state))
        else:  # CLOCK
            add(("clock-jump",))


def summarise(runs_per_feature: Mapping[tuple[Any, ...], int]) -> dict[str, Any]:
    """What a campaign's features say, in a few figures (``CampaignReport.features``).

    ``runs_per_feature`` maps each feature to the number of runs that showed it.
    """
    feats = sorted(runs_per_feature, key=repr)
    of = [f for f in feats if f[0] == "status"]
    waiters = [f[1] for f in feats if f[0] == "waiters"]
    nesting = [f[1] for f in feats if f[0] == "nesting"]
    irq_held = sum(n for f, n in runs_per_feature.items() if f[0] == "irq" and f[2] == "holding")
    return {
        "distinct": len(feats),
        "status_levels": [f"{f[1]}/{f[2]}" for f in of],
        "max_waiters": max(waiters, default=0),
        "max_nesting": max(nesting, default=0),
        "irq_while_held": irq_held,
        "cycles": sorted({f[1] for f in feats if f[0] == "cycle"}),
        "clock_jumps": runs_per_feature.get(("clock-jump",), 0),
    }


def summary_lines(runs_per_feature: Mapping[tuple[Any, ...], int], runs: int) -> list[str]:
    """The lock-state part of a coverage report, as lines of text."""
    s = summarise(runs_per_feature)
    lines = [f"lock states: {s['distinct']} distinct features in {_runs(runs)}"]
    lines.append("  statuses returned (status/level): " + (", ".join(s["status_levels"]) or "none"))
    lines.append(f"  most acquisitions of one lock in progress at once: {s['max_waiters']}; "
                 f"most locks held by one context: {s['max_nesting']}")
    lines.append(f"  interrupts fired while a lock was held: {_runs(s['irq_while_held'])}; "
                 f"deadlock cycles seen: {', '.join(s['cycles']) or 'none'}")
    waits = _longest_waits(runs_per_feature)
    if waits:
        lines.append("  longest wait per status: " + ", ".join(f"{st} {_magnitude(d)}" for st, d in waits))
    return lines


def _longest_waits(feats: Iterable[tuple[Any, ...]]) -> list[tuple[str, int]]:
    longest: dict[str, int] = {}
    for f in feats:
        if f[0] == "wait":
            longest[f[1]] = max(longest.get(f[1], 0), f[2])
    return sorted(longest.items())


def _magnitude(digits: int) -> str:
    """A wait of ``digits`` decimal digits of nanoseconds, as a person reads it."""
    if digits <= 1:
        return "< 10 ns"
    low = 10 ** (digits - 1)
    for unit, scale in (("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if low >= scale:
            return f">= {low // scale} {unit}"
    return f">= {low} ns"


def _runs(n: int) -> str:
    return f"{n:,} run{'' if n == 1 else 's'}"
