"""The lockfuzz pytest plugin (registered through the ``pytest11`` entry point).

A test marked ``@pytest.mark.lockfuzz(target, ...)`` is a fuzz campaign against ``target``::

    @pytest.mark.lockfuzz("rqspinlock", runs=2000, params={"poll_interval": 16})
    def test_rqspinlock():
        pass

The test body runs first (fixtures, ``pytest.skip()``), then the campaign. Failing cases are
saved as failure files in ``<lockfuzz_dir>/<test id>/`` and *replayed first* on the next run: a
saved case that still fails fails the test at once, without fuzzing; one that passes now is
reported (a ``LockfuzzWarning``, which ``-W error`` does not make a failure; ``--lockfuzz-strict``
does) and the campaign goes on. The files are the test's regression corpus, to
commit with the code: lockfuzz never deletes them, a person does once they are no longer wanted.

Why replay the files rather than lean on Hypothesis's example database: a failure file holds
the minimised schedule too, replays the same on any machine, and can be read and committed;
the database only remembers programs, keyed by a hash that changes with the test's strategies.
Each test still gets its own database key (its node id), so tests never evict each other's.

With ``--lockfuzz-coverage`` (or ``coverage=True`` in a marker) each campaign measures its
target's line and branch coverage and the lock states it reached; the terminal summary ends with
them, one block per fuzz test, naming what was never reached by function. ``--lockfuzz-guided``
(``guided=True``) also steers the search toward new branches and lock states.

Settings, most specific last wins: the built-in defaults, the ini file (``lockfuzz_runs``,
``lockfuzz_strategy``, ``lockfuzz_seed``, ``lockfuzz_dir``, ``lockfuzz_profile``), the marker's
arguments, then the command line (``--lockfuzz-runs`` ...), so a CI job or a deep local run can
turn every fuzz test up or down without editing them. The profile (``ci`` or ``deep``) multiplies
the runs each test makes, unless ``--lockfuzz-runs`` sets them outright.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import re
import warnings
from pathlib import Path
from typing import Any, NoReturn

import pytest

from ._cli import _positive_int, _seconds
from .._model._errors import LockfuzzWarning

__all__ = ["LockfuzzWarning"]

DEFAULT_RUNS = 1000
DEFAULT_DIR = ".lockfuzz"
#: Fuzz depth profiles: how many times the configured runs each fuzz test makes. ``ci`` keeps
#: suites fast and deterministic; ``deep`` is for nightly or local hunts (tox -e deep).
PROFILES = {"ci": 1, "deep": 20}
MARKER_DOC = (
    "lockfuzz(target, programs=None, runs=None, strategy=None, params=None, max_failures=1, seed=None, "
    "time_limit=None, runs_per_program=None, settings=None, coverage=False, guided=False, program=None, "
    "properties=(), budget_max_ns=None): run a lockfuzz campaign against target (a bundled name, "
    "'package.module:Class' or the class) after the test body; saved failures replay first; coverage=True "
    "reports the target's coverage at the end of "
    "the session; program= fuzzes one program (a lockfuzz.Program or its text form); properties= are functions "
    "of a lockfuzz.RunRecord (or 'module:function' paths) checked after every run; budget_max_ns= bounds the "
    "budgets drawn for acquisitions (default 20 ms), as lockfuzz fuzz --budget-max does."
)
_MARKER_KWARGS = ("target", "programs", "runs", "strategy", "params", "max_failures", "seed", "time_limit",
                  "runs_per_program", "settings", "coverage", "guided", "program", "properties", "budget_max_ns")
#: Each fuzz test's coverage report, for the terminal summary: (test id, report lines).
_COVERAGE = pytest.StashKey[list]()
#: The name of a fuzz test's coverage lines among its report's ``user_properties``.
_COVERAGE_PROPERTY = "lockfuzz_coverage"




# -- options ------------------------------------------------------------------------------------
def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lockfuzz", "lockfuzz: fuzz campaigns as tests (@pytest.mark.lockfuzz)")
    group.addoption("--lockfuzz-runs", type=_positive_int, default=None, metavar="N",
                    help=f"runs per fuzz test, overriding markers and ini (default {DEFAULT_RUNS})")
    group.addoption("--lockfuzz-strategy", default=None, metavar="NAME",
                    help="search strategy for every fuzz test: swarm, random, pct or exhaustive")
    group.addoption("--lockfuzz-seed", type=_int, default=None, metavar="N",
                    help="seed for every fuzz test (default 0)")
    group.addoption("--lockfuzz-profile", choices=sorted(PROFILES), default=None,
                    help="fuzz depth: ci (the configured runs) or deep (20 times as many); --lockfuzz-runs wins")
    group.addoption("--lockfuzz-time-limit", type=_seconds, default=None, metavar="SECONDS",
                    help="stop each fuzz test's search after this much real time")
    group.addoption("--lockfuzz-coverage", action="store_true", default=False,
                    help="measure each fuzz test's coverage of its target (coverage.py) and the lock states "
                    "reached, and report them at the end (runs are about 4x slower on Python 3.11)")
    group.addoption("--lockfuzz-strict", action="store_true", default=False,
                    help="a saved failure that passes now fails its test (default: a LockfuzzWarning, which "
                    "-W error does not turn into a failure)")
    group.addoption("--lockfuzz-guided", action="store_true", default=False,
                    help="guide every fuzz test's search toward new branches and lock states (measures coverage)")
    parser.addini("lockfuzz_runs", f"runs per fuzz test (default {DEFAULT_RUNS})", default="")
    parser.addini("lockfuzz_strategy", "search strategy of fuzz tests (default swarm)", default="")
    parser.addini("lockfuzz_seed", "seed of fuzz tests (default 0)", default="")
    parser.addini("lockfuzz_profile", "fuzz depth of fuzz tests: ci or deep (default ci)", default="")
    parser.addini("lockfuzz_strict", "a saved failure that passes now fails its test (default false)", type="bool",
                  default=False)
    parser.addini("lockfuzz_dir",
                  f"where fuzz tests keep failure files, relative to the rootdir (default {DEFAULT_DIR})",
                  default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_DOC)
    config.stash[_COVERAGE] = []
    config.pluginmanager.register(_CoverageSummary(config), "lockfuzz-coverage-summary")
    # Bad ini values are reported once, before any test runs, as pytest reports its own.
    for name, check in (("lockfuzz_runs", _positive_int), ("lockfuzz_seed", _int)):
        raw = str(config.getini(name) or "").strip()
        if raw:
            try:
                check(raw)
            except argparse.ArgumentTypeError as exc:
                raise pytest.UsageError(f"ini option {name} = {raw!r}: {exc}, expected an int") from None
    profile = str(config.getini("lockfuzz_profile") or "").strip()
    if profile and profile not in PROFILES:
        expected = ", ".join(sorted(PROFILES))
        raise pytest.UsageError(f"ini option lockfuzz_profile = {profile!r}: expected one of {expected}")
    strategy = config.getoption("lockfuzz_strategy") or str(config.getini("lockfuzz_strategy") or "").strip()
    if strategy:
        from .._search import STRATEGIES

        if strategy not in STRATEGIES:
            raise pytest.UsageError(f"lockfuzz strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")


# -- the campaign -------------------------------------------------------------------------------
def _sanitise(nodeid: str) -> str:
    """A folder name for a test id: ``tests/test_x.py::test_y[a-b]`` -> ``tests_test_x.py_test_y_a-b``.
    Long ids keep a readable head and a hash, so that two long ids never share a folder."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("._") or "test"
    if len(name) > 120:
        name = name[:100] + "-" + hashlib.sha256(nodeid.encode()).hexdigest()[:12]
    return name


