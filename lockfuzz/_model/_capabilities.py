"""What a target promises, and so what the oracles hold it to.

A target declares its capabilities as frozen data; an oracle checks exactly the declared promise
and nothing more (a ticket lock that never claimed to detect deadlocks is not blamed for
hanging in one; the program that deadlocked is). See DESIGN.md, "The target protocol".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ._errors import InvalidArgument

__all__ = ["Capabilities", "Detection", "Fairness", "Timeouts", "KNOWN_EXCEPTIONS", "CYCLE_CLASSES"]

#: Deadlock classes a target may claim to detect, by the shape of the ground-truth cycle:
#: ``AA``: every context on the cycle is on one CPU (a lock retaken, or taken by an interrupt
#: handler above its holder); ``ABBA``: exactly two contexts, on two CPUs, neither interrupted;
#: ``task-cycle``: any cycle with no interrupt edge (no member is interrupted); ``cycle``: any.
CYCLE_CLASSES = ("AA", "ABBA", "task-cycle", "cycle")

#: Named, narrow exceptions to EDEADLK soundness. Each is a by-design behaviour of a real lock.
KNOWN_EXCEPTIONS = {
    "held-table-view": (
        "the lock's deadlock checks read per-CPU tables that record the locks a CPU holds *or is "
        "attempting* (rqspinlock's held-locks table): EDEADLK for an attempt on L by CPU X is "
        "deserved if, at some moment of the attempt, L is in X's table below its top entry (AA), or "
        "another CPU Y has L in its table and an entry above it (the kernel reads Y's top slot, which "
        "may be stale in an unlock window) is in X's table below X's top (the kernel's ABBA heuristic); "
        "a lock stays in its CPU's table until its release returns"
    ),
    "age-backoff": (
        "a context that holds other locks may back off with EDEADLK when the lock it asks for is "
        "held, attempted by another context or being released, before any cycle forms (ww_mutex: "
        "Wait-Die kills the younger requester, Wound-Wait the wounded holder at its next "
        "contended lock)"
    ),
    "nested-trylock-fallback": (
        "an acquisition in an NMI, or deeper than the lock's per-CPU queue nodes, made while "
        "another context of its CPU is inside an acquisition, may give up with EDEADLK after one "
        "failed trylock (rqspinlock's Q2 fallback); deserved if the lock was held, attempted by "
        "another context or being released at some moment of the attempt"
    ),
}


def _check_ns(name: str, value: object, *, allow_none: bool = False) -> None:
    if allow_none and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgument(f"{name}={value!r}: expected an int number of nanoseconds >= 0")


@dataclass(frozen=True)
class Timeouts:
    """How an acquisition gives up.

    ``per_call=True``: it honours the budget passed to ``acquire`` (measured from its start).
    ``per_call=False``: it ignores budgets and gives up on its own clock, the kernel's way:
    ETIMEDOUT is deserved after ``min_ns``, and a waiter never goes ``max_quiet_ns`` (+
    ``slack_ns``) of the lock's own time without the lock making progress (an acquisition
    returning or a release of the same lock). The lock's own time is the time that passes while
    no context can run (the clock's jumps to the next deadline: ``Machine.jumped``), less time
    a handler held the lock up: the steps of the contexts, its own checks and hand-offs and
    those of other CPUs scheduled in between, pass in virtual time too, and are work, not
    waiting, so a bound on waiting needs no allowance for them.
    ``early_when_another_times_out``: a waiter may give up at once when another attempt on the
    same lock returned ETIMEDOUT during its own (a queue torn down by its timed-out head), or
    when it joined behind a waiter still leaving such a queue.
    ``wakes_waiters``: a waiter asleep on a free lock is woken, so an ETIMEDOUT is deserved only
    if, for its budget, the lock was not available to it (held, being released, or on its way
    to another waiter); more than ``grace_ns`` of its budget asleep on a free lock that nobody
    else was taking is a lost wake-up. The default grace, 100 us, covers a poll or back-off
    sleep of up to that; a lock that sleeps longer between looks declares its longest sleep as
    ``grace_ns``; one that promises no wake-up at all says ``wakes_waiters=False``.

    Timed to the step, for a target that marks its timeout clock (``Mark.ARMED`` where it arms
    it, ``Mark.EXPIRED`` where a check finds it run out; a target that marks neither is judged
    by the bounds above alone):

    - early: an ``EXPIRED`` mark must come at least the armed duration after the attempt's
      latest ``ARMED`` mark, exactly, with no grace and no early-leaving exemption (an attempt
      that found its own clock run out was not told to leave). The duration is ``min_ns``
      (per-call: the budget), or ``head_min_ns`` for an arming after the attempt's ``HEAD`` mark
      (None: ``min_ns``). For the kernel's ``now > timeout_end`` that is the timeout + 1 ns.
      ``min_ns`` also still bounds every ETIMEDOUT from the attempt's start, as above.
    - late: ``late_ns`` (None: not checked) bounds how much of the waiter's **own time** passes
      after its clock ran out (its latest ``ARMED`` + the armed duration) before its ``EXPIRED``
      mark, or before it returns if it marks none. Own time counts what the waiter spends asleep
      in a timed wait (``wait_until`` or ``sleep_until`` with a deadline) and the step it polls
      with when it wakes: the virtual clock runs on while other CPUs take their steps, but a
      waiter that is runnable and not scheduled, interrupted by a handler, parked as a spinner
      or asleep with no deadline (waiting for another context's write) is not being late by
      itself. Steps it takes without having slept (a deadlock check that was already running
      when the clock ran out, a failed cmpxchg) are its work, not lateness, and are not counted
      either. But reading the time is looking at the clock: a waiter that reads ``ctx.now`` past
      its clock's end and marks ``EXPIRED`` only at a later step is late whatever it slept.
      A lock that polls its clock every ``g`` ns declares ``late_ns = g - 1``: 0 for a
      waiter that wakes for the first poll past its timeout.
    - way out: ``way_out_ns`` (None: not checked) bounds the lock's own time (as for
      ``max_quiet_ns``) from an attempt's ``EXPIRED`` mark, or its ``TOLD`` mark (told to leave
      by the waiter ahead), to its return: its way out, where rqspinlock's queue head waits for
      its successor to link (steps of a runnable context, which take none of it) before it
      tells it to leave. 0 for a way out that sleeps nowhere.
    """

    per_call: bool = True
    min_ns: int = 0
    max_quiet_ns: int = 0
    slack_ns: int = 100_000
    early_when_another_times_out: bool = False
    wakes_waiters: bool = True
    grace_ns: int = 100_000
    head_min_ns: int | None = None
    late_ns: int | None = None
    way_out_ns: int | None = None

    def __post_init__(self) -> None:
        _check_ns("min_ns", self.min_ns)
        _check_ns("max_quiet_ns", self.max_quiet_ns)
        _check_ns("slack_ns", self.slack_ns)
        _check_ns("grace_ns", self.grace_ns)
        _check_ns("head_min_ns", self.head_min_ns, allow_none=True)
        _check_ns("late_ns", self.late_ns, allow_none=True)
        _check_ns("way_out_ns", self.way_out_ns, allow_none=True)
        if self.per_call and self.head_min_ns is not None:
            raise InvalidArgument(
                f"head_min_ns={self.head_min_ns!r} with per_call=True: a per-call timeout arms its budget, "
                "whatever the waiter's place in the queue"
            )
        if not isinstance(self.wakes_waiters, bool):
            raise InvalidArgument(f"wakes_waiters={self.wakes_waiters!r}: expected True or False")
        if not self.per_call and self.max_quiet_ns < self.min_ns:
            raise InvalidArgument(
                f"max_quiet_ns={self.max_quiet_ns!r} < min_ns={self.min_ns!r}: a fixed timeout "
                "cannot give up later than it waits"
            )


@dataclass(frozen=True)
class Detection:
    """Which deadlocks the target reports as EDEADLK, and how fast.

    ``classes`` is a subset of ``CYCLE_CLASSES``. The completeness oracle requires EDEADLK from
    a party of every such cycle before it has waited ``latency_ns`` on the lock's own time: the
    cycle's clock runs while every member is blocked (or interrupted by a handler on the cycle)
    and a member that checks sleeps in a timed wait (``edeadlk_complete``), so the steps of the
    checks and the schedule's delays are not in it. ``class_latency_ns`` overrides it per class where
    the lock is faster for some (rqspinlock finds AA at the first poll of a wait, before it
    sleeps, and ABBA only at a check more than 1 ms later): ``{"AA": 0}``; a cycle matching several declared
    classes is held to the shortest of their latencies. ``max_held``: the claim holds only while each CPU
    of the cycle holds or attempts at most this many locks (rqspinlock's table has 31 slots).
    ``first_waiter_only``: only the first waiter of a lock checks (rqspinlock's pending waiter
    and queue head; waiters further back spin without checks), so the clock runs only while some
    party of the cycle is the earliest attempt still waiting for its lock.
    ``table_scan``: detection scans per-CPU held tables and the first other CPU that lists the
    awaited lock below its top entry decides (rqspinlock's ABBA check), so the clock runs only
    while no CPU outside the cycle lists a lock the cycle waits for below its top entry.
    """

    classes: frozenset[str] = frozenset()
    latency_ns: int = 2_000_000
    max_held: int | None = None
    first_waiter_only: bool = False
    table_scan: bool = False
    #: Given as a mapping; kept as sorted (class, ns) pairs so that the value stays hashable.
    class_latency_ns: Mapping[str, int] | tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", frozenset(self.classes))
        unknown = sorted(self.classes - set(CYCLE_CLASSES))
        if unknown:
            raise InvalidArgument(f"classes={unknown!r}: expected a subset of {CYCLE_CLASSES!r}")
        _check_ns("latency_ns", self.latency_ns)
        per_class = self.class_latency_ns
        pairs = per_class.items() if isinstance(per_class, Mapping) else per_class
        try:
            normal = tuple(sorted((str(c), ns) for c, ns in pairs))
        except (TypeError, ValueError):
            raise InvalidArgument(
                f"class_latency_ns={per_class!r}: expected a mapping of class names to nanoseconds"
            ) from None
        for cls, ns in normal:
            if cls not in self.classes:
                raise InvalidArgument(
                    f"class_latency_ns: {cls!r} is not a declared class; expected one of {sorted(self.classes)!r}"
                )
            _check_ns(f"class_latency_ns[{cls!r}]", ns)
        object.__setattr__(self, "class_latency_ns", normal)
        if self.max_held is not None and (not isinstance(self.max_held, int) or self.max_held < 1):
            raise InvalidArgument(f"max_held={self.max_held!r}: expected None or an int >= 1")

    def latency_for(self, matched: Iterable[str]) -> int:
        """The latency a cycle of the given declared classes is held to: the shortest declared."""
        per_class = dict(self.class_latency_ns)  # type: ignore[arg-type] # normalised to pairs
        return min((per_class.get(c, self.latency_ns) for c in matched), default=self.latency_ns)


@dataclass(frozen=True)
class Fairness:
    """At most ``overtakes`` later arrivals may acquire the lock ahead of a waiter (0 is FIFO).

    Arrival is after the attempt's first ``doorway_steps`` steps: FIFO is only meaningful after
    a doorway (Lamport's bakery, CACM 1974), e.g. the ticket lock's fetch_add.
    """

    overtakes: int = 0
    doorway_steps: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.overtakes, int) or self.overtakes < 0:
            raise InvalidArgument(f"overtakes={self.overtakes!r}: expected an int >= 0")
        if not isinstance(self.doorway_steps, int) or self.doorway_steps < 0:
            raise InvalidArgument(f"doorway_steps={self.doorway_steps!r}: expected an int >= 0")


#: Who goes first when shared and exclusive attempts wait for one lock (``Sharing.preference``).
PREFERENCES = ("fifo", "writers", "readers")


@dataclass(frozen=True)
class Sharing:
    """A lock that admits more than one holder: a reader-writer lock or a counting semaphore.

    ``exclusive``: acquisitions may ask for the lock alone (a writer); False for a semaphore,
    whose every acquisition is shared. ``capacity``: the most holders at once (None: any number of
    shared holders, a reader-writer lock's readers; n: a semaphore of n permits). The oracles hold
    the lock to: no exclusive holder beside any other holder, at most ``capacity`` holders.

    ``capacity_range=(low, high)``: the lock is built with a capacity of its own for each lock of
    a program, anywhere from ``low`` to ``high`` (a semaphore's initial count): programs give
    them (``Program(capacities=...)``, ``capacities L0 3, L1 1`` in the text form), the
    strategies draw them, the target reads each with ``machine.capacity(lock, default)``, and the
    oracles hold each lock to its own. A lock the program gives no capacity has ``capacity``.
    None (the default): every lock has ``capacity``, and a program that gives capacities is
    refused.

    ``preference``, checked after the attempt's first ``doorway_steps`` steps (as ``Fairness``), or,
    with ``doorway_steps=None``, from the step at which the target marks the attempt its lock's
    pending waiter (``ctx.mark(Mark.PENDING, lock)``): for a lock whose waiter announces itself
    after a varying number of steps (qrwlock's writer setting ``_QW_WAITING`` once it holds the
    wait queue), where any fixed count would be either a false alarm or blind:
    ``fifo``: no attempt, of either mode, gets the lock ahead of an earlier waiter (a shared one
    may return before an earlier shared waiter while the lock has room for both: they are admitted
    together); ``writers``:
    a shared attempt that arrives while an exclusive one waits does not get the lock before it;
    ``readers``: shared attempts may overtake waiting exclusive ones, at most
    ``reader_overtakes`` of them per exclusive waiter where that bound is given (None: writers may
    starve). None (the default) promises no order: a reader may wait behind a waiting writer
    (its ETIMEDOUT there is deserved), and writers may starve. ``handler_readers_overtake``:
    shared attempts from interrupt handlers are exempt from the preference (the kernel's qrwlock
    lets a reader in interrupt context past a waiting writer, ``kernel/locking/qrwlock.c``: a
    handler must not wait behind the task it interrupted).

    ``per_holder``: the most shared holds one context may have of one lock at once (None: as many
    as there is room for). A context that asks for one more waits for itself, as a lock's holder
    taking it again does: a deadlock of its own (AA), so EDEADLK is deserved there. trio's
    ``CapacityLimiter`` lends one token per task, and refuses a second with ``RuntimeError``
    while tokens are free (``per_holder=1``).
    """

    exclusive: bool = True
    capacity: int | None = None
    preference: str | None = None
    reader_overtakes: int | None = None
    handler_readers_overtake: bool = False
    doorway_steps: int | None = 1
    capacity_range: tuple[int, int] | None = None
    per_holder: int | None = None

    def __post_init__(self) -> None:
        if self.capacity_range is not None:
            object.__setattr__(self, "capacity_range", _capacity_range(self.capacity_range, self.capacity))
        if self.exclusive not in (True, False):
            raise InvalidArgument(f"exclusive={self.exclusive!r}: expected True or False")
        if self.capacity is not None and (
            not isinstance(self.capacity, int) or isinstance(self.capacity, bool) or self.capacity < 1
        ):
            raise InvalidArgument(f"capacity={self.capacity!r}: expected None or an int >= 1")
        if self.preference is not None and self.preference not in PREFERENCES:
            raise InvalidArgument(f"preference={self.preference!r}: expected None or one of {PREFERENCES!r}")
        if self.reader_overtakes is not None and (
            not isinstance(self.reader_overtakes, int) or self.reader_overtakes < 0
        ):
            raise InvalidArgument(f"reader_overtakes={self.reader_overtakes!r}: expected None or an int >= 0")
        if self.reader_overtakes is not None and self.preference != "readers":
            raise InvalidArgument(
                f"reader_overtakes={self.reader_overtakes!r} with preference={self.preference!r}: "
                "a bound on overtaking readers belongs to preference='readers'"
            )
        if self.handler_readers_overtake not in (True, False):
            raise InvalidArgument(
                f"handler_readers_overtake={self.handler_readers_overtake!r}: expected True or False"
            )
        if self.doorway_steps is not None and (not isinstance(self.doorway_steps, int) or self.doorway_steps < 0):
            raise InvalidArgument(f"doorway_steps={self.doorway_steps!r}: expected None or an int >= 0")
        if self.per_holder is not None and (
            not isinstance(self.per_holder, int) or isinstance(self.per_holder, bool) or self.per_holder < 1
        ):
            raise InvalidArgument(f"per_holder={self.per_holder!r}: expected None or an int >= 1")

    def capacity_of(self, lock: int, capacities: tuple[int, ...] = ()) -> int | None:
        """The capacity of ``lock`` in a program that gives ``capacities`` (``Program.capacities``:
        empty, or one per lock): its own where the lock takes one from programs, else ``capacity``."""
        if capacities and self.capacity_range is not None:
            return capacities[lock]
        return self.capacity

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes acquisitions may ask for: ``("exclusive", "shared")`` or ``("shared",)``."""
        return ("exclusive", "shared") if self.exclusive else ("shared",)

    def describe(self) -> str:
        holders = "any number of shared holders" if self.capacity is None else f"at most {self.capacity} holders"
        if self.capacity_range is not None:
            low, high = self.capacity_range
            holders = f"a capacity of {low} to {high} per lock, given by the program (default {self.capacity})"
        line = f"modes: {' and '.join(self.modes)}, {holders}"
        arrival = ("once the target marks a waiter pending" if self.doorway_steps is None
                   else f"after a doorway of {self.doorway_steps} step(s)")
        if self.preference == "fifo":
            line += f"; FIFO across modes {arrival}"
        elif self.preference == "writers":
            line += f"; writer preference (no later reader ahead of a waiting writer, {arrival})"
        elif self.preference == "readers":
            line += "; reader preference" + (
                f" (at most {self.reader_overtakes} readers ahead of a waiting writer)"
                if self.reader_overtakes is not None else " (writers may starve)"
            )
        if self.handler_readers_overtake:
            line += "; readers in interrupt handlers may pass a waiting writer"
        if self.per_holder is not None:
            line += f"; at most {self.per_holder} shared hold(s) per context (one more waits for itself)"
        return line


def _capacity_range(value: object, capacity: int | None) -> tuple[int, int]:
    """``Sharing.capacity_range`` checked: two ints, 1 <= low <= high, around the default."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else ()
    ints = [x for x in pair if isinstance(x, int) and not isinstance(x, bool)]
    if len(pair) != 2 or len(ints) != 2 or not 1 <= ints[0] <= ints[1]:
        raise InvalidArgument(f"capacity_range={value!r}: expected None or (low, high), ints with 1 <= low <= high")
    low, high = ints
    if capacity is None or not low <= capacity <= high:
        raise InvalidArgument(
            f"capacity={capacity!r} with capacity_range={value!r}: the capacity of a lock the program gives none "
            "must be an int in the range"
        )
    return (low, high)


@dataclass(frozen=True)
class Capabilities:
    """Everything a target promises. The defaults promise only mutual exclusion and progress."""

    timeouts: Timeouts | None = None
    detection: Detection = field(default_factory=Detection)
    fairness: Fairness | None = None
    exceptions: frozenset[str] = frozenset()
    #: Whether campaigns give programs interrupt handlers (softirq, hardirq, NMI) by default.
    #: None: the driver's default, on for targets over cells (the hazard of kernel code), off for
    #: targets over trio, whose tasks are cancelled, never interrupted by a handler that runs on
    #: top of them (a handler that waits for a trio lock its own CPU's task holds is a deadlock
    #: real trio code never meets). A target that models handler contexts says True.
    interrupts: bool | None = None
    #: The most CPUs the algorithm is written for (Peterson's lock: 2), or None for any number.
    #: Campaigns draw programs within it; a program with more CPUs is refused.
    max_cpus: int | None = None
    #: Several holders at once (a reader-writer lock, a semaphore), or None: exclusive only.
    sharing: Sharing | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "exceptions", frozenset(self.exceptions))
        if self.sharing is not None and not isinstance(self.sharing, Sharing):
            raise InvalidArgument(f"sharing={self.sharing!r}: expected None or a lockfuzz.Sharing")
        if self.interrupts not in (None, True, False):
            raise InvalidArgument(f"interrupts={self.interrupts!r}: expected None, True or False")
        if self.max_cpus is not None and (
            not isinstance(self.max_cpus, int) or isinstance(self.max_cpus, bool) or self.max_cpus < 1
        ):
            raise InvalidArgument(f"max_cpus={self.max_cpus!r}: expected None or an int >= 1")
        unknown = sorted(self.exceptions - set(KNOWN_EXCEPTIONS))
        if unknown:
            raise InvalidArgument(
                f"exceptions={unknown!r}: expected names from {sorted(KNOWN_EXCEPTIONS)!r}"
            )

    @property
    def detects_deadlocks(self) -> bool:
        return bool(self.detection.classes)

    def describe(self) -> list[str]:
        """One line per promise, for ``lockfuzz targets``."""
        lines = []
        t = self.timeouts
        if t is None:
            lines.append("timeouts: none (budgets ignored; ETIMEDOUT would be a violation)")
        elif t.per_call:
            lines.append(f"timeouts: honours each acquisition's budget (+{t.slack_ns} ns slack)")
        else:
            lines.append(
                f"timeouts: fixed, gives up after >= {t.min_ns} ns, never quiet for more than "
                f"{t.max_quiet_ns} ns (+{t.slack_ns} ns slack) of the lock's own time"
                + ("; may leave early when a waiter ahead timed out" if t.early_when_another_times_out else "")
            )
        if t is not None and (t.head_min_ns is not None or t.late_ns is not None):
            armed = "its budget" if t.per_call else f"{t.min_ns} ns"
            if t.head_min_ns is not None:
                armed += f" ({t.head_min_ns} ns once queue head)"
            late = "" if t.late_ns is None else f", within {t.late_ns} ns of its own time after that"
            out = "" if t.way_out_ns is None else f", returns within {t.way_out_ns} ns of the lock's own time after"
            lines.append(f"timeout clock (marked): gives up >= {armed} after arming it{late}{out}")
        if t is not None:
            lines.append(
                f"wake-ups: a waiter asleep on a free lock is woken (ETIMEDOUT after more than {t.grace_ns} ns of "
                "its budget asleep on a free lock is a lost wake-up)"
                if t.wakes_waiters
                else "wake-ups: none promised (a waiter may sleep through a free lock until it times out)"
            )
        d = self.detection
        if d.classes:
            held = f", while each CPU holds <= {d.max_held} locks" if d.max_held else ""
            first = ", counted while a party is the first waiter of its lock" if d.first_waiter_only else ""
            scan = ", unless another CPU's table lists an awaited lock below its top" if d.table_scan else ""
            per_class = dict(d.class_latency_ns)  # type: ignore[arg-type] # normalised to pairs
            within = ", ".join(
                f"{c} within {per_class.get(c, d.latency_ns)} ns" for c in sorted(d.classes)
            )
            lines.append(f"detects: {within} of the cycle waiting on the lock's own time{held}{first}{scan}")
        else:
            lines.append("detects: no deadlocks")
        f = self.fairness
        if f is None:
            lines.append("fairness: none promised")
        elif f.overtakes == 0:
            lines.append(f"fairness: FIFO after a doorway of {f.doorway_steps} step(s)")
        else:
            lines.append(f"fairness: at most {f.overtakes} overtakes per waiter")
        for name in sorted(self.exceptions):
            lines.append(f"exception {name}: {KNOWN_EXCEPTIONS[name]}")
        if self.interrupts is not None:
            lines.append(f"interrupt handlers in campaigns: {'on' if self.interrupts else 'off'} by default")
        if self.sharing is not None:
            lines.append(self.sharing.describe())
        if self.max_cpus is not None:
            lines.append(f"CPUs: at most {self.max_cpus} (the algorithm's shape; campaigns draw within it)")
        return lines
