"""The engine against the bare loop, and the resilient locks against ticket, in instructions.

``bench/engine.py`` times the engine on its program against a bare coroutine loop doing the same
accesses; on a shared machine those timings move by a third from one round to the next. This
script counts the same runs under valgrind's callgrind (``_callgrind``): one process warms up
(50 runs) and runs ``--runs`` more, one only warms up; the difference, per run and per step, is
what a run costs. Figures:

- ``ticket`` and ``tas``: the engine with every oracle on, and the bare loop, in instructions per
  step; their ratio (bare / engine) is ``bench/engine.py``'s ratio counted in instructions;
- ``rqspinlock`` and ``resilient_tas``: instructions per run on the same program against ticket's
  (a run of theirs takes more steps: the held-locks table).

    python bench/engine_instructions.py [--runs 200]   # needs valgrind; a few minutes

The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _callgrind import instructions as count_instructions  # noqa: E402 - bench/ is the script's directory

WARM_UP = 50


def child(what: str, target: str, runs: int) -> None:
    """In the process valgrind counts: ``WARM_UP`` runs, then ``runs`` more; prints the steps."""
    import engine as bench

    import lockfuzz
    from lockfuzz._engine import _watchdog
    from lockfuzz._model._target import resolve_target
    from lockfuzz._search import RandomWalk

    cls = resolve_target(target)
    steps = 0
    with _watchdog.step_timeout(None):  # no timer signals in the count
        for seed in range(WARM_UP + runs):
            if what == "engine":
                n = lockfuzz.Engine(cls, bench.PROGRAM, RandomWalk(seed)).run().steps
            else:
                n = bench.bare_run(cls, bench.PROGRAM)
            if seed >= WARM_UP:
                steps += n
    print(steps)


def per_run(what: str, target: str, runs: int) -> tuple[int, float]:
    """Instructions per run, and steps per run, of ``runs`` runs (the difference of two counts)."""
    args = ["--child", f"{what},{target}"]
    total = count_instructions(__file__, [*args, "--runs", str(runs)])
    base = count_instructions(__file__, [*args, "--runs", "0"])
    steps = _steps(what, target, runs)
    return (total - base) // runs, steps / runs


def _steps(what: str, target: str, runs: int) -> int:
    """The steps of those runs (the same process, outside valgrind)."""
    out = subprocess.run([sys.executable, __file__, "--child", f"{what},{target}", "--runs", str(runs)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return int(out.stdout.split()[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        what, target = args.child.split(",")
        child(what, target, args.runs)
        return {}
    out: dict[str, Any] = {}
    ratios = []
    for target in ("ticket", "tas"):
        e_ir, e_steps = per_run("engine", target, args.runs)
        b_ir, b_steps = per_run("bare", target, args.runs)
        e_per_step, b_per_step = e_ir / e_steps, b_ir / b_steps
        ratios.append(b_per_step / e_per_step)
        out[f"{target}_engine_instructions_per_run"] = e_ir
        out[f"{target}_engine_instructions_per_step"] = round(e_per_step)
        out[f"{target}_bare_instructions_per_step"] = round(b_per_step)
        print(f"{target:14} engine {e_ir:>10,} instructions a run, {e_per_step:>8,.0f} a step; "
              f"bare {b_per_step:>6,.0f} a step; ratio {b_per_step / e_per_step:.3f}")
    out["ratio"] = round(sum(ratios) / len(ratios), 3)
    for target in ("rqspinlock", "resilient_tas"):
        ir, steps = per_run("engine", target, args.runs)
        x = out["ticket_engine_instructions_per_run"] / ir
        out[f"{target}_instructions_per_run"] = ir
        out[f"{target}_x_ticket"] = round(x, 3)
        print(f"{target:14} engine {ir:>10,} instructions a run ({steps:.1f} steps); ticket's over its: {x:.3f}")
    out["runs"] = args.runs
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