def _fail(text: str) -> NoReturn:
    pytest.fail(text, pytrace=False)


class _Settings:
    """What one fuzz test runs with, from defaults, ini, marker and command line (in that order)."""

    def __init__(self, item: pytest.Function, marker: pytest.Mark) -> None:
        config = item.config
        kwargs = dict(marker.kwargs)
        if len(marker.args) > 1:
            _fail(f"@pytest.mark.lockfuzz takes the target as its only positional argument, got {marker.args!r}")
        if marker.args:
            if "target" in kwargs:
                _fail("@pytest.mark.lockfuzz: target given twice (positional and target=)")
            kwargs["target"] = marker.args[0]
        unknown = sorted(set(kwargs) - set(_MARKER_KWARGS))
        if unknown:
            _fail(
                f"@pytest.mark.lockfuzz: unknown argument(s) {', '.join(unknown)}; "
                f"expected {', '.join(_MARKER_KWARGS)}"
            )
        if "target" not in kwargs:
            _fail("@pytest.mark.lockfuzz: no target; write @pytest.mark.lockfuzz('tas') or a 'package.module:Class'")

        def ini(name: str) -> str:
            return str(config.getini(name) or "").strip()

        self.target = kwargs["target"]
        params = kwargs.get("params")
        if params is not None and not (isinstance(params, dict) and all(isinstance(k, str) for k in params)):
            _fail(f"@pytest.mark.lockfuzz: params={params!r}: expected a dict of the target's keyword arguments")
        self.params = dict(params or {})
        self.programs = kwargs.get("programs")
        self.program = _program(kwargs.get("program"))
        self.properties = _properties(kwargs.get("properties", ()))
        self.max_failures = kwargs.get("max_failures", 1)
        self.runs_per_program = kwargs.get("runs_per_program")
        self.budget_max_ns = kwargs.get("budget_max_ns")
        self.settings = kwargs.get("settings")
        self.runs = _first(config.getoption("lockfuzz_runs"), kwargs.get("runs"),
                           int(ini("lockfuzz_runs")) if ini("lockfuzz_runs") else None, DEFAULT_RUNS)
        profile = _first(config.getoption("lockfuzz_profile"), ini("lockfuzz_profile") or None, "ci")
        if config.getoption("lockfuzz_runs") is None and isinstance(self.runs, int):
            self.runs *= PROFILES[profile]
        self.strategy = _first(config.getoption("lockfuzz_strategy"), kwargs.get("strategy"),
                               ini("lockfuzz_strategy") or None, "swarm")
        self.seed = _first(config.getoption("lockfuzz_seed"), kwargs.get("seed"),
                           int(ini("lockfuzz_seed")) if ini("lockfuzz_seed") else None, 0)
        self.time_limit = _first(config.getoption("lockfuzz_time_limit"), kwargs.get("time_limit"))
        self.strict = bool(config.getoption("lockfuzz_strict") or config.getini("lockfuzz_strict"))
        # A command-line flag turns these on for every fuzz test; a marker for its own.
        self.guided = bool(config.getoption("lockfuzz_guided") or kwargs.get("guided", False))
        self.coverage = bool(config.getoption("lockfuzz_coverage") or kwargs.get("coverage", False) or self.guided)
        root = Path(ini("lockfuzz_dir") or DEFAULT_DIR)
        self.directory = (root if root.is_absolute() else config.rootpath / root) / _sanitise(item.nodeid)


