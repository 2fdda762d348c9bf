"""Textbook algorithms as targets, and the algorithm's shape (``Capabilities.max_cpus``).

Peterson's two-process lock and Lamport's bakery are written as their papers write them (plain
loops over cells). Each is clean under a default campaign, and the classic way to get each wrong
is caught by one: Peterson with its two doorway stores swapped (defer first, then raise the flag:
both can pass), the bakery without its wait on ``choosing`` (a process still picking its number
is read as not competing). Their orders are pinned, both ways, in test_tight_promises.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings

import lockfuzz
from lockfuzz import Capabilities, Context, CpuProgram, InvalidArgument, Lock, Program, Status, Unlock
from lockfuzz._frontends._cli import main
from lockfuzz.strategies import programs_for
from lockfuzz.targets.bakery import BakeryLock
from lockfuzz.targets.peterson import PetersonLock

RUNS = 400


class PetersonDefersFirst(PetersonLock):
    """Broken: ``turn = j`` before ``flag[i] = 1``. The other process can read the flag still
    down, enter, and this one then finds turn pointing at itself and enters too."""

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        i, j = ctx.cpu, 1 - ctx.cpu
        await self.turn[lock].store(j)
        await self.flag[lock][i].store(1)
        while await self.flag[lock][j].load() and await self.turn[lock].load() == j:
            pass
        return Status.OK


class BakeryWithoutChoosing(BakeryLock):
    """Broken: skips ``while choosing[j]``. A process that has read the numbers but not yet
    stored its own looks idle (number 0) to one that then enters; it takes the same number, wins
    the tie as the lower CPU, and enters too."""

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        i = ctx.cpu
        number = self.number[lock]
        highest = 0
        for j in range(self.n):
            highest = max(highest, await number[j].load())
        mine = highest + 1
        await number[i].store(mine)
        for j in range(self.n):
            while j != i:
                theirs = await number[j].load()
                if theirs == 0 or (mine, i) < (theirs, j):
                    break
        return Status.OK


@pytest.mark.parametrize("target", ["peterson", "bakery"])
def test_textbook_locks_are_clean_under_a_default_campaign(target: str) -> None:
    report = lockfuzz.fuzz(target, runs=RUNS, seed=0)
    assert report.ok and report.runs == RUNS, report.text()


@pytest.mark.parametrize("target", [PetersonDefersFirst, BakeryWithoutChoosing], ids=lambda c: c.__name__)
def test_the_classic_mistakes_are_caught_by_a_default_campaign(target: type) -> None:
    report = lockfuzz.fuzz(target, runs=RUNS, seed=0)
    assert [f.failure.signature for f in report.found] == [("mutual-exclusion", "two-holders")], report.text()


# -- the algorithm's shape ------------------------------------------------------------------------------
THREE = Program(cpus=tuple(CpuProgram(task=(Lock(0), Unlock(0))) for _ in range(3)), n_locks=1)


def test_a_two_process_lock_is_never_given_a_third_cpu() -> None:
    assert PetersonLock.capabilities.max_cpus == 2 and PetersonLock.capabilities.interrupts is False
    with pytest.raises(InvalidArgument, match="the program has 3 CPUs; PetersonLock is written for at most 2"):
        lockfuzz.run(PetersonLock, THREE, [])
    with pytest.raises(Exception, match=r"max_cpus=3: PetersonLock is written for at most 2 CPUs"):
        programs_for(PetersonLock, max_cpus=3)

    @settings(max_examples=50)
    @given(programs_for(PetersonLock))
    def drawn(program: Program) -> None:
        assert 1 <= program.n_cpus <= 2 and not any(cpu.handlers for cpu in program.cpus)

    drawn()


def test_max_cpus_is_checked_and_shown(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in (0, -1, 2.0, True):
        with pytest.raises(InvalidArgument, match=r"max_cpus=.*expected None or an int >= 1"):
            Capabilities(max_cpus=bad)  # type: ignore[arg-type] # the bad input under test
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    peterson = out[out.index("  peterson "):]
    assert "CPUs: at most 2" in peterson.split("\n  bakery ")[0]


def test_the_cli_draws_within_the_shape_and_refuses_more(capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert main(["fuzz", "peterson", "--runs", "50", "--failure-dir", str(tmp_path), "--quiet"]) == 0
    assert main(["fuzz", "peterson", "--cpus", "3", "--runs", "50", "--failure-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--cpus 3: PetersonLock is written for at most 2 CPUs" in err
