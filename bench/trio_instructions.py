"""The trio driver's runs counted in instructions, for A/B comparisons on a busy machine.

``bench/trio_engine.py`` times examples, and on a shared machine the same code times 2-3 times
apart from one round to the next. Instructions vary by about 1% (garbage collection and the
order of sets of objects follow memory addresses). This script draws the programs and seeds of
``bench/trio_engine.py``'s workloads (``trio_lock``, ``trio_lock_twice``,
``trio_lock_schedules``), then counts under valgrind's callgrind the instructions of one run of
each (a process that runs them all once more, less one that does not), and of the same programs
as plain trio tasks (``trio_alone``, no lockfuzz at all: trio's own cost, the floor).

Hypothesis's own examples are not counted: Hypothesis reads the clock, and under valgrind (50
times slower) it takes other paths than at full speed, so its instructions there say nothing.

    python bench/trio_instructions.py [--examples 100]   # needs valgrind; a few minutes

The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _callgrind import instructions as count_instructions  # noqa: E402 - bench/ is the script's directory

WORKLOADS = (("", 1), ("_twice", 2), ("_schedules", 0))


def child(what: str, sections: int, examples: int, count: bool) -> None:
    """In the process valgrind counts: draw, warm up, then (``count``) run once more."""
    sys.path.insert(0, str(HERE))
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    import trio_engine as bench
    from lockfuzz._search.random_walk import RandomWalk
    from lockfuzz._trio._driver import TrioEngine
    from lockfuzz.targets.trio_locks import TrioLock

    if what == "alone":  # trio_alone draws its programs itself: count the draws alone, then both
        if count:
            bench.trio_alone(examples, sections)
            return
        drawn: list[Any] = []

        @settings(max_examples=examples, database=None, deadline=None, derandomize=True,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(program=bench.programs_of(sections), seed=st.integers(0, 2**32 - 1))
        def draw(program: Any, seed: int) -> None:
            drawn.append(program)

        draw()
        bench.trio.run(_nothing, clock=bench.trio.testing.MockClock(autojump_threshold=0))  # trio's start-up
        return
    runs: list[Any] = []

    @settings(max_examples=examples, database=None, deadline=None, derandomize=True,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(program=bench.programs_of(sections), seed=st.integers(0, 2**32 - 1))
    def draw_runs(program: Any, seed: int) -> None:
        runs.append((program, seed))

    draw_runs()
    for _ in range(1 + count):  # the first pass warms up (the trio host, caches)
        for program, seed in runs:
            TrioEngine(TrioLock, program, RandomWalk(seed)).run()


async def _nothing() -> None:
    pass


def instructions(what: str, sections: int, examples: int, count: bool) -> int:
    return count_instructions(__file__, ["--child", f"{what},{sections},{int(count)}", "--examples", str(examples)])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=100)
    ap.add_argument("--workloads", default="_,_twice,_schedules", help="which (comma-separated; _ is trio_lock)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        what, sections, count = args.child.split(",")
        child(what, int(sections), args.examples, bool(int(count)))
        return {}
    n = args.examples
    out: dict[str, Any] = {}
    wanted = {w.strip("_") for w in args.workloads.split(",")}
    for workload, sections in WORKLOADS:
        if workload.strip("_") not in wanted:
            continue
        run = (instructions("runs", sections, n, True) - instructions("runs", sections, n, False)) // n
        alone = (instructions("alone", sections, n, True) - instructions("alone", sections, n, False)) // n
        out[f"trio_lock{workload}_instructions_per_run"] = run
        out[f"trio_alone{workload}_instructions_per_run"] = alone
        name = "trio_lock" + workload
        print(f"{name:22} {run:>10,} instructions a run; trio alone {alone:>10,} ({run / alone:.2f}x)")
    out["examples"] = n
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