def _program(value: Any) -> Any:
    """The marker's ``program=``: a ``Program``, or its text form (``Program.from_text``)."""
    from .._model._errors import InvalidArgument, ProgramError
    from .._model._program import Program

    if value is None or isinstance(value, Program):
        return value
    if not isinstance(value, str):
        _fail(f"@pytest.mark.lockfuzz: program={value!r}: expected a lockfuzz.Program or its text form")
    try:
        return Program.from_text(value)
    except (InvalidArgument, ProgramError) as exc:
        _fail(f"@pytest.mark.lockfuzz: program: {exc}")


def _properties(value: Any) -> list[Any]:
    """The marker's ``properties=``: functions of a ``RunRecord``, or ``module:function`` paths."""
    from .._model._errors import InvalidArgument
    from .._oracles._properties import check_properties, resolve_property

    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        _fail(f"@pytest.mark.lockfuzz: properties={value!r}: expected a list of functions or module:function paths")
    try:
        found = [resolve_property(p) if isinstance(p, str) else p for p in value]
        return list(check_properties(found))
    except InvalidArgument as exc:
        _fail(f"@pytest.mark.lockfuzz: {exc}")


def _first(*values: Any) -> Any:
    """The first value given (not None): a marker's ``runs=0`` is passed on, to be refused."""
    return next((v for v in values if v is not None), None)


