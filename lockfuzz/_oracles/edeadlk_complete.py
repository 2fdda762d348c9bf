"""EDEADLK attribution (complete): a deadlock the target claims to detect is reported in time.

For each cycle of a class the target declares (``Detection.classes``), the clock runs while the
cycle is *clean* (no member held up by a handler outside the cycle) and every CPU on it holds or
attempts at most ``max_held`` locks. If it runs past its latency (``latency_ns``, or its
class's own in ``class_latency_ns``: the shortest of the declared classes it matches) before a
party returns EDEADLK (and so breaks the cycle), the target missed the deadlock: too late, or
ETIMEDOUT, or a hang. Checked at every event and clock jump, and by the hang oracle.
"""

from __future__ import annotations

from .._engine._events import ACQUIRE, ACQUIRED, CLOCK, DONE, IRQ_ENTER, IRQ_EXIT, MARK, RELEASE
from .._model._errors import Violation
from ._base import Oracle


class EdeadlkComplete(Oracle):
    name = "edeadlk-complete"
    # MARK too: a mark may end a cycle (``Mark.LEFT``) or start one (``Mark.TAKEN``), and the
    # cycle's time is judged at the event that changed it.
    kinds: tuple[int, ...] = (ACQUIRE, ACQUIRED, RELEASE, IRQ_ENTER, IRQ_EXIT, DONE, CLOCK, MARK)

    def start(self, engine) -> None:  # type: ignore[no-untyped-def]
        self.detection = engine.capabilities.detection
        self.since: dict[tuple[int, ...], tuple[int, str]] = {}
        # The latency each cycle is held to (its declared classes' shortest), by its members.
        self.latency: dict[tuple[int, ...], int] = {}
        if not self.detection.classes:
            self.kinds = ()

    def observe(self, engine, index, ctx, kind, obj, value) -> None:  # type: ignore[no-untyped-def]
        # No cycle now and none being timed: nothing to claim or to judge (most events).
        if self.detection.classes and (engine.truth.cycles or self.since):
            self.check(engine, index)

    def check(self, engine, index):  # type: ignore[no-untyped-def]
        d = self.detection
        now = engine.machine.now
        claimed = {}
        for cyc in engine.truth.cycles:
            matched = [c for c in d.classes if cyc.matches(c)]
            if (
                matched
                and cyc.clean
                and (d.max_held is None or cyc.max_table <= d.max_held)
                and (cyc.first_waiter or not d.first_waiter_only)
                and not (d.table_scan and cyc.scan_blinded)
            ):
                claimed[cyc.key] = cyc
                self.latency[cyc.key] = d.latency_for(matched)
        for key in list(self.since):
            if key not in claimed:
                # The cycle broke at this event: was it in time?
                start, cls = self.since.pop(key)
                self._judge(engine, index, key, start, cls, now)
        for key, cyc in claimed.items():
            start, cls = self.since.setdefault(key, (now, cyc.cls))
            self._judge(engine, index, key, start, cls, now)
        return claimed

    def _judge(self, engine, index, key, start, cls, now, forever=False) -> None:  # type: ignore[no-untyped-def]
        waited = now - start
        latency = self.latency[key]
        if waited <= latency and not forever:
            return
        names = tuple(engine.contexts[i].name for i in key)
        how = "hangs forever" if forever else f"lasted {waited} ns"
        raise Violation(
            self.name, f"missed-{cls}",
            f"{cls} deadlock cycle {{{', '.join(names)}}} {how} without an EDEADLK; the target "
            f"declares detection within {latency} ns",
            contexts=names, time_ns=now, event_index=index,
        )

    def at_hang(self, engine) -> None:  # type: ignore[no-untyped-def]
        """Every context waits forever: a claimed cycle will never be detected."""
        if not self.detection.classes:
            return
        index = len(engine.events) - 1
        for key, cyc in self.check(engine, index).items():
            self._judge(engine, index, key, self.since[key][0], cyc.cls, engine.machine.now, forever=True)
