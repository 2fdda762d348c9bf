"""The deadlocks a target claims to detect, as programs every default campaign tries first.

Why. A lock that declares ``Detection(classes={"ABBA"})`` is held to that claim only by programs
in which two CPUs nest two locks in opposite orders, and by schedules in which both take their
outer lock before either takes its inner one. Drawn at random, such programs are rare (about 4%
of what ``programs_for`` draws for two locks): a lock written for this check that claims ABBA
detection and never detects went unreported for 3,976 runs of a default campaign, and one whose
single check ran before it published what it waited for was never reported in 30,000. A claim
that only rare programs test is a claim a campaign mostly does not check.

So ``lockfuzz.fuzz``, drawing its own programs, gives Hypothesis these as explicit examples
(``hypothesis.example``) in its first chunk: each is searched like any drawn program
(``runs_per_program`` schedules), and then the campaign draws as before. Each program is the
smallest that makes its class likely: a ``work`` inside the outer section puts the context to
sleep there, so the other CPU takes its own outer lock before either goes on.

- ``AA``: one CPU takes a lock it holds; and, where the target takes interrupts, a hardirq
  handler on the holder's CPU takes the lock its task holds, and one takes the lock a softirq
  it interrupted holds (interrupts nest; the schedule decides whether a handler lands inside the
  hold). Drawn programs have one handler a CPU (``--handlers``), so only this one nests.
- ``ABBA``, ``cycle``, ``task-cycle``: two CPUs, L0 then L1 against L1 then L0, back to back and
  with a sleep between the two acquisitions; and, where the target takes interrupts, the same
  with the second CPU's side in a softirq handler (a handler is a context like any other: a lock
  that keeps its deadlock tables only for tasks went unreported in 80,000 runs, and is found by
  this program in one).
- ``cycle``: a cycle through an interrupt: the first CPU's task holds L0 and wants L1, the second
  CPU's task holds L1 and a softirq on top of it wants L0 (an ABBA check that compares owners by
  context where it should compare CPUs was reported once in 59,232 runs).

Per-call budgets are long enough for the claim to be judged (the declared latency, twice, plus the
largest budget drawn), so a waiter does not time out before its detection is due. Nothing is
offered for a target that detects nothing, for one that allows only shared acquisitions (a
semaphore), or where the target's CPUs or interrupts rule a program out.
"""

from __future__ import annotations

from typing import Any

from lockfuzz import CpuProgram, Handler, InvalidArgument, Level, Lock, Program, Unlock, Work

from ._programs import BUDGET_MAX_NS, capabilities_for, interrupts_for

__all__ = ["detection_scenarios"]

_US = 1_000


def detection_scenarios(
    target: Any,
    *,
    params: dict[str, Any] | None = None,
    max_cpus: int = 3,
    max_locks: int = 2,
    max_handlers: int | None = None,
    budget_max_ns: int | None = None,
) -> tuple[Program, ...]:
    """The programs (module doc) that exercise the deadlock classes ``target`` declares it
    detects, when built with ``params``, within the bounds the campaign draws its programs in
    (``max_cpus``, ``max_locks``, ``max_handlers``: None for what ``interrupts_for`` says;
    ``budget_max_ns`` as for ``programs_for``)."""
    for name, value in (("max_cpus", max_cpus), ("max_locks", max_locks)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidArgument(f"{name}={value!r}: expected an int >= 1")
    if max_handlers is None:
        max_handlers = 1 if interrupts_for(target) else 0
    caps = capabilities_for(target, params)
    d = caps.detection
    if not d.classes or (caps.sharing is not None and not caps.sharing.exclusive):
        return ()
    t = caps.timeouts
    if t is not None and t.per_call:
        latency = max([d.latency_ns, *dict(d.class_latency_ns).values()])  # type: ignore[arg-type]
        budget = 2 * latency + (BUDGET_MAX_NS if budget_max_ns is None else budget_max_ns)
    else:
        budget = Lock.budget_ns  # a fixed timeout, or none: the budget is not used
    hold = Work(_US)
    out: list[Program] = []
    if "AA" in d.classes:
        again = (Lock(0, budget), Lock(0, budget), Unlock(0), Unlock(0))
        out.append(Program(cpus=(CpuProgram(task=again),), n_locks=1))
        if max_handlers:
            irq = Handler(Level.HARDIRQ, (Lock(0, budget), Unlock(0)))
            out.append(Program(cpus=(CpuProgram(task=(Lock(0, budget), hold, Unlock(0)), handlers=(irq,)),), n_locks=1))
            # Interrupts nest: a hardirq lands on a softirq that holds the lock (drawn programs
            # have one handler a CPU unless --handlers says more, so they never nest).
            soft = Handler(Level.SOFTIRQ, (Lock(0, budget), hold, Unlock(0)))
            out.append(Program(cpus=(CpuProgram(task=(Work(10),), handlers=(soft, irq)),), n_locks=1))
    limit = min(max_cpus, caps.max_cpus or max_cpus)
    if d.classes & {"ABBA", "cycle", "task-cycle"} and limit >= 2 and max_locks >= 2:
        # Back to back (the schedule's preemptions make the cycle, at any step of either side's
        # checks), and with a sleep inside the outer section (the cycle forms at once).
        # Then the same with the second side in a softirq handler (after the task-only ones).
        in_handlers = []
        for inner in ((), (hold,)):
            one = CpuProgram(task=(Lock(0, budget), *inner, Lock(1, budget), Unlock(1), Unlock(0)))
            other = (Lock(1, budget), *inner, Lock(0, budget), Unlock(0), Unlock(1))
            out.append(Program(cpus=(one, CpuProgram(task=other)), n_locks=2))
            soft = Handler(Level.SOFTIRQ, other)
            in_handlers.append(Program(cpus=(one, CpuProgram(task=(Work(10),), handlers=(soft,))), n_locks=2))
        if max_handlers:
            out.extend(in_handlers)
        if "cycle" in d.classes and max_handlers:
            one = (Lock(0, budget), hold, Lock(1, budget), Unlock(1), Unlock(0))
            below = (Lock(1, budget), Work(10 * _US), Unlock(1))
            soft = Handler(Level.SOFTIRQ, (Lock(0, budget), Unlock(0)))
            out.append(Program(cpus=(CpuProgram(task=one), CpuProgram(task=below, handlers=(soft,))), n_locks=2))
    return tuple(out)
