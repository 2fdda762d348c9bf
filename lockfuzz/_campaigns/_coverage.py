"""Target coverage: which lines and branches of the lock's own code a campaign reached.

Measured with coverage.py (never a tracer of our own), only in the target's own source files,
and only while the engine runs: ``start()`` and ``stop()`` start and stop a private
``coverage.Coverage`` around each run (about 20 us a pair), so Hypothesis, the search and the
reports are never traced. What it costs is the tracer itself: on Python 3.11 coverage.py's C
tracer gets an event for every call and line of *all* code while it runs, the engine's
included, and a run is about 4x slower (3.7x on rqspinlock, 4x on tas; ``bench/coverage.py``
measures it). Python 3.12+ has ``sys.monitoring``, which coverage.py uses by itself when it can
(with branch coverage, from Python 3.14): there code that is not measured costs nothing.

Which files: the module of the target class and of each base class that is not lockfuzz's own
framework (a mutant's module and the target it changes). A class defined inside a function (a
test's) is measured over its own lines only, not the whole test module. Only code that runs
inside functions counts: module and class bodies ran at import, before any campaign, and
would show as never reached.

What comes out (``TargetCoverage.result()``): line and branch percentages, and the lines and
branches never reached, by the name of the function that encloses them (``RqSpinlock._queue``),
found with ``ast``. Guided search (``_campaign``) asks ``arcs()`` after every run: the number
of distinct arcs so far, read from coverage.py's collector without flushing it (a flush writes
to SQLite and costs more than a run); the public ``get_data()`` is the fallback.
"""

from __future__ import annotations

import ast
import inspect
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._model._errors import InvalidArgument

__all__ = ["FileCoverage", "Missed", "TargetCoverage", "TargetCoverageResult", "target_sources"]

#: coverage.py warnings that say nothing here (a campaign whose runs never reach the target).
_QUIET = ["no-data-collected", "module-not-measured", "module-not-imported", "no-sysmon"]


@dataclass(frozen=True)
class Source:
    """A file to measure, and the lines of it that belong to the target (None: all of it)."""

    path: str
    module: str
    region: tuple[int, int] | None = None


def _framework(module: str) -> bool:
    """lockfuzz's own modules, not targets (the bundled targets are under lockfuzz.targets)."""
    if module == "lockfuzz.targets" or module.startswith("lockfuzz.targets."):
        return False
    return module == "lockfuzz" or module.startswith("lockfuzz.")


def target_sources(target_cls: type) -> list[Source]:
    """The files that hold ``target_cls``'s own code: its module's and its non-framework bases'."""
    found: dict[str, Source] = {}
    for cls in getattr(target_cls, "__mro__", (target_cls,)):
        module = getattr(cls, "__module__", "") or ""
        if cls is object or module == "builtins" or _framework(module):
            continue
        try:
            path = inspect.getsourcefile(cls)
        except (TypeError, OSError):  # a class without source (built in, or made by type())
            path = None
        if not path or not os.path.exists(path):
            continue
        path = os.path.realpath(path)
        region = None
        if "<locals>" in cls.__qualname__:
            try:
                lines, start = inspect.getsourcelines(cls)
            except (OSError, TypeError):  # pragma: no cover - its file exists, so its source does
                continue
            region = (start, start + len(lines) - 1)
        old = found.get(path)
        if old is not None and (old.region is None or region is None):
            region = None
        elif old is not None:
            region = (min(old.region[0], region[0]), max(old.region[1], region[1]))  # type: ignore[index]
        found[path] = Source(path, old.module if old is not None else module, region)
    return list(found.values())


# -- functions of a file, with ast ----------------------------------------------------------------
@dataclass(frozen=True)
class _Function:
    name: str
    start: int  # first line of the body (a function's own def line ran at import)
    end: int


