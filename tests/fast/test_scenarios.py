"""The deadlocks a target claims to detect are tried first (``lockfuzz.strategies.detection_scenarios``).

Found by locks written for this check by someone new to lockfuzz: one that declares ABBA
detection and never detects went unreported for 3,976 runs of a default campaign, and one whose
single check runs before it publishes what it waits for was never reported in 30,000. Two more
from the next round, with deadlocks through interrupt handlers: ABBA tables kept for tasks only
(unreported in 80,000 runs), and a cycle check that compares owners by context where it should
compare CPUs (reported once in 59,232). Each test here fails if the scenarios are not offered,
or not first.
"""

from __future__ import annotations

from typing import Any

import pytest

import lockfuzz
from lockfuzz import Capabilities, Context, Detection, Level, Machine, Status, Target, Timeouts
from lockfuzz._frontends._cli import main
from lockfuzz.strategies import detection_scenarios

POLL_NS = 10_000
NONE = 0xFF


class ClaimsAbbaNeverDetects(Target):
    """Test-and-set that polls with timed waits and claims ABBA detection, but never checks."""

    capabilities = Capabilities(
        timeouts=Timeouts(per_call=True, slack_ns=100_000),
        detection=Detection(classes=frozenset({"ABBA"}), latency_ns=2 * POLL_NS),
        interrupts=False,
    )

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        word = self.words[lock]
        deadline = ctx.now + budget_ns
        while await word.xchg(1):
            if ctx.now >= deadline:
                return Status.ETIMEDOUT
            await word.wait_until(lambda v: v == 0, min(ctx.now + POLL_NS, deadline))
        return Status.OK

    async def release(self, ctx: Context, lock: int) -> None:
        await self.words[lock].store(0)


class AbbaTablesForTasksOnly(Target):
    """AA and ABBA detection over per-CPU tables (the lock each CPU waits for, the locks it holds),
    kept, and checked, for tasks only: "handlers do not nest locks". A handler on one CPU and a
    task on another nesting two locks in opposite orders are never reported."""

    capabilities = Capabilities(
        timeouts=Timeouts(per_call=True), detection=Detection(classes=frozenset({"ABBA"}), latency_ns=1_000_000)
    )

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]
        self.waits_for = machine.per_cpu(lambda cpu: machine.cell(f"cpu{cpu}.waits_for"))
        self.held = machine.per_cpu(lambda cpu: machine.cell(f"cpu{cpu}.held"))

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        task = ctx.level == Level.TASK  # the bug: handlers are left out of the tables
        word, waits_for, held = self.words[lock], self.waits_for[ctx.cpu], self.held[ctx.cpu]
        deadline = ctx.now + budget_ns
        if task:
            await waits_for.store(lock + 1)
        while True:
            owner = await word.cmpxchg(0, ctx.cpu + 1)
            if owner == 0:
                if task:
                    await waits_for.store(0)
                    await held.fetch_or(1 << lock)
                return Status.OK
            if task:
                mine = await held.load()
                theirs = await self.waits_for[owner - 1].load()
                theirs_held = await self.held[owner - 1].load()
                if theirs and mine & (1 << (theirs - 1)) and theirs_held & (1 << lock):
                    await waits_for.store(0)
                    return Status.EDEADLK
            if ctx.now >= deadline:
                if task:
                    await waits_for.store(0)
                return Status.ETIMEDOUT
            await word.wait_until(lambda v: v == 0, deadline)

    async def release(self, ctx: Context, lock: int) -> None:
        if ctx.level == Level.TASK:
            await self.held[ctx.cpu].fetch_and(~(1 << lock) & 0xFFFF_FFFF)
        await self.words[lock].store(0)


class CycleCheckByContext(Target):
    """Claims every cycle: the owner on its own CPU is AA; an owner waiting for a lock the asker
    holds is ABBA. The second hop compares the next owner with the asking context where it should
    compare CPUs, so a cycle that closes through the task a handler interrupted is missed."""

    capabilities = Capabilities(
        timeouts=Timeouts(per_call=True),
        detection=Detection(classes=frozenset({"AA", "ABBA", "cycle"}), latency_ns=1_000_000),
    )

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.machine = machine
        self.words = [machine.cell(f"L{i}") for i in range(machine.n_locks)]
        self.waits_for: dict[int, Any] = {}
        self.cpu_of: dict[int, int] = {}
        self.ids: dict[str, int] = {}

    def _waits_for(self, who: int) -> Any:
        if who not in self.waits_for:
            self.waits_for[who] = self.machine.cell(f"ctx{who}.waits_for")
        return self.waits_for[who]

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        me = self.ids.setdefault(ctx.name, len(self.ids) + 1)
        self.cpu_of[me] = ctx.cpu
        word, waits_for = self.words[lock], self._waits_for(me)
        deadline = ctx.now + budget_ns
        await waits_for.store(lock + 1)
        while True:
            owner = await word.cmpxchg(0, me)
            if owner == 0:
                await waits_for.store(0)
                return Status.OK
            if self.cpu_of.get(owner) == ctx.cpu:  # AA
                await waits_for.store(0)
                return Status.EDEADLK
            theirs = await self._waits_for(owner).load()
            if theirs and await self.words[theirs - 1].load() == me:  # the bug: by context
                await waits_for.store(0)
                return Status.EDEADLK
            if ctx.now >= deadline:
                await waits_for.store(0)
                return Status.ETIMEDOUT
            await word.wait_until(lambda v: v == 0, deadline)

    async def release(self, ctx: Context, lock: int) -> None:
        await self.words[lock].store(0)


