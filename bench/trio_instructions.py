"""The trio driver's cost in instructions, for A/B comparisons on a busy machine.

``bench/trio_engine.py`` times examples, and on a shared machine the same code times 2-3 times
apart from one round to the next. Instructions do not vary: this script runs the same
``@given`` tests as ``bench/trio_engine.py`` (``measure``) under valgrind's callgrind and counts
the instructions one example costs (a process that runs ``--examples`` examples of a case, less
one that only warms up), for ``trio_lock``, ``trio_lock_twice``, ``trio_lock_schedules`` and
their ``hypothesis_only`` ceilings. The share of the ceiling in instructions,
``hypothesis_only / trio_lock`` per example, is what ``trio_engine.py``'s
``share_of_ceiling`` would be if an instruction cost the same time in both (it does not
quite: take it as a comparison between two versions of lockfuzz, not as a time).

    python bench/trio_instructions.py [--examples 200]   # needs valgrind; a few minutes

The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORKLOADS = ("", "_twice", "_schedules")


def child(case: str, examples: int) -> None:
    """In the process valgrind counts: warm up every case, then ``examples`` of ``case``."""
    sys.path.insert(0, str(HERE))
    import trio_engine as bench

    for workload in WORKLOADS:
        for name in ("hypothesis_only" + workload, "trio_lock" + workload):
            engine_cls, target, sections = bench.CASES[name]
            bench.measure(engine_cls, target, 30, sections)
    if case != "none":
        engine_cls, target, sections = bench.CASES[case]
        bench.measure(engine_cls, target, examples, sections)


def instructions(case: str, examples: int) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
         "--child", case, "--examples", str(examples)],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"no instruction count from valgrind:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        child(args.child, args.examples)
        return {}
    base = instructions("none", args.examples)
    per: dict[str, int] = {}
    for workload in WORKLOADS:
        for name in ("hypothesis_only" + workload, "trio_lock" + workload):
            per[name] = (instructions(name, args.examples) - base) // args.examples
    out: dict[str, Any] = {f"{name}_instructions_per_example": n for name, n in per.items()}
    for workload in WORKLOADS:
        hyp, run = per["hypothesis_only" + workload], per["trio_lock" + workload]
        out[f"trio_lock{workload}_instructions_per_run"] = run - hyp
        out[f"trio_lock{workload}_share_of_ceiling_in_instructions"] = round(hyp / run, 2)
        print(f"{'trio_lock' + workload:22} {run:>10,} instructions an example, {run - hyp:>10,} of them the run; "
              f"share of the ceiling {hyp / run:.2f}")
    out["examples"] = args.examples
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    sys.exit(main() and 0)
