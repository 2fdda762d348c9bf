"""Steps a waiter costs while it waits: a plain spin loop against ``wait_until``.

DESIGN.md, "spinning is waiting": a correct lock written with plain loops of loads must cost a
bounded number of steps per wait, whatever the hold, because the engine parks a context whose
steps repeat without changing anything. The program is the one a user reported as a false
livelock: ``cpu0: lock L0; work HOLD; unlock L0`` / ``cpu1: lock L0; unlock L0``, run with the
fair default (no preemption) and over seeded random walks. Prints, for holds of 1 ms (the
issue's figure), 10 ms and 250 ms: the mean steps per run of

- ``plain``: test-and-test-and-set whose waiter spins ``while await flag.load(): pass``;
- ``wait_until``: the same lock waiting with ``flag.wait_until(lambda v: v == 0)``;
- ``sleep0``: a trio lock whose waiter spins ``while held: await trio.sleep(0)`` (trio driver);

and their ratio to ``wait_until``, then a JSON object as the last line.

    python bench/spinning.py [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "fast"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import lockfuzz  # noqa: E402
from lockfuzz import CpuProgram, Lock, Program, Unlock, Work  # noqa: E402
from lockfuzz._search import RandomWalk  # noqa: E402
from lockfuzz._trio._driver import run_trio  # noqa: E402
from test_spinning import PlainSpinLock, SleepZeroLock  # noqa: E402 - the tests' own locks


class WaitUntilLock(PlainSpinLock):
    """The same test-and-test-and-set, its waiter sleeping in ``wait_until``."""

    async def acquire(self, ctx, lock, budget_ns):  # type: ignore[no-untyped-def]
        flag = self.flags[lock]
        while await flag.xchg(1):
            await flag.wait_until(lambda v: v == 0)
        return lockfuzz.Status.OK


def program(hold_ns: int) -> Program:
    return Program(
        cpus=(CpuProgram(task=(Lock(0), Work(hold_ns), Unlock(0))), CpuProgram(task=(Lock(0), Unlock(0)))), n_locks=1
    )


def mean_steps(run, target, prog: Program, runs: int) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    steps = bad = 0
    t0 = time.perf_counter()
    for seed in range(runs):
        r = run(target, prog, RandomWalk(seed) if seed else [])
        steps += r.steps
        bad += r.violation is not None
    return steps / runs, (time.perf_counter() - t0) / runs * 1e6, bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    out: dict[str, float] = {}
    print(f"{'hold':>8} {'lock':>11} {'steps/run':>10} {'us/run':>8} {'violations':>10} {'x wait_until':>12}")
    for hold in (1_000_000, 10_000_000, 250_000_000):
        prog = program(hold)
        base, _, _ = mean_steps(lockfuzz.run, WaitUntilLock, prog, args.runs)
        for name, run, target in (
            ("wait_until", lockfuzz.run, WaitUntilLock),
            ("plain", lockfuzz.run, PlainSpinLock),
            ("sleep0", run_trio, SleepZeroLock),
        ):
            steps, us, bad = mean_steps(run, target, prog, args.runs)
            print(f"{hold // 1000:>6}us {name:>11} {steps:>10.1f} {us:>8.0f} {bad:>10} {steps / base:>12.2f}")
            out[f"{name}_{hold // 1000}us_steps"] = round(steps, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
