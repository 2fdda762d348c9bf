# The resilient test-and-set spinlock: rqspinlock's fallback for architectures without queued
# spinlocks, modelled on its own. Facts from Linux (torvalds/linux): kernel/bpf/rqspinlock.c
# (resilient_tas_spin_lock, check_timeout, check_deadlock_AA, check_deadlock_ABBA) and
# include/asm-generic/rqspinlock.h (RES_NR_HELD, grab_held_lock_entry, release_held_lock_entry,
# res_spin_unlock, `#define res_spin_lock(lock) resilient_tas_spin_lock(lock)` when
# CONFIG_QUEUED_SPINLOCKS=n), as of the 2025 series "rqspinlock: Enclose lock/unlock within lock
# entry acquisitions" (unlock stores the word before it clears the table entry) and "rqspinlock:
# Perform AA checks immediately" (the AA check runs at the first poll); the step-by-step reading
# is /work/shared/specs/rqspinlock.md. Written for lockfuzz's cells, one step per memory access.
"""Resilient test-and-set spinlock: TAS + AA/ABBA detection + a 1 s timeout.

What it models, one step per access:

- acquire: grab an entry in the per-CPU held-locks table (``cnt += 1``, then ``locks[cnt-1] = L``
  unless the table is full), then poll: read the word, and when it reads 0 try ``cmpxchg(0 -> 1)``.
  Every failed poll runs the check: the first one does the AA check (``L`` below the top of this
  CPU's table) and then arms the deadline (now + 1 s, the clock read after the AA check, as the
  kernel's: ``Mark.ARMED``); later ones return ETIMEDOUT once ``now > deadline``
  (``Mark.EXPIRED``) and otherwise run the ABBA check when strictly more than 1 ms passed since
  the last check. On an error the entry is released (``locks[cnt-1] = NULL``, then ``cnt -= 1``).
- release: store 0 to the word, then ``locks[cnt-1] = NULL`` and ``cnt -= 1`` (res_spin_unlock's
  order since "rqspinlock: Enclose lock/unlock within lock entry acquisitions": a handler landing
  between the two still finds the entry, and gets EDEADLK rather than a timeout).

Between polls a waiter sleeps in ``wait_until`` until the word reads 0 or the next moment a check
could do anything, so the model behaves like the kernel's loop with a check at every poll while
costing steps per event, not per millisecond. For the timeout that moment is a step before the
first poll past the deadline (a wait's deadline wakes it for its next step): it gives up at that
poll, 1 s + 1 ns after arming, as the kernel's loop would, and declares so to the step
(``Timeouts(min_ns=1 s + 1 ns, late_ns=0)``). The kernel polls without pause, so its ABBA checks
fall on a grid fixed by its last one: every 1 ms + 1 ns (the first poll strictly more than 1 ms
later). A check whose inputs (the word, every held table: a ``Machine.watch``) did not change
since the last one would read the same and find nothing, so after a check the waiter sleeps
until one of them changes, or its timeout; when a change wakes it, the checks it slept through
are the grid's points before the change, and its next check is the first point after it (or at
once, if that point passed before the waiter could run again), where the kernel's would be.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from lockfuzz import Capabilities, Context, Detection, Machine, Mark, Status, Target, Timeouts
from lockfuzz.targets._held_table import RES_NR_HELD, held_table

__all__ = ["CHECK_PERIOD_NS", "DEADLOCK_CHECK_NS", "RES_NR_HELD", "TAS_TIMEOUT_NS", "ResilientTasLock"]

#: resilient_tas_spin_lock's timeout: NSEC_PER_SEC (4x RES_DEF_TIMEOUT).
TAS_TIMEOUT_NS = 1_000_000_000
#: Deadlock re-check interval: NSEC_PER_MSEC, strict (``prev + NSEC_PER_MSEC < now``).
DEADLOCK_CHECK_NS = 1_000_000
#: The period of the ABBA checks of a waiter that polls without pause, at the model's 1 ns: the
#: first poll strictly more than DEADLOCK_CHECK_NS after the last check.
CHECK_PERIOD_NS = DEADLOCK_CHECK_NS + 1


class _Timer:
    """struct rqspinlock_timeout: the duration, the deadline (None until the first check arms
    it) and ``cur``, the time of the last deadlock check. Local to one acquisition, as on the
    kernel's stack (RES_RESET_TIMEOUT sets the duration, the first check_timeout the deadline)."""

    __slots__ = ("cur", "duration", "end", "seen", "stale")

    def __init__(self, duration: int, seen: int | None = None) -> None:
        self.duration = duration
        self.end: int | None = None
        self.cur = 0
        # The model's bookkeeping (see ResilientTasLock.changes): the write count last seen (None:
        # this wait loop does not watch, and every due check runs), and whether the ABBA check's
        # inputs changed since it last ran.
        self.seen = seen
        self.stale = True


