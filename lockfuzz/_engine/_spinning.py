"""Spinning: a context going round a loop that changes nothing is waiting, and is parked.

Spinning is waiting (DESIGN.md, "Oracles"). A context whose recent steps changed nothing
(loads, and read-modify-writes that left the value as it was) and repeat, step for step and value
for value, the ones just before them, twice (``SPIN_REPEATS``), is *spinning*: a plain ``while
await flag.load(): pass`` after its third load, a test-and-set loop after its third failed
``xchg``. The engine parks it, as if it waited on the cells it read: it runs again when one of
them changes, when its acquisition's time is up (its budget, or a fixed timeout's shortest wait,
then at doubling intervals, so that a spinner that reads the clock gives up on time), or when
nothing else can run: then every parked spinner gets one step (a *round*), because the engine
cannot see a context's local variables and a loop that re-reads memory may still be counting
towards its end. Only when a round changed nothing does the clock jump to a deadline, unless a
parked spinner is past its acquisition's time (probed): then, as with no deadline at all, a few
more rounds come first (``SPIN_ROUNDS``). Such a spinner is about to give up, and its loop of
reads may be bounded (a chain walk that goes round a cycle, a delay loop): it runs to its end in
steps, not across clock jumps. (Once the clock jumped first, and a 32-read walk of a lock whose
budget had run out took 21 us, then 100 us, and overran its budget: a false alarm.) With no
deadline after those rounds the run hangs, and the hang report names what each spinner
re-reads. So a spinner behind a hold of any length costs a few steps, and the step limit
means a livelock: steps that change things, for ever.

``Spinning`` is a part of ``Engine`` (a mixin, kept here so that the rule reads in one place):
the hot loop records each no-change step in ``Context.reads`` and calls ``_repeats``; the
engine's clock jump calls ``_spin_round``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from .._oracles._truth import GroundTruth
    from ._context import Context
    from ._machine import Machine

__all__ = ["SPIN_REPEATS", "SPIN_ROUNDS", "Spinning"]

#: Rounds (every parked spinner one step) in a row that change nothing, before the clock jumps to
#: a spinner's probe or, with no deadline at all, the run is a hang: room for a loop that re-reads
#: memory a bounded number of times (a delay loop, a chain walk) to end, when nothing else can run.
SPIN_ROUNDS = 64
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
        ctx.probes += 1
        return now + (1 << min(ctx.probes, 62))

    def _spin_round(self, has_deadline: bool) -> bool:
        """Nothing can run. If spinners are parked and no round has been tried since the last
        progress, unpark them all for one step each (module doc): True. Once a round changed
        nothing, time may pass (False), or with no deadline, a few more rounds, then a hang."""
        parked = [s[-1] for s in self.stacks if s and s[-1].spinning]
        if not parked:
            return False
        if self._round_at == self.changes:
            # A spinner past its acquisition's time (probed) may be in a bounded loop that ends
            # in a return: rounds come first, so that the clock does not jump past its end.
            if has_deadline and not any(ctx.probes for ctx in parked):
                return False
            self._rounds += 1
            if self._rounds > SPIN_ROUNDS:
                return False
        else:
            self._rounds = 0
        self._round_at = self.changes
        for ctx in parked:
            self._unblock(ctx)  # its reads stay: one more repeat parks it again
        return True

