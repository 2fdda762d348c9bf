"""Programs: every bad value is named with what was expected; JSON round trips; the text form."""

from __future__ import annotations

import pytest

from lockfuzz import CpuProgram, Handler, InvalidArgument, Level, Lock, OnError, Program, Unlock, Work

CS = (Lock(0), Work(5), Unlock(0))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Program(cpus=(CpuProgram(task=CS),), n_locks=0), r"n_locks=0: expected an int >= 1"),
        (lambda: Program(cpus=(), n_locks=1), r"cpus=\(\): expected at least one CpuProgram"),
        (lambda: Program(cpus=(CpuProgram(task=CS),), n_locks=1, on_error=OnError(retries=-1)),
         r"on_error.retries=-1: expected an int >= 0"),
        (lambda: Program(cpus=("cpu",), n_locks=1), r"cpus\[0\]='cpu': expected a CpuProgram"),
        (lambda: Program(cpus=(CpuProgram(task=(Lock(0, budget_ns=-5), Unlock(0))),), n_locks=1),
         r"cpu0.task\[0\]: budget_ns=-5, expected an int >= 0"),
        (lambda: Program(cpus=(CpuProgram(task=(Work(-1),)),), n_locks=1), r"Work\(ns=-1\), expected an int >= 0"),
        (lambda: Program(cpus=(CpuProgram(task=("sleep",)),), n_locks=1),
         r"cpu0.task\[0\]='sleep': expected Lock, Unlock or Work"),
        (lambda: Handler("irq", ()), r"level='irq': expected one of task, softirq, hardirq, nmi"),
        (lambda: Program.from_json({"cpus": [{"task": [["jump", 1]]}], "n_locks": 1}),
         r"program op \['jump', 1\]: expected"),
        (lambda: Program.from_json({"cpus": [{}], "n_locks": 1}), r"program: malformed JSON \(KeyError"),
    ],
)
def test_bad_programs_name_the_value_and_what_was_expected(make, message):
    with pytest.raises(InvalidArgument, match=message):
        make()


def test_json_round_trip_keeps_every_field():
    program = Program(
        cpus=(
            CpuProgram(task=(Lock(0, 5_000), Work(3), Lock(1), Unlock(1), Unlock(0)),
                       handlers=(Handler(Level.NMI, (Lock(1), Unlock(1))), Handler("softirq", (Work(2),)))),
            CpuProgram(task=CS),
        ),
        n_locks=2,
        on_error=OnError(retries=2, backoff_ns=100),
    )
    assert Program.from_json(program.to_json()) == program
    assert Handler(2, ()).level is Level.HARDIRQ


def test_describe_reads_like_the_program():
    program = Program(
        cpus=(CpuProgram(task=(Lock(0, 2_000_000), Work(1_500), Unlock(0)), handlers=(Handler(Level.HARDIRQ, ()),)),),
        n_locks=1,
        on_error=OnError(retries=1, backoff_ns=10),
    )
    text = program.describe()
    assert "on error retry 1x after 10 ns" in text
    assert "cpu0.task: lock L0 (2ms); work 1500ns; unlock L0" in text
    assert "cpu0.hardirq#0: (nothing)" in text