def _abba_latency(step_ns: int) -> int:
    """The most of the cycle's clock that passes before an ABBA check finds the cycle, at a
    step of ``step_ns``. A check is due CHECK_PERIOD_NS (1 ms + 1 ns) after the previous one, at
    ``cur``. After a check that found nothing the waiter sleeps only after the check's own reads,
    two steps or more after ``cur``. Woken by a change to what the check reads (the other party's
    table entry: until it is written the check cannot see the cycle), it counts the checks it
    slept through as run, the last at least 1 ns before the change, and sleeps again a step after
    it. So the cycle waits at most CHECK_PERIOD_NS - 1 ns - a step (1 ms + 1 ns at a step of
    0 ns); tests/fast/test_tight_promises.py shows how close the lock comes."""
    return CHECK_PERIOD_NS - (1 + step_ns if step_ns else 0)


class ResilientTasLock(Target):
    """rqspinlock's resilient test-and-set fallback alone, the smallest resilient target. Each
    lock is one word (0 free, 1 held) taken by read-then-cmpxchg; each CPU has a held-locks table
    of 31 entries (``cnt`` plus 31 slots holding ``lock + 1``, 0 for NULL) shared by all its
    contexts, grabbed at the start of every acquisition and released on error or unlock. The
    first failed poll runs the AA check and arms a 1 s deadline; later polls return ETIMEDOUT
    once past it and run the kernel's two-party ABBA check at most once per millisecond. It
    promises: a fixed 1 s timeout, never waiting more than 1 s (+ slack) without the lock making
    progress; AA and ABBA reported as EDEADLK within about 1 ms; and, by design, EDEADLK whenever
    the held-table view shows a cycle (an interrupted context merely *attempting* the lock counts
    as holding it: the ``held-table-view`` exception). Budgets passed to ``acquire`` are ignored."""

    capabilities = Capabilities(
        # max_quiet_ns, on the lock's own time (the clock's jumps, not the steps): an attempt
        # returns ETIMEDOUT at the first check after its deadline, and a waiter is never quiet
        # for longer than its own attempt. Its steps (grab the entry, read, cmpxchg, the AA walk,
        # releasing the entry) and those of other CPUs scheduled in between take none of that
        # time, and it sleeps only until its deadline: 1 s + 1 ns + late_ns, with no slack.
        # way_out_ns: from EXPIRED it releases its entry and returns, sleeping nowhere: 0.
        # min_ns, to the step: the first check arms the deadline (Mark.ARMED: now + 1 s, read after
        # the AA check) and a check gives up only when now > deadline (Mark.EXPIRED), so at least
        # 1 s + 1 ns after arming, and so after the attempt's start.
        # late_ns, to the step: it wakes for the first poll past the deadline and gives up at that
        # poll; at the default step of 1 ns not one ns of its own time is late (``__init__`` allows
        # the part of a step a wake may overshoot by at a coarser step).
        timeouts=Timeouts(
            per_call=False, min_ns=TAS_TIMEOUT_NS + 1, max_quiet_ns=TAS_TIMEOUT_NS + 1, slack_ns=0, late_ns=0,
            way_out_ns=0,
        ),
        # Latencies on the cycle's clock (edeadlk_complete: it runs while the whole cycle waits
        # and a checker sleeps on its own deadline), to the nanosecond (``_abba_latency``):
        # AA is found at the first poll, before the waiter sleeps at all (class_latency_ns: 0);
        # ABBA at the first check strictly more than 1 ms after the previous one.
        detection=Detection(
            classes=frozenset({"AA", "ABBA"}), latency_ns=_abba_latency(1), max_held=RES_NR_HELD,
            class_latency_ns={"AA": 0},
            # The ABBA scan stops at the first other CPU listing the lock below its top.
            table_scan=True,
        ),
        exceptions=frozenset({"held-table-view"}),
    )

    #: The timeout of one acquisition (a class attribute so that a variant can change it).
    timeout_ns = TAS_TIMEOUT_NS

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.n_cpus = machine.n_cpus
        self.step_ns = machine.step_ns
        if machine.step_ns != 1:
            # A wake by another context's step may come up to a step less 1 ns past the deadline,
            # and the ABBA latency depends on the step (``_abba_latency``).
            caps = type(self).capabilities
            assert caps.timeouts is not None and caps.detection is not None
            self.capabilities = replace(  # type: ignore[misc] # an instance's own promise
                caps,
                timeouts=replace(
                    caps.timeouts, late_ns=(caps.timeouts.late_ns or 0) + max(0, machine.step_ns - 1),
                    max_quiet_ns=caps.timeouts.max_quiet_ns + max(0, machine.step_ns - 1),
                ),
                detection=replace(caps.detection, latency_ns=_abba_latency(machine.step_ns)),
            )
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]
        self.cnt = machine.per_cpu(lambda cpu: machine.cell(f"cpu{cpu}.held.cnt"))
        # Counts the writes to what a deadlock check on lock i reads (its word, every held table):
        # a check due when none changed since the last one would read the same and find the same,
        # so it is skipped. Bookkeeping of the model, not kernel memory (Machine.watch). The
        # tables' entries join it as they are made (``held_table``).
        self.changes = [machine.watch(f"L{i}.check-inputs", [self.words[i], *self.cnt]) for i in range(machine.n_locks)]
        self.slots = machine.per_cpu(lambda cpu: held_table(machine, cpu, self.changes))

    # -- the lock ---------------------------------------------------------------------------
    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        word, changes = self.words[lock], self.changes[lock]
        await self._grab_entry(ctx.cpu, lock)
        timer = _Timer(self._duration(budget_ns), changes.value)
        val = await word.load()
        while True:
            if val == 0 and await word.cmpxchg(0, 1) == 0:
                return Status.OK
            ret = await self._check_timeout(ctx, lock, timer)
            if ret:
                await self._release_entry(ctx.cpu)
                return ret
            if not timer.stale:
                # Nothing a check reads (the word included) changed since the last check: only
                # the timeout can act. Sleep until something changes, or the timeout.
                # mypy cannot type a lambda whose default argument binds the value (python/mypy#15459).
                seen = await changes.wait_until(lambda v, s=timer.seen: v != s, self._next_check(timer))  # type: ignore[misc]
                if seen == timer.seen:
                    # Its deadline: the word (watched) still reads ``val``, so this step is the
                    # poll past the timeout; check now, as the kernel's loop would at that poll.
                    continue
                _skip_checks(timer, ctx.woken_ns)  # the checks it slept through found nothing
                timer.stale = True
            # Poll: re-read the word until it reads 0 or the next check falls due.
            val = await word.wait_until(_is_zero, self._next_check(timer))

    async def release(self, ctx: Context, lock: int) -> None:
        await self.words[lock].store(0)
        await self._release_entry(ctx.cpu)

    def check(self) -> list[str]:
        problems = [f"L{i} word is {w.value:#x}, expected 0" for i, w in enumerate(self.words) if w.value]
        for cpu in range(self.n_cpus):
            if self.cnt[cpu].value:
                problems.append(f"cpu{cpu} held-locks count is {self.cnt[cpu].value}, expected 0")
            dirty = [i for i, s in enumerate(self.slots[cpu]) if s.value]
            if dirty:
                problems.append(f"cpu{cpu} held-locks slots {dirty} are not NULL")
        return problems

    # -- the held-locks table -----------------------------------------------------------------
    async def _grab_entry(self, cpu: int, lock: int) -> None:
        cnt = await self.cnt[cpu].fetch_add(1) + 1  # this_cpu_inc_return: one step
        if cnt <= RES_NR_HELD:  # else keep the increment, store nothing
            await self.slots[cpu][cnt - 1].store(lock + 1)

    async def _release_entry(self, cpu: int) -> None:
        cnt = await self.cnt[cpu].load()
        if cnt <= RES_NR_HELD:
            await self.slots[cpu][cnt - 1].store(0)
        await self.cnt[cpu].fetch_add(-1)

    # -- the checks ---------------------------------------------------------------------------
    def _duration(self, budget_ns: int) -> int:
        """How long one acquisition may wait: the fixed second (the budget is ignored)."""
        return self.timeout_ns

    async def _check_timeout(self, ctx: Context, lock: int, timer: _Timer) -> Status | Literal[0]:
        if timer.end is None:  # the first check of this wait loop: the AA check, then arm
            ret = await self._check_aa(ctx.cpu, lock)
            if not ret:
                timer.cur = ctx.now  # the kernel reads the clock after the AA check
                timer.end = timer.cur + timer.duration
                ctx.mark(Mark.ARMED, lock)
            return ret
        now = ctx.now
        if now > timer.end:  # the timeout wins over the deadlock check
            ctx.mark(Mark.EXPIRED, lock)
            return Status.ETIMEDOUT
        if timer.cur + DEADLOCK_CHECK_NS < now:
            timer.cur = now
            # A check whose inputs did not change would read the same and return 0: skip it.
            if timer.stale:
                if timer.seen is not None:  # snapshot before the reads: a write during them counts
                    timer.seen, timer.stale = self.changes[lock].value, False
                return await self._check_abba(ctx.cpu, lock)
        return 0

    def _next_check(self, timer: _Timer) -> int:
        """The first moment a check would do anything: the ABBA re-check if its inputs changed
        since the last one, or the timeout."""
        assert timer.end is not None  # armed by the wait loop's first _check_timeout
        # The timeout's poll is the first past its end; a wait's deadline wakes the waiter for its
        # next step, so wake a step before that poll (Timeouts.late_ns: not one ns late).
        timeout = timer.end + 1 - self.step_ns
        if not timer.stale:
            return timeout
        return min(timer.cur + CHECK_PERIOD_NS, timeout)

    async def _check_aa(self, cpu: int, lock: int) -> Status | Literal[0]:
        """EDEADLK if ``lock`` is in this CPU's table below the top (our own attempt)."""
        cnt = min(RES_NR_HELD, await self.cnt[cpu].load())
        slots = self.slots[cpu]
        for i in range(cnt - 1):
            if await slots[i].load() == lock + 1:
                return Status.EDEADLK
        return 0

    async def _check_abba(self, cpu: int, lock: int) -> Status | Literal[0]:
        """The kernel's two-party check: another CPU has ``lock`` below its top, and its top
        entry (what it attempts) is below the top of our table. The first CPU found with
        ``lock`` below its top decides."""
        word = self.words[lock]
        own = self.slots[cpu]
        own_cnt = min(RES_NR_HELD, await self.cnt[cpu].load())
        for c in range(self.n_cpus):
            real = await self.cnt[c].load()
            cnt = min(RES_NR_HELD, real)
            if await word.load() == 0:  # what we wait for is gone: try again
                return 0
            if c == cpu or real < 2 or real > RES_NR_HELD:
                continue
            theirs = self.slots[c]
            remote = await theirs[cnt - 1].load()
            if remote == 0:  # raced with a grab or a release: inconclusive
                continue
            for i in range(cnt - 1):
                if await theirs[i].load() != lock + 1:
                    continue
                for j in range(own_cnt - 1):
                    if await own[j].load() == remote:
                        return Status.EDEADLK
                return 0
        return 0


def _skip_checks(timer: _Timer, changed_ns: int) -> None:
    """A waiter that slept with nothing changed since its last check (``timer.cur``) learns of a
    change made at ``changed_ns``. The kernel's waiter polled all along, checking at each point
    of the grid ``cur + k * CHECK_PERIOD_NS`` and finding nothing before the change: make the last
    such point its last check, so that the next one falls where the kernel's would. (A change made
    while it was still checking ends its wait at once, with ``woken_ns`` from an earlier wake,
    before ``cur``: nothing was skipped.)"""
    if changed_ns > timer.cur:
        timer.cur += (changed_ns - 1 - timer.cur) // CHECK_PERIOD_NS * CHECK_PERIOD_NS


def _is_zero(value: int) -> bool:
    return value == 0
