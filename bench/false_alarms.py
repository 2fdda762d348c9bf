"""False alarms: campaigns over locks that are correct, where every failure found is lockfuzz's.

For every correct bundled target (``lockfuzz targets``, less the mutants and ``arena_spinlock``,
which is broken on purpose) and every natural lock of ``tests/natural_locks.py`` (correct locks
written the way outside authors write them: plain spin loops, clock-reading spins, ``trio.sleep(0)``,
condition variables), runs a campaign per search strategy and per ``--cpus`` value, as
``lockfuzz fuzz TARGET --strategy S --cpus N --runs R --seed SEED`` does (programs of at most N
CPUs and 2 locks, an interrupt handler per CPU where the target takes them), and prints for each:
runs, runs per second, and the failures found (signature, runs to find, the message). Each of those failures is a false
alarm. Failure files go to a temporary folder (``--failure-dir``), never into the repository;
the natural locks' files name ``natural_locks:Class``, so replay them with ``tests/`` on
``PYTHONPATH``.

    python bench/false_alarms.py [--runs 20000] [--seed 11] [--targets a,b] [--strategies swarm,random,pct]
                                 [--cpus 2,3,4,5] [--jobs N] [--max-failures 3] [--time-limit SECONDS]
                                 [--no-minimise] [--failure-dir DIR]

Every failure is a false alarm except those ``tests/natural_locks.py`` lists in ``KNOWN_REAL``
(``TrioConditionLock`` is not irq-safe, and the default programs use it from interrupt handlers:
a real deadlock) and those of the bundled targets' own documented behaviour listed here
(``KNOWN_REAL_BUNDLED``), which are shown as "known real". A campaign that crashes (an exception out of
``lockfuzz.fuzz``, not a violation) is reported as such and counted apart. Last line: a JSON
object with the settings, ``results`` (per ``target/strategy/cpus``: runs, runs per second,
seconds, failure signatures, crash), ``false_alarms`` (per target: the distinct signatures
found, over every campaign), ``known_real`` and ``crashes``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
import traceback
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The natural locks live with the tests (tests/natural_locks.py): importable as `natural_locks`,
# here and in every worker process (spawned workers re-run this module's top level).
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

import lockfuzz  # noqa: E402
from lockfuzz._model._registry import bundled_targets  # noqa: E402
from lockfuzz._search import STRATEGIES  # noqa: E402

#: Bundled targets that are broken on purpose (tests/slow/test_campaigns.py's KNOWN_BROKEN).
KNOWN_BROKEN = {"arena_spinlock"}
DEFAULT_STRATEGIES = ("swarm", "random", "pct")
DEFAULT_CPUS = (2, 3, 4, 5)


#: Bundled targets' real findings: what the original does, documented in the target and pinned by
#: a test.
KNOWN_REAL_BUNDLED = {
    "rqspinlock": {
        "hang/cycle": "hardirq or softirq handlers queued as non-head waiters behind each other's interrupted "
        "queue heads: non-head waiters have no timeout and the heads cannot run, as in mainline "
        "(targets/rqspinlock.py, tests/fast/test_rqspinlock.py::test_hardirqs_queued_behind_each_others_"
        "interrupted_heads_hang)",
    },
}


def known_real() -> dict[str, dict[str, str]]:
    """Target name -> {signature: why it is a real finding, not a false alarm}."""
    from natural_locks import KNOWN_REAL

    return {**KNOWN_REAL, **KNOWN_REAL_BUNDLED}


def natural_locks() -> dict[str, str]:
    """Natural lock name -> import path (``natural_locks:Class``)."""
    from natural_locks import NATURAL_LOCKS

    return {name: f"natural_locks:{cls.__name__}" for name, cls in NATURAL_LOCKS.items()}


def all_targets() -> dict[str, str]:
    """Every correct target this bench knows: bundled (no mutants, no known-broken), then natural."""
    out = {name: path for name, path in bundled_targets(mutants=False).items() if name not in KNOWN_BROKEN}
    for name, path in natural_locks().items():
        out.setdefault(name, path)
    return out


def campaign(job: dict[str, Any]) -> dict[str, Any]:
    """One campaign (runs in a worker process with --jobs > 1): what it found, or how it crashed."""
    from lockfuzz.strategies import interrupts_for, programs_for

    out: dict[str, Any] = {k: job[k] for k in ("target", "strategy", "cpus")}
    out.update(runs=0, seconds=0.0, runs_per_s=0.0, failures=[], crash=None)
    t0 = time.perf_counter()
    try:
        cls = lockfuzz.resolve_target(job["path"])
        # Interrupt handlers as `lockfuzz fuzz` gives them: on over cells, off over trio unless asked.
        handlers = 1 if interrupts_for(cls) else 0
        programs = programs_for(cls, max_cpus=job["cpus"], max_locks=2, max_handlers=handlers)
        report = lockfuzz.fuzz(
            cls, programs=programs, strategy=job["strategy"], runs=job["runs"], seed=job["seed"],
            failure_dir=job["failure_dir"], max_failures=job["max_failures"], minimise=job["minimise"],
            time_limit=job["time_limit"],
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - a crash of the campaign is a finding too
        out["seconds"] = time.perf_counter() - t0
        last = traceback.extract_tb(exc.__traceback__)[-1]
        out["crash"] = f"{type(exc).__name__}: {_first_line(str(exc))} (at {Path(last.filename).name}:{last.lineno})"
        return out
    out["runs"] = report.runs
    out["seconds"] = report.seconds
    out["runs_per_s"] = report.runs_per_second
    for found in report.found:
        f = found.failure
        out["failures"].append({
            "signature": "/".join(f.signature),
            "runs_to_find": found.runs_to_find,
            "message": _first_line(_message(f.violation)),
            "file": str(found.path) if found.path is not None else None,
        })  # fmt: skip
    return out


def _message(violation: Any) -> str:
    """A violation's message (a ``Violation``, or the dict a failure file holds)."""
    if isinstance(violation, dict):
        return str(violation.get("message", violation))
    return str(violation)


