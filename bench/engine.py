"""Engine speed against a bare coroutine loop, and memory over a long campaign.

Runs a 3-CPU, 2-lock program (nested acquisitions, one interrupt handler) on the ticket and
test-and-set targets with a seeded random walk, every oracle on; and, in the same process, a
bare loop that drives the same target coroutines round robin and performs their memory
accesses with no decisions, events, trace or oracles. Prints steps/s and runs/s for both; the
last line is JSON with ``engine_steps_per_s``, ``bare_steps_per_s``, ``ratio`` (engine / bare),
and the process's peak RSS after 1,000 and 20,000 runs (``rss_mb_1k``, ``rss_mb_20k``).

Two floors, in the same run, show what the ratio is made of (issue #13 asks for 0.33 with every
oracle on): ``recording_ratio``, the bare loop that also takes a random walk's decision at each
step and records an event per access, the least any engine that replays its runs must do; and
``judgement_free_ratio``, the engine with no oracles, no ground truth and no final check.

    python bench/engine.py [--runs 3000] [--long 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import trio

import lockfuzz
from lockfuzz import CpuProgram, Handler, Level, Lock, Program, Unlock, Work
from lockfuzz._engine._machine import MEMORY_OPS, SLEEP, WAIT, Machine
from lockfuzz._search import RandomWalk
from lockfuzz.targets.tas import TasLock
from lockfuzz.targets.ticket import TicketLock

PROGRAM = Program(
    cpus=(
        # Nested in one order, and the handler's CPU never takes its lock at task level, so the
        # program cannot deadlock on a lock that does not detect deadlocks.
        CpuProgram(task=(Lock(0), Lock(1), Work(20), Unlock(1), Unlock(0))),
        CpuProgram(
            task=(Lock(0), Work(10), Unlock(0), Lock(0), Unlock(0)),
            handlers=(Handler(Level.HARDIRQ, (Lock(1), Unlock(1))),),
        ),
        CpuProgram(task=(Lock(0), Lock(1), Unlock(1), Unlock(0))),
    ),
    n_locks=2,
)


def _lines(program: Program):  # type: ignore[no-untyped-def]
    lines = [cp.task for cp in program.cpus]
    lines += [h.ops for cp in program.cpus for h in cp.handlers]
    return lines


async def _bare_line(target, ctx, ops):  # type: ignore[no-untyped-def]
    for op in ops:
        if type(op) is Lock:
            await target.acquire(ctx, op.lock, op.budget_ns)
        elif type(op) is Unlock:
            await target.release(ctx, op.lock)


class _Ctx:
    def __init__(self, cpu: int, level: Level, machine: Machine) -> None:
        self.cpu, self.level, self.machine, self.name = cpu, level, machine, f"cpu{cpu}"


def _start_lines(target_cls, program: Program):  # type: ignore[no-untyped-def]
    """A fresh machine and target, and a coroutine per line of the program (tasks, then handlers)."""
    machine = Machine(n_cpus=program.n_cpus, n_locks=program.n_locks)
    target = target_cls(machine)
    lines = [
        _bare_line(target, _Ctx(i % program.n_cpus, Level.TASK, machine), ops) for i, ops in enumerate(_lines(program))
    ]
    return machine, lines


def bare_run(target_cls, program: Program) -> int:  # type: ignore[no-untyped-def]
    """The same accesses with nothing else: round robin, a failed wait re-polls next turn."""
    _, lines = _start_lines(target_cls, program)
    live = [[coro, None, None] for coro in lines]
    steps = 0
    ops = MEMORY_OPS
    while live:
        for entry in list(live):
            coro, req, res = entry
            if req is not None:
                op = req[0]
                if op < WAIT:
                    res = ops[op](req[1], req[2], req[3])
                elif op == WAIT:
                    res = req[1].value
                    if not req[2](res):
                        steps += 1
                        continue
                elif op == SLEEP:
                    res = None
                steps += 1
            try:
                entry[1] = coro.send(res)
                entry[2] = None
            except StopIteration:
                live.remove(entry)
    return steps


def recording_run(target_cls, program: Program, seed: int) -> int:  # type: ignore[no-untyped-def]
    """The bare loop, plus what every engine that replays its runs must do: at each step a
    decision of a seeded random walk picks the line that steps (when more than one is live), and
    each access is recorded as an event. No interpreter events, waiting, oracles or final check."""
    machine, lines = _start_lines(target_cls, program)
    live = [[coro, None, i] for i, coro in enumerate(lines)]
    choose = RandomWalk(seed).choose
    events: list[tuple[int, int, int, int, int]] = []
    decisions: list[int] = []
    steps = 0
    ops = MEMORY_OPS
    while live:
        d = choose(len(live), None) if len(live) > 1 else 0  # no engine: no cancellation options
        decisions.append(d)
        entry = live[d]
        coro, req, line = entry
        res = None
        if req is not None:
            op = req[0]
            if op < WAIT:
                res = ops[op](req[1], req[2], req[3])
                events.append((machine.now, line, op, req[1].index, res))
            elif op == WAIT:
                res = req[1].value
                events.append((machine.now, line, op, req[1].index, res))
                if not req[2](res):
                    steps += 1
                    continue
        steps += 1
        try:
            entry[1] = coro.send(res)
        except StopIteration:
            live.remove(entry)
    return steps


def bench_recording(target_cls, runs: int) -> float:  # type: ignore[no-untyped-def]
    steps = 0
    t0 = time.perf_counter()
    for seed in range(runs):
        steps += recording_run(target_cls, PROGRAM, seed)
    return steps / (time.perf_counter() - t0)


def bench_judgement_free(target_cls, runs: int) -> float:  # type: ignore[no-untyped-def]
    """The engine's steps/s with no oracles, no ground truth and no final check."""
    steps = 0
    no_final = lockfuzz.Settings(final_check=False)
    t0 = time.perf_counter()
    for seed in range(runs):
        engine = lockfuzz.Engine(target_cls, PROGRAM, RandomWalk(seed), settings=no_final, oracles=[])
        engine._truth = [None] * len(engine._truth)  # the ground truth follows no event
        steps += engine.run().steps
    return steps / (time.perf_counter() - t0)


