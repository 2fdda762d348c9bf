"""The ground truth: who holds, who waits, and which contexts are on a deadlock cycle.

Kept by the engine from the events alone (acquire, acquired, release, interrupt entry/exit),
never read from the target's internals: the oracles judge the target against it.

Three modules: this one follows the events (who holds, who waits, in what order) and keeps the
clocks of waiting; ``_attempt`` is one acquisition in progress and its clocks; ``_graph`` builds
the wait-for graph from this state and finds its cycles (DESIGN.md, "EDEADLK attribution").

Shared locks (``Capabilities.sharing``): a lock has one exclusive holder (``holder``) or any
number of shared ones (``sharers``, a context once per shared hold). An exclusive waiter waits
for every holder; a shared waiter for the exclusive holder, for every shared holder when the
lock is at its ``capacity``, and, in a handler, for a shared release it interrupted. A release
under way holds the lock for its waiters, in its mode, until it returns. The declared preference
adds edges to waiters that go first (``preferred``): under ``fifo`` every earlier waiter (past
its doorway); under ``writers``, and with no preference declared (no order promised), a shared
waiter waits for the exclusive waiters that have arrived; under ``readers`` with a bound, for
those that readers have overtaken as often as the bound allows; a shared waiter in an interrupt
handler is exempt where ``handler_readers_overtake`` says so. So a reader that takes its lock
again while a writer queues behind it under writer preference is on a cycle with that writer, as
the lock sees it.
Arrival is ordered at the doorway (``Fairness.doorway_steps``, ``Sharing.doorway_steps``): the
order is settled at an attempt's first step (``opened``), not at its ACQUIRE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .._engine._events import ACQUIRE, ACQUIRED, CANCEL, DONE, IRQ_ENTER, IRQ_EXIT, MARK, RELEASE, RELEASED
from .._model._status import Level, Mark, Status
from . import _graph
from ._attempt import Attempt
from ._graph import Cycle

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from .._engine._run import Context, Engine

__all__ = ["Attempt", "Cycle", "GroundTruth"]

_STATUS = {int(s): s for s in Status}


class GroundTruth:
    #: By event kind, what follows it (``_handler_table``, at the end of the module).
    HANDLERS: tuple[Callable[..., None] | None, ...] = ()

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        n = engine.program.n_locks
        self.holder: list[Context | None] = [None] * n  # the exclusive holder of each lock
        #: The shared holders of each lock, in the order they got it (a context once per hold).
        self.sharers: list[list[Context]] = [[] for _ in range(n)]
        #: Shared releases begun and not yet returned, per lock (their contexts).
        self.shared_releasing: list[list[Context]] = [[] for _ in range(n)]
        #: The target's ``Sharing`` (None: exclusive only, and the exclusive code paths, unchanged).
        self.sharing: Any = None
        #: Each lock's capacity (None: any number of shared holders), the program's where it gives them.
        self.capacity: list[int | None] = [None] * n
        self.attempts: dict[int, Attempt] = {}  # ctx.index -> its attempt in progress
        self.on_lock: list[list[Attempt]] = [[] for _ in range(n)]
        self.table: list[list[int]] = [[] for _ in engine.program.cpus]
        self.cycles: list[Cycle] = []
        self.started: Attempt | None = None
        self.returned: Attempt | None = None
        self.released_holder: Context | None = None
        self.releasing = [0] * n  # exclusive releases begun and not yet returned, per lock
        self.releaser: list[Context | None] = [None] * n  # the context whose exclusive release is under way
        self._table_view = self._fallback = self._backoff = False
        self._fifo_doorway: int | None = None
        self._fair_doorway: int | None = None  # ``Fairness.doorway_steps`` (None: no fairness declared)
        self._opening = False  # arrival is settled at an attempt's first step (``opened``)
        self._window = False  # free time counts only within the budget (per-call timeouts)
        self.timed = True  # the clocks of waiting are kept (``start``: where timeouts are declared)
        # What the target marked (``Mark``): the pending waiter and the queue head of each lock.
        self.marked = False
        self.pending: list[Attempt | None] = [None] * n
        self.head: list[Attempt | None] = [None] * n

    def start(self) -> None:
        caps = self.engine.capabilities
        self._table_view = "held-table-view" in caps.exceptions
        self._fallback = "nested-trylock-fallback" in caps.exceptions
        self._backoff = "age-backoff" in caps.exceptions
        fair = caps.fairness
        self._fifo_doorway = fair.doorway_steps if fair is not None and fair.overtakes == 0 else None
        self._fair_doorway = fair.doorway_steps if fair is not None else None
        self._window = caps.timeouts is not None and caps.timeouts.per_call
        # The clocks of waiting (stall, free, quiet) are read only by the oracles that judge
        # timeouts (etimedout, bounded-waiting), and only where the target declares timeouts: a
        # lock that declares none has every ETIMEDOUT reported without them. So a target without
        # timeouts keeps no clocks (``retime`` and ``_progress`` cost nothing there).
        self.timed = caps.timeouts is not None
        self.sharing = getattr(caps, "sharing", None)
        s = self.sharing
        # Arrival waits for a doorway of steps (or a mark): an attempt's order against the others
        # is settled at its own first step (``opened``), not when ``acquire`` is called.
        self._opening = bool(self._fair_doorway) or (
            s is not None and s.preference is not None and s.doorway_steps != 0
        )
        if self.sharing is not None:
            given = self.engine.program.capacities
            self.capacity = [self.sharing.capacity_of(k, given) for k in range(len(self.holder))]

    # -- who holds ----------------------------------------------------------------------------
    def holds(self, ctx: Context, lock: int) -> bool:
        """Does ``ctx`` hold ``lock``, in either mode?"""
        return self.holder[lock] is ctx or ctx in self.sharers[lock]

    def holders(self, lock: int) -> list[Context]:
        """Every holder of ``lock``: the exclusive one, or the shared ones."""
        h = self.holder[lock]
        return [h, *self.sharers[lock]] if h is not None else list(self.sharers[lock])

    def held_by(self, ctx: Context) -> int:
        """How many holds ``ctx`` has, over all locks and modes."""
        n = sum(1 for h in self.holder if h is ctx)
        if self.sharing is not None:
            n += sum(s.count(ctx) for s in self.sharers)
        return n

    def at_capacity(self, lock: int) -> bool:
        """Are the shared holds of ``lock`` (releases under way included) at its capacity?"""
        cap = self.capacity[lock]
        return cap is not None and len(self.sharers[lock]) + len(self.shared_releasing[lock]) >= cap

    def blockers(self, a: Attempt) -> list[Context]:
        """Whom ``a`` waits for because they hold (or are releasing) its lock, by mode (module doc)."""
        lock = a.lock
        h = self.holder[lock]
        if h is None:
            # Free for mutual exclusion from the moment its release began, the lock is not
            # free for its waiters until the release returns: they wait for the releaser.
            h = self.releaser[lock]
        out = [h] if h is not None else []
        s = self.sharing
        if s is not None and (not a.shared or self.at_capacity(lock)):
            out.extend(self.sharers[lock])
            out.extend(self.shared_releasing[lock])
        elif s is not None:
            if s.per_holder is not None and self.sharers[lock].count(a.ctx) >= s.per_holder:
                out.append(a.ctx)  # one hold more than it may have: it waits for itself (``Sharing.per_holder``)
            # A shared release under way on its own CPU, below it: interrupted, it cannot finish
            # before ``a``'s handler returns, and until it does the lock's state is half-changed
            # (a guard it took, a count not yet dropped), so the lock may rightly hold ``a`` off
            # until it returns, as it holds off every waiter behind an exclusive release.
            releasing = self.shared_releasing[lock]
            if releasing and a.ctx.level != Level.TASK:
                cpu = a.ctx.cpu
                out.extend(c for c in releasing if c.cpu == cpu and c is not a.ctx)
        return out

    def preferred(self, a: Attempt) -> list[Attempt]:
        """The waiters still waiting that the lock's declared order lets go before ``a``, so that
        ``a`` may have to wait for them: every one that started before it (``fifo``: it may have
        passed its doorway first), every exclusive one past its doorway (``writers``, or no
        preference declared, for a shared ``a``: the lock may hold back even a reader that came
        first), the exclusive ones readers have overtaken as often as the bound allows
        (``readers``). Wider than what the fairness oracle holds the lock to (``Attempt.ahead``,
        arrivals before ``a``): a waiter is not free, and may be on a cycle, wherever the lock
        may rightly keep it waiting."""
        out = [b for b in a.ahead if b.end < 0]
        s = self.sharing
        if s is None:
            return out
        if a.shared and s.handler_readers_overtake and a.ctx.level != Level.TASK:
            return out
        if s.preference is None or s.preference == "writers":
            # No order promised: the lock may be writer-preferring, as many are without saying
            # so, and hold a reader behind any exclusive waiter that has arrived.
            if a.shared:
                out.extend(b for b in self.on_lock[a.lock] if not b.shared and self._arrived(b) and b not in out)
        elif s.preference == "fifo":
            for b in self.on_lock[a.lock]:  # in the order they started
                if b is a:
                    break
                if b not in out:
                    out.append(b)
        elif a.writers_ahead:
            bound = s.reader_overtakes
            out.extend(b for b in a.writers_ahead if b.end < 0 and b.overtakers >= bound and b not in out)
        return out

    def first_waiter(self, a: Attempt) -> bool:
        """Is ``a`` the first waiter of its lock (the one whose checks run, for
        ``Detection.first_waiter_only``)?"""
        if self.marked:
            return self.pending[a.lock] is a or self.head[a.lock] is a
        return self.on_lock[a.lock][0] is a

    def above(self, ctx: Context) -> Context:
        stack = self.engine.stacks[ctx.cpu]
        return stack[stack.index(ctx) + 1]

    # -- events -------------------------------------------------------------------------------
    # Only an ACQUIRE can close a cycle: it adds the edge waiter -> holder (or -> an earlier
    # arrival, on a FIFO lock). ACQUIRED OK adds edges into a context that is running (so has no
    # edge out); an interrupt adds an edge into a handler that waits for nothing yet; everything
    # else removes edges. So the graph is recomputed on an ACQUIRE that could close a cycle, and
    # otherwise only while cycles exist (they may break, or stop being clean).

    def _on_cancel(self, index: int, ctx: Context, obj: int, value: int) -> None:
        """The schedule cancelled ``ctx``'s call (``CANCEL``): an attempt it was making is leaving."""
        a = self.attempts.get(ctx.index)
        if a is not None and value < 2:  # 2, 3: a trio deadline passed, which the target may outlive
            a.cancelled = True

    def _on_acquire(self, index: int, ctx: Context, obj: int, value: int) -> None:
        now = self.engine.machine.now
        a = Attempt(ctx, obj, value, now, index)
        h = self.holder[obj]
        waiting = self.on_lock[obj]
        if h is not None or waiting or self.releasing[obj]:
            a.contended = True
        elif self.sharing is not None and (self.sharers[obj] or self.shared_releasing[obj]):
            a.contended = True
        if waiting:
            for b in waiting:
                b.contended = True
                if b.other_timed_out or b.teardown:
                    # A waiter is leaving a queue its timed-out head tore down: one that joins
                    # behind it is told to leave in turn (rqspinlock's T step, waiter to waiter).
                    a.teardown = True
            self._arrivals(a, waiting)
        if self._backoff:
            a.holding = self.held_by(ctx) > 0
        if self._fallback:
            busy = sum(1 for b in self.attempts.values() if b.ctx.cpu == ctx.cpu)
            a.fallback = busy > 0 and (ctx.level == Level.NMI or busy >= 4)
        self.attempts[ctx.index] = a
        if self._opening:
            ctx.opening = a  # its arrival order is settled at its first step (``opened``)
        waiting.append(a)
        self.table[ctx.cpu].append(obj)
        self.started = a
        if h is None:
            h = self.releaser[obj]
        # It waits for the holder or releaser, for earlier arrivals on a FIFO lock, and behind the
        # marked pending waiter and queue head (waiting themselves): a cycle may close through any.
        # With shared modes, edges into the new waiter are not only those ``_waited_for`` knows.
        if self.cycles or (
            (
                a.ahead or (h is not None and (h.index in self.attempts or not h.top))
                or self.pending[obj] is not None or self.head[obj] is not None
            )
            and (self.sharing is not None or self._waited_for(ctx))
        ):
            self._recompute()
        elif self.sharing is not None and (a.writers_ahead or self.sharers[obj] or self.shared_releasing[obj]):
            self._recompute()
        if self._table_view:
            self._mark_table_view()
        self.retime(obj)

    def _waited_for(self, ctx: Context) -> bool:
        """May some context wait for ``ctx`` (an exclusive lock's ground truth, ``_graph.edges``)?
        With no cycle before an ACQUIRE, a cycle after it must pass through the new waiter: it
        must have an edge in. Into a context that has just begun an attempt, edges come only
        from the contexts below it on its CPU (it is a handler) and from the waiters on a lock
        it holds or is releasing (a later arrival's FIFO edge, a marked queue position, come
        later, with events that recompute). With none of those no cycle can have closed, and
        the graph is not recomputed: most contended ACQUIREs."""
        stack = self.engine.stacks[ctx.cpu]
        if stack and stack[0] is not ctx:
            return True
        on_lock, releaser = self.on_lock, self.releaser
        for k, h in enumerate(self.holder):
            if (h is ctx or releaser[k] is ctx) and on_lock[k]:
                return True
        return False

    def _on_acquired(self, index: int, ctx: Context, obj: int, value: int) -> None:
        now = self.engine.machine.now
        a = self.attempts.pop(ctx.index)
        waiting = self.on_lock[obj]
        waiting.remove(a)
        a.end = now
        a.status = _STATUS[value]
        ctx.expiry = None  # its timeout clock, if it armed one, stops with the attempt
        self._close(a, now)
        self.returned = a
        self._unqueue(a)
        if value == 0:
            if a.shared:
                if not a.taken:  # marked taken: already counted
                    self.sharers[obj].append(ctx)
                self._count_overtaking(a, now)
            else:
                self.holder[obj] = ctx
            for b in waiting:
                b.contended = True
        else:
            # A lock it marked taken stays held even though it says it failed: a leak, which
            # the final check reports (the BPF arena lock's new owner that gives up does this).
            _remove_last(self.table[ctx.cpu], obj)
            if value == Status.ETIMEDOUT:
                for b in waiting:
                    b.other_timed_out = True
        if waiting:
            self._progress(obj, now)
        if self.cycles or (self.sharing is not None and self.attempts):
            # With shared modes an acquisition can add edges between waiters: a reader that got
            # the lock counts against the writers it overtook (``preferred``).
            self._recompute()
        if self._table_view:
            self._mark_table_view()
        self.retime(obj)

    def _on_release(self, index: int, ctx: Context, obj: int, value: int) -> None:
        if value:  # a shared release (``SHARED_RELEASE``)
            sharers = self.sharers[obj]
            if ctx in sharers:
                self.released_holder = ctx
                _remove_last(sharers, ctx)
            else:
                self.released_holder = self.holder[obj] or (sharers[0] if sharers else None)
            self.shared_releasing[obj].append(ctx)
        else:
            self.released_holder = self.holder[obj]
            if self.holder[obj] is ctx:
                self.holder[obj] = None
            elif self.released_holder is None and self.sharers[obj]:
                self.released_holder = self.sharers[obj][0]  # released exclusively what is held shared
            self.releasing[obj] += 1
            self.releaser[obj] = ctx
        waiting = self.on_lock[obj]
        if waiting:
            self._progress(obj, self.engine.machine.now)
            for b in waiting:
                b.contended = True
        if self.cycles:
            self._recompute()
        self.retime(obj)

    def _on_released(self, index: int, ctx: Context, obj: int, value: int) -> None:
        # The lock leaves the CPU's table only now that the release returned: the kernel's
        # unlock frees the word before it clears the table slot, and a handler landing in
        # between sees the stale entry.
        if value:
            _remove_last(self.shared_releasing[obj], ctx)
        else:
            self.releasing[obj] -= 1
            if self.releaser[obj] is ctx:
                self.releaser[obj] = None
        _remove_last(self.table[ctx.cpu], obj)
        if self.cycles:
            self._recompute()
        if self._table_view:
            self._mark_table_view()
        self.retime(obj)

    def _on_mark(self, index: int, ctx: Context, obj: int, value: int) -> None:
        """The target marked a step of ``ctx``'s attempt on lock ``obj`` (``Mark``)."""
        a = self.attempts[ctx.index]
        if value == Mark.ARMED or value == Mark.EXPIRED:  # its timeout clock (``Attempt.clock``)
            return a.clock(value, self.engine.machine.now, self.engine.capabilities.timeouts, self.head[obj] is a)
        if value == Mark.TOLD:  # told to leave: its way out starts (``Attempt.leave``)
            return a.leave(self.engine.machine.now)
        self.marked = True
        if value == Mark.TAKEN:
            a.taken = True
            if a.shared:
                self.sharers[obj].append(ctx)
            else:
                self.holder[obj] = ctx
            self._unqueue(a)
            for b in self.on_lock[obj]:
                b.contended = True
        elif value == Mark.PENDING:
            self.pending[obj] = a
        elif value == Mark.LEFT:  # its place given up on its way out: waits for nobody (``_graph.edges``)
            a.left = True
            self._unqueue(a)
        else:
            self.head[obj] = a
        if self.cycles or ((value == Mark.PENDING or value == Mark.HEAD) and self._now_behind(a)):
            # Only a new pending waiter or queue head can close a cycle: the others it now keeps
            # waiting have an edge to it, and it waits for the holder; its own edges only go (it
            # no longer waits for a pending waiter or head it replaced). So with nobody now
            # behind it, no edge is new and no cycle can be. A taker waits for nobody
            # (``_graph.edges``), and a place given up removes edges. No mark changes a CPU's
            # table of held locks, so the held-table view stays as it was.
            self._recompute()
        self.retime(obj)

    def _now_behind(self, a: Attempt) -> bool:
        """Whether another waiter on ``a``'s lock now waits behind ``a``, just marked its lock's
        pending waiter or queue head (``_graph.edges``: every waiter but the taken and the
        leaving waits behind the pending waiter; all of those but the pending waiter, behind the
        head)."""
        pending = self.pending[a.lock]
        for b in self.on_lock[a.lock]:
            if b is not a and not b.taken and not b.left and (pending is a or b is not pending):
                return True
        return False

    def _unqueue(self, a: Attempt) -> None:
        """``a`` is no longer its lock's marked pending waiter or queue head (it took the lock,
        gave up its place, or its attempt ended)."""
        if self.pending[a.lock] is a:
            self.pending[a.lock] = None
        if self.head[a.lock] is a:
            self.head[a.lock] = None

    def _on_irq(self, index: int, ctx: Context, obj: int, value: int) -> None:
        """A handler entered (IRQ_ENTER) or a context ended (IRQ_EXIT, DONE): who is interrupted
        changed, so the cycles and the stall clocks may have."""
        if self.cycles:
            self._recompute()
        self.retime()

    # -- the clocks of waiting: stalled by a handler, asleep on a free lock -------------------------
    def waiter_moved(self, ctx: Context) -> None:
        """``ctx`` blocked or woke (the engines call this): if it is waiting for a lock, that
        lock's clocks may change (it may now sleep on a free lock). Who else sleeps changes no
        clock: only waiters' sleep counts, so a context with no attempt in progress (a holder, a
        spinner between attempts) changes nothing."""
        if self.timed:
            a = self.attempts.get(ctx.index)
            if a is not None:
                self.retime(a.lock)

    def retime(self, lock: int | None = None) -> None:
        """Start or stop each attempt's stall and free clocks (``Attempt.paused_ns``,
        ``Attempt.free_ns``): of the attempts on ``lock``, or (None) on every lock. Called after
        every event (the lock it names; every lock for an interrupt's entry or exit) and, by the
        engines, whenever a waiter blocks or wakes (its lock): both clocks depend on who is
        interrupted and which waiters sleep, which change between events. It runs about fifty
        times per run, so the rules below are written out inline (``_stall`` and ``_free`` say
        the same for the shared-lock path). Nothing to do where the target declares no timeouts
        (``timed``) or nobody waits."""
        if not self.timed or not self.attempts:
            return
        now = self.engine.machine.now
        if self.sharing is not None:
            return self._retime_shared(now)
        window = self._window
        # Lock by lock (``on_lock`` holds exactly the attempts in progress): what its waiters
        # have in common is counted once, so a call costs one pass over the attempts, not one
        # pass over each attempt's fellow waiters.
        on_lock = self.on_lock
        # One lock's event or waiter changes only that lock's clocks, except that with per-call
        # budgets time itself stops a free clock (at the budget's end): then every lock.
        for k in range(len(on_lock)) if lock is None or window else (lock,):
            waiting = on_lock[k]
            if not waiting:
                continue
            holder = self.holder[k] or self.releaser[k]
            # Held up by a handler: the holder's, or another waiter's (any waiter under one holds
            # up every waiter on the lock), or, below, its own CPU's.
            stall_all = holder is not None and not holder.top
            awake = 0  # waiters on their way to the lock: running, runnable or under a handler
            for b in waiting:
                c = b.ctx
                if not c.top:
                    stall_all = True
                    awake = 2
                    break
                if not c.blocked:
                    awake += 1
            # Free for a waiter: nobody holds or releases the lock, no waiter is awake (so it
            # sleeps, not merely preempted, and not under its own CPU's handler), and nobody the
            # lock's declared order puts first still waits (checked per waiter).
            unheld = holder is None and not self.releasing[k]
            maybe_free = unheld and not awake
            for a in waiting:
                if stall_all or not a.ctx.top:
                    if a.stall_since is None:
                        a.stall_since = now
                elif a.stall_since is not None:
                    a.stall_total += now - a.stall_since
                    a.stall_since = None
                if (
                    maybe_free
                    and all(b.end >= 0 for b in a.ahead)
                    and not (window and now >= a.deadline())
                ):
                    if a.free_since is None:
                        a.free_since = now
                    continue
                if a.free_since is not None:
                    self._close(a, now)
                if a.free_total and not a.ctx.blocked and a.ctx.top and not (
                    unheld and awake == 1 and all(b.end >= 0 for b in a.ahead)
                ):
                    a.looked_taken()  # awake, and the lock not its to take: a fair look

    @staticmethod
    def _stall(a: Attempt, stalled: bool, now: int) -> None:
        """Start or stop ``a``'s stall clock (held up by a handler on its own CPU or another's)."""
        if stalled and a.stall_since is None:
            a.stall_since = now
        elif not stalled and a.stall_since is not None:
            a.stall_total += now - a.stall_since
            a.stall_since = None

    def _free(self, a: Attempt, free: bool, now: int) -> None:
        """Start or stop ``a``'s free clock (the lock available to it while it sleeps)."""
        if free and a.free_since is None:
            a.free_since = now
        elif not free and a.free_since is not None:
            self._close(a, now)

    def _retime_shared(self, now: int) -> None:
        """``retime`` for a lock with shared holders: as for an exclusive lock, with "held"
        meaning held in a mode that keeps this waiter out (``blockers``) and "first" the
        declared preference (``preferred``)."""
        for a in self.attempts.values():
            others = self.on_lock[a.lock]
            blockers = self.blockers(a)
            stalled = (
                not a.ctx.top
                or any(not h.top for h in blockers)
                or any(not b.ctx.top for b in others if b is not a)
            )
            self._stall(a, stalled, now)
            available = (
                not blockers
                and a.ctx.top
                and all(b.ctx.blocked and b.ctx.top for b in others if b is not a)
                and not self.preferred(a)
                and not (self._window and now >= a.deadline())
            )
            self._free(a, available and a.ctx.blocked, now)
            if a.free_total and not available and not a.ctx.blocked and a.ctx.top:
                a.looked_taken()  # awake, and the lock not its to take: a fair look

    # -- arrival: who is ahead of whom ----------------------------------------------------------
    # Lamport's doorway (CACM 17(8), 1974, the bakery algorithm): B is ahead of A when B finished
    # its doorway before A began its own. A begins its doorway at its first step, not when
    # ``acquire`` is called: between the two, other contexts may run, and one that passes its
    # doorway there (a writer's announcing fetch_add, a ticket's fetch_add) is ahead of A in the
    # lock's own order. So the order is computed when the attempt starts (what is known then)
    # and settled at its first step (``opened``, called by the engine); with a doorway of 0 steps
    # arrival is the start itself and nothing is left to settle.

    def _arrivals(self, a: Attempt, waiting: list[Attempt]) -> None:
        """Who arrived before ``a`` among ``waiting``: ``Attempt.before`` by ``Fairness``'s doorway,
        ``Attempt.ahead`` (FIFO: the waiters ``a`` must wait for) and, across modes, what the
        declared preference adds (``_prefer``)."""
        door = self._fair_doorway
        if door is not None:
            a.before = tuple(b for b in waiting if b is not a and b.past_doorway(door))
            if self._fifo_doorway is not None:
                a.ahead = a.before
        if self.sharing is not None:
            self._prefer(a, waiting)

    def opened(self, ctx: Context) -> None:
        """``ctx`` takes the first step of its attempt (``Context.opening``): the waiters past
        their doorway now, whenever they began, arrived before it (section comment)."""
        a = self.attempts.get(ctx.index)
        opening, ctx.opening = ctx.opening, None
        if a is None or a is not opening:
            return  # it ended without a step
        waiting = self.on_lock[a.lock]
        if len(waiting) == 1 and not (a.before or a.ahead or a.writers_ahead):
            return  # alone on its lock, as it was at its start: nobody arrived before it
        was = (a.before, a.ahead, a.writers_ahead)
        a.ahead = a.writers_ahead = ()
        self._arrivals(a, waiting)
        if (a.before, a.ahead, a.writers_ahead) != was:
            # New edges out of ``a`` (it waits for the new arrivals before it): a cycle can
            # close only through it, as at an ACQUIRE (``_on_acquire``).
            if self.cycles or self.sharing is not None or self._waited_for(ctx):
                self._recompute()
            self.retime(a.lock)

    # -- the declared order across modes -------------------------------------------------------
    def _prefer(self, a: Attempt, waiting: list[Attempt]) -> None:
        """Which earlier waiters the declared preference puts before the new attempt ``a``
        (``Sharing.preference``, after ``doorway_steps``)."""
        s = self.sharing
        if s.preference is None:
            return
        if a.shared and s.handler_readers_overtake and a.ctx.level != Level.TASK:
            return  # a reader in a handler may pass a waiting writer (qrwlock's in_interrupt())
        arrived = [b for b in waiting if b is not a and self._arrived(b)]
        if s.preference == "fifo":
            a.ahead = a.ahead + tuple(b for b in arrived if b not in a.ahead)
        elif not a.shared:
            return  # writer and reader preference order no writer behind anyone
        elif s.preference == "writers":
            a.ahead = a.ahead + tuple(b for b in arrived if not b.shared and b not in a.ahead)
        elif s.reader_overtakes is not None:
            a.writers_ahead = tuple(b for b in arrived if not b.shared)

    def _arrived(self, b: Attempt) -> bool:
        """Has waiter ``b`` arrived, for the declared order across modes: past the first
        ``Sharing.doorway_steps`` steps of its attempt, or, where the lock declares no fixed
        doorway (None), once the target marked it its lock's pending waiter (``Mark.PENDING``:
        qrwlock's writer setting ``_QW_WAITING``)."""
        door = self.sharing.doorway_steps
        if door is None:
            return self.pending[b.lock] is b
        return b.past_doorway(door)

    def leaving(self, b: Attempt, now: int) -> bool:
        """Is waiter ``b`` leaving rather than waiting: cancelled, or past its per-call budget (a
        trio waiter leaves the queue when its deadline passes, before it returns ETIMEDOUT)?"""
        return b.cancelled or (self._window and now - b.start >= b.budget)

    def _count_overtaking(self, a: Attempt, now: int) -> None:
        """Shared ``a`` got its lock: count it against each exclusive waiter it overtook (arrived
        before it, past its doorway, still waiting and not leaving): reader preference's bound."""
        for b in a.writers_ahead:
            if b.end < 0 and not self.leaving(b, now):
                b.overtakers += 1

    def _close(self, a: Attempt, now: int) -> None:
        """Stop its free clock (at its budget's end, for per-call budgets)."""
        if a.free_since is not None:
            a.free_total = a.free_run(now, a.deadline() if self._window else None)
            a.free_since = None

    def _progress(self, lock: int, now: int) -> None:
        """The lock made progress: the quiet clocks of its waiters restart (``Attempt.quiet_ns``)."""
        if not self.timed:
            return
        jumped = self.engine.machine.jumped
        for b in self.on_lock[lock]:
            b.quiet_paused = b.paused_ns(now)
            b.quiet_jumped = jumped

    # -- the graph (``_graph``) and the held-table view -------------------------------------
    def _recompute(self) -> None:
        """The cycles now (``_graph``), and which attempts have been on one."""
        self.cycles = _graph.find_cycles(self)
        if self.cycles:
            for a in self.attempts.values():
                a.any_cycle = True
            for cyc in self.cycles:
                for c in cyc.members:
                    member = self.attempts.get(c.index)
                    if member is not None:
                        member.on_cycle = True

    def _mark_table_view(self) -> None:
        table = self.table
        for a in self.attempts.values():
            if a.table_view:
                continue
            mine = table[a.ctx.cpu]
            if len(mine) < 2:
                continue  # nothing below its top entry: neither test below can hold
            below = mine[:-1]
            if a.lock in below:
                a.table_view = True
                continue
            for cpu, theirs in enumerate(table):
                if cpu == a.ctx.cpu or a.lock not in theirs:
                    continue
                # Y has L below some later entry that X has below its top: the kernel reads
                # Y's top slot, which is Y's newest entry or, in an unlock window, a stale one.
                if any(e in below for e in theirs[theirs.index(a.lock) + 1 :]):
                    a.table_view = True
                    break

    def describe_graph(self) -> list[str]:
        """The wait-for graph in words, one line per waiting or interrupted context."""
        return _graph.describe(self)


def _remove_last(items: list[Any], value: Any) -> None:
    if items and items[-1] == value:  # the usual case: tables are stacks
        items.pop()
        return
    for i in range(len(items) - 1, -1, -1):
        if items[i] == value:
            del items[i]
            return


def _handler_table() -> tuple[Callable[..., None] | None, ...]:
    """``GroundTruth.HANDLERS``: by event kind, the function the engine calls with the ground truth
    and the event, before the oracles (None: a kind it does not follow). One table for every run,
    rather than bound methods made for each."""
    table: list[Callable[..., None] | None] = [None] * (CANCEL + 1)
    for kinds, f in (
        ((ACQUIRE,), GroundTruth._on_acquire), ((ACQUIRED,), GroundTruth._on_acquired),
        ((RELEASE,), GroundTruth._on_release), ((RELEASED,), GroundTruth._on_released),
        ((IRQ_ENTER, IRQ_EXIT, DONE), GroundTruth._on_irq), ((MARK,), GroundTruth._on_mark),
        ((CANCEL,), GroundTruth._on_cancel),
    ):  # fmt: skip
        for kind in kinds:
            table[kind] = f
    return tuple(table)


GroundTruth.HANDLERS = _handler_table()
