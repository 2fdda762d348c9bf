"""The deadlocks a target claims to detect are tried first (``lockfuzz.strategies.detection_scenarios``).

Found by locks written for this check by someone new to lockfuzz: one that declares ABBA
detection and never detects went unreported for 3,976 runs of a default campaign, and one whose
single check runs before it publishes what it waits for was never reported in 30,000. Each test
here fails if the scenarios are not offered, or not first.
"""

from __future__ import annotations

import pytest

import lockfuzz
from lockfuzz import Capabilities, Context, Detection, Machine, Status, Target, Timeouts
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


def test_scenarios_follow_the_claims_and_the_campaign_bounds():
    rq = lockfuzz.resolve_target("rqspinlock")
    shapes = [(p.n_cpus, p.n_locks, sum(len(c.handlers) for c in p.cpus)) for p in detection_scenarios(rq)]
    # AA, AA by a handler on its task, AA by a hardirq on a softirq (nested), ABBA twice.
    assert shapes == [(1, 1, 0), (1, 1, 1), (1, 1, 2), (2, 2, 0), (2, 2, 0)]
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
