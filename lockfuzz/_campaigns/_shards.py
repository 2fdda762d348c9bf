"""Shards: a campaign cut into pieces that are pure functions of (seed, shard), and their reports
merged into one.

A shard is ``run_shard(spec)``: an ordinary campaign (``fuzz``) of ``spec.shard_runs`` runs with
its own seed, derived from the campaign's seed and the shard's index. It depends on nothing but
its spec (target, parameters, program options, settings, seed, shard index and count, runs), so
the same shard gives the same findings in any process on any machine: ``--workers`` runs shards
in a local process pool, ``--dask`` on a Dask cluster, ``--shard K/M`` alone (a CI matrix job, a
SLURM array task), and ``lockfuzz merge`` joins what separate ``--shard`` jobs wrote. With one
shard, the shard *is* the campaign: its seed is the campaign's.

Merging (``merge``) is a function of the set of shard results, never of the order they finished
in: results are taken in shard order; a signature found by several shards is kept once, its
smallest case (fewest preemptions, then shortest schedule, then smallest program, then trace
hash); the failures are listed in the order their signatures first appear (shard, then order
found within it), at most ``max_failures`` of them; runs and times add up; coverage is the union
of what each shard reached (a line or branch is missed only if every shard missed it) and
lock-state features add up run counts.

Stopping early (``Merger.stop``): a campaign with ``max_failures`` stops when the shards 1..j,
all finished, hold that many distinct failures; the report is the merge of exactly those shards,
so it is the same whichever shard finished first. Later shards are cancelled; a failure file one
of them had already written stays in the failure folder.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._model._errors import InvalidArgument
from .._reports._failure_file import Failure, load_failure, write_failure
from .._model._program import Program
from .._search import DEFAULT_STRATEGY, derive_seed

__all__ = [
    "SUMMARY_SUFFIX", "Merger", "ShardResult", "ShardSpec", "load_summaries", "merge", "plan", "run_shard",
    "write_summary",
]  # fmt: skip

SUMMARY_FORMAT = "lockfuzz-shard"
SUMMARY_SCHEMA = 1
#: A shard's summary file, beside its failure files; not ``.json``, so that a folder's ``*.json``
#: stay its failure files (the pytest plugin replays every one).
SUMMARY_SUFFIX = ".lockfuzz-shard"


@dataclass(frozen=True)
class ShardSpec:
    """Everything a shard depends on. Plain data: it crosses process and machine boundaries."""

    target: str  # an import path, package.module:Class
    seed: int  # the campaign's seed
    index: int  # 0-based; the command line says K/M with K = index + 1
    count: int
    runs: int  # the whole campaign's runs, shared out over the shards
    params: dict[str, Any] = field(default_factory=dict)
    programs: dict[str, Any] | None = None  # keyword arguments of programs_for (None: its defaults)
    strategy: str = DEFAULT_STRATEGY
    runs_per_program: int | None = None
    settings: dict[str, Any] | None = None  # Settings.to_json() (None: the defaults)
    max_failures: int = 1
    minimise: bool = True
    coverage: bool = False
    guided: bool = False
    failure_dir: str | None = None  # where the shard writes failures as it finds them (None: nowhere)
    deadline: float | None = None  # time.time() past which the shard stops searching (--time-limit)

    def __post_init__(self) -> None:
        if not (isinstance(self.count, int) and self.count >= 1 and isinstance(self.index, int)
                and 0 <= self.index < self.count):
            raise InvalidArgument(f"shard {self.index + 1}/{self.count}: expected K/M with 1 <= K <= M")
        if self.count > self.runs:
            raise InvalidArgument(f"{self.count} shards for {self.runs} runs: expected at most one shard per run")

    @property
    def label(self) -> str:
        return f"{self.index + 1}/{self.count}"

    @property
    def shard_seed(self) -> int:
        """The shard's own seed: the campaign's when it is the only shard."""
        return self.seed if self.count == 1 else derive_seed("shard", self.seed, self.index)

    @property
    def shard_runs(self) -> int:
        """The runs of this shard: ``runs`` shared out, the first ``runs % count`` shards one more."""
        return self.runs // self.count + (1 if self.index < self.runs % self.count else 0)


def plan(count: int, **spec: Any) -> list[ShardSpec]:
    """The ``count`` shards of a campaign."""
    return [ShardSpec(index=i, count=count, **spec) for i in range(count)]


@dataclass
class ShardResult:
    """What one shard found, as plain data (JSON-able): failures as failure-file documents."""

    target: str
    seed: int
    index: int
    count: int
    strategy: str
    max_failures: int = 1
    runs: int = 0
    examples: int = 0
    seconds: float = 0.0
    engine_seconds: float = 0.0
    rejected: int = 0
    #: One per failure: {"failure": failure document, "path": str | None, "runs_to_find",
    #: "seconds_to_find", "raw_program": program document, "raw_schedule": [...]}.
    found: list[dict[str, Any]] = field(default_factory=list)
    #: With coverage: [[feature, runs], ...] and the target's coverage (``_coverage_to_json``).
    features: list[list[Any]] | None = None
    coverage: dict[str, Any] | None = None
    coverage_runs: int = 0
    guided: bool = False
    corpus: int = 0

    def signatures(self) -> list[tuple[str, str]]:
        return [_signature(f) for f in self.found]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShardResult:
        return cls(**dict(data))


def _signature(found: Mapping[str, Any]) -> tuple[str, str]:
    s = found["failure"]["signature"]
    return (str(s["oracle"]), str(s["kind"]))


# -- running a shard --------------------------------------------------------------------------------
#: The ``programs_for`` options that bound ``detection_scenarios`` too.
_SCENARIO_BOUNDS = ("max_cpus", "max_locks", "max_handlers", "budget_max_ns")


def run_shard(spec: ShardSpec, progress: Callable[[int, list[tuple[str, str]]], None] | None = None) -> ShardResult:
    """Run one shard; ``progress(runs, signatures)`` is called as the campaign reports progress."""
    from lockfuzz.strategies import detection_scenarios, programs_for

    from ._campaign import fuzz
    from .._engine._run import Settings
    from .._model._target import resolve_target

    target_cls = resolve_target(spec.target)
    programs = programs_for(target_cls, params=dict(spec.params), **(spec.programs or {}))
    # The first shard tries the target's claimed deadlocks first, as a campaign of one does.
    bounds = {k: v for k, v in (spec.programs or {}).items() if k in _SCENARIO_BOUNDS}
    scenarios = detection_scenarios(target_cls, params=dict(spec.params), **bounds) if spec.index == 0 else ()
    settings = Settings.from_json(spec.settings) if spec.settings is not None else Settings()
    time_limit = None
    if spec.deadline is not None:
        time_limit = spec.deadline - time.time()
        if time_limit <= 0:  # the campaign's time was spent before this shard started
            return ShardResult(spec.target, spec.seed, spec.index, spec.count, spec.strategy, spec.max_failures)
    extra: dict[str, Any] = {} if spec.runs_per_program is None else {"runs_per_program": spec.runs_per_program}
    report_progress = None
    if progress is not None:
        def report_progress(report: Any) -> None:
            progress(report.runs, [f.failure.signature for f in report.found])

    report = fuzz(
        target_cls, params=dict(spec.params), programs=programs, strategy=spec.strategy, runs=spec.shard_runs,
        seed=spec.shard_seed, settings=settings, failure_dir=spec.failure_dir, time_limit=time_limit,
        minimise=spec.minimise, max_failures=spec.max_failures, progress=report_progress,
        coverage=spec.coverage, guided=spec.guided, scenarios=scenarios, **extra,
    )
    found = []
    for f in report.found:
        failure = f.failure
        if spec.count > 1:
            failure.found_by = {**failure.found_by, "shard": spec.label}
            if f.path is not None:  # the file says which shard found it, too
                write_failure(failure, f.path.parent, f.path.name)
        found.append({
            "failure": failure.to_json(), "path": None if f.path is None else str(f.path),
            "runs_to_find": f.runs_to_find, "seconds_to_find": f.seconds_to_find,
            "raw_program": f.raw_program.to_json(), "raw_schedule": list(f.raw_schedule),
        })
    result = ShardResult(
        spec.target, spec.seed, spec.index, spec.count, spec.strategy, spec.max_failures, runs=report.runs,
        examples=report.examples, seconds=report.seconds, engine_seconds=report.engine_seconds,
        rejected=report.rejected, found=found,
    )
    cov = report.coverage
    if cov is not None:
        result.features = [[list(k), n] for k, n in cov.features.items()]
        result.coverage = None if cov.target is None else _coverage_to_json(cov.target)
        result.coverage_runs, result.guided, result.corpus = cov.runs, cov.guided, cov.corpus
    return result


# -- merging --------------------------------------------------------------------------------------
def _size(found: Mapping[str, Any]) -> tuple[Any, ...]:
    """The order in which the smallest case of a signature is kept."""
    doc = found["failure"]
    schedule = doc["schedule"]
    return (sum(1 for d in schedule if d), len(schedule), len(json.dumps(doc["program"], sort_keys=True)),
            doc["trace"]["hash"])


def merge(results: Iterable[ShardResult], *, max_failures: int | None = None, seconds: float | None = None) -> Any:
    """One ``CampaignReport`` from shard results (see the module doc); ``seconds`` is the
    campaign's own time (default: the longest shard's, as if they ran at once)."""
    from ._campaign import CampaignReport, CoverageReport, Found
    from ._features import summarise

    ordered = sorted(results, key=lambda r: r.index)
    if not ordered:
        raise InvalidArgument("no shard results to merge")
    first = ordered[0]
    for r in ordered:
        if (r.target, r.seed, r.count, r.strategy) != (first.target, first.seed, first.count, first.strategy):
            raise InvalidArgument(
                f"shard {r.index + 1}/{r.count} is from another campaign ({r.target}, seed {r.seed}, {r.strategy}) "
                f"than shard {first.index + 1}/{first.count} ({first.target}, seed {first.seed}, {first.strategy})"
            )
    indexes = [r.index for r in ordered]
    if len(set(indexes)) != len(indexes):
        dup = sorted({i + 1 for i in indexes if indexes.count(i) > 1})
        raise InvalidArgument(f"shard {dup[0]}/{first.count} given more than once")
    report = CampaignReport(target=first.target, strategy=first.strategy)
    best: dict[tuple[str, str], dict[str, Any]] = {}
    order: list[tuple[str, str]] = []
    for r in ordered:
        report.runs += r.runs
        report.examples += r.examples
        report.engine_seconds += r.engine_seconds
        report.rejected += r.rejected
        for f in r.found:
            sig = _signature(f)
            if sig not in best:
                order.append(sig)
                best[sig] = f
            elif _size(f) < _size(best[sig]):
                best[sig] = f
    kept = order if max_failures is None else order[:max_failures]
    for sig in kept:
        f = best[sig]
        report.found.append(Found(
            Failure.from_json(f["failure"]), None if f["path"] is None else Path(f["path"]), f["runs_to_find"],
            f["seconds_to_find"], Program.from_json(f["raw_program"]), list(f["raw_schedule"]),
        ))
    report.seconds = max(r.seconds for r in ordered) if seconds is None else seconds
    measured = [r for r in ordered if r.features is not None]
    if measured:
        runs: Counter[tuple[Any, ...]] = Counter()
        for r in measured:
            for feature, n in r.features or ():
                runs[_tuple(feature)] += n
        covs = [r.coverage for r in measured if r.coverage is not None]
        report.coverage = CoverageReport(
            _merge_coverage(covs) if covs else None, dict(sorted(runs.items(), key=lambda kv: repr(kv[0]))),
            sum(r.coverage_runs for r in measured), any(r.guided for r in measured), sum(r.corpus for r in measured),
        )
        report.features = summarise(runs)
    return report


def _tuple(value: Any) -> Any:
    return tuple(_tuple(v) for v in value) if isinstance(value, list) else value


class Merger:
    """Shard results as they arrive, in any order: when to stop, and the merged report."""

    def __init__(self, count: int, max_failures: int) -> None:
        self.count = count
        self.max_failures = max_failures
        self.results: dict[int, ShardResult] = {}
        self.upto = 0  # shards 0..upto-1 have all finished

    def add(self, result: ShardResult) -> None:
        self.results[result.index] = result
        while self.upto in self.results:
            self.upto += 1

    def _reached(self) -> int | None:
        """The first shard index at which the finished prefix holds ``max_failures`` failures."""
        sigs: set[tuple[str, str]] = set()
        for i in range(self.upto):
            sigs.update(self.results[i].signatures())
            if len(sigs) >= self.max_failures:
                return i
        return None

    def counted(self) -> list[ShardResult]:
        """The shards the report is made of: the finished prefix that reached ``max_failures``,
        else every finished shard (all of them, unless the campaign was interrupted)."""
        reached = self._reached()
        if reached is not None:
            return [self.results[i] for i in range(reached + 1)]
        return [self.results[i] for i in sorted(self.results)]

    @property
    def stop(self) -> bool:
        """Every shard finished, or a finished prefix of them holds ``max_failures`` failures."""
        return len(self.results) == self.count or self._reached() is not None

    def report(self, seconds: float | None = None) -> Any:
        return merge(self.counted(), max_failures=self.max_failures, seconds=seconds)


def settle(report: Any, results: Iterable[ShardResult], failure_dir: Path | None) -> None:
    """Make the failure folder hold the merged report: each kept case written (its file is the
    one the report names), and the files of larger cases of the same signatures removed."""
    if failure_dir is None:
        return
    kept: dict[tuple[str, str], Path] = {}
    for found in report.found:
        found.path = write_failure(found.failure, failure_dir)
        kept[found.failure.signature] = found.path
    for r in results:
        for f in r.found:
            path = f["path"]
            sig = _signature(f)
            if path is None or sig not in kept:
                continue
            p = Path(path)
            if p.resolve() != kept[sig].resolve() and p.parent.resolve() == Path(failure_dir).resolve() and p.exists():
                p.unlink()


# -- shard summaries (--shard K/M, lockfuzz merge) ---------------------------------------------------------
def summary_name(index: int, count: int) -> str:
    return f"shard-{index + 1}-of-{count}{SUMMARY_SUFFIX}"


def write_summary(result: ShardResult, directory: str | os.PathLike[str]) -> Path:
    """The shard's report beside its failure files: figures, coverage, and the failures by file
    name (their documents are the files)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = result.to_json()
    data["found"] = [
        {**{k: v for k, v in f.items() if k not in ("failure", "path")},
         "file": Failure.from_json(f["failure"]).name if f["path"] is None else Path(f["path"]).name}
        for f in result.found
    ]
    from .. import __version__

    doc = {"format": SUMMARY_FORMAT, "schema": SUMMARY_SCHEMA, "lockfuzz_version": __version__, **data}
    path = directory / summary_name(result.index, result.count)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_summaries(directory: str | os.PathLike[str]) -> list[ShardResult]:
    """The shard summaries in a folder that ``--shard`` wrote, with their failures read back."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidArgument(f"{directory}: not a folder (expected one that 'lockfuzz fuzz --shard K/M' wrote)")
    paths = sorted(directory.glob(f"*{SUMMARY_SUFFIX}"))
    if not paths:
        raise InvalidArgument(f"{directory}: no shard summary (*{SUMMARY_SUFFIX}) in it: "
                              "expected a folder that 'lockfuzz fuzz --shard K/M' wrote")
    out = []
    for path in paths:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"{path}: unreadable shard summary ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != SUMMARY_FORMAT or doc.get("schema") != SUMMARY_SCHEMA:
            raise InvalidArgument(f"{path}: not a lockfuzz shard summary of schema {SUMMARY_SCHEMA}")
        names = {f.name for f in ShardResult.__dataclass_fields__.values()}  # type: ignore[attr-defined]
        data = {k: v for k, v in doc.items() if k in names}
        found = []
        for f in data.get("found", []):
            file = directory / f["file"]
            failure = load_failure(file)
            found.append({**{k: v for k, v in f.items() if k != "file"}, "failure": failure.to_json(),
                          "path": str(file)})
        data["found"] = found
        try:
            out.append(ShardResult.from_json(data))
        except TypeError as exc:
            raise InvalidArgument(f"{path}: broken shard summary ({exc})") from None
    return out


# -- coverage as data -----------------------------------------------------------------------------
def _coverage_to_json(result: Any) -> dict[str, Any]:
    return {
        "runs": result.runs, "core": result.core,
        "files": [{
            "path": f.path, "module": f.module, "statements": sorted(f.statements), "missing": sorted(f.missing),
            "branches": f.branches, "missing_branches": [list(b) for b in f.missing_branches],
            "missed": {name: {"statements": list(m.statements), "lines": list(m.lines),
                              "branches": [list(b) for b in m.branches]} for name, m in f.missed.items()},
        } for f in result.files],
    }


def _merge_coverage(docs: list[dict[str, Any]]) -> Any:
    """The union of what the shards reached: a line or branch is missed when every shard missed it.
    Files are matched by module (each machine has its own paths; the first shard's is shown)."""
    from ._coverage import FileCoverage, Missed, TargetCoverageResult

    by_module: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        for f in doc["files"]:
            by_module.setdefault(f["module"], []).append(f)
    files = []
    for module, fs in by_module.items():
        missing = set.intersection(*(set(f["missing"]) for f in fs))
        missing_branches = set.intersection(*({tuple(b) for b in f["missing_branches"]} for f in fs))
        missed = {}
        for name, m in fs[0]["missed"].items():
            if not all(name in f["missed"] for f in fs):
                continue  # some shard reached every line and branch of it
            lines = set.intersection(*(set(f["missed"][name]["lines"]) for f in fs))
            branches = set.intersection(*({tuple(b) for b in f["missed"][name]["branches"]} for f in fs))
            if lines or branches:
                missed[name] = Missed(tuple(m["statements"]), tuple(sorted(lines)), tuple(sorted(branches)))
        first = fs[0]
        files.append(FileCoverage(
            first["path"], module, frozenset(first["statements"]), frozenset(missing), first["branches"],
            tuple(sorted(missing_branches)), missed,
        ))
    return TargetCoverageResult(tuple(files), sum(d["runs"] for d in docs), docs[0]["core"])

