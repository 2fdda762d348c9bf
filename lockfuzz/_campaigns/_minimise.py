"""The minimiser: the smallest program and schedule that fail the same way, readable in ten lines.

Hypothesis shrinks the program; this runs after it, on the program it settled on, because a
shrinker that sees a schedule as opaque bytes stops early (DESIGN.md measured 26-120 steps left
where a two-preemption witness existed), and because Hypothesis keeps what its strategy drew
together (a second lock, a trailing ``work 0``) even when the failure does not need it. In order,
repeated until nothing changes:

1. **Greedy**: set each nonzero decision to zero while the signature stays (to a fixpoint).
2. **Program**: try the program without each CPU, each handler, each lock number (its operations
   go and the others are renumbered 0..n-1), each critical section, each ``Lock`` with its matching
   ``Unlock``, and each ``Work``; keep a smaller program when the same signature fails, under the
   current decisions or under a schedule with at most as many preemptions (a small exhaustive
   search each). Then the same for each Work duration and Lock budget rounded down to one
   significant digit. After a change, back to 1: the final schedule is minimal for the final
   program.
3. **Exhaustive yardstick**: search every schedule with fewer preemptions, fewest first
   (``_search.exhaustive``), within a run budget; the first that fails the same way is minimal.
   If the search finishes without one, the greedy schedule is proven minimal. A shorter schedule
   goes back to 1 (a removal that needed more preemptions may fit in fewer).
4. **Short**: drop trailing zeros, which replay supplies (the run after the last preemption
   is the fair default's), when the trace stays the same.

The signature (oracle and kind) must stay the same throughout: a minimiser that wanders from
one bug to another reports neither well. ``Minimised`` says what the result is minimal in: the
schedule in preemptions (proven when the yardstick ran to its end), and the program 1-minimal
(no single CPU, handler, lock or operation can go) when every removal's search ran to its end.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterator, Sequence

from .._engine._run import Engine, RunResult, Schedule, Settings
from .._model._errors import ProgramError
from .._model._program import CpuProgram, Handler, Lock, Op, Program, Unlock, Work
from .._oracles._properties import oracles_for
from .._search.exhaustive import bounded_schedules

__all__ = ["Minimised", "minimise", "preemptions"]

#: Each candidate program's schedule search gets this share of ``max_runs`` (and of
#: ``max_steps``). Most removals that lose the failure lose it outright: the search then ends on
#: its own, in a few runs, long before this.
_CANDIDATE_SHARE = 100
#: The program pass stops once the minimiser has spent this share of its bounds, so that the
#: yardstick, which decides whether the schedule is proven minimal, always has the rest.
_PROGRAM_SHARE = 2


def preemptions(decisions: list[int]) -> int:
    return sum(1 for d in decisions if d)


@dataclass
class Minimised:
    program: Program
    decisions: list[int]
    result: RunResult
    proven_minimal: bool  # the exhaustive search covered every schedule with fewer preemptions
    runs: int
    #: No single CPU, handler, lock or operation can be removed with the signature kept under a
    #: schedule of at most ``preemptions(decisions)`` preemptions: every such removal was tried and
    #: its search ran to its end. False when a bound stopped one of them.
    program_minimal: bool = False
    steps: int = 0

    @property
    def covers(self) -> str:
        """What the result is minimal in, as the reports print it."""
        from .._reports._report import minimality

        return minimality(self.proven_minimal, self.program_minimal, preemptions(self.decisions))


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
    properties: Sequence[Callable[..., Any]] = (),
    deadline: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> Minimised:
    """Minimise ``program`` and ``decisions`` keeping ``signature`` (module doc).

    The search is bounded by ``max_runs`` runs and ``max_steps`` engine steps in all: steps, not
    seconds, so that the result is the same on every machine (a long run costs thousands of
    steps). When a bound stops a search, the result says it is not proven.
    ``deadline`` (on ``time.monotonic``'s clock) is a campaign's time limit: past it no more
    runs are made (the result is then the best so far, and not proven). ``progress`` is called
    with the runs made so far, after each run.
    """
    runner = _Runner(target_cls, signature, params, settings or Settings(), max_runs, max_steps, properties)
    runner.deadline, runner.progress = deadline, progress
    best = runner.attempt(program, list(decisions))
    if best is None:
        raise ValueError(f"the schedule does not reproduce {signature} on this program")
    schedule_proven: bool | None = None  # None: the yardstick has not run on this program
    while True:
        best = _greedy(best, partial(runner.attempt, program))
        program, best, changed, program_minimal = _program_pass(runner, program, best)
        if changed:
            schedule_proven = None
            continue
        if schedule_proven is not None:
            break  # the yardstick has already run on this very program and case
        schedule_proven, fewer = _yardstick(runner, program, best)
        if fewer is None:
            break
        best = fewer  # fewer preemptions: greedy, then another program pass, with them
    decisions = _short(runner, program, best)
    return Minimised(program, decisions, best, bool(schedule_proven), runner.runs, program_minimal, runner.steps)


class _Runner:
    """Runs the target, counting runs and steps against the minimiser's bounds."""

    def __init__(self, target_cls: Any, signature: tuple[str, str], params: dict[str, Any] | None,
                 settings: Settings, max_runs: int, max_steps: int,
                 properties: Sequence[Callable[..., Any]] = ()) -> None:
        self.target_cls = target_cls
        self.properties = tuple(properties)  # the user's, checked by every run (``_properties``)
        self.signature = signature
        self.params = params
        self.settings = settings
        self.max_runs = max_runs
        self.max_steps = max_steps
        self.runs = 0
        self.steps = 0
        #: Program -> the most preemptions a complete search tried on it without the failure. The
        #: search is deterministic, so a later sweep (after the yardstick found a schedule with
        #: fewer preemptions) need not search a refused removal again.
        self.refused: dict[Program, int] = {}
        #: (program, schedule) runs that did not fail the same way: runs are deterministic, and
        #: the sweeps try the same removal under the same decisions more than once.
        self.passed: set[tuple[Program, tuple[int, ...]]] = set()
        self.deadline: float | None = None
        self.progress: Callable[[int], None] | None = None

    def run(self, prog: Program, source: Any) -> RunResult | None:
        """One run; None when the program is unfit for the target (a ProgramError), or when
        the deadline has passed: every bound is then spent, so every search stops at once."""
        if self.runs and self.deadline is not None and time.monotonic() >= self.deadline:
            self.max_runs = self.runs
            return None
        if self.progress is not None:
            self.progress(self.runs)
        self.runs += 1
        try:
            r = Engine(self.target_cls, prog, source, self.settings, params=self.params,
                       oracles=oracles_for(self.properties)).run()
        except ProgramError:
            return None
        self.steps += r.steps
        return r

    def fails(self, r: RunResult | None) -> bool:
        return r is not None and r.violation is not None and r.violation.signature == self.signature

    def attempt(self, prog: Program, schedule: list[int]) -> RunResult | None:
        """The run of ``schedule`` if it fails the same way, else None."""
        key = (prog, tuple(schedule))
        if key in self.passed:
            return None
        r = self.run(prog, Schedule(schedule))
        if self.fails(r):
            return r
        self.passed.add(key)
        return None

    def search(self, prog: Program, up_to: int, budget: int) -> tuple[RunResult | None, bool]:
        """The first failing schedule with at most ``up_to`` preemptions, fewest first, and whether
        the search was complete (it found one, or tried every schedule before a bound stopped it).

        ``budget`` runs at most, and the same share of ``max_steps``, both within the totals."""
        gen = bounded_schedules(up_to)
        stop = min(self.max_runs, self.runs + budget)
        step_stop = min(self.max_steps, self.steps + self.max_steps * budget // self.max_runs)
        try:
            source = next(gen)
            while True:
                if self.runs >= stop or self.steps >= step_stop:
                    return None, False
                r = self.run(prog, source)
                if self.fails(r):
                    return r, True
                source = gen.send(r if r is not None else _EMPTY)
        except StopIteration:
            return None, True

    def spent(self, share: int) -> bool:
        """Whether the runs or steps so far reach ``1/share`` of the bounds."""
        return self.runs * share >= self.max_runs or self.steps * share >= self.max_steps


def _greedy(best: RunResult, fails: Callable[[list[int]], RunResult | None]) -> RunResult:
    """Zero each nonzero decision while the run still fails the same way, to a fixpoint."""
    decisions = list(best.decisions)
    changed = True
    while changed:
        changed = False
        for i in range(len(decisions)):
            if decisions[i]:
                r = fails(decisions[:i] + [0] + decisions[i + 1 :])
                if r is not None:
                    decisions, best, changed = list(r.decisions), r, True
                    break
    return best


def _yardstick(runner: _Runner, program: Program, best: RunResult) -> tuple[bool, RunResult | None]:
    """Whether ``best`` is proven minimal in preemptions, and a schedule with fewer if one fails.

    Fewest first: a schedule the search finds has the fewest preemptions any failing one has."""
    count = preemptions(list(best.decisions))
    if not count:
        return True, None
    r, complete = runner.search(program, count - 1, budget=runner.max_runs)
    return complete, r


def _program_pass(runner: _Runner, program: Program, best: RunResult) -> tuple[Program, RunResult, bool, bool]:
    """The one-step-smaller programs (``_cleanups``, then ``_rounder``), keeping each that still
    fails: first under the current decisions alone, a run each, which takes most of what the
    failure does not need; then again with a bounded search each, so that the removals refused
    (and searched) are mostly those of the final program, once.

    Returns the program, its failing run, whether anything changed, and whether every removal
    refused in the last sweep was refused by a complete search (the program is then 1-minimal
    for this many preemptions, if nothing changed).
    """
    program, best, replayed, _ = _sweep(runner, program, best, search=False)
    program, best, searched, complete = _sweep(runner, program, best, search=True)
    return program, best, replayed or searched, complete


def _sweep(runner: _Runner, program: Program, best: RunResult, search: bool) -> tuple[Program, RunResult, bool, bool]:
    """One pass over the candidates, each under the current decisions and, with ``search``, under
    a bounded search too; the same four things as ``_program_pass`` returns."""
    changed = False
    complete = True
    removals = _cleanups(program)
    candidates = removals + _rounder(program)
    i = 0
    while i < len(candidates):
        if runner.spent(_PROGRAM_SHARE):
            return program, best, changed, False
        if search:
            r, searched_all = _reproduce(runner, candidates[i], best)
        else:
            r, searched_all = runner.attempt(candidates[i], list(best.decisions)), False
        if r is None:
            # Only removals count toward the 1-minimal claim; a rounder value is a nicety.
            complete = complete and (searched_all or i >= len(removals))
            i += 1
            continue
        # Kept: go on from the same place in the smaller program's list (what was next is at i).
        program, changed = candidates[i], True
        best = _greedy(r, partial(runner.attempt, program))
        removals = _cleanups(program)
        candidates = removals + _rounder(program)
    return program, best, changed, complete


def _reproduce(runner: _Runner, program: Program, best: RunResult) -> tuple[RunResult | None, bool]:
    """The failure on a smaller ``program``: under the current decisions (one run, and usually
    enough), else under any schedule with at most as many preemptions (a bounded search)."""
    decisions = list(best.decisions)
    r = runner.attempt(program, decisions)
    if r is not None:
        return r, True
    count = preemptions(decisions)
    if runner.refused.get(program, -1) >= count:
        return None, True  # every schedule with at most this many preemptions was tried already
    r, complete = runner.search(program, count, budget=max(1, runner.max_runs // _CANDIDATE_SHARE))
    if r is None and complete:
        runner.refused[program] = count
    return r, complete


def _short(runner: _Runner, program: Program, best: RunResult) -> list[int]:
    """The decisions without trailing zeros (replay's fair default supplies them), if the run stays
    the same."""
    decisions = list(best.decisions)
    short = list(decisions)
    while short and short[-1] == 0:
        short.pop()
    r = runner.attempt(program, short)
    if r is not None and r.trace.hash() == best.trace.hash():
        return short
    return decisions


def _cleanups(program: Program) -> list[Program]:
    """Smaller programs to try, each one step smaller than ``program``, biggest steps first: a CPU,
    a handler, a lock number, a critical section, a Lock with its Unlock, a Work. Each is a
    well-formed program: a Lock goes only with its matching Unlock."""
    out: dict[Program, None] = {}  # in order, without repeats (two equal sections give one program)
    for make in (_without_cpus_and_handlers, _without_locks, _shorter_lines):
        for smaller in make(program):
            out.setdefault(smaller)
    return list(out)


def _without_cpus_and_handlers(program: Program) -> Iterator[Program]:
    cpus = list(program.cpus)
    if len(cpus) > 1:
        for c in range(len(cpus)):
            yield dataclasses.replace(program, cpus=tuple(cpus[:c] + cpus[c + 1 :]))
    for c, cp in enumerate(cpus):
        for h in range(len(cp.handlers)):
            yield _replace_cpu(program, c, CpuProgram(cp.task, cp.handlers[:h] + cp.handlers[h + 1 :]))


def _without_locks(program: Program) -> Iterator[Program]:
    """Each lock number gone with every operation on it; the others renumbered 0..n-2. A lock
    nobody uses goes this way too."""
    if program.n_locks < 2:
        return
    for gone in range(program.n_locks):
        renumber = {old: old - (old > gone) for old in range(program.n_locks) if old != gone}
        cpus = tuple(
            CpuProgram(_relock(cp.task, renumber), tuple(Handler(h.level, _relock(h.ops, renumber))
                                                          for h in cp.handlers))
            for cp in program.cpus
        )
        capacities = program.capacities[:gone] + program.capacities[gone + 1 :]
        yield dataclasses.replace(program, cpus=cpus, n_locks=program.n_locks - 1, capacities=capacities)


def _shorter_lines(program: Program) -> Iterator[Program]:
    """Every line (task or handler) without one critical section, then without one Lock and its
    matching Unlock, then without one Work. Each stays well formed: what is left of a LIFO line
    without a matched pair (and whatever it encloses, or not) is still LIFO."""
    lines = _lines(program)
    for cut in (_without_section, _without_pair, _without_work):
        for c, h, ops in lines:
            for shorter in cut(ops):
                yield _replace_line(program, c, h, shorter)


def _rounder(program: Program) -> list[Program]:
    """``program`` with one Work duration or Lock budget rounded down to one significant digit
    (1,759,110 ns to 1 ms): the values Hypothesis draws read as noise, and the failure rarely
    hangs on the digits. One candidate per value that is not round yet, so it costs little."""
    out = []
    for c, h, ops in _lines(program):
        for i, op in enumerate(ops):
            rounder: Op | None = None
            if isinstance(op, Work) and _round_down(op.ns) != op.ns:
                rounder = Work(_round_down(op.ns))
            elif isinstance(op, Lock) and _round_down(op.budget_ns) != op.budget_ns:
                rounder = dataclasses.replace(op, budget_ns=_round_down(op.budget_ns))  # its mode kept
            if rounder is not None:
                out.append(_replace_line(program, c, h, ops[:i] + (rounder,) + ops[i + 1 :]))
    return out


def _round_down(ns: int) -> int:
    scale = 10 ** (len(str(ns)) - 1)
    return ns // scale * scale


def _lines(program: Program) -> list[tuple[int, int, tuple[Op, ...]]]:
    """(CPU, handler index or -1 for the task, operations) of every line of ``program``."""
    return [(c, h, ops) for c, cp in enumerate(program.cpus)
            for h, ops in [(-1, cp.task), *((h, hd.ops) for h, hd in enumerate(cp.handlers))]]


def _sections(ops: tuple[Op, ...]) -> list[tuple[int, int]]:
    """(index of each Lock, index of its matching Unlock): unlocks are LIFO in a valid program."""
    open_: list[int] = []
    out = []
    for i, op in enumerate(ops):
        if isinstance(op, Lock):
            open_.append(i)
        elif isinstance(op, Unlock) and open_:
            out.append((open_.pop(), i))
    return sorted(out)


def _without_section(ops: tuple[Op, ...]) -> Iterator[tuple[Op, ...]]:
    for i, j in _sections(ops):
        if j > i + 1:  # else it is just the pair, tried next
            yield ops[:i] + ops[j + 1 :]


def _without_pair(ops: tuple[Op, ...]) -> Iterator[tuple[Op, ...]]:
    for i, j in _sections(ops):
        yield ops[:i] + ops[i + 1 : j] + ops[j + 1 :]


def _without_work(ops: tuple[Op, ...]) -> Iterator[tuple[Op, ...]]:
    for i, op in enumerate(ops):
        if isinstance(op, Work):
            yield ops[:i] + ops[i + 1 :]


def _replace_line(program: Program, c: int, h: int, ops: tuple[Op, ...]) -> Program:
    """``program`` with cpu ``c``'s task (``h`` = -1) or handler ``h`` doing ``ops``."""
    cp = program.cpus[c]
    if h < 0:
        new = CpuProgram(ops, cp.handlers)
    else:
        new = CpuProgram(cp.task, cp.handlers[:h] + (Handler(cp.handlers[h].level, ops),) + cp.handlers[h + 1 :])
    return _replace_cpu(program, c, new)


def _replace_cpu(program: Program, c: int, cp: CpuProgram) -> Program:
    cpus = list(program.cpus)
    cpus[c] = cp
    return dataclasses.replace(program, cpus=tuple(cpus))


def _relock(ops: tuple[Any, ...], renumber: dict[int, int]) -> tuple[Any, ...]:
    """``ops`` with lock numbers renumbered; operations on a lock not in ``renumber`` go."""
    out: list[Any] = []
    for op in ops:
        if isinstance(op, Lock):
            if op.lock in renumber:
                out.append(dataclasses.replace(op, lock=renumber[op.lock]))  # its budget and mode kept
        elif isinstance(op, Unlock):
            if op.lock in renumber:
                out.append(Unlock(renumber[op.lock]))
        else:
            out.append(op)
    return tuple(out)


class _Empty:
    decisions: list[int] = []
    branching: list[int] = []


_EMPTY: Any = _Empty()