def _first_line(text: str, width: int = 240) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20_000, help="runs per campaign (default 20000)")
    ap.add_argument("--seed", type=int, default=11, help="every campaign's seed (default 11)")
    ap.add_argument("--targets", type=_csv, default=None, metavar="A,B",
                    help="targets by name (default: every correct bundled target and every natural lock)")
    ap.add_argument("--strategies", type=_csv, default=list(DEFAULT_STRATEGIES), metavar="S,T",
                    help=f"search strategies (default {','.join(DEFAULT_STRATEGIES)})")
    ap.add_argument("--cpus", type=_csv, default=[str(c) for c in DEFAULT_CPUS], metavar="N,M",
                    help="--cpus values: at most N CPUs per program (default 2,3,4,5)")
    ap.add_argument("--jobs", type=int, default=1, help="campaigns run at once, in worker processes (default 1)")
    ap.add_argument("--max-failures", type=int, default=3, help="distinct signatures per campaign (default 3)")
    ap.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                    help="real-time limit per campaign (default none)")
    ap.add_argument("--no-minimise", action="store_true",
                    help="skip the schedule minimiser (Hypothesis still shrinks the program)")
    ap.add_argument("--failure-dir", type=Path, default=None, metavar="DIR",
                    help="where failure files go (default: a new temporary folder)")
    args = ap.parse_args(argv)
    known = all_targets()
    if args.targets is None:
        args.targets = list(known)
    unknown = [t for t in args.targets if t not in known]
    if unknown:
        ap.error(f"--targets: unknown {', '.join(unknown)}; expected names from: {', '.join(known)}")
    bad = [s for s in args.strategies if s not in STRATEGIES]
    if bad:
        ap.error(f"--strategies: unknown {', '.join(bad)}; expected names from: {', '.join(STRATEGIES)}")
    try:
        args.cpus = [int(c) for c in args.cpus]
    except ValueError:
        ap.error(f"--cpus={','.join(args.cpus)}: expected ints >= 1")
    for name, value in (("--runs", args.runs), ("--jobs", args.jobs), ("--max-failures", args.max_failures)):
        if value < 1:
            ap.error(f"{name}={value}: expected an int >= 1")
    if any(c < 1 for c in args.cpus):
        ap.error(f"--cpus={args.cpus}: expected ints >= 1")
    if args.time_limit is not None and args.time_limit <= 0:
        ap.error(f"--time-limit={args.time_limit}: expected a number of seconds > 0")
    args.paths = known
    return args