def _call_body(item: pytest.Function) -> None:
    """The test function itself, with its fixtures, as pytest would call it."""
    names = inspect.signature(item.obj).parameters
    args = {name: item.funcargs[name] for name in names if name in item.funcargs}
    result = item.obj(**args)
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        _fail("@pytest.mark.lockfuzz: the test function must not be async (the campaign runs its own trio loop)")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    marker = pyfuncitem.get_closest_marker("lockfuzz")
    if marker is None:
        return None
    settings = _Settings(pyfuncitem, marker)  # a broken marker fails before the body runs
    _call_body(pyfuncitem)
    _run(pyfuncitem, settings)
    return True


def _run(item: pytest.Function, s: _Settings) -> None:
    from hypothesis.errors import InvalidArgument as HypothesisInvalidArgument

    from .._campaigns._campaign import fuzz
    from .._model._errors import InvalidArgument, ProgramError, ReplayError
    from .._reports._failure_file import load_failure
    from .._reports._report import display_path, failure_report
    from .._model._target import resolve_target, target_path

    log: list[str] = []
    try:
        target_cls = resolve_target(s.target)
        programs = s.programs
        if isinstance(programs, dict):  # keyword arguments of programs_for()
            from lockfuzz.strategies import programs_for

            programs = programs_for(target_cls, params=dict(s.params or {}), **programs)
    except (InvalidArgument, HypothesisInvalidArgument) as exc:
        _fail(f"@pytest.mark.lockfuzz: {exc}")
    _check_marker_params(target_cls, s.params)
    path = target_path(target_cls)

    # 1. The saved failures, before any new search: a regression shows at once.
    for saved in sorted(s.directory.glob("*.json")) if s.directory.is_dir() else []:
        shown = display_path(saved)
        log.append(f"replaying saved failure {shown}")
        try:
            failure = load_failure(saved)
            # Against this test's target and parameters, whatever the file names: the saved
            # program and schedule are what this test must keep passing.
            failure = dataclasses.replace(failure, target=path, params=dict(s.params))
            outcome = _replay(failure, target_cls)
        except (ReplayError, ProgramError) as exc:
            _fail(f"lockfuzz: cannot replay saved failure {shown}: {exc}\n"
                  "(fix or delete the file: it is this test's regression corpus)")
        if outcome.result.violation is not None:
            v = outcome.result.violation
            again = dataclasses.replace(failure, trace=outcome.result.trace, violation=v.to_json(),
                                        signature=v.signature)
            lines = [f"lockfuzz: saved failure fails again: {v.oracle}/{v.kind} ({shown})", *log[:-1],
                     f"replaying saved failure {shown}: {outcome.status}"]
            if not outcome.reproduced:
                lines.append(f"  {outcome.message}")
            lines += ["", failure_report(again, None, heading=f"FAILURE (saved): {v.oracle}/{v.kind}"), "",
                      f"(no new fuzzing until it passes; the file stays as a regression case: {shown})"]
            _fail("\n".join(lines))
        log[-1] += ": passes now"
        if s.strict:
            _fail(f"lockfuzz: saved failure {shown} passes now (--lockfuzz-strict): if the fix is meant, "
                  "keep the file as a regression case without --lockfuzz-strict, or delete it")
        with warnings.catch_warnings():
            # Shown in the warnings summary, but never an error under -W error: a lock that was
            # fixed is good news (module doc); --lockfuzz-strict is the way to fail on it.
            warnings.simplefilter("default", LockfuzzWarning)
            item.warn(LockfuzzWarning(
                f"saved failure {shown} passes now; it stays as a regression case (delete the file to drop it)"
            ))

    # 2. The campaign.
    extra: dict[str, Any] = {}
    if s.runs_per_program is not None:
        extra["runs_per_program"] = s.runs_per_program
    if s.settings is not None:
        extra["settings"] = s.settings
    if programs is not None:
        extra["programs"] = programs
    if s.program is not None:
        extra["program"] = s.program
    if s.properties:
        extra["properties"] = s.properties
    if s.budget_max_ns is not None:
        extra["budget_max_ns"] = s.budget_max_ns
    try:
        report = fuzz(
            target_cls, params=s.params, strategy=s.strategy, runs=s.runs, seed=s.seed, failure_dir=s.directory,
            time_limit=s.time_limit, max_failures=s.max_failures, database=None, key=item.nodeid,
            coverage=s.coverage, guided=s.guided, **extra,
        )
    except (InvalidArgument, HypothesisInvalidArgument, ProgramError) as exc:
        _fail(f"@pytest.mark.lockfuzz: {exc}")
    summary = (f"fuzzed {s.target} ({report.strategy}, seed {s.seed}): {_count(report.runs, 'run')} in "
               f"{report.seconds:.2f} s, "
               f"{_count(len(report.found), 'failure')}")
    log.append(summary)
    if report.coverage is not None:
        lines = report.coverage.lines()
        log += lines
        # In the test's report, not this process's memory: under pytest-xdist the report is what
        # reaches the controller, which prints the summary (``_CoverageSummary``).
        item.user_properties.append((_COVERAGE_PROPERTY, lines))
    if report.found:
        what = ", ".join("/".join(found.failure.signature) for found in report.found)
        parts = [f"lockfuzz found {_count(len(report.found), 'failure')} in {s.target}: {what}", *log, ""]
        for n, found in enumerate(report.found, 1):
            oracle, kind = found.failure.signature
            how = "" if found.how == "search" else f" {found.how},"
            heading = f"FAILURE {n}: {oracle}/{kind}, found{how} after {_count(found.runs_to_find, 'run')}"
            parts += [failure_report(found.failure, found.path, heading=heading), ""]
            if found.path is not None:
                parts.append(f"(the next run replays {display_path(found.path)} first; commit it as a regression case)")
        _fail("\n".join(parts).rstrip())
    item.add_report_section("call", "lockfuzz", "\n".join(log))


