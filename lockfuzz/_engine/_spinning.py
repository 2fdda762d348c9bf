"""Spinning: a context going round a loop that changes nothing is waiting, and is parked.

Spinning is waiting (DESIGN.md, "Oracles"). A context whose recent steps changed nothing
(loads, and read-modify-writes that left the value as it was) and repeat, step for step and value
for value, the ones just before them, twice (``SPIN_REPEATS``), is *spinning*: a plain ``while
await flag.load(): pass`` after its third load, a test-and-set loop after its third failed
``xchg``. The engine parks it, as if it waited on the cells it read: it runs again when one of
them changes, when its acquisition's time is up (its budget, or a fixed timeout's shortest wait,
then at doubling intervals, so that a spinner that reads the clock gives up on time), or when
nothing else can run: then every parked spinner gets one step (a *round*), because a loop that
re-reads memory may still be counting towards its end in a local variable.

Counting loops. A clock jump across a parked spinner stands for every round of its loop the
spinner would have run meanwhile, so it is exact only if a round leaves the loop as it was. The
engine cannot see a counter in memory, but it can see the loop's local variables: at each park
it takes the spinner's *loop state* (``_loop_state``: where each frame of its await chain stands
and its locals' values), and a spinner whose loop state one period later equals the one before
is *still* (``Context.still``): its next rounds would repeat, and time may jump past it. One that
differs is counting (``for _ in range(64)``, ``tries += 1``: a spin-count timeout, the spin
phase of a spin-then-park lock), and gets rounds instead of jumps until its loop ends or
``COUNT_ROUNDS`` rounds changed nothing. Without this, a lock that gives up after 64 tries
behind a 1 ms hold was frozen across the hold after 4 tries and never gave up (its early
timeout was never seen), and the park path of a spin-then-park lock was never run. A counter
kept in a Python attribute of the target, or a container mutated in place, is not seen: shared
state belongs in cells.

Once a round of still spinners changed nothing, the clock jumps to a deadline, unless a parked
spinner is past its acquisition's time (probed): then, as with no deadline at all, a few more
rounds come first (``SPIN_ROUNDS``): a margin for what the loop state does not show. Past that,
a spinner past its time is probed at doubling intervals, doubling at each probe that found it
still spinning (not at each round: once it doubled at each round, and the first jump after the
rounds was 2**62 ns, an "overrun" of 146 years). With no deadline after those rounds the run
hangs, and the hang report names what each spinner re-reads. So a spinner behind a hold of any
length costs a few steps, and the step limit means a livelock: steps that change things, for
ever.

``Spinning`` is a part of ``Engine`` (a mixin, kept here so that the rule reads in one place):
the hot loop records each no-change step in ``Context.reads`` and calls ``_repeats``; the
engine's clock jump calls ``_spin_round``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from .._oracles._truth import GroundTruth
    from ._context import Context
    from ._machine import Machine

__all__ = ["COUNT_ROUNDS", "SPIN_REPEATS", "SPIN_ROUNDS", "Spinning", "target_frames"]

#: Rounds (every parked spinner one step) in a row that change nothing, before the clock jumps to
#: a spinner's probe or, with no deadline at all, the run is a hang: room for a loop that re-reads
#: memory a bounded number of times (a delay loop, a chain walk) to end, when nothing else can run.
SPIN_ROUNDS = 64
#: Rounds that change nothing which a counting spinner (module doc) may run before the clock jumps
#: past it all the same (or, with no deadline, the run hangs): a loop bounded by up to this many
#: rounds in a local variable runs to its end in steps, as it would on a CPU.
COUNT_ROUNDS = 1024
#: How many times in a row a context must go round the same loop of steps that change nothing
#: before it is parked as a spinner: three, so that code which merely reads a value twice (a
#: check that re-reads a word, a scan) runs on and is not parked in the middle of what it does.
SPIN_REPEATS = 3
#: A context's no-change steps kept for spin detection; a longer run of them starts afresh.
_MAX_READS = 512


class Spinning:
    """The spin rules of ``Engine`` (module doc)."""

    # What it uses of the engine (declared for the type checker; ``Engine`` and ``Waiting``
    # define them).
    machine: Machine
    truth: GroundTruth
    capabilities: Any
    stacks: list[list[Context]]
    changes: int
    _round_at: int
    _rounds: int
    _deadline: Callable[[Context, int | None], None]
    _unblock: Callable[[Context], None]

    @staticmethod
    def _repeats(ctx: Context, j: int) -> int:
        """The no-change step just taken occurred before at ``j``: if the steps since then
        repeat the ones before them, value for value, the length of that loop, else 0."""
        reads = ctx.reads
        i = len(reads) - 1
        p = i - j
        if j + 1 >= (SPIN_REPEATS - 1) * p:
            loop = reads[j + 1 :]
            if all(reads[j + 1 - k * p : i + 1 - k * p] == loop for k in range(1, SPIN_REPEATS)):
                return p
        if i >= _MAX_READS:
            ctx.reads = []
            ctx.last = {}
        return 0

    def _park(self, ctx: Context, period: int) -> None:
        """Park a spinner whose last ``period`` steps repeat: blocked until a cell it read in
        its loop changes, its acquisition's time is up, or a spin round (``_spin_round``)."""
        if len(ctx.reads) < SPIN_REPEATS * period:
            return  # its line moved on after that step (an event, a wait): no longer spinning
        seen = {index: value for _, index, value in ctx.reads[-period:] if index >= 0}
        cells = self.machine.cells
        if any(cells[i].value != v for i, v in seen.items()):
            return  # changed since it was read: it will see that at its next step
        self._note_loop_state(ctx, period)
        ctx.blocked = True
        ctx.spinning = True
        ctx.token += 1
        ctx.seen = seen
        ctx.watching = tuple(cells[i] for i in seen)
        for c in ctx.watching:
            c.waiters.append(ctx)
        self._deadline(ctx, self._spin_deadline(ctx))

    def _spin_deadline(self, ctx: Context) -> int | None:
        """When a parked spinner must look at the clock again: when its acquisition may give up
        (its budget, or a fixed timeout's shortest wait), and past that at doubling intervals."""
        attempt = self.truth.attempts.get(ctx.index)
        timeouts = self.capabilities.timeouts
        if attempt is None or timeouts is None:
            return None
        due = attempt.start + (attempt.budget if timeouts.per_call else timeouts.min_ns)
        now = self.machine.now
        if due > now:
            return due
        at = ctx.probe_at
        if at is None or at <= now:  # its first probe, or the last one came and found it spinning
            ctx.probes += 1
            at = ctx.probe_at = now + (1 << min(ctx.probes, 62))
        return at

    @staticmethod
    def _note_loop_state(ctx: Context, period: int) -> None:
        """Take the loop state of a spinner being parked, and compare it with the one ``period``
        parks before, at the same point of its loop (module doc, "Counting loops"). A spin ends
        when its ``reads`` list is replaced (a change, a wait, a new line step): the states taken
        belong to that list."""
        reads = ctx.reads
        if ctx.states_of is not reads:
            ctx.states_of = reads
            ctx.states = []
            ctx.still = None
        elif ctx.still is not None:
            return  # decided for this spin
        states = ctx.states
        n = len(reads)
        state = _loop_state(ctx.coro)
        states.append((n, state))
        if len(states) > period:
            before_n, before = states[-1 - period]
            if before_n == n - period:
                ctx.still = before == state

    def _spin_round(self, has_deadline: bool) -> bool:
        """Nothing can run. If spinners are parked and no round has been tried since the last
        progress, unpark them all for one step each (module doc): True. Once a round changed
        nothing, time may pass (False), or with no deadline, a few more rounds, then a hang."""
        parked = [s[-1] for s in self.stacks if s and s[-1].spinning]
        if not parked:
            return False
        if self._round_at == self.changes:
            # A counting spinner, or one not yet seen a whole period, runs on in rounds: the clock
            # must not jump past the end of its loop (module doc, "Counting loops").
            counting = self._rounds < COUNT_ROUNDS and not all(ctx.still for ctx in parked)
            # A spinner past its acquisition's time (probed) may be in a bounded loop that ends
            # in a return: rounds come first, so that the clock does not jump past its end.
            if not counting and has_deadline and not any(ctx.probes for ctx in parked):
                return False
            self._rounds += 1
            if not counting and self._rounds > SPIN_ROUNDS:
                return False
        else:
            self._rounds = 0
        self._round_at = self.changes
        for ctx in parked:
            self._unblock(ctx)  # its reads stay: one more repeat parks it again
        return True


