"""Runaway and misbehaving targets (issue 14): a step that never yields is a finding
(``target-fault/no-yield``) on both drivers, saved and replayed; ``SystemExit`` and any other
exception a target raises (except KeyboardInterrupt) is a target fault, never the end of lockfuzz."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import trio

import lockfuzz
from lockfuzz import Capabilities, CpuProgram, Lock, Program, Status, Target, Unlock
from lockfuzz._frontends._cli import main
from lockfuzz._engine._watchdog import step_timeout

TWO = Program(cpus=(CpuProgram(task=(Lock(0), Unlock(0))),) * 2, n_locks=1)
SWITCH = [0, 0, 1, 0, 0, 0]  # cpu0 takes L0; cpu1 then finds it taken


class Spin(Target):
    """Loops without awaiting when the lock is taken: only the watchdog can stop it."""

    capabilities = Capabilities()

    def __init__(self, machine):  # type: ignore[no-untyped-def]
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        if await self.words[lock].xchg(1):
            while True:
                pass
        return Status.OK

    async def release(self, ctx, lock):  # type: ignore[no-untyped-def]
        await self.words[lock].store(0)


class TrioSpin(Target):
    """The same over trio: a busy loop between two checkpoints."""

    driver = "trio"
    capabilities = Capabilities()

    def __init__(self, machine):  # type: ignore[no-untyped-def]
        self.held = [False] * machine.n_locks

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        await trio.lowlevel.checkpoint()
        while self.held[lock]:
            pass
        self.held[lock] = True
        return Status.OK

    async def release(self, ctx, lock):  # type: ignore[no-untyped-def]
        self.held[lock] = False
        await trio.lowlevel.checkpoint()


class Exits(Spin):
    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        if await self.words[lock].xchg(1):
            raise SystemExit(3)
        return Status.OK


class ExitsInCheck(Spin):
    def check(self):  # type: ignore[no-untyped-def]
        raise SystemExit("bye")


class Interrupted(Spin):
    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt


@pytest.mark.parametrize("target", [Spin, TrioSpin], ids=["cells", "trio"])
def test_a_step_that_never_yields_is_a_no_yield_finding(target: type) -> None:
    with step_timeout(0.2):
        result = lockfuzz.run(target, TWO, SWITCH)
    assert result.violation is not None
    assert result.violation.signature == ("target-fault", "no-yield")
    assert result.violation.contexts == ("cpu1.task",) and result.violation.locks == (0,)
    with step_timeout(0.2):
        again = lockfuzz.run(target, TWO, SWITCH)
    assert again.trace.hash() == result.trace.hash()  # the trace up to the loop is the run's own


@pytest.mark.parametrize("target", [Spin, TrioSpin], ids=["cells", "trio"])
def test_a_campaign_saves_a_no_yield_finding_and_it_replays(target: type, tmp_path: Path) -> None:
    report = lockfuzz.fuzz(target, runs=200, failure_dir=tmp_path, step_timeout=0.2)
    (found,) = report.found
    assert found.failure.signature == ("target-fault", "no-yield")
    assert found.path is not None and found.path.exists()
    assert found.failure.minimal is False  # never shrunk: each run of it costs the bound
    with step_timeout(0.2):
        assert lockfuzz.replay(found.path).reproduced


def test_the_watchdog_leaves_sigalrm_as_it_found_it() -> None:
    one = Program(cpus=(CpuProgram(task=(Lock(0), Unlock(0))),), n_locks=1)
    lockfuzz.run(Spin, one)
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 1000.0)  # a program's own alarm: kept, running
        lockfuzz.run(Spin, one)
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 0
        assert signal.getsignal(signal.SIGALRM) is not signal.SIG_DFL and not fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    with pytest.raises(lockfuzz.InvalidArgument, match="step_timeout=0"):
        lockfuzz.fuzz(Spin, runs=1, step_timeout=0)


@pytest.mark.parametrize(("target", "kind", "where"), [
    (Exits, "raised-SystemExit", "acquire(L0) raised SystemExit: 3"),
    (ExitsInCheck, "raised-SystemExit", "check() raised SystemExit: bye"),
])
def test_system_exit_from_a_target_is_a_target_fault(target: type, kind: str, where: str) -> None:
    result = lockfuzz.run(target, TWO, SWITCH if target is Exits else [0] * 6)
    assert result.violation is not None
    assert result.violation.signature == ("target-fault", kind)
    assert where in result.violation.message


def test_keyboard_interrupt_from_a_target_still_interrupts() -> None:
    with pytest.raises(KeyboardInterrupt):
        lockfuzz.run(Interrupted, TWO, SWITCH)


def test_the_cli_reports_system_exit_as_a_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(Exits, "__module__", __name__)  # importable as tests.fast.test_runaway:Exits
    target = f"{__name__}:Exits"
    assert main(["fuzz", target, "--runs", "200", "--failure-dir", str(tmp_path), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "target-fault/raised-SystemExit" in out
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_a_campaign_installs_the_watchdog_once_and_gives_sigalrm_back(monkeypatch: pytest.MonkeyPatch):
    # Installing a handler costs more than a short run's oracles: a campaign installs it once for
    # every run (each run only arms the timer), and the default is back after it.
    calls: list[object] = []
    original = signal.signal

    def counting(signum, handler):  # type: ignore[no-untyped-def]
        if signum == signal.SIGALRM:
            calls.append(handler)
        return original(signum, handler)

    monkeypatch.setattr(signal, "signal", counting)
    report = lockfuzz.fuzz("ticket", runs=60, seed=0, minimise=False)
    assert report.runs == 60
    assert len(calls) == 2 and calls[-1] == signal.SIG_DFL
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL
    # And a campaign's runs are still watched: a step that never yields is found inside one.
    found = lockfuzz.fuzz(Spin, runs=200, seed=0, minimise=False, step_timeout=0.2, program=TWO)
    assert [f.failure.signature for f in found.found] == [("target-fault", "no-yield")]
