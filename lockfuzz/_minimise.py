"""The schedule minimiser: the failing schedule a person can read in ten lines.

Hypothesis shrinks the program; this runs after it, on the program it settled on, because a
shrinker that sees a schedule as opaque bytes stops early (DESIGN.md measured 26-120 steps left
where a two-preemption witness existed). In order:

1. **Program clean-up**: drop CPUs with nothing to do, handlers with nothing to do, and lock
   numbers nobody uses, re-finding a schedule for the smaller program.
2. **Greedy**: set each nonzero decision to zero while the signature stays (to a fixpoint).
3. **Exhaustive yardstick**: search every schedule with fewer preemptions, fewest first
   (``_search.exhaustive``), within a run budget; the first that fails the same way is minimal.
   If the search finishes without one, the greedy schedule is proven minimal.
4. **Short**: drop trailing zeros, which replay supplies (the run after the last preemption
   is the fair default's), when the trace stays the same.

The signature (oracle and kind) must stay the same throughout: a minimiser that wanders from
one bug to another reports neither well.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ._engine import Engine, RunResult, Schedule, Settings
from ._errors import ProgramError
from ._program import CpuProgram, Handler, Lock, Program, Unlock
from ._search.exhaustive import bounded_schedules

__all__ = ["Minimised", "minimise", "preemptions"]


def preemptions(decisions: list[int]) -> int:
    return sum(1 for d in decisions if d)


@dataclass
class Minimised:
    program: Program
    decisions: list[int]
    result: RunResult
    proven_minimal: bool  # the exhaustive search covered every schedule with fewer preemptions
    runs: int


def minimise(
    target_cls: Any,
    program: Program,
    decisions: list[int],
    signature: tuple[str, str],
    *,
    params: dict[str, Any] | None = None,
    settings: Settings | None = None,
    max_runs: int = 20_000,
    max_steps: int = 3_000_000,
) -> Minimised:
    """Minimise ``decisions`` (and tidy ``program``) keeping ``signature`` (module doc).

    The search is bounded by ``max_runs`` runs and ``max_steps`` engine steps in all: steps, not
    seconds, so that the result is the same on every machine (a run that waits out long timeouts
    costs thousands of steps). When a bound stops the yardstick, the result is not proven minimal.
    """
    settings = settings or Settings()
    runs = 0
    steps = 0

    def attempt(prog: Program, schedule: Any) -> RunResult | None:
        nonlocal runs, steps
        runs += 1
        src = Schedule(schedule) if isinstance(schedule, list) else schedule
        try:
            r = Engine(target_cls, prog, src, settings, params=params).run()
        except ProgramError:
            return None
        steps += r.steps
        if r.violation is not None and r.violation.signature == signature:
            return r
        return None

    exhausted = False  # a bound stopped a search before it had tried every schedule

    def search(prog: Program, up_to: int, budget: int = max_runs) -> RunResult | None:
        """The first failing schedule with at most ``up_to`` preemptions, fewest first."""
        nonlocal exhausted
        gen = bounded_schedules(up_to)
        stop = min(max_runs, runs + budget)
        step_stop = min(max_steps, steps + max_steps * budget // max_runs)
        try:
            source = next(gen)
            while True:
                if runs >= stop or steps >= step_stop:
                    exhausted = True
                    return None
                r = _run(prog, source)
                if r is not None and r.violation is not None and r.violation.signature == signature:
                    return r
                source = gen.send(r if r is not None else _EMPTY)
        except StopIteration:
            pass
        return None

    def _run(prog: Program, source: Any) -> RunResult | None:
        nonlocal runs, steps
        runs += 1
        try:
            r = Engine(target_cls, prog, source, settings, params=params).run()
        except ProgramError:
            return None
        steps += r.steps
        return r

    best = attempt(program, list(decisions))
    if best is None:
        raise ValueError(f"the schedule does not reproduce {signature} on this program")
    decisions = list(best.decisions)

    # 1. Program clean-up, to a fixpoint.
    changed = True
    while changed:
        changed = False
        for smaller in _cleanups(program):
            r = attempt(smaller, decisions) or search(smaller, preemptions(decisions), budget=max_runs // 20)
            if r is not None:
                program, best, decisions, changed = smaller, r, list(r.decisions), True
                break

    # 2. Greedy zeroing, to a fixpoint.
    decisions, best = _greedy(decisions, best, lambda d: attempt(program, d))

    # 3. The exhaustive yardstick: any schedule with fewer preemptions?
    proven = False
    count = preemptions(decisions)
    if count:
        exhausted = False
        r = search(program, count - 1)
        if r is not None:  # fewest first: nothing with fewer preemptions fails this way
            best, decisions = r, list(r.decisions)
            decisions, best = _greedy(decisions, best, lambda d: attempt(program, d))
            proven = True
        else:
            proven = not exhausted
    else:
        proven = True

    # 4. Short: trailing zeros go (replay's fair default supplies them), if the run stays the same.
    short = list(decisions)
    while short and short[-1] == 0:
        short.pop()
    r = attempt(program, short)
    if r is not None and r.trace.hash() == best.trace.hash():
        decisions = short
    return Minimised(program, decisions, best, proven, runs)


def _greedy(
    decisions: list[int], best: RunResult, fails: Callable[[list[int]], RunResult | None]
) -> tuple[list[int], RunResult]:
    changed = True
    while changed:
        changed = False
        for i in range(len(decisions)):
            if decisions[i]:
                candidate = decisions[:i] + [0] + decisions[i + 1 :]
                r = fails(candidate)
                if r is not None:
                    decisions, best, changed = list(r.decisions), r, True
                    break
    return decisions, best


def _cleanups(program: Program) -> list[Program]:
    """Smaller programs to try, each one step smaller than ``program``."""
    out = []
    cpus = list(program.cpus)
    # Handlers with nothing to do, and CPUs with nothing to do.
    for c, cp in enumerate(cpus):
        for h in range(len(cp.handlers)):
            handlers = cp.handlers[:h] + cp.handlers[h + 1 :]
            out.append(_replace_cpu(program, c, CpuProgram(cp.task, handlers)))
        if len(cpus) > 1:
            fewer = tuple(cpus[:c] + cpus[c + 1 :])
            out.append(Program(cpus=fewer, n_locks=program.n_locks, on_error=program.on_error))
    # Lock numbers nobody uses.
    used = sorted({op.lock for cp in cpus for line in [cp.task, *[h.ops for h in cp.handlers]] for op in line
                   if isinstance(op, (Lock, Unlock))})
    if used and (len(used) < program.n_locks or used != list(range(len(used)))):
        renumber = {old: new for new, old in enumerate(used)}
        out.append(Program(
            cpus=tuple(
                CpuProgram(
                    _relock(cp.task, renumber), tuple(Handler(h.level, _relock(h.ops, renumber)) for h in cp.handlers)
                )
                       for cp in cpus),
            n_locks=len(used), on_error=program.on_error,
        ))
    return out


def _replace_cpu(program: Program, c: int, cp: CpuProgram) -> Program:
    cpus = list(program.cpus)
    cpus[c] = cp
    return Program(cpus=tuple(cpus), n_locks=program.n_locks, on_error=program.on_error)


def _relock(ops: tuple[Any, ...], renumber: dict[int, int]) -> tuple[Any, ...]:
    out: list[Any] = []
    for op in ops:
        if isinstance(op, Lock):
            out.append(Lock(renumber[op.lock], op.budget_ns))
        elif isinstance(op, Unlock):
            out.append(Unlock(renumber[op.lock]))
        else:
            out.append(op)
    return tuple(out)


class _Empty:
    decisions: list[int] = []
    branching: list[int] = []


_EMPTY: Any = _Empty()
