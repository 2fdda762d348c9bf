"""No schedule starves a runnable context for ever (``lockfuzz._engine._run``, ``STARVATION_STEPS``).

Found by a newcomer's Eisenberg-McGuire lock (CACM 15(11), 1972), correct, under PCT: the
releaser had one store left (its flag back to idle) when the waiter got the highest priority;
the waiter's loop writes its own flag each round, so it is never parked as a spinner, and PCT's
decisions kept it running for the rest of the run: ``livelock/step-limit`` after 500,000 steps,
on a lock that any step of the releaser would have let through. Real CPUs run side by side.
"""

from __future__ import annotations

import lockfuzz
from lockfuzz import Capabilities, Context, Fairness, Machine, Program, Status, Target
from lockfuzz._engine._run import STARVATION_STEPS, Engine, Schedule
from lockfuzz._trio._driver import TrioEngine

IDLE, WAITING, ACTIVE = 0, 1, 2


class EisenbergMcGuire(Target):
    """Per lock: a flag per CPU and ``turn``; one process per CPU, no interrupt handlers."""

    capabilities = Capabilities(interrupts=False, fairness=Fairness(overtakes=1, doorway_steps=1))

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine)
        self.n = machine.n_cpus
        self.flags = [[machine.cell(f"L{k}.flag{i}") for i in range(self.n)] for k in range(machine.n_locks)]
        self.turn = [machine.cell(f"L{k}.turn") for k in range(machine.n_locks)]
        # A waiter that has announced itself waits at most n - 1 turns.
        self.capabilities = Capabilities(interrupts=False, fairness=Fairness(overtakes=self.n - 1, doorway_steps=1))

    async def acquire(self, ctx: Context, lock: int, budget_ns: int) -> Status:
        i, n, flags, turn = ctx.cpu, self.n, self.flags[lock], self.turn[lock]
        while True:
            await flags[i].store(WAITING)
            index = await turn.load()
            while index != i:
                index = await turn.load() if await flags[index].load() != IDLE else (index + 1) % n
            await flags[i].store(ACTIVE)
            index = 0
            while index < n and (index == i or await flags[index].load() != ACTIVE):
                index += 1
            if index >= n:
                t = await turn.load()
                if t == i or await flags[t].load() == IDLE:
                    break
        await turn.store(i)
        return Status.OK

    async def release(self, ctx: Context, lock: int) -> None:
        i, n, flags, turn = ctx.cpu, self.n, self.flags[lock], self.turn[lock]
        index = (await turn.load() + 1) % n
        while await flags[index].load() == IDLE:
            index = (index + 1) % n
        await turn.store(index)
        await flags[i].store(IDLE)


TWO = Program.from_json({
    "cpus": [{"handlers": [], "task": [["lock", 0, 1_000_000_000], ["unlock", 0]]},
             {"handlers": [], "task": [["lock", 0, 1_000_000_000], ["work", 0], ["unlock", 0]]}],
    "n_locks": 1,
})  # fmt: skip
#: PCT's: two preemptions, then the highest-priority context kept running (decision 0) for ever.
STARVING = [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1] + [0] * 600_000


def test_a_context_kept_running_for_ever_gives_way_to_one_that_can_run():
    result = lockfuzz.run(EisenbergMcGuire, TWO, STARVING)
    assert result.violation is None, str(result.violation)
    # The waiter spun on its flag for the whole window, then the releaser's last store ran.
    assert STARVATION_STEPS < result.steps < 3 * STARVATION_STEPS, result.steps
    again = lockfuzz.run(EisenbergMcGuire, TWO, list(result.decisions))
    assert again.trace.hash() == result.trace.hash()  # the override replays


def test_the_lock_is_clean_under_pct():
    report = lockfuzz.fuzz(EisenbergMcGuire, runs=1_000, strategy="pct", seed=76, minimise=False)
    assert report.ok, [f.failure.violation for f in report.found]


def test_both_drivers_let_the_starved_context_run_at_the_same_steps():
    direct = Engine(EisenbergMcGuire, TWO, Schedule(STARVING)).run()
    assert direct.violation is None and direct.steps > STARVATION_STEPS
    on_trio = TrioEngine(EisenbergMcGuire, TWO, Schedule(STARVING)).run()
    assert on_trio.violation is None
    assert (on_trio.steps, on_trio.time_ns, on_trio.decisions) == (direct.steps, direct.time_ns, direct.decisions)
    assert on_trio.trace.hash() == direct.trace.hash()