def bench_engine(target_cls, runs: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    steps = 0
    t0 = time.perf_counter()
    for seed in range(runs):
        result = lockfuzz.Engine(target_cls, PROGRAM, RandomWalk(seed)).run()
        assert result.violation is None, result.violation
        steps += result.steps
    dt = time.perf_counter() - t0
    return steps / dt, runs / dt


def bench_bare(target_cls, runs: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    steps = 0
    t0 = time.perf_counter()
    for _ in range(runs):
        steps += bare_run(target_cls, PROGRAM)
    dt = time.perf_counter() - t0
    return steps / dt, runs / dt


def cost_breakdown(target_cls, runs: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Microseconds per run that each layer adds, measured by switching layers on one by one."""

    def per_run(program: Program = PROGRAM, **kw):  # type: ignore[no-untyped-def]
        bare_truth = kw.pop("bare_truth", False)
        t0 = time.perf_counter()
        for seed in range(runs):
            engine = lockfuzz.Engine(target_cls, program, RandomWalk(seed), **kw)
            if bare_truth:  # ground truth off: only the stepping, the interpreter and the events
                engine._truth = [None] * len(engine._truth)
            engine.run()
        return (time.perf_counter() - t0) / runs * 1e6

    def construct() -> float:
        t0 = time.perf_counter()
        for seed in range(runs):
            lockfuzz.Engine(target_cls, PROGRAM, RandomWalk(seed))
        return (time.perf_counter() - t0) / runs * 1e6

    no_final = lockfuzz.Settings(final_check=False)
    setup = construct()
    stepping = per_run(oracles=[], settings=no_final, bare_truth=True)
    truth = per_run(oracles=[], settings=no_final)
    oracles = per_run(settings=no_final)
    full = per_run()
    # What a run costs whatever its program does: set up, start and end the contexts, the final check.
    empty = per_run(Program(cpus=tuple(CpuProgram(task=()) for _ in PROGRAM.cpus), n_locks=PROGRAM.n_locks))
    return {
        "setup_us": round(setup, 1),
        "stepping_and_events_us": round(stepping - setup, 1),
        "ground_truth_us": round(truth - stepping, 1),
        "oracles_us": round(oracles - truth, 1),
        "final_check_us": round(full - oracles, 1),
        "total_us": round(full, 1),
        "empty_program_us": round(empty, 1),
    }


def rss_mb() -> float:
    # ru_maxrss is in KiB on Linux: the process's peak resident set.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _campaign(total: int, marks: dict[int, float]) -> None:
    # The way campaigns run: many runs inside one trio.run, with a checkpoint now and then.
    for seed in range(total):
        lockfuzz.Engine(TicketLock, PROGRAM, RandomWalk(seed)).run()
        if seed % 256 == 0:
            await trio.lowlevel.checkpoint()
        if seed + 1 in marks:
            marks[seed + 1] = rss_mb()


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3000)
    ap.add_argument("--long", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of every measurement, alternating; each figure is its best round (default 3)")
    args = ap.parse_args(argv)
    out: dict[str, float] = {}
    engine_sps, bare_sps, recording_sps, free_sps = [], [], [], []
    for cls in (TicketLock, TasLock):
        bench_engine(cls, 200), bench_bare(cls, 200), bench_recording(cls, 200)  # warm up
        # The machine may be shared: the four loops alternate, and each keeps its best round.
        e_sps = e_rps = b_sps = b_rps = r_sps = f_sps = 0.0
        for _ in range(args.rounds):
            e = bench_engine(cls, args.runs)
            b = bench_bare(cls, args.runs)
            e_sps, e_rps = max(e_sps, e[0]), max(e_rps, e[1])
            b_sps, b_rps = max(b_sps, b[0]), max(b_rps, b[1])
            r_sps = max(r_sps, bench_recording(cls, args.runs))
            f_sps = max(f_sps, bench_judgement_free(cls, args.runs))
        recording_sps.append(r_sps)
        free_sps.append(f_sps)
        name = cls.__name__
        print(f"{name:12} engine: {e_sps:12,.0f} steps/s {e_rps:10,.0f} runs/s   "
              f"bare: {b_sps:12,.0f} steps/s {b_rps:10,.0f} runs/s   ratio {e_sps / b_sps:.2f}")
        out[f"{name}_engine_steps_per_s"] = round(e_sps)
        out[f"{name}_bare_steps_per_s"] = round(b_sps)
        out[f"{name}_engine_runs_per_s"] = round(e_rps)
        engine_sps.append(e_sps)
        bare_sps.append(b_sps)
    out["engine_steps_per_s"] = round(sum(engine_sps) / len(engine_sps))
    out["bare_steps_per_s"] = round(sum(bare_sps) / len(bare_sps))
    out["ratio"] = round(out["engine_steps_per_s"] / out["bare_steps_per_s"], 3)
    out["recording_ratio"] = round(sum(recording_sps) / sum(bare_sps), 3)
    out["judgement_free_ratio"] = round(sum(free_sps) / sum(bare_sps), 3)
    print(f"of the bare loop: the engine {out['ratio']}; with no oracles, ground truth or final check "
          f"{out['judgement_free_ratio']}; a loop that only decides and records {out['recording_ratio']}")
    costs = cost_breakdown(TicketLock, min(args.runs, 2000))
    print("what a run of the ticket lock costs, by layer (us): " + ", ".join(f"{k[:-3]} {v}" for k, v in costs.items()))
    out.update({f"cost_{k}": v for k, v in costs.items()})
    marks = {1000: 0.0, args.long: 0.0}
    trio.run(_campaign, args.long, marks)
    out["rss_mb_1k"] = round(marks[1000], 1)
    out["rss_mb_20k"] = round(marks[args.long], 1)
    out["rss_growth_pct"] = round(100 * (marks[args.long] / marks[1000] - 1), 1)
    print(f"peak RSS after 1,000 runs: {out['rss_mb_1k']} MB; after {args.long:,}: {out['rss_mb_20k']} MB "
          f"({out['rss_growth_pct']:+.1f}%)")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    sys.exit(main() and 0)
