"""Campaigns: Hypothesis draws programs, a search strategy tries many schedules for each at
engine speed, and every failure comes out shrunk, minimised and saved.

Why two levels: a Hypothesis example costs milliseconds while a run of a small program costs a
fraction of one, and drawing each decision from Hypothesis found bugs 25-60x later than a seeded
random walk (issue 3). So one example = one program + ``runs_per_program`` schedules from the
strategy, seeded from the program, all inside the example; Hypothesis shrinks the program (its
strength) and the minimiser then shrinks the schedule (``_minimise``).

Each distinct signature raises its own exception class, so Hypothesis keeps them apart and only
accepts a shrink that fails *the same way*. A failure is written to its file (atomically) the
moment it is first seen, before shrinking starts, and rewritten once minimised: an interrupted
campaign loses nothing it found. After a failure the campaign goes on, ignoring that signature,
until it has ``max_failures`` of them or its runs or time are spent.

Everything runs inside one ``trio.run``: trio's clock bounds the campaign's real time, and a
checkpoint between Hypothesis chunks lets Ctrl-C end it cleanly.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import hypothesis
import trio
from hypothesis import HealthCheck, Phase, Verbosity, given
from hypothesis import strategies as st

from ._engine import Engine, RunResult, Schedule, Settings
from ._errors import InvalidArgument, ProgramError
from ._failure_file import Failure, write_failure
from ._minimise import minimise as minimise_schedule
from ._program import Program
from ._search import DEFAULT_STRATEGY, derive_seed, get_strategy
from ._target import resolve_target, target_path

__all__ = ["CampaignReport", "Found", "fuzz"]


@dataclass
class Found:
    failure: Failure
    path: Path | None
    runs_to_find: int
    seconds_to_find: float
    raw_program: Program
    raw_schedule: list[int]


@dataclass
class CampaignReport:
    target: str
    strategy: str
    runs: int = 0
    examples: int = 0
    seconds: float = 0.0
    found: list[Found] = field(default_factory=list)
    rejected: int = 0
    features: dict[str, Any] = field(default_factory=dict)
    #: Seconds spent inside engine runs while searching (the rest is Hypothesis and bookkeeping).
    engine_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.found

    @property
    def runs_per_second(self) -> float:
        return self.runs / self.seconds if self.seconds else 0.0

    @property
    def engine_share(self) -> float:
        """The share of the campaign's time spent running the engine: its runs/s over the runs/s
        the engine alone would make on the same programs and schedules."""
        return self.engine_seconds / self.seconds if self.seconds else 0.0


class FoundViolation(Exception):
    """Raised inside a Hypothesis example; one subclass per signature (see module doc)."""

    def __init__(self, program: Program, result: RunResult) -> None:
        super().__init__(str(result.violation))
        self.program = program
        self.result = result


_FOUND_CLASSES: dict[tuple[str, str], type[FoundViolation]] = {}


def _found_class(signature: tuple[str, str]) -> type[FoundViolation]:
    cls = _FOUND_CLASSES.get(signature)
    if cls is None:
        name = "Found_" + re.sub(r"\W", "_", "_".join(signature))
        cls = _FOUND_CLASSES[signature] = type(name, (FoundViolation,), {})
    return cls


class _Stop(Exception):
    pass


def fuzz(
    target: Any,
    *,
    params: dict[str, Any] | None = None,
    programs: st.SearchStrategy[Program] | None = None,
    strategy: Any = DEFAULT_STRATEGY,
    runs: int = 5_000,
    runs_per_program: int = 50,
    seed: int = 0,
    settings: Settings | None = None,
    failure_dir: str | Path | None = None,
    database: Any = None,
    time_limit: float | None = None,
    minimise: bool = True,
    max_failures: int = 1,
    progress: Callable[[CampaignReport], None] | None = None,
    key: str | None = None,
) -> CampaignReport:
    """Fuzz ``target`` (a class, bundled name or import path); return what was found.

    ``runs`` bounds the runs spent searching (shrinking and minimising come on top);
    ``time_limit`` (seconds of real time) stops it earlier. Failures are saved in
    ``failure_dir`` (nothing is written when it is None). ``database`` is a Hypothesis example
    database (None: none); ``key`` names this campaign in it (default: target, parameters and
    strategy), so campaigns do not overwrite each other's saved examples.
    """
    target_cls = resolve_target(target)
    for name, value in (("runs", runs), ("runs_per_program", runs_per_program), ("max_failures", max_failures)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidArgument(f"{name}={value!r}: expected an int >= 1")
    if time_limit is not None and (not isinstance(time_limit, (int, float)) or time_limit <= 0):
        raise InvalidArgument(f"time_limit={time_limit!r}: expected a number of seconds > 0")
    strat = get_strategy(strategy)
    if programs is None:
        from lockfuzz.strategies import programs_for

        programs = programs_for(target_cls)
    campaign = _Campaign(
        target_cls, dict(params or {}), programs, strat, runs, runs_per_program, seed, settings or Settings(),
        Path(failure_dir) if failure_dir is not None else None, database, time_limit, minimise, max_failures,
        progress, key,
    )
    return trio.run(campaign.main)


class _Campaign:
    def __init__(self, target_cls, params, programs, strategy, runs, runs_per_program, seed, settings,  # type: ignore[no-untyped-def]
                 failure_dir, database, time_limit, minimise, max_failures, progress, key):
        self.target_cls = target_cls
        self.params = params
        self.programs = programs
        self.strategy = strategy
        self.max_runs = runs
        self.runs_per_program = runs_per_program
        self.seed = seed
        self.settings = settings
        self.failure_dir = failure_dir
        self.database = database
        self.time_limit = time_limit
        self.minimise = minimise
        self.max_failures = max_failures
        self.progress = progress
        self.key = key or f"{target_path(target_cls)}|{json.dumps(params, sort_keys=True)}|{strategy.describe()}"
        self.report = CampaignReport(target=target_path(target_cls), strategy=strategy.describe())
        self.known: set[tuple[str, str]] = set()
        self.searching = True  # False once a failure is seen, while Hypothesis shrinks it
        self.last: tuple[Program, list[int]] | None = None
        self.first_seen: tuple[int, float] | None = None
        self.raw_path: Path | None = None
        self.started = time.perf_counter()
        self.next_progress = 0.0

    async def main(self) -> CampaignReport:
        deadline = trio.current_time() + self.time_limit if self.time_limit else None
        self.deadline = deadline
        chunk = 0
        while self.report.runs < self.max_runs and len(self.report.found) < self.max_failures:
            if deadline is not None and trio.current_time() >= deadline:
                break
            before = self.report.runs
            self._chunk(chunk)
            chunk += 1
            await trio.lowlevel.checkpoint()
            if self.report.runs == before and not self.searching:
                break
            if self.report.runs == before and chunk > 3:
                break  # the program space is exhausted or every program is rejected
        self.report.seconds = time.perf_counter() - self.started
        if self.progress is not None:
            self.progress(self.report)
        return self.report

    # -- one Hypothesis run ---------------------------------------------------------------
    def _chunk(self, chunk: int) -> None:
        left = self.max_runs - self.report.runs
        examples = max(1, min(200, -(-left // self.runs_per_program)))
        self.searching = True
        self.last = None

        def example(program: Program) -> None:
            self._example(program)

        example._hypothesis_internal_add_digest = hashlib.sha256(self.key.encode()).digest()  # type: ignore[attr-defined]
        test = given(self.programs)(example)
        test = hypothesis.settings(
            max_examples=examples, database=self.database, deadline=None, derandomize=False,
            verbosity=Verbosity.quiet, report_multiple_bugs=False, print_blob=False,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        )(test)
        test = hypothesis.seed(derive_seed("chunk", self.seed, chunk))(test)
        try:
            test()
        except FoundViolation as found:
            self._record(found)
        except _Stop:
            pass

    def _example(self, program: Program) -> None:
        self.report.examples += 1
        budget = self.runs_per_program if self.searching else max(1, self.runs_per_program // 5)
        if self.last is not None:  # replay the failing schedule first: shrinks succeed fast
            self._run(program, Schedule(self.last[1]))
        gen = self.strategy.search(program, derive_seed(self.seed, program.to_json()))
        try:
            source = next(gen)
            for _ in range(budget):
                if self.searching and self._out_of_budget():
                    return
                result = self._run(program, source)
                source = gen.send(result)
        except StopIteration:
            return

    def _out_of_budget(self) -> bool:
        if self.report.runs >= self.max_runs:
            return True
        return self.deadline is not None and trio.current_time() >= self.deadline

    def _run(self, program: Program, source: Any) -> RunResult:
        t0 = time.perf_counter()
        try:
            result = Engine(self.target_cls, program, source, self.settings, params=self.params).run()
        except ProgramError:
            self.report.rejected += 1
            hypothesis.reject()
        if self.searching:
            self.report.engine_seconds += time.perf_counter() - t0
            self.report.runs += 1
            if self.progress is not None:
                now = time.perf_counter()
                if now >= self.next_progress:
                    self.next_progress = now + 0.5
                    self.report.seconds = now - self.started
                    self.progress(self.report)
        v = result.violation
        if v is not None and v.signature not in self.known:
            if self.searching:
                self.searching = False
                self.first_seen = (self.report.runs, time.perf_counter() - self.started)
                self._save_raw(program, result)
            self.last = (program, list(result.decisions))
            raise _found_class(v.signature)(program, result)
        return result

    # -- what was found ---------------------------------------------------------------------
    def _save_raw(self, program: Program, result: RunResult) -> None:
        if self.failure_dir is None:
            return
        failure = Failure.from_run(self.target_cls, self.params, program, result, self.settings,
                                   found_by=self._found_by(), minimal=False)
        self.raw_path = write_failure(failure, self.failure_dir)

    def _found_by(self) -> dict[str, Any]:
        return {"strategy": self.strategy.describe(), "seed": self.seed, "runs": self.report.runs}

    def _record(self, found: FoundViolation) -> None:
        program, result = found.program, found.result
        signature = result.violation.signature  # type: ignore[union-attr]
        raw_schedule = list(result.decisions)
        schedule = raw_schedule
        minimal = False
        if self.minimise:
            m = minimise_schedule(self.target_cls, program, raw_schedule, signature, params=self.params,
                                  settings=self.settings)
            program, schedule, result, minimal = m.program, m.decisions, m.result, m.proven_minimal
        failure = Failure.from_run(self.target_cls, self.params, program, result, self.settings, schedule=schedule,
                                   found_by=self._found_by(), minimal=minimal)
        path = None
        if self.failure_dir is not None:
            path = write_failure(failure, self.failure_dir)
            if self.raw_path is not None and self.raw_path != path and self.raw_path.exists():
                self.raw_path.unlink()  # superseded by the minimised file
            self.raw_path = None
        runs_to_find, seconds = self.first_seen or (self.report.runs, 0.0)
        self.report.found.append(Found(failure, path, runs_to_find, seconds, found.program, raw_schedule))
        self.known.add(signature)
