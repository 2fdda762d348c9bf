"""Fairness across modes: a shared lock gives its waiters the lock in the order it declares
(``Sharing.preference``).

Arrival is after the attempt's first ``Sharing.doorway_steps`` steps, as for ``Fairness``: when
X takes the first step of its attempt on L (begins its doorway), the waiters on L that have
passed their doorway arrived before it, whenever they called ``acquire`` (``Attempt.ahead`` and
``Attempt.writers_ahead``, kept by the ground truth: ``GroundTruth.opened``). When X then gets L
while such a waiter still waits, the verdict depends on the preference:

- ``fifo`` (``fairness/fifo-across-modes``): no attempt gets the lock while an earlier waiter
  still waits, except a shared attempt past an earlier shared waiter while the lock has room
  for both (below its capacity): readers are admitted together, and which of two admitted
  readers returns first is the scheduler's business, not the lock's;
- ``writers`` (``fairness/reader-overtook-writer``): a shared attempt does not get the lock while
  an exclusive one that arrived before it still waits;
- ``readers`` with ``reader_overtakes=N`` (``fairness/writer-starved``): at most N shared
  attempts that arrived after an exclusive waiter get the lock while it waits;
  ``reader_overtakes=None`` promises nothing (writers may starve).

A waiter whose per-call budget has run out, or whose scope the schedule cancelled, is leaving, not
waiting (as for ``Fairness``). With ``handler_readers_overtake``, a shared attempt made in an
interrupt handler is exempt: it may pass a waiting writer (and is not counted against one).
"""

from __future__ import annotations

from .._model._errors import Violation
from .._engine._events import ACQUIRED
from .._model._status import Level, Status
from ._base import Oracle


class PreferenceOracle(Oracle):
    name = "fairness"
    kinds: tuple[int, ...] = (ACQUIRED,)
    statuses = (Status.OK,)

    def start(self, engine) -> None:  # type: ignore[no-untyped-def]
        sharing = getattr(engine.capabilities, "sharing", None)
        self.sharing = sharing
        if sharing is None or sharing.preference is None:
            self.kinds = ()

    def observe(self, engine, index, ctx, kind, obj, value) -> None:  # type: ignore[no-untyped-def]
        s = self.sharing
        if s is None or s.preference is None or engine.phase != "run" or value != Status.OK:
            return
        truth = engine.truth
        a = truth.returned
        if a.shared and s.handler_readers_overtake and a.ctx.level != Level.TASK:
            return
        now = engine.machine.now
        if s.preference == "readers":
            bound = s.reader_overtakes
            for b in a.writers_ahead:
                if b.end < 0 and not truth.leaving(b, now) and b.overtakers > bound:
                    raise self._violation(
                        engine, index, "writer-starved", a, b,
                        f"{b.overtakers} readers that arrived after it got L{obj} while it waited, last "
                        f"{a.ctx.name}; the target declares at most {bound} (Sharing.reader_overtakes)",
                    )
            return
        for b in a.ahead:
            if b.end >= 0 or truth.leaving(b, now):
                continue
            if s.preference == "writers":
                if a.shared and not b.shared:
                    raise self._violation(
                        engine, index, "reader-overtook-writer", a, b,
                        f"{a.ctx.name}, a reader that arrived after it, got L{obj} first; the target declares "
                        "writer preference",
                    )
                continue
            if a.shared and b.shared and not truth.at_capacity(obj):
                continue  # room for both: admitted together
            raise self._violation(
                engine, index, "fifo-across-modes", a, b,
                f"{a.ctx.name} ({_mode(a)}), which arrived after it, got L{obj} first; the target declares "
                "FIFO across modes",
            )

    @staticmethod
    def _violation(engine, index, kind, a, b, what) -> Violation:  # type: ignore[no-untyped-def]
        return Violation(
            "fairness", kind,
            f"{b.ctx.name} ({_mode(b)}, waiting for L{b.lock} since t={b.start}ns) was overtaken: {what}",
            contexts=(b.ctx.name, a.ctx.name), locks=(b.lock,), time_ns=engine.machine.now, event_index=index,
        )


def _mode(a) -> str:  # type: ignore[no-untyped-def]
    return "shared" if a.shared else "exclusive"