# Values compared as they are in a loop state; anything else is compared by identity (a local
# that names another object each round is counting too).
_PLAIN = (int, float, str, bytes, bool, type(None))
# The libraries whose frames are not the target's own (``target_frames``).
_LIBRARIES = frozenset({"trio", "anyio", "outcome", "sniffio"})


def target_frames(coro: Any) -> Iterator[Any]:
    """The frames of the target's own code in ``coro``'s await chain, outermost first: those of
    trio (and the libraries it runs on) and of lockfuzz's engine are skipped. A loop state leaves
    them out because their locals are made afresh at each call (``trio.sleep(0)`` opens a new
    cancel scope every round) and no loop of the target counts in them; the trio driver's
    reports name the innermost as where the target made a call."""
    depth = 0
    while coro is not None and depth < 200:
        depth += 1
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            module = str(frame.f_globals.get("__name__", ""))
            if module.partition(".")[0] not in _LIBRARIES and not module.startswith("lockfuzz._"):
                yield frame
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)


def _loop_state(coro: Any) -> tuple[Any, ...]:
    """Where each frame of the target's own code in ``coro``'s await chain stands (its last
    instruction) and the values of its local variables, as one comparable tuple (module doc,
    "Counting loops")."""
    state: list[Any] = []
    for frame in target_frames(coro):
        state.append(frame.f_lasti)
        for value in frame.f_locals.values():
            if type(value) in _PLAIN:
                state.append(value)
            elif type(value) is tuple and all(type(v) in _PLAIN for v in value):
                state.append(value)
            else:
                state.append(id(value))
    return tuple(state)
