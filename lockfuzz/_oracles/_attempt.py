"""One acquisition in progress, as the ground truth follows it (``GroundTruth.attempts``): its
lock, mode and budget, where it stands in the lock's declared order, and the clocks the oracles
judge its waiting by: stalled by a handler (``paused_ns``), asleep on a free lock (``free_ns``),
and quiet since the lock last made progress (``quiet_ns``). ``GroundTruth.retime`` starts and
stops the clocks; the oracles read them. The timeout clock a target marks (``Mark.ARMED``,
``Mark.EXPIRED``) is noted by ``clock``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._model._errors import Violation
from .._model._status import Mark, Status

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from .._engine._run import Context
    from .._model._capabilities import Timeouts

__all__ = ["Attempt"]


class Attempt:
    """One acquisition in progress, with what the oracles need to judge its outcome.

    Flags default to class attributes so that starting an attempt (the most frequent thing the
    ground truth does) sets only what every attempt needs.
    """

    end = -1
    status: Status | None = None
    on_cycle = False  # on a ground-truth cycle at some moment
    any_cycle = False  # some cycle existed somewhere at some moment
    table_view = False  # the held-table view had a cycle through it
    fallback = False  # nested-trylock-fallback conditions held at its start
    contended = False  # its lock was held, attempted by another or being released at some moment
    other_timed_out = False  # another attempt on the same lock returned ETIMEDOUT meanwhile
    teardown = False  # it began while a waiter on its lock was leaving a torn-down queue
    stall_total = 0  # ns while it, the lock's holder or another waiter on it was interrupted
    stall_since: int | None = None
    quiet_paused = 0
    quiet_jumped = 0  # ``Machine.jumped`` at the lock's last progress (``quiet_ns``)
    # Its way out, from its ``EXPIRED`` or ``TOLD`` mark: when (-1: none), and ``Machine.jumped``
    # and ``paused_ns`` then.
    out_at = -1
    out_jumped = 0
    out_paused = 0
    # ns of its budget it slept on a free lock nobody else was taking, since it was last awake
    # while the lock was not its to take (``looked_taken``), and the most of that before then.
    free_total = 0
    free_since: int | None = None
    free_peak = 0
    holding = False  # its context held another lock when the attempt began
    taken = False  # the target marked the step that took the lock (Mark.TAKEN)
    cancelled = False  # the schedule cancelled its scope (the trio driver): it is leaving
    left = False  # the target marked the step that gave its place up on the way out (Mark.LEFT)
    ahead: tuple[Attempt, ...] = ()  # FIFO locks: earlier arrivals it must wait for
    #: Where ``Fairness`` is declared: the waiters that arrived before it, by its doorway
    #: (``GroundTruth._arrivals``, settled at its first step): what the fairness oracle counts.
    before: tuple[Attempt, ...] = ()
    shared = False  # a shared acquisition (``Lock(shared=True)``)
    #: Reader preference with a bound: the exclusive waiters that arrived before this shared
    #: attempt; it must wait for those that readers have already overtaken ``reader_overtakes`` times.
    writers_ahead: tuple[Attempt, ...] = ()
    overtakers = 0  # an exclusive attempt: shared attempts that arrived later and got the lock first
    # Its timeout clock, where the target marks it (``Mark.ARMED``, ``Mark.EXPIRED``): when it was
    # last armed, for how long (the declared duration for its role), and when a check found it
    # run out; -1 where none. Its lateness past ``armed + armed_ns`` is kept on its context
    # (``Context.expiry``, ``Context.late``: the engine adds to it when a timed wait ends).
    armed = -1
    armed_ns = 0
    expired = -1

    def __init__(self, ctx: Context, lock: int, budget: int, now: int, event: int) -> None:
        self.ctx = ctx
        self.lock = lock
        if budget < 0:  # a shared acquisition logs ~budget (``_events.acquire_value``)
            self.shared = True
            budget = ~budget
        self.budget = budget
        self.start = now
        self.event = event
        self.start_steps = ctx.steps
        self.quiet_jumped = ctx.machine.jumped

    def past_doorway(self, doorway_steps: int) -> bool:
        """Has it taken ``doorway_steps`` steps of its attempt (``Fairness.doorway_steps``,
        ``Sharing.doorway_steps``): has it arrived, so that a later arrival may not overtake it?"""
        return self.ctx.steps - self.start_steps >= doorway_steps

    def clock(self, mark: int, now: int, timeouts: Timeouts | None, head: bool) -> None:
        """The target marked its timeout clock (``GroundTruth`` passes the mark on; who holds or
        waits is unchanged). ``Mark.ARMED``: note when, and for how long: the declared duration
        for its role (``head``: the lock's marked queue head), and start counting its lateness
        from the clock's end (``Context.expiry``, ``Context.end_wait``). ``Mark.EXPIRED``: note
        when; what follows is its way out, not lateness. The oracles judge both (``etimedout``:
        early; ``bounded-waiting``: late)."""
        ctx = self.ctx
        if mark == Mark.ARMED:
            if timeouts is None:
                ns = 0  # no timeouts declared: its ETIMEDOUT is the finding (``etimedout/undeclared``)
            elif timeouts.per_call:
                ns = self.budget
            elif head and timeouts.head_min_ns is not None:
                ns = timeouts.head_min_ns  # re-armed as queue head (the kernel's RES_RESET_TIMEOUT)
            else:
                ns = timeouts.min_ns
            self.armed, self.armed_ns, self.expired, self.out_at = now, ns, -1, -1
            ctx.expiry = now + ns
            ctx.late = 0
            ctx.looked = -1
            return
        if self.armed < 0:
            raise Violation(
                "target-fault", "bad-mark",
                f"{ctx.name} marked its timeout expired on L{self.lock} without arming it first (Mark.ARMED)",
                contexts=(ctx.name,), locks=(self.lock,), time_ns=now,
            )
        self.expired = now
        ctx.expiry = None
        self.leave(now)

    def leave(self, now: int) -> None:
        """Its way out starts (``Mark.EXPIRED``, ``Mark.TOLD``): ``out_ns`` counts from here."""
        self.out_at, self.out_jumped, self.out_paused = now, self.ctx.machine.jumped, self.paused_ns(now)

    def paused_ns(self, now: int) -> int:
        """Time the lock could make no progress for it, whichever CPU a handler ran on: it was
        interrupted itself, or the lock's holder (or releaser) was, or another waiter on its lock
        was, which may be ahead of it in the lock's queue (rqspinlock's waiters further back
        have no timeout of their own; a trio waiter cancelled in ``Condition.wait`` must retake
        the condition's lock from whoever has it)."""
        return self.stall_total + (now - self.stall_since if self.stall_since is not None else 0)

    def elapsed_ns(self, now: int) -> int:
        """Time spent attempting, less the time the lock could make no progress for it."""
        return now - self.start - self.paused_ns(now)

    def deadline(self) -> int:
        """When its per-call budget runs out."""
        return self.start + self.budget

    def free_ns(self, now: int, until: int | None = None) -> int:
        """Time it slept on a free lock that nobody else was taking, up to ``until``: the most
        between two of its looks at a lock that was not its to take (``looked_taken``)."""
        return max(self.free_peak, self.free_run(now, until))

    def free_run(self, now: int, until: int | None = None) -> int:
        """The free time counted since its last fair look (``free_ns``), up to ``until``."""
        end = now if until is None else min(now, until)
        since = self.free_since
        return self.free_total + (max(0, end - since) if since is not None else 0)

    def looked_taken(self) -> None:
        """It is awake while the lock is not its to take (held, being released, on its way to
        another waiter, or owed to one ahead of it): whatever looks it took since it last slept
        were fair, so the free time counted so far ends a stretch. A lock that polls by sleeping
        may sleep through a free lock for up to its longest sleep (``Timeouts.grace_ns``) each
        time someone else takes it in between; a sum over those sleeps grows with the number of
        hand-overs it slept through, and no grace could bound it (a false alarm seen on a
        test-and-test-and-set lock with 64 us back-off sleeps: two free gaps of 50 us, in two
        sleeps, judged as 100 us of lost wake-up). A waiter that sleeps through a free lock in
        one sleep, or wakes to a free lock and sleeps on, keeps counting."""
        if self.free_total > self.free_peak:
            self.free_peak = self.free_total
        self.free_total = 0

    def quiet_ns(self, now: int) -> int:
        """The lock's own time since it last made progress (``_own_since``)."""
        return self._own_since(self.quiet_jumped, self.quiet_paused, now)

    def out_ns(self, now: int) -> int:
        """The lock's own time since its way out began (``leave``, which must have been called:
        ``out_at >= 0``; ``_own_since``)."""
        return self._own_since(self.out_jumped, self.out_paused, now)

    def _own_since(self, jumped: int, paused: int, now: int) -> int:
        """The lock's own time since ``Machine.jumped`` and ``paused_ns`` read ``jumped`` and
        ``paused``: time that passed while no context could run (not in steps), less the time it
        could not make progress for a handler. (The handler time is virtual time, steps
        included: subtracting it can only count less, never more.)"""
        return max(0, self.ctx.machine.jumped - jumped - (self.paused_ns(now) - paused))
