"""The text form of programs: what reports print is what users write (``Program.from_text``)."""

from __future__ import annotations

import pytest
from hypothesis import given

from lockfuzz import CpuProgram, Handler, InvalidArgument, Level, Lock, OnError, Program, ProgramError, Unlock, Work
from lockfuzz.strategies import budgets, programs

FIELD_REPORT = """
# seen on a 2-CPU box: the softirq retakes L0 while the task holds it
cpu0.task: lock L0; work 600us; unlock L0
cpu0.softirq#0: lock L0 (5ms); unlock L0   # the handler, on cpu0
cpu1.task: lock L1; work 3ns; unlock L1
"""


def test_a_hand_written_program_reads_as_written():
    p = Program.from_text(FIELD_REPORT)
    assert p == Program(
        cpus=(
            CpuProgram(task=(Lock(0), Work(600_000), Unlock(0)),
                       handlers=(Handler(Level.SOFTIRQ, (Lock(0, 5_000_000), Unlock(0))),)),
            CpuProgram(task=(Lock(1), Work(3), Unlock(1))),
        ),
        n_locks=2,
    )  # fmt: skip


@given(programs(max_cpus=4, max_locks=3, max_handlers=2, max_retries=2, budgets=budgets()))
def test_what_describe_prints_reads_back_as_the_same_program(program: Program) -> None:
    assert Program.from_text(program.describe()) == program


def test_the_header_sets_locks_and_retries():
    p = Program.from_text("1 CPU(s), 3 lock(s), on error retry 2x after 50 ns\n  cpu0.task: (nothing)")
    assert p.n_locks == 3 and p.on_error == OnError(retries=2, backoff_ns=50) and p.cpus[0].task == ()


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no 'cpuN.task: ...' line"),
        ("cpu0.task: lock L0; unlok L0", r"line 1 \('cpu0.task: lock L0; unlok L0'\): operation 'unlok L0': expected"),
        ("cpu0.task: lock L0 (5 parsecs); unlock L0", "duration '5 parsecs': expected an int with ns, us, ms or s"),
        ("cpu0.task: work 5", "duration '5'"),
        ("cpu0.nmi: lock L0; unlock L0", "expected 'cpuN.task: OPS' or 'cpuN.LEVEL#I: OPS'"),
        ("cpu0.task: (nothing)\ncpu0.sofirq#0: (nothing)", "level 'sofirq': expected one of softirq, hardirq, nmi"),
        ("cpu0.task: (nothing)\ncpu0.task: (nothing)", "cpu0.task is given twice"),
        ("cpu1.task: (nothing)", r"CPUs \[1\] given; expected cpu0 to cpu0"),
        ("cpu0.task: (nothing)\ncpu0.nmi#1: (nothing)", r"cpu0 handlers #\[1\]; expected #0 to #0"),
        ("3 CPU(s), 1 lock(s), on error unwind and stop\ncpu0.task: (nothing)", "the header says 3 CPU"),
        ("cpu0.task: lock L0 (5ms)", "ends holding L0"),
    ],
)
def test_bad_text_names_the_line_and_what_was_expected(text: str, message: str) -> None:
    with pytest.raises((InvalidArgument, ProgramError), match=message):
        Program.from_text(text)


def test_not_text_is_refused():
    with pytest.raises(InvalidArgument, match="expected a str"):
        Program.from_text(b"cpu0.task: (nothing)")  # type: ignore[arg-type] # the bad input under test