def line(r: dict[str, Any]) -> str:
    real = known_real().get(r["target"], {})
    found = r["crash"] and f"CRASH {r['crash']}" or "; ".join(
        f"{f['signature']}{' (known real)' if f['signature'] in real else ''} after {f['runs_to_find']} runs: "
        f"{f['message']}"
        for f in r["failures"]
    ) or "clean"
    return (f"{r['target']:24} {r['strategy']:7} {r['cpus']:>4} {r['runs']:>7} {r['runs_per_s']:>8,.0f} "
            f"{r['seconds']:>8.1f}  {found}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    failure_dir = args.failure_dir or Path(tempfile.mkdtemp(prefix="lockfuzz-false-alarms-"))
    # A target written for fewer CPUs (Capabilities.max_cpus: Peterson's 2) runs only the counts it takes.
    limit = {t: lockfuzz.resolve_target(args.paths[t]).capabilities.max_cpus for t in args.targets}
    jobs = [
        {"target": t, "path": args.paths[t], "strategy": s, "cpus": c, "runs": args.runs, "seed": args.seed,
         "failure_dir": str(failure_dir), "max_failures": args.max_failures, "minimise": not args.no_minimise,
         "time_limit": args.time_limit}
        for t in args.targets for s in args.strategies for c in args.cpus if limit[t] is None or int(c) <= limit[t]
    ]  # fmt: skip
    skipped = len(args.targets) * len(args.strategies) * len(args.cpus) - len(jobs)
    print(f"{len(args.targets)} targets x {len(args.strategies)} strategies x {len(args.cpus)} --cpus values = "
          f"{len(jobs)} campaigns of {args.runs} runs"
          + (f" ({skipped} skipped: more CPUs than the target is written for)" if skipped else "")
          + f", seed {args.seed}, {args.jobs} job(s); failure files in {failure_dir}")
    print(f"{'target':24} {'search':7} {'cpus':>4} {'runs':>7} {'runs/s':>8} {'seconds':>8}  failures")
    t0 = time.perf_counter()
    results: list[dict[str, Any]] = []
    if args.jobs == 1:
        for job in jobs:
            results.append(campaign(job))
            print(line(results[-1]), flush=True)
    else:
        # Spawned workers: each has its own trio host; nothing of the parent's trio state is copied.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
            futures = [pool.submit(campaign, job) for job in jobs]
            for fut in as_completed(futures):
                results.append(fut.result())
                print(line(results[-1]), flush=True)
        order = {(j["target"], j["strategy"], j["cpus"]): i for i, j in enumerate(jobs)}
        results.sort(key=lambda r: order[(r["target"], r["strategy"], r["cpus"])])
    wall = time.perf_counter() - t0
    return summary(args, results, wall, failure_dir)


def summary(args: argparse.Namespace, results: list[dict[str, Any]], wall: float, failure_dir: Path) -> dict[str, Any]:
    print()
    print(f"summary ({wall:.1f} s of real time)")
    print(f"{'target':24} {'runs':>9} {'runs/s':>8} {'failing':>8} {'crashed':>8}  false alarms (signature: campaigns)")
    false_alarms: dict[str, list[str]] = {}
    real_found: dict[str, list[str]] = {}
    crashes: dict[str, list[str]] = {}
    total: Counter[str] = Counter()
    for t in args.targets:
        real = known_real().get(t, {})
        mine = [r for r in results if r["target"] == t]
        runs = sum(r["runs"] for r in mine)
        seconds = sum(r["seconds"] for r in mine if not r["crash"])
        sigs = Counter(f["signature"] for r in mine for f in r["failures"] if f["signature"] not in real)
        reals = sorted({f["signature"] for r in mine for f in r["failures"] if f["signature"] in real})
        failing = sum(1 for r in mine if any(f["signature"] not in real for f in r["failures"]))
        crashed = [r for r in mine if r["crash"]]
        total.update(sigs)
        if sigs:
            false_alarms[t] = sorted(sigs)
        if reals:
            real_found[t] = reals
        if crashed:
            crashes[t] = sorted({r["crash"] for r in crashed})
        text = ", ".join(f"{s}: {n}" for s, n in sorted(sigs.items())) or "none"
        if reals:
            text += f" (and known real: {', '.join(reals)})"
        rate = runs / seconds if seconds else 0.0
        print(f"{t:24} {runs:>9,} {rate:>8,.0f} {failing:>4}/{len(mine):<3} {len(crashed):>4}/{len(mine):<3}  {text}")
    clean = [t for t in args.targets if t not in false_alarms and t not in crashes]
    print()
    print(f"targets without a false alarm: {len(clean)}/{len(args.targets)}"
          + (f" ({', '.join(clean)})" if clean else ""))
    print("false alarms by signature (campaigns): "
          + (", ".join(f"{s} x{n}" for s, n in total.most_common()) or "none"))
    for t, reals_of_t in real_found.items():
        for sig in reals_of_t:
            print(f"known real finding, not a false alarm: {t} {sig}: {known_real()[t][sig]}")
    if crashes:
        print("crashed campaigns: " + "; ".join(f"{t}: {' | '.join(c)}" for t, c in crashes.items()))
    print(f"failure files: {failure_dir}")
    out = {
        "runs": args.runs, "seed": args.seed, "strategies": args.strategies, "cpus": args.cpus,
        "seconds": round(wall, 1),
        "results": {
            f"{r['target']}/{r['strategy']}/{r['cpus']}": {
                "runs": r["runs"], "runs_per_s": round(r["runs_per_s"]), "seconds": round(r["seconds"], 2),
                "failures": [f["signature"] for f in r["failures"]], "crash": r["crash"],
            }
            for r in results
        },
        "false_alarms": false_alarms,
        "known_real": real_found,
        "crashes": crashes,
    }  # fmt: skip
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    sys.exit(main() and 0)