def _functions(path: str) -> list[_Function]:
    """Every function (and lambda) in a file, with the lines of its body; nested ones too."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    out: list[_Function] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                out.append(_Function(name, child.body[0].lineno, child.end_lineno or child.lineno))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.Lambda):
                name = prefix + "<lambda>"
                out.append(_Function(name, child.lineno, child.end_lineno or child.lineno))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def _enclosing(functions: Sequence[_Function], line: int) -> _Function | None:
    best = None
    for fn in functions:
        if fn.start <= line <= fn.end and (best is None or fn.start >= best.start):
            best = fn
    return best


# -- results ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Missed:
    """What a campaign never reached in one function."""

    statements: tuple[int, ...]  # every statement line of the function
    lines: tuple[int, ...]  # the statement lines never run
    branches: tuple[tuple[int, int], ...]  # (from line, to line), to < 0: out of the function

    @property
    def never_called(self) -> bool:
        return bool(self.statements) and len(self.lines) == len(self.statements)

    def describe(self) -> str:
        if self.never_called:
            return f"never run (lines {_ranges(self.statements, self.statements)})"
        parts = []
        if self.lines:
            parts.append(f"lines {_ranges(self.lines, self.statements)}")
        partial = [b for b in self.branches if b[0] not in self.lines]
        if partial:
            parts.append("branches " + ", ".join(_arc(b) for b in partial))
        return "; ".join(parts)


@dataclass(frozen=True)
class FileCoverage:
    """Coverage of one file of the target (its runtime code: function bodies)."""

    path: str
    module: str
    statements: frozenset[int]
    missing: frozenset[int]
    branches: int
    missing_branches: tuple[tuple[int, int], ...]
    missed: dict[str, Missed] = field(default_factory=dict)  # function name -> what it missed

    def reached(self, line: int) -> bool:
        """Did a run execute ``line`` (a statement line)?"""
        return line in self.statements and line not in self.missing

    def arc_reached(self, start: int, end: int) -> bool:
        """Did a run take the branch ``start -> end`` (from a branch line that ran)?"""
        return self.reached(start) and (start, end) not in self.missing_branches


@dataclass(frozen=True)
class TargetCoverageResult:
    """Line and branch coverage of a target's own code over the runs of a campaign."""

    files: tuple[FileCoverage, ...]
    runs: int
    core: str = ""  # coverage.py's tracer: CTracer, PyTracer or SysMonitor

    @property
    def statements(self) -> int:
        return sum(len(f.statements) for f in self.files)

    @property
    def missing_lines(self) -> int:
        return sum(len(f.missing) for f in self.files)

    @property
    def branches(self) -> int:
        return sum(f.branches for f in self.files)

    @property
    def missing_branches(self) -> int:
        return sum(len(f.missing_branches) for f in self.files)

    @property
    def line_pct(self) -> float:
        return _pct(self.statements - self.missing_lines, self.statements)

    @property
    def branch_pct(self) -> float:
        return _pct(self.branches - self.missing_branches, self.branches)

    @property
    def missed(self) -> dict[str, Missed]:
        """Function name -> what it missed; names are prefixed by their module when the target
        spans more than one file (``module:Class.method``)."""
        out: dict[str, Missed] = {}
        for f in self.files:
            for name, m in f.missed.items():
                out[name if len(self.files) == 1 else f"{f.module}:{name}"] = m
        return out

    def file(self, module_or_path: str) -> FileCoverage:
        for f in self.files:
            if module_or_path in (f.module, f.path):
                return f
        raise KeyError(module_or_path)

    def lines(self) -> list[str]:
        """The report as lines of text."""
        head = (f"target coverage ({_count(self.runs, 'run')} measured with coverage.py"
                f"{', ' + self.core if self.core else ''}): lines {self.statements - self.missing_lines}/"
                f"{self.statements} ({self.line_pct:.1f}%), branches {self.branches - self.missing_branches}/"
                f"{self.branches} ({self.branch_pct:.1f}%)")
        out = [head]
        for f in self.files:
            reached = _pct(f.branches - len(f.missing_branches), f.branches)
            out.append(f"  {f.module} ({_display(f.path)}): branches {reached:.1f}%")
            if not f.missed:
                out.append("    every line and branch reached")
                continue
            out.append("    never reached, by function:")
            for name, m in f.missed.items():
                out.append(f"      {name}: {m.describe()}")
        return out


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 100.0


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def _arc(arc: tuple[int, int]) -> str:
    return f"{arc[0]}->{arc[1] if arc[1] > 0 else 'exit'}"


