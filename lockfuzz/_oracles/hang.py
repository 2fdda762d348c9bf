"""Hang: no context can run, no deadline is pending, and lines are unfinished.

The report is the wait-for graph. A hang on a ground-truth cycle is the *program's* deadlock when
the target promised neither timeouts nor detection of that cycle (a ticket lock is not to blame
for an ABBA it never claimed to break): that is a ``ProgramError``. Every other hang is the
target's: a lost wake-up, a lock left held, a cycle it claimed to detect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._model._errors import ProgramError, Violation

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from .._engine._run import Engine


def hang_violation(engine: Engine) -> Exception:
    truth = engine.truth
    caps = engine.capabilities
    graph = truth.describe_graph()
    cells = engine.machine.cells
    for ctx in engine.contexts:
        if not ctx.blocked or ctx.done:
            continue
        if ctx.waiting_on is not None:
            graph.append(f"{ctx.name} waits until {ctx.waiting_on.name} changes from {ctx.waiting_on.value:#x}")
        elif ctx.spinning and ctx.seen:
            read = ", ".join(f"{cells[i].name} = {v:#x}" for i, v in ctx.seen.items())
            graph.append(f"{ctx.name} spins, re-reading {read}, which nothing will change")
        elif ctx.spinning:
            graph.append(f"{ctx.name} spins at trio checkpoints, and nothing else will change")
        elif ctx.watching:
            read = ", ".join(f"{c.name} = {c.value:#x}" for c in ctx.watching)
            graph.append(f"{ctx.name} waits until one of {read} changes")
    names = tuple(sorted({c.name for s in engine.stacks for c in s}))
    text = "; ".join(graph) or "no context waits on a lock"
    if engine.phase == "final":
        from .final_state import cancelled_calls

        text += "".join(cancelled_calls(engine, lock) for lock in range(engine.machine.n_locks))
        return Violation("final-state", "hang", f"the final check hangs: {text}", contexts=names,
                         time_ns=engine.machine.now)
    if truth.cycles:
        uncovered = [c for c in truth.cycles if not any(c.matches(k) for k in caps.detection.classes)]
        if caps.timeouts is None and uncovered:
            return ProgramError(
                f"the program deadlocks ({text}) and the target promises neither timeouts nor detection of "
                f"{uncovered[0].cls} deadlocks: write programs that take locks in one order for such targets"
            )
        # A claimed cycle that outlived its latency is a completeness violation, reported as such.
        for oracle in engine.oracles:
            if hasattr(oracle, "at_hang"):
                oracle.at_hang(engine)  # raises for a cycle the target claimed to detect
        return Violation("hang", "cycle", f"every context waits forever: {text}", contexts=names,
                         time_ns=engine.machine.now)
    # A handler stuck above the context it interrupted may wait for something that context holds
    # inside the lock (a trio.Condition's own lock): a cycle through the interrupt, hidden from
    # the ground truth, which sees only the lock's events. Say so rather than "no deadlock".
    hidden = [
        f"{s[-1].name} waits inside the lock above {s[-2].name}, which it interrupted: if it waits for something "
        f"{s[-2].name} holds inside the lock (a trio.Condition's own lock, say), that is a deadlock through "
        "the interrupt that the lock's internals hide"
        for s in engine.stacks if len(s) > 1 and s[-1].blocked
    ]
    if hidden:
        text += "; " + "; ".join(hidden)
    return Violation("hang", "no-cycle", f"every context waits forever with no deadlock in the lock's events: {text}",
                     contexts=names, time_ns=engine.machine.now)
