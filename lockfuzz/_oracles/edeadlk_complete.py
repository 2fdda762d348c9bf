"""EDEADLK attribution (complete): a deadlock the target claims to detect is reported in time.

For each cycle of a class the target declares (``Detection.classes``), the claim holds while the
cycle is *clean* (no member held up by a handler outside the cycle), every CPU on it holds or
attempts at most ``max_held`` locks, and (``first_waiter_only``, ``table_scan``) the lock's
checks can see it. While the claim holds, the cycle has a clock: it runs while **the whole cycle
waits on the lock's own time**, that is while every member is blocked (or interrupted by a
handler on the cycle) and some *checker* sleeps in a timed wait, up to the first deadline of a
member. Checkers are the members that run on their CPU with an acquisition in progress; under
``first_waiter_only`` only the first waiter of its lock. If the clock passes the latency
(``latency_ns``, or its class's own in ``class_latency_ns``: the shortest of the declared
classes it matches) before a party returns EDEADLK (and so breaks the cycle), the target missed
the deadlock: too late, or ETIMEDOUT, or a hang.

Why this clock and not the virtual time since the cycle formed: the simulation runs one CPU at a
time, so virtual time also passes while a member is runnable but not scheduled (a party that
has closed the cycle but not yet written what the others' checks read, a checker woken for its
poll) and while members run the checks themselves. Each of those needed an allowance, and the
allowance grew with the program (it was 100,000 steps). A lock's promise is about the waits it
chooses: rqspinlock finds AA at the first poll of a wait, before it sleeps at all, and ABBA at
the first poll more than 1 ms after its previous check. Counted on this clock the bound is exact
to the nanosecond (tests/fast/test_tight_promises.py), so a lock that sleeps one nanosecond
longer before it looks is caught. A cycle whose members all wait with no deadline never runs the
clock: nothing in it will ever look again, and the hang oracle reports it (``at_hang``). Over
trio, a member waiting inside trio is blocked too, its deadline the first a cancel scope can end
the wait with (none when shielded), and the trio driver calls the hook when such a wait begins
or ends (``TrioEngine._decide``, ``_trio_wait_deadline``): tests/fast/test_trio_detection.py.

Checked at every event it watches and whenever a member of a claimed cycle blocks or wakes
(``Context.wait_hook``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._engine._events import ACQUIRE, ACQUIRED, CLOCK, DONE, IRQ_ENTER, IRQ_EXIT, MARK, RELEASE
from .._model._errors import Violation
from ._base import Oracle

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from .._engine._context import Context
    from ._graph import Cycle


class _Clock:
    """The clock of one claimed cycle (module doc): the latency it is held to (its declared
    classes' shortest), time counted so far, and the interval it is running in (``since``, None
    when stopped), which ends at ``cap`` (a member's deadline) at most."""

    __slots__ = ("cap", "cls", "cycle", "latency", "since", "total")

    def __init__(self, cycle: Cycle, latency: int) -> None:
        self.cycle = cycle
        self.latency = latency
        self.cls = cycle.cls
        self.total = 0
        self.since: int | None = None
        self.cap = 0

    def read(self, now: int) -> int:
        since = self.since
        return self.total if since is None else self.total + min(now, self.cap) - since


class EdeadlkComplete(Oracle):
    name = "edeadlk-complete"
    # MARK too: a mark may end a cycle (``Mark.LEFT``) or start one (``Mark.TAKEN``), and the
    # cycle's time is judged at the event that changed it.
    kinds: tuple[int, ...] = (ACQUIRE, ACQUIRED, RELEASE, IRQ_ENTER, IRQ_EXIT, DONE, CLOCK, MARK)

    def start(self, engine) -> None:  # type: ignore[no-untyped-def]
        # Not the engine itself: an oracle that pointed back at it would keep a run's objects in
        # a reference cycle (``TrioEngine._unlink``).
        self.machine, self.truth = engine.machine, engine.truth
        self.detection = engine.capabilities.detection
        self.clocks: dict[tuple[int, ...], _Clock] = {}  # by the cycle's members
        if not self.detection.classes:
            self.kinds = ()

    def observe(self, engine, index, ctx, kind, obj, value) -> None:  # type: ignore[no-untyped-def]
        # No cycle now and none being timed: nothing to claim or to judge (most events).
        if self.detection.classes and (engine.truth.cycles or self.clocks):
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
                claimed[cyc.key] = (cyc, d.latency_for(matched))
        for key in list(self.clocks):
            if key not in claimed:
                # The cycle broke at this event: was it in time?
                clock = self.clocks.pop(key)
                for c in clock.cycle.members:
                    c.wait_hook = None
                self._judge(engine, index, key, clock, now)
        for key, (cyc, latency) in claimed.items():
            clock = self.clocks.get(key)
            if clock is None:
                clock = self.clocks[key] = _Clock(cyc, latency)
                for c in cyc.members:
                    c.wait_hook = self._waited
            clock.cycle, clock.latency = cyc, latency  # the same members; who is first, who is interrupted, may differ
            self._tick(clock, now)
            self._judge(engine, index, key, clock, now)
        return claimed

    def _waited(self, ctx: Context) -> None:
        """A member of a claimed cycle blocked or woke (``Context.wait_hook``): stop or start its
        cycle's clock."""
        for clock in self.clocks.values():
            if ctx in clock.cycle.members:
                self._tick(clock, self.machine.now)
                return

    def _tick(self, clock: _Clock, now: int) -> None:
        """Bring ``clock`` up to ``now`` and decide whether it runs from here (module doc)."""
        if clock.since is not None:
            clock.total += max(0, min(now, clock.cap) - clock.since)
            clock.since = None
        d = self.detection
        truth = self.truth
        cap: int | None = None
        timed = False
        for c in clock.cycle.members:
            if c.blocked:
                if c.deadline is not None:
                    cap = c.deadline if cap is None else min(cap, c.deadline)
                    if not c.spinning and c.top:
                        a = truth.attempts.get(c.index)
                        timed = timed or (
                            a is not None and not (d.first_waiter_only and not truth.first_waiter(a))
                        )  # fmt: skip
            elif c.top:
                return  # a member can run: the cycle is not waiting on the lock's own time
        if timed and cap is not None and cap > now:
            clock.since, clock.cap = now, cap

    def _judge(
        self, engine: Any, index: int, key: tuple[int, ...], clock: _Clock, now: int, forever: bool = False
    ) -> None:
        waited = clock.read(now)
        latency = clock.latency
        if waited <= latency and not forever:
            return
        names = tuple(engine.contexts[i].name for i in key)
        how = "hangs forever" if forever else f"waited {waited} ns on the lock's own time"
        raise Violation(
            self.name, f"missed-{clock.cls}",
            f"{clock.cls} deadlock cycle {{{', '.join(names)}}} {how} without an EDEADLK; the target "
            f"declares detection within {latency} ns",
            contexts=names, time_ns=now, event_index=index,
        )

    def at_hang(self, engine) -> None:  # type: ignore[no-untyped-def]
        """Every context waits forever: a claimed cycle will never be detected."""
        if not self.detection.classes:
            return
        index = len(engine.events) - 1
        for key in self.check(engine, index):
            self._judge(engine, index, key, self.clocks[key], engine.machine.now, forever=True)