def _check_marker_params(target_cls: type, params: dict[str, Any]) -> None:
    """As ``lockfuzz fuzz --param`` checks them: a parameter the target does not take, or a
    value its constructor rejects, is a usage error now, not a target fault in every run saved
    as a "regression case"."""
    from ._cli import UsageError, _check_params

    try:
        _check_params(target_cls, params, 1, 1, option="params")  # a throwaway machine, the smallest
    except UsageError as exc:
        _fail(f"@pytest.mark.lockfuzz: {exc}")


class _CoverageSummary:
    """Collects each fuzz test's coverage lines from its report as it is logged: in this process,
    or, under pytest-xdist, in the controller, from the reports its workers send."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for name, value in report.user_properties:
            if name == _COVERAGE_PROPERTY and isinstance(value, (list, tuple)):  # ours: a list of lines
                self.config.stash[_COVERAGE].append((report.nodeid, list(value)))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """With coverage on: what each fuzz test's campaign reached in its target, at the end."""
    reports = config.stash.get(_COVERAGE, [])
    if not reports:
        return
    terminalreporter.write_sep("=", "lockfuzz coverage")
    for nodeid, lines in reports:
        terminalreporter.write_line(nodeid)
        for line in lines:
            terminalreporter.write_line("  " + line)


def _replay(failure: Any, target_cls: type) -> Any:
    """``lockfuzz.replay``, or, for a target class that cannot be imported by its path (one
    defined inside a function), the same run on the class itself."""
    from .._reports._failure_file import ReplayOutcome, replay, run_failure
    from .._model._target import resolve_target

    try:
        importable = resolve_target(failure.target) is target_cls
    except Exception:  # noqa: BLE001 - not importable by its path, for whatever reason
        importable = False
    if importable:
        return replay(failure)
    result = run_failure(target_cls, failure)
    if result.violation is None:
        return ReplayOutcome("passes", failure, result, "passes now: no violation")
    same = result.violation.signature == failure.signature and result.trace.hash() == failure.trace_hash
    return ReplayOutcome("reproduced" if same else "differs", failure, result,
                         f"{'reproduced' if same else 'a different run'}: {result.violation}")


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"