@pytest.mark.parametrize(
    "target, signature",
    [
        (AbbaTablesForTasksOnly, ("edeadlk-complete", "missed-ABBA")),
        (CycleCheckByContext, ("edeadlk-complete", "missed-cycle")),
    ],
)
def test_deadlocks_through_a_handler_are_tried_first(target: Any, signature: tuple[str, str]) -> None:
    report = lockfuzz.fuzz(target, runs=5_000, seed=0, minimise=False)
    assert [f.failure.signature for f in report.found] == [signature]
    assert report.runs <= 400  # a scenario (7 or 8 programs, 50 schedules each), not a drawn program


def test_scenarios_follow_the_claims_and_the_campaign_bounds():
    rq = lockfuzz.resolve_target("rqspinlock")
    shapes = [(p.n_cpus, p.n_locks, sum(len(c.handlers) for c in p.cpus)) for p in detection_scenarios(rq)]
    # AA, AA by a handler on its task, AA by a hardirq on a softirq (nested), ABBA twice.
    assert shapes == [(1, 1, 0), (1, 1, 1), (1, 1, 2), (2, 2, 0), (2, 2, 0), (2, 2, 1), (2, 2, 1)]
    assert detection_scenarios(lockfuzz.resolve_target("ticket")) == ()  # claims nothing
    assert [p.n_cpus for p in detection_scenarios(rq, max_cpus=1)] == [1, 1, 1]  # no room for ABBA
    assert [p.n_cpus for p in detection_scenarios(rq, max_handlers=0)] == [1, 2, 2]
    assert [p.n_locks for p in detection_scenarios(rq, max_locks=1)] == [1, 1, 1]
    # Per-call budgets outlast the declared latency, so the claim is judged before a timeout.
    (abba, _) = detection_scenarios(ClaimsAbbaNeverDetects)
    assert all(op.budget_ns > 2 * POLL_NS for c in abba.cpus for op in c.task if isinstance(op, lockfuzz.Lock))
    with pytest.raises(lockfuzz.InvalidArgument, match="max_cpus=0"):
        detection_scenarios(rq, max_cpus=0)


def test_a_lock_that_claims_abba_and_never_detects_is_found_among_the_first_runs():
    report = lockfuzz.fuzz(ClaimsAbbaNeverDetects, runs=5_000, seed=0, minimise=False)
    assert [f.failure.signature for f in report.found] == [("edeadlk-complete", "missed-ABBA")]
    assert report.runs <= 100  # a scenario, not a drawn program (was 3,976 runs)
    # Offered nothing, the same campaign has not found it by then.
    report = lockfuzz.fuzz(ClaimsAbbaNeverDetects, runs=100, seed=0, minimise=False, scenarios=())
    assert not report.found
    with pytest.raises(lockfuzz.InvalidArgument, match="scenarios"):
        lockfuzz.fuzz(ClaimsAbbaNeverDetects, runs=10, scenarios=["lock L0"])  # type: ignore[list-item]


def test_the_cli_tries_the_scenarios_within_its_bounds(tmp_path, capsys):  # type: ignore[no-untyped-def]
    target = f"{__name__}:ClaimsAbbaNeverDetects"
    assert main(["fuzz", target, "--runs", "100", "--failure-dir", str(tmp_path), "--json"]) == 1
    # With one CPU there is no ABBA to try, and nothing is found in as many runs.
    assert main(["fuzz", target, "--runs", "100", "--cpus", "1", "--failure-dir", str(tmp_path), "--json"]) == 0
    capsys.readouterr()


def test_the_first_shard_of_a_campaign_tries_the_scenarios_and_the_others_do_not():
    from lockfuzz._campaigns._shards import ShardSpec, run_shard

    target = f"{__name__}:ClaimsAbbaNeverDetects"
    first = run_shard(ShardSpec(target=target, seed=0, index=0, count=2, runs=200, minimise=False))
    second = run_shard(ShardSpec(target=target, seed=0, index=1, count=2, runs=200, minimise=False))
    assert first.signatures() == [("edeadlk-complete", "missed-ABBA")]
    assert not second.signatures()
