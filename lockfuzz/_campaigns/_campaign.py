"""Campaigns: Hypothesis draws programs, a search strategy tries many schedules for each at
engine speed, and every failure comes out shrunk, minimised and saved.

Why two levels: a Hypothesis example costs milliseconds while a run of a small program costs a
fraction of one, and drawing each decision from Hypothesis found bugs 25-60x later than a seeded
random walk (issue 3). So one example = one program + ``runs_per_program`` schedules from the
strategy, seeded from the program, all inside the example (one, for a program with no decision
point: every schedule of it is the same run); Hypothesis shrinks the program (its
strength) and the minimiser then shrinks the schedule (``_minimise``).

Each distinct signature raises its own exception class, so Hypothesis keeps them apart and only
accepts a shrink that fails *the same way*. A failure is written to its file (atomically) the
moment it is first seen, before shrinking starts, and rewritten once minimised: an interrupted
campaign loses nothing it found. After a failure the campaign goes on, ignoring that signature,
until it has ``max_failures`` of them or its runs or time are spent.

Findings kept aside: a *different* violation that a shrink runs into is not Hypothesis's to
shrink (it would report it as the one found, after the runs of another): it is saved at once,
minimised after that Hypothesis run, and reported "found while shrinking X". So is a
``target-fault/no-yield`` (a step the watchdog ended, ``_watchdog``), found while searching or
not, since each run of it costs the watchdog's bound: it is saved as found, never shrunk. The
time limit bounds shrinking (``_OutOfTime``: the smallest case so far is kept) and minimising.

Everything runs inside one ``trio.run``: trio's clock bounds the campaign's real time, and a
checkpoint between Hypothesis chunks lets Ctrl-C end it cleanly.

Coverage (``coverage=True``): every search run is measured with coverage.py in the target's own
files (``_coverage``) and watched by a lock-state observer (``_features``); the report says
what the campaign reached and, by function, what it never did.

Guided search (``guided=True``, which measures coverage too): a run that reaches a new arc of
the target or a new lock-state feature goes into a corpus of (program, decisions). Two levels,
as for the search itself:

- programs: each example tells Hypothesis, through ``hypothesis.target()``, how much new it
  found and how many lock states its runs showed; Hypothesis's optimiser then mutates the
  programs that scored best, and its Pareto front of them is kept in an in-memory example
  database (when the campaign has none) from one Hypothesis chunk to the next;
- schedules: after the first few, half the runs of an example start from a kept schedule, cut
  at a random decision point, with one decision changed there, then either the parent's
  remaining decisions or a fresh swarm walk (AFL's havoc and splice, on decisions). Parents
  come from this example's own runs that showed a lock state new *for this program* (only
  lock states are known run by run for a program), else from the corpus entries of the same
  program, else of programs with the same CPUs, handlers and locks (the first decisions mean
  the same there). The other half are the strategy's own schedules, untouched;
- runs: a program whose last ``_PATIENCE`` runs showed nothing new (no new arc, no lock state
  new for it) is left early, and its remaining runs go to the next programs (AFL's "energy":
  on rqspinlock, spreading a fixed number of runs over more programs is most of the gain).

Everything stays a function of the seed: the corpus grows in run order, and sets are sorted.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import hypothesis
import trio
from hypothesis import HealthCheck, Phase, Verbosity, given
from hypothesis import strategies as st
from hypothesis.database import InMemoryExampleDatabase
from hypothesis.errors import Unsatisfiable

from .._engine import _watchdog
from ._coverage import TargetCoverage, TargetCoverageResult
from .._engine._run import Engine, RunResult, Schedule, Settings
from .._model._errors import InvalidArgument, ProgramError
from .._reports._failure_file import Failure, check_directory, property_paths, write_failure
from ._features import FEATURES_KEY, Features, summarise, summary_lines
from .._search._hypothesis_internals import stable_draws
from ._minimise import minimise as minimise_schedule
from .._oracles import default_oracles
from .._model._program import Program
from .._oracles._properties import check_properties, oracles_for
from .._search import DEFAULT_STRATEGY, derive_seed, get_strategy
from .._search.random_walk import RandomWalk
from .._search.swarm import DENSITIES, SparseWalk
from .._model._target import resolve_target, target_path

__all__ = ["CampaignReport", "CoverageReport", "Found", "fuzz"]


@dataclass
class Found:
    failure: Failure
    path: Path | None
    runs_to_find: int
    seconds_to_find: float
    raw_program: Program
    raw_schedule: list[int]
    #: How it was found: "search", or "while shrinking ORACLE/KIND" (a different violation that
    #: a shrink of another one ran into: kept, never reported as the one searched for).
    how: str = "search"


@dataclass
class CoverageReport:
    """What a campaign covered: the target's own lines and branches (None when it has no source
    file to measure) and the lock-state features its runs showed, each with the number of runs
    that showed it (``_features`` says what each means)."""

    target: TargetCoverageResult | None
    features: dict[tuple[Any, ...], int]
    runs: int
    guided: bool = False
    corpus: int = 0  # runs kept in the guided search's corpus

    @property
    def branch_pct(self) -> float | None:
        return self.target.branch_pct if self.target is not None else None

    def lines(self) -> list[str]:
        """The report as lines of text (the command line and the pytest plugin print them)."""
        out = list(self.target.lines()) if self.target is not None else [
            "target coverage: no source file of the target to measure"
        ]
        out += summary_lines(self.features, self.runs)
        if self.guided:
            out.append(f"guided search: {self.corpus:,} runs kept in the corpus (new branches or lock states)")
        return out

    def text(self) -> str:
        return "\n".join(self.lines())


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
    #: Seconds spent inside engine runs while searching, the runs of rejected programs included
    #: (the rest is Hypothesis and bookkeeping).
    engine_seconds: float = 0.0
    #: With ``coverage=True`` or ``guided=True``: what the campaign covered.
    coverage: CoverageReport | None = None
    #: What the campaign is doing, for progress lines: "" while searching, else "shrinking X" or
    #: "minimising X", with the runs spent on it so far.
    phase: str = ""
    phase_runs: int = 0
    #: The runs the search may spend (``runs``), for a percentage and an estimate of time left.
    max_runs: int = 0

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


class _OutOfTime(BaseException):
    """The time limit passed while Hypothesis shrank a failure: a ``BaseException`` ends
    Hypothesis's run at once (an ``Exception`` would be one more failure to shrink); the
    smallest failing case so far is kept (``_Campaign.last``)."""


#: A step that never yielded (``_watchdog``): every run of it costs the watchdog's bound in real
#: time, so it is saved as found, never shrunk or minimised.
NO_YIELD = ("target-fault", "no-yield")


#: Runs of an example from the strategy alone before guided search mutates kept schedules.
_WARMUP = 4
#: Runs in a row without anything new after which guided search leaves a program.
_PATIENCE = 8
#: The fewest examples a chunk (one Hypothesis run) asks for. A Hypothesis run starts with its
#: simplest example (one CPU, no handler: one run, no decision) and costs a few ms to set up;
#: a campaign's last runs, asked for one example at a time, went mostly to that (a tail of
#: dozens of one-run chunks). Examples drawn after the runs are spent return at once.
_MIN_EXAMPLES = 8


@dataclass(frozen=True)
class _Entry:
    """A run kept by guided search: its decisions and the number of options at each."""

    decisions: tuple[int, ...]
    branching: tuple[int, ...]


def _shape(program: Program) -> tuple[Any, ...]:
    """What gives the first decisions of a run their meaning: the CPUs, the levels of their
    handlers, and the locks."""
    return program.n_locks, tuple(tuple(int(h.level) for h in cpu.handlers) for cpu in program.cpus)


class _Spliced:
    """A decision source: a corpus schedule's prefix, then another source."""

    __slots__ = ("_prefix", "_position", "_then")

    def __init__(self, prefix: list[int], then: Any) -> None:
        self._prefix = prefix
        self._position = 0
        self._then = then

    def choose(self, n: int, engine: Any) -> int | None:
        i = self._position
        if i < len(self._prefix):
            self._position = i + 1
            return self._prefix[i]
        return self._then.choose(n, engine)  # type: ignore[no-any-return]


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
    coverage: bool = False,
    guided: bool = False,
    program: Program | None = None,
    properties: Sequence[Callable[[Any], Any]] = (),
    step_timeout: float | None = _watchdog.DEFAULT_STEP_TIMEOUT,
    budget_max_ns: int | None = None,
    scenarios: Sequence[Program] | None = None,
) -> CampaignReport:
    """Fuzz ``target`` (a class, bundled name or import path); return what was found.

    ``runs`` bounds the runs spent searching (shrinking and minimising come on top);
    ``time_limit`` (seconds of real time) stops it earlier. Failures are saved in
    ``failure_dir`` (nothing is written when it is None). ``database`` is a Hypothesis example
    database (None: none); ``key`` names this campaign in it (default: target, parameters and
    strategy), so campaigns do not overwrite each other's saved examples.

    ``coverage=True`` measures the target's own code with coverage.py and collects lock-state
    features, in ``report.coverage`` and ``report.features`` (runs are about 4x slower on
    Python 3.11). ``guided=True`` measures the same and steers the search toward runs that reach
    new branches or lock states (see the module doc).

    ``program`` fuzzes one program instead of drawing them: its schedules, its interrupts'
    moments and, for a target with per-call budgets, the budgets of its ``Lock`` operations
    written without one (``lockfuzz.strategies.programs_like``). ``properties`` are functions of
    the run's public record (``lockfuzz.RunRecord``) checked after every run as the oracles are:
    a failure is ``property/NAME`` (``lockfuzz._oracles._properties``).

    ``step_timeout`` (seconds of real time, None for none) bounds one step of the target: a
    step that runs longer without yielding is a ``target-fault/no-yield`` finding (``_watchdog``).

    ``budget_max_ns`` bounds the budgets drawn for acquisitions (default 20 ms for targets with
    per-call budgets, ``lockfuzz.strategies.budgets_for``): for the default programs, and for the
    acquisitions of ``program`` written without a budget. Programs given as ``programs`` carry
    their own (``programs_for(..., budget_max_ns=...)``).

    ``scenarios`` are programs tried first, before any drawn one (Hypothesis's explicit
    examples). By default, with the default programs, they are
    ``lockfuzz.strategies.detection_scenarios(target)``: the deadlocks the target claims to detect;
    with ``programs`` given, none unless given too; with ``program``, none.
    """
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        pass  # not inside trio: the campaign can run its own trio loop
    else:
        raise RuntimeError(
            "lockfuzz.fuzz() runs a trio loop of its own, so it cannot be called from inside trio.run "
            "(an async test or task): call it from synchronous code, or in a worker thread "
            "(await trio.to_thread.run_sync(functools.partial(lockfuzz.fuzz, ...)))"
        )
    target_cls = resolve_target(target)
    for name, value in (("runs", runs), ("runs_per_program", runs_per_program), ("max_failures", max_failures)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidArgument(f"{name}={value!r}: expected an int >= 1")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InvalidArgument(f"seed={seed!r}: expected an int >= 0")
    if time_limit is not None and (not isinstance(time_limit, (int, float)) or time_limit <= 0):
        raise InvalidArgument(f"time_limit={time_limit!r}: expected a number of seconds > 0")
    if step_timeout is not None and (not isinstance(step_timeout, (int, float)) or isinstance(step_timeout, bool)
                                     or not 0 < step_timeout < float("inf")):
        raise InvalidArgument(f"step_timeout={step_timeout!r}: expected a number of seconds > 0, or None")
    for name, flag in (("coverage", coverage), ("guided", guided)):
        if not isinstance(flag, bool):
            raise InvalidArgument(f"{name}={flag!r}: expected True or False")
    if failure_dir is not None:
        check_directory(failure_dir)  # before the campaign, not after its first finding
    strat = get_strategy(strategy)
    properties = check_properties(properties)
    if budget_max_ns is not None:
        if not isinstance(budget_max_ns, int) or isinstance(budget_max_ns, bool) or budget_max_ns < 1:
            raise InvalidArgument(f"budget_max_ns={budget_max_ns!r}: expected an int number of nanoseconds >= 1")
        if programs is not None:
            raise InvalidArgument(
                "budget_max_ns= with programs=: give the bound to the strategy instead "
                "(lockfuzz.strategies.programs_for(target, budget_max_ns=...))"
            )
    if program is not None:
        programs = _fixed_programs(target_cls, program, programs, budget_max_ns, dict(params or {}))
    if scenarios is not None:
        scenarios = tuple(scenarios)
        for p in scenarios:
            if not isinstance(p, Program):
                raise InvalidArgument(f"scenarios: {p!r} is not a lockfuzz.Program")
    if programs is None:
        from lockfuzz.strategies import detection_scenarios, programs_for

        programs = programs_for(target_cls, params=dict(params or {}),
                                **({} if budget_max_ns is None else {"budget_max_ns": budget_max_ns}))
        if scenarios is None:  # the deadlocks it claims to detect, tried first (strategies/_scenarios.py)
            scenarios = detection_scenarios(target_cls, params=dict(params or {}), budget_max_ns=budget_max_ns)
    campaign = _Campaign(CampaignConfig(
        target_cls=target_cls, params=dict(params or {}), programs=programs, strategy=strat, runs=runs,
        runs_per_program=runs_per_program, seed=seed, settings=settings or Settings(),
        failure_dir=Path(failure_dir) if failure_dir is not None else None, database=database,
        time_limit=time_limit, minimise=minimise, max_failures=max_failures, progress=progress, key=key,
        measure=coverage or guided, guided=guided, fixed=program is not None, properties=tuple(properties),
        scenarios=() if program is not None else tuple(scenarios or ()),
    ))
    with _watchdog.step_timeout(step_timeout):
        try:
            return trio.run(campaign.main)
        except KeyboardInterrupt as exc:
            campaign.interrupted(exc)
            raise


def _fixed_programs(target_cls: Any, program: Any, programs: Any, budget_max_ns: int | None = None,
                    params: dict[str, Any] | None = None) -> st.SearchStrategy[Program]:
    """The strategy for ``fuzz(program=...)``: that program, budgets drawn where none is written."""
    from lockfuzz.strategies import budgets_for, programs_like
    from lockfuzz.strategies._programs import capabilities_for

    if programs is not None:
        raise InvalidArgument("program= and programs= were both given: fuzz one program, or draw them, not both")
    if not isinstance(program, Program):
        raise InvalidArgument(
            f"program={program!r}: expected a lockfuzz.Program (Program.from_text reads the text form)"
        )
    limit = target_cls.capabilities.max_cpus
    if limit is not None and program.n_cpus > limit:
        raise InvalidArgument(
            f"program: {program.n_cpus} CPUs, but {target_cls.__name__} is written for at most {limit}"
        )
    from .._engine._run import check_modes

    check_modes(program, capabilities_for(target_cls, params), target_cls.__name__)  # what it promises with params
    return programs_like(program, budgets=budgets_for(target_cls, budget_max_ns=budget_max_ns))


@dataclass(frozen=True)
class CampaignConfig:
    """Everything a campaign runs with, checked and defaulted by ``fuzz`` (one value, where the
    campaign once took seventeen positional arguments)."""

    target_cls: type
    params: dict[str, Any]
    programs: Any  # a Hypothesis strategy of Programs
    strategy: Any  # a search strategy (``_search``)
    runs: int
    runs_per_program: int
    seed: int
    settings: Settings
    failure_dir: Path | None
    database: Any
    time_limit: float | None
    minimise: bool
    max_failures: int
    progress: Callable[[CampaignReport], None] | None
    key: str | None
    #: Measure the target's coverage and lock states (``coverage=True`` or ``guided=True``).
    measure: bool = False
    guided: bool = False
    #: One program fuzzed (``fuzz(program=...)``): each example draws a salt for its schedules.
    fixed: bool = False
    properties: tuple[Callable[[Any], Any], ...] = ()
    #: Programs tried first, as Hypothesis's explicit examples, in the first chunk
    #: (``lockfuzz.strategies.detection_scenarios``: the deadlocks the target claims to detect).
    scenarios: tuple[Program, ...] = ()


class _Campaign:
    def __init__(self, config: CampaignConfig) -> None:
        target_cls, params, strategy = config.target_cls, config.params, config.strategy
        # The campaign's code reads these as attributes of its own (``self.seed``): the config's
        # values (``max_runs`` and ``key`` renamed or defaulted), nothing else kept of it.
        self.target_cls = target_cls
        self.params = params
        self.programs = config.programs
        self.strategy = strategy
        self.max_runs = runs = config.runs
        self.runs_per_program = config.runs_per_program
        self.seed = config.seed
        self.settings = config.settings
        self.failure_dir = config.failure_dir
        self.database = config.database
        self.time_limit = config.time_limit
        self.minimise = config.minimise
        self.max_failures = config.max_failures
        self.progress = config.progress
        self.key = config.key or f"{target_path(target_cls)}|{json.dumps(params, sort_keys=True)}|{strategy.describe()}"
        self.fixed = config.fixed
        self.scenarios = config.scenarios
        self.properties = config.properties
        measure, guided = config.measure, config.guided
        self.report = CampaignReport(target=target_path(target_cls), strategy=strategy.describe(), max_runs=runs)
        self.shrinking: tuple[str, str] | None = None  # the signature Hypothesis is shrinking
        self.last_rejection = ""  # why the last program was unfit to run (a ProgramError)
        #: Findings kept aside (module doc): (program, result, runs, seconds, raw path, how).
        self.aside: list[tuple[Program, RunResult, int, float, Path | None, str]] = []
        self.known: set[tuple[str, str]] = set()
        self.searching = True  # False once a failure is seen, while Hypothesis shrinks it
        self.last: tuple[Program, list[int]] | None = None
        self.first_seen: tuple[int, float] | None = None
        self.raw_path: Path | None = None
        self.started = time.perf_counter()
        self.next_progress = 0.0
        # Coverage and guidance (module doc).
        self.measure = TargetCoverage(target_cls) if measure else None
        self.guided = guided
        self.feature_runs: Counter[tuple[Any, ...]] = Counter()
        self.arcs = 0
        self.novel = 0  # new arcs and features found in the current example
        self.shown: set[tuple[Any, ...]] = set()  # features shown by the current example's runs
        self.local: list[_Entry] = []  # the current example's runs that showed a feature new to it
        self.corpus: list[_Entry] = []
        self.by_program: dict[str, list[_Entry]] = {}
        self.by_shape: dict[tuple[Any, ...], list[_Entry]] = {}
        if guided and self.database is None:
            # Hypothesis keeps the Pareto front of targeted examples in the database: from one
            # chunk to the next, the best programs are replayed and mutated first.
            self.database = InMemoryExampleDatabase()

    def interrupted(self, exc: KeyboardInterrupt) -> None:
        """Ctrl-C: attach what was found so far to the exception, for the caller to report:
        ``lockfuzz_report`` (the report, its failures minimised and saved) and
        ``lockfuzz_unfinished`` (signature and raw file of each failure found but not minimised)."""
        self.report.seconds = time.perf_counter() - self.started
        recorded = {f.failure.signature for f in self.report.found}
        unfinished = [(sig, path) for _, result, _, _, path, _ in self.aside
                      if result.violation is not None for sig in [result.violation.signature] if sig not in recorded]
        if self.shrinking is not None and self.shrinking not in recorded:
            unfinished.insert(0, (self.shrinking, self.raw_path))
        exc.lockfuzz_report = self.report  # type: ignore[attr-defined]
        exc.lockfuzz_unfinished = unfinished  # type: ignore[attr-defined]

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
        if self.measure is not None:
            self.report.coverage = CoverageReport(
                self.measure.result(), dict(sorted(self.feature_runs.items(), key=lambda kv: repr(kv[0]))),
                self.measure.runs, self.guided, len(self.corpus),
            )
            self.report.features = summarise(self.feature_runs)
        self.report.seconds = time.perf_counter() - self.started
        if self.progress is not None:
            self.progress(self.report)
        return self.report

    # -- one Hypothesis run ---------------------------------------------------------------
    def _chunk(self, chunk: int) -> None:
        left = self.max_runs - self.report.runs
        examples = max(_MIN_EXAMPLES, min(200, -(-left // self.runs_per_program)))
        self.searching = True
        self.last = None
        self.failed_on: dict[Program, list[int]] = {}  # each program that failed, and how (_example)

        if getattr(self.strategy, "draws_schedule", False):
            # Decisions drawn by Hypothesis with the program (one run per example).
            def example(program: Program, schedule: list[int]) -> None:
                self._example(program, schedule)

            strategies: tuple[Any, ...] = (self.programs, self.strategy.schedule_strategy())
        elif self.fixed:
            # One program: what varies from example to example is the search's seed (a salt).
            def example(program: Program, salt: int) -> None:  # type: ignore[misc]
                self._example(program, salt=salt)

            strategies = (self.programs, st.integers(0, 2**32 - 1))
        else:

            def example(program: Program) -> None:  # type: ignore[misc]
                self._example(program)

            strategies = (self.programs,)
            if chunk == 0:
                for scenario in reversed(self.scenarios):  # tried in their order
                    example = hypothesis.example(scenario)(example)
        example._hypothesis_internal_add_digest = hashlib.sha256(self.key.encode()).digest()  # type: ignore[attr-defined]
        test = given(*strategies)(example)
        test = hypothesis.settings(
            max_examples=examples, database=self.database, deadline=None, derandomize=False,
            verbosity=Verbosity.quiet, report_multiple_bugs=False, print_blob=False,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.reuse, Phase.generate, *([Phase.target] if self.guided else []),
                    Phase.shrink],
        )(test)
        test = hypothesis.seed(derive_seed("chunk", self.seed, chunk))(test)
        try:
            with stable_draws():  # the same draws in every process (_hypothesis_internals)
                test()
        except FoundViolation as found:
            self._record(found)
        except _OutOfTime:
            self._record_last()
        except Unsatisfiable:
            # Every program drawn was unfit to run (a ProgramError each): say why, in the
            # program's words, rather than Hypothesis's about filters and assumptions.
            raise ProgramError(
                f"every program the campaign drew was rejected ({self.report.rejected:,} in all); the last: "
                f"{self.last_rejection}"
            ) from None
        except _Stop:
            pass
        self.shrinking = None  # (kept when an interrupt ends the chunk: ``interrupted`` names it)
        self._record_aside()

    def _example(self, program: Program, schedule: list[int] | None = None, salt: int | None = None) -> None:
        self.report.examples += 1
        budget = self.runs_per_program if self.searching else max(1, self.runs_per_program // 5)
        own = self.failed_on.get(program)
        if own is not None:
            # A program that failed before fails again, the same way, whatever has happened
            # since: Hypothesis replays examples, and a search cut short (a shrink's smaller
            # budget) or a violation now known must not make it look flaky.
            self._run(program, Schedule(own))
        if self.last is not None:  # replay the failing schedule first: shrinks succeed fast
            self._run(program, Schedule(self.last[1]))
        self.novel = 0
        self.shown = set()
        self.local = []
        self._search(program, budget, schedule, salt)
        if self.guided and self.searching:
            # What this program did, for Hypothesis's optimiser: new coverage found (it mutates
            # the programs that found most), and the lock states its runs showed.
            hypothesis.target(float(self.novel), label="lockfuzz: new branches and lock states")
            hypothesis.target(float(len(self.shown)), label="lockfuzz: lock states")

    def _search(self, program: Program, budget: int, schedule: list[int] | None = None,
                salt: int | None = None) -> None:
        text = json.dumps(program.to_json(), sort_keys=True)
        seed = derive_seed(self.seed, program.to_json(), *(() if salt is None else (salt,)))
        gen = self.strategy.search(program, seed) if schedule is None else self.strategy.search(program, seed, schedule)
        guided = self.guided and self.searching
        rng = random.Random(derive_seed("guided", self.seed, text)) if guided else None
        stale = seen = 0  # runs in a row that found nothing new; what had been found before
        try:
            source = next(gen)
            for i in range(budget):
                if self.searching and self._out_of_budget():
                    return
                if rng is not None:
                    found = self.novel + len(self.shown)
                    stale, seen = (stale + 1 if found == seen else 0), found
                    if i >= _WARMUP and stale > _PATIENCE:
                        return  # a program that stopped showing anything new leaves its runs to others
                    if i >= _WARMUP and i % 2:
                        mutant = self._mutant(program, text, rng)
                        if mutant is not None:
                            self._run(program, mutant)
                            continue
                result = self._run(program, source)
                if not result.branching:
                    return  # no decision point (one CPU, no handler): every schedule is this run
                source = gen.send(result)
        except StopIteration:
            return

    # -- guided search --------------------------------------------------------------------------
    def _mutant(self, program: Program, text: str, rng: random.Random) -> Any:
        """A schedule from the corpus, changed at one decision point (module doc), or None."""
        parents = self.local or self.by_program.get(text) or self.by_shape.get(_shape(program))
        if not parents:
            return None
        parent = parents[rng.randrange(len(parents))]
        k = rng.randrange(len(parent.decisions))
        n = parent.branching[k]
        changed = (parent.decisions[k] + 1 + rng.randrange(n - 1)) % n
        prefix = list(parent.decisions[:k]) + [changed]
        if rng.random() < 0.5:
            return Schedule(prefix + list(parent.decisions[k + 1:]))
        p = DENSITIES[rng.randrange(len(DENSITIES))]
        seed = rng.getrandbits(64)
        return _Spliced(prefix, RandomWalk(seed) if p is None else SparseWalk(seed, p))

    def _observe(self, program: Program, result: RunResult) -> None:
        """Count what the run reached; keep it in the corpus if any of it is new."""
        assert self.measure is not None
        self.measure.runs += 1
        features = sorted(result.features.get(FEATURES_KEY) or (), key=repr)
        new = local = 0
        for f in features:
            if f not in self.feature_runs:
                new += 1
            if f not in self.shown:
                local += 1
            self.feature_runs[f] += 1
        self.shown.update(features)
        arcs = self.measure.arcs()
        new += arcs - self.arcs
        self.arcs = arcs
        self.novel += new
        if not self.guided or not result.decisions or not (new or local):
            return
        entry = _Entry(tuple(result.decisions), tuple(result.branching))
        self.local.append(entry)
        if new:
            self.corpus.append(entry)
            self.by_program.setdefault(json.dumps(program.to_json(), sort_keys=True), []).append(entry)
            self.by_shape.setdefault(_shape(program), []).append(entry)

    def _out_of_budget(self) -> bool:
        if self.report.runs >= self.max_runs or len(self.report.found) + len(self.aside) >= self.max_failures:
            return True
        return self._out_of_time()

    def _out_of_time(self) -> bool:
        return self.deadline is not None and trio.current_time() >= self.deadline

    def _run(self, program: Program, source: Any) -> RunResult:
        if not self.searching and self.last is not None and self._out_of_time():
            raise _OutOfTime  # keep the smallest case so far (_record_last)
        t0 = time.perf_counter()
        measure = self.measure if self.searching else None
        try:
            if measure is None:
                result = Engine(self.target_cls, program, source, self.settings, params=self.params,
                                oracles=oracles_for(self.properties)).run()
            else:
                engine = Engine(self.target_cls, program, source, self.settings, params=self.params,
                                oracles=[*(oracles_for(self.properties) or default_oracles()), Features()])
                measure.start()
                try:
                    result = engine.run()
                finally:
                    measure.stop()
        except ProgramError as exc:
            self.report.rejected += 1
            self.last_rejection = str(exc)
            if self.searching:  # the engine ran it (to the deadlock that rejects it): its time
                self.report.engine_seconds += time.perf_counter() - t0
            hypothesis.reject()
        if self.searching:
            self.report.engine_seconds += time.perf_counter() - t0
            self.report.runs += 1
            if measure is not None:
                self._observe(program, result)
        else:
            self.report.phase_runs += 1
        self._tick()
        v = result.violation
        if v is not None and v.signature not in self.known:
            if v.signature == NO_YIELD or (not self.searching and v.signature != self.shrinking):
                self._keep_aside(program, result)
                return result
            if self.searching:
                self.searching = False
                self.shrinking = v.signature
                self.report.phase, self.report.phase_runs = f"shrinking {'/'.join(v.signature)}", 0
                self.first_seen = (self.report.runs, time.perf_counter() - self.started)
                self._save_raw(program, result)
            self.last = (program, list(result.decisions))
            self.failed_on[program] = self.last[1]
            raise _found_class(v.signature)(program, result)
        return result

    def _tick(self) -> None:
        """A progress report, at most every half second."""
        if self.progress is not None:
            now = time.perf_counter()
            if now >= self.next_progress:
                self.next_progress = now + 0.5
                self.report.seconds = now - self.started
                self.progress(self.report)

    # -- what was found ---------------------------------------------------------------------
    def _save_raw(self, program: Program, result: RunResult) -> Path | None:
        """Save a failure as first seen, at once: nothing found waits for shrinking."""
        if self.failure_dir is None:
            return None
        failure = Failure.from_run(self.target_cls, self.params, program, result, self.settings,
                                   found_by=self._found_by(), minimal=False,
                                   properties=property_paths(self.properties))
        self.raw_path = self._save(failure)
        return self.raw_path

    def _keep_aside(self, program: Program, result: RunResult) -> None:
        """A violation that is not the one being shrunk (or one never to shrink, ``NO_YIELD``):
        saved now, minimised after this Hypothesis run (``_record_aside``), reported as found."""
        assert result.violation is not None
        self.known.add(result.violation.signature)
        how = "search" if self.shrinking is None else f"while shrinking {'/'.join(self.shrinking)}"
        raw_path = self.raw_path
        path = self._save_raw(program, result)
        self.raw_path = raw_path  # the one being shrunk keeps its own raw file
        self.aside.append((program, result, self.report.runs, time.perf_counter() - self.started, path, how))

    def _record_aside(self) -> None:
        while self.aside:
            program, result, runs, seconds, raw_path, how = self.aside[0]
            self._keep(program, result, runs, seconds, raw_path, how)
            self.aside.pop(0)  # after: a Ctrl-C while it is minimised still names its raw file

    def _record_last(self) -> None:
        """The time limit ended Hypothesis's shrinking: keep the smallest failing case so far."""
        assert self.last is not None
        program, decisions = self.last
        result = Engine(self.target_cls, program, Schedule(decisions), self.settings, params=self.params).run()
        self._record(FoundViolation(program, result))

    def _save(self, failure: Failure) -> Path | None:
        """Write ``failure``; if that fails now (the disk filled, the directory went away),
        the whole failure goes to stderr as JSON instead, so that nothing found is lost."""
        assert self.failure_dir is not None
        try:
            return write_failure(failure, self.failure_dir)
        except OSError as exc:
            sys.stderr.write(
                f"lockfuzz: cannot save {failure.name} in {self.failure_dir} ({exc.strerror or exc}); "
                f"the failure follows as JSON (save it as a .json file to replay it):\n"
                f"{json.dumps(failure.to_json(), sort_keys=True)}\n"
            )
            sys.stderr.flush()
            return None

    def _found_by(self) -> dict[str, Any]:
        return {"strategy": self.strategy.describe(), "seed": self.seed, "runs": self.report.runs}

    def _record(self, found: FoundViolation) -> None:
        runs_to_find, seconds = self.first_seen or (self.report.runs, 0.0)
        self._keep(found.program, found.result, runs_to_find, seconds, self.raw_path, "search")
        self.raw_path = None

    def _keep(self, program: Program, result: RunResult, runs_to_find: int, seconds: float,
              raw_path: Path | None, how: str) -> None:
        """Minimise a failure (within the time limit), save it, then drop its raw file."""
        found_program = program
        signature = result.violation.signature  # type: ignore[union-attr]
        raw_schedule = list(result.decisions)
        schedule = raw_schedule
        minimal, program_minimal = False, None  # not minimised: the report says nothing is proven
        if self.minimise and signature != NO_YIELD and result.violation is not None:
            self.report.phase, self.report.phase_runs = f"minimising {'/'.join(signature)}", 0
            m = minimise_schedule(self.target_cls, program, raw_schedule, signature, params=self.params,
                                  settings=self.settings, properties=self.properties,
                                  deadline=self._deadline_monotonic(), progress=self._minimise_progress)
            program, schedule, result = m.program, m.decisions, m.result
            minimal, program_minimal = m.proven_minimal, m.program_minimal
        self.report.phase = ""
        failure = Failure.from_run(self.target_cls, self.params, program, result, self.settings, schedule=schedule,
                                   found_by=self._found_by(), minimal=minimal, program_minimal=program_minimal,
                                   properties=property_paths(self.properties))
        path = None
        if self.failure_dir is not None:
            path = self._save(failure)
            if path is not None and raw_path is not None and raw_path != path and raw_path.exists():
                raw_path.unlink()  # superseded by the minimised file, now saved
        self.report.found.append(Found(failure, path, runs_to_find, seconds, found_program, raw_schedule, how))
        self.known.add(signature)

    def _deadline_monotonic(self) -> float | None:
        """The campaign's time limit on ``time.monotonic``'s clock (the minimiser's)."""
        if self.deadline is None:
            return None
        return time.monotonic() + max(0.0, self.deadline - trio.current_time())

    def _minimise_progress(self, runs: int) -> None:
        self.report.phase_runs = runs
        self._tick()