def _ranges(lines: Sequence[int], statements: Sequence[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``3-5, 9``: runs of consecutive *statements* (comments in between
    do not split a range, as in coverage.py's own report)."""
    order = sorted(statements)
    pos = {line: i for i, line in enumerate(order)}
    out: list[str] = []
    start = prev = None
    for line in sorted(lines):
        if start is not None and pos.get(line, -2) == pos.get(prev, -5) + 1:  # type: ignore[arg-type]
            prev = line
            continue
        if start is not None:
            out.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = line
    if start is not None:
        out.append(str(start) if start == prev else f"{start}-{prev}")
    return ", ".join(out)


def _display(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:  # pragma: no cover - another drive (Windows)
        return path
    return path if rel.startswith("..") else rel


# -- measuring ----------------------------------------------------------------------------------
class TargetCoverage:
    """A campaign's measurement of its target's own code (see the module doc)."""

    def __init__(self, target_cls: type, *, sources: Sequence[Source] | None = None) -> None:
        try:
            import coverage
        except ImportError:
            raise InvalidArgument(
                "coverage=True (and guided search) measure the target with coverage.py, which is not "
                "installed: pip install coverage"
            ) from None
        if not hasattr(coverage, "Coverage"):
            raise InvalidArgument(
                "coverage=True needs coverage.py, but 'import coverage' found "
                f"{getattr(coverage, '__file__', coverage)!r}"
            )
        self.sources = list(sources) if sources is not None else target_sources(target_cls)
        self.runs = 0  # the runs measured, as the caller counts them (a rejected program is not one)
        self.cov: Any = None
        if self.sources:
            self.cov = coverage.Coverage(
                data_file=None, branch=True, include=[s.path for s in self.sources], config_file=False,
            )
            self.cov.set_option("run:disable_warnings", list(_QUIET))

    # start() and stop() are called from one frame, around a run, and never through a generator
    # (a context manager): when another coverage.py measures the caller (the test suite's own),
    # its tracer is paused in between and must see the same frames come back, or it records
    # the caller's lines in the wrong place.
    def start(self) -> None:
        """Measure from now on (one engine run)."""
        if self.cov is not None:
            self.cov.start()

    def stop(self) -> None:
        if self.cov is not None:
            self.cov.stop()  # pragma: no cover - runs while it pauses the test suite's own coverage.py

    def arcs(self) -> int:
        """The number of distinct arcs (line pairs) of the target run so far: it grows exactly
        when a run reaches code or a branch that no earlier run did."""
        if self.cov is None:
            return 0
        raw = self._raw_arcs()
        if raw is not None:
            return raw
        data = self.cov.get_data()
        return sum(len(data.arcs(f) or ()) for f in data.measured_files())

    def _raw_arcs(self) -> int | None:
        """From the collector's sets of arcs (one per file), None if this coverage.py has none."""
        data = getattr(getattr(self.cov, "_collector", None), "data", None)
        if isinstance(data, dict):
            return sum(len(v) for v in data.values())
        return None  # pragma: no cover - coverage.py 7.3 to 7.17 all have them

    def result(self) -> TargetCoverageResult | None:
        """The coverage of every run measured so far (None: the target has no source to measure)."""
        if self.cov is None:
            return None
        files = tuple(self._file(src) for src in self.sources)
        collector = getattr(self.cov, "_collector", None)
        tracer = getattr(collector, "tracer_name", None)
        return TargetCoverageResult(files, self.runs, tracer() if callable(tracer) else "")

    def _file(self, src: Source) -> FileCoverage:
        analysis = self.cov._analyze(src.path)
        functions = _functions(src.path)
        lo, hi = src.region or (1, sys.maxsize)

        def runtime(line: int) -> bool:
            fn = _enclosing(functions, line)
            return fn is not None and lo <= fn.start and fn.end <= hi

        statements = frozenset(x for x in analysis.statements if runtime(x))
        missing = frozenset(x for x in analysis.missing if runtime(x))
        stats = {line: s for line, s in analysis.branch_stats().items() if runtime(line)}
        missing_arcs = tuple(sorted(
            (line, to) for line, tos in analysis.missing_branch_arcs().items() if line in stats for to in tos
        ))
        by_function: dict[str, list[list[Any]]] = {}
        for line in sorted(statements):
            fn = _enclosing(functions, line)
            assert fn is not None
            entry = by_function.setdefault(fn.name, [[], [], []])
            entry[0].append(line)
            if line in missing:
                entry[1].append(line)
        for arc in missing_arcs:
            fn = _enclosing(functions, arc[0])
            assert fn is not None
            by_function.setdefault(fn.name, [[], [], []])[2].append(arc)
        missed = {
            name: Missed(tuple(s), tuple(m), tuple(b))
            for name, (s, m, b) in sorted(by_function.items(), key=lambda kv: kv[1][0][0] if kv[1][0] else 0)
            if m or b
        }
        return FileCoverage(
            src.path, src.module, statements, missing, sum(total for total, _ in stats.values()), missing_arcs, missed,
        )
