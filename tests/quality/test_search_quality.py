"""Search quality: every mutant is found by the default campaign, and its report is minimal.

Minimal means: (1) the schedule has exactly the fewest preemptions any failing schedule of that
program has, checked here independently with the exhaustive search (fewest first), and (2) the
program is as small as the bug needs: taking away any one CPU, any one interrupt handler or any
one lock (with its critical sections) makes the same failure disappear within the same search.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

import lockfuzz
from lockfuzz import CpuProgram, Engine, Handler, Lock, Program, ProgramError, Unlock
from lockfuzz._campaigns._minimise import preemptions
from lockfuzz._search import bounded_schedules
from lockfuzz.targets.mutants import EXPECTED, MUTANTS

RUNS = 5_000  # the CI bound on runs to find each mutant
YARDSTICK_RUNS = 20_000


def first_failure(target_cls, program, signature, max_preemptions):  # type: ignore[no-untyped-def]
    """The first schedule (fewest preemptions first) failing with ``signature``, or None."""
    gen = bounded_schedules(max_preemptions)
    source = next(gen)
    for _ in range(YARDSTICK_RUNS):
        try:
            result = Engine(target_cls, program, source).run()
        except ProgramError:
            return None
        if result.violation is not None and result.violation.signature == signature:
            return result
        try:
            source = gen.send(result)
        except StopIteration:
            return None
    pytest.fail(f"the exhaustive yardstick ran out of runs on {program.describe()}")


def smaller_programs(program: Program) -> list[tuple[str, Program]]:
    out = []
    cpus = list(program.cpus)
    for c in range(len(cpus)):
        if len(cpus) > 1:
            out.append((f"without cpu{c}", Program(cpus=tuple(cpus[:c] + cpus[c + 1 :]), n_locks=program.n_locks,
                                                   on_error=program.on_error)))
        for h in range(len(cpus[c].handlers)):
            shorter = list(cpus)
            shorter[c] = CpuProgram(cpus[c].task, cpus[c].handlers[:h] + cpus[c].handlers[h + 1 :])
            out.append((f"without cpu{c} handler {h}", Program(cpus=tuple(shorter), n_locks=program.n_locks,
                                                               on_error=program.on_error)))
    if program.n_locks > 1:
        for lock in range(program.n_locks):
            def drop(ops):  # type: ignore[no-untyped-def]
                kept = [op for op in ops if not (isinstance(op, (Lock, Unlock)) and op.lock == lock)]
                return tuple(replace(op, lock=op.lock - 1)
                             if isinstance(op, (Lock, Unlock)) and op.lock > lock else op for op in kept)
            fewer = tuple(CpuProgram(drop(cp.task), tuple(Handler(h.level, drop(h.ops)) for h in cp.handlers))
                          for cp in cpus)
            smaller = Program(cpus=fewer, n_locks=program.n_locks - 1, on_error=program.on_error)
            out.append((f"without L{lock}", smaller))
    return out


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_each_mutant_is_found_and_reported_minimal(name):
    report = lockfuzz.fuzz(name, runs=RUNS, seed=0)
    assert report.found, f"{name} not found in {RUNS} runs"
    # Every distinct violation found is reported, each with how it was found (a mutant may break
    # more than one promise: bystander_edeadlk's EDEADLK is also unsound, and shrinking one meets
    # the other): the expected one must be among them.
    expected = [f for f in report.found if f.failure.signature[0] == EXPECTED[name]]
    assert expected, [f.failure.violation for f in report.found]
    found = expected[0]
    failure = found.failure
    assert found.runs_to_find <= RUNS
    target_cls = lockfuzz.resolve_target(name)

    # (1) The schedule is minimal in preemptions, by the exhaustive yardstick.
    k = preemptions(failure.schedule)
    assert failure.minimal
    witness = first_failure(target_cls, failure.program, failure.signature, k)
    assert witness is not None and preemptions(witness.decisions) == k
    assert lockfuzz.replay(failure).reproduced

    # (2) The program has no CPU, handler or lock the bug does not need.
    for what, smaller in smaller_programs(failure.program):
        assert first_failure(target_cls, smaller, failure.signature, k + 1) is None, (
            f"{name}: still fails {failure.signature} {what}:\n{smaller.describe()}"
        )
