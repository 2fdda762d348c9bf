"""The ``lockfuzz`` command line: fuzz a target, replay or show a failure file, list targets.

Scripts rely on the exit codes (documented in ``lockfuzz --help``), so every bad input a person
can type (an unknown target, a bad option value, a missing or corrupt failure file, a target
module that does not import) ends in one line on stderr and exit 2, never a traceback. Anything
else that goes wrong is a bug in lockfuzz or in the target, and is left to show its traceback.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

__all__ = ["main"]

EXIT_OK = 0  # nothing found; a replayed failure passes now
EXIT_FOUND = 1  # a violation was found or reproduced
EXIT_USAGE = 2  # bad command line or input
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)
EXIT_BROKEN_PIPE = 141  # stdout closed by its reader (128 + SIGPIPE)

_EPILOG = """\
exit codes:
  0    nothing found (fuzz), the failure no longer happens (replay), or done (show, targets)
  1    a violation was found (fuzz) or happens again (replay)
  2    bad usage or input: unknown target, bad option value, missing or unreadable failure file
  130  interrupted (Ctrl-C); failures found so far are already saved

examples:
  lockfuzz fuzz rqspinlock --cpus 2 --runs 20000
  lockfuzz fuzz mypackage.locks:MyLock --param poll_interval=65536 --time-limit 60
  lockfuzz fuzz rqspinlock --coverage      (what the campaign reached in the lock, and what it never did)
  lockfuzz replay .lockfuzz/failures/rqspinlock-hang-cycle-0123456789.json
  lockfuzz show FILE --perfetto trace.json   (open it in ui.perfetto.dev or chrome://tracing)
"""


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line on stderr (``lockfuzz: error: ...``), like ours."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.replace("lockfuzz", "", 1).strip()
        hint = f" (see lockfuzz {where + ' ' if where else ''}--help)"
        self.exit(EXIT_USAGE, f"lockfuzz: error: {where + ': ' if where else ''}{message}{hint}\n")


def _int_at_least(low: int) -> Any:
    """An argparse type: an integer >= ``low``, or a message naming the bad value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is not >= {low}")
        return value

    return parse


_positive_int = _int_at_least(1)
_nonnegative_int = _int_at_least(0)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds > 0")
    return value


_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def _duration_ns(text: str) -> int:
    """A duration: a number with a unit (``ns``, ``us``, ``ms``, ``s``), e.g. ``20ms``, ``1.5s``."""
    raw = text.strip().lower()
    for unit in ("ns", "us", "ms", "s"):
        if raw.endswith(unit):
            number = raw[: -len(unit)].strip()
            break
    else:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: give a unit, e.g. 20ms, 500us, 2s")
    try:
        value = round(float(number) * _UNITS[unit])
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: e.g. 20ms, 500us, 2s") from None
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration of at least 1 ns")
    return value


def _workers(text: str) -> int:
    """``--workers``: an integer >= 1, or ``auto`` (the cores this process may use)."""
    if text == "auto":
        from .._campaigns._workers import available_cores

        return available_cores()
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of processes >= 1 or 'auto'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: expected a number of processes >= 1 or 'auto'")
    return value


def _shard(text: str) -> tuple[int, int]:
    """``--shard K/M``: shard K (1..M) of M."""
    k, sep, m = text.partition("/")
    try:
        kk, mm = int(k), int(m)
    except ValueError:
        kk = mm = 0
    if not sep or not 1 <= kk <= mm:
        raise argparse.ArgumentTypeError(f"{text!r}: expected K/M, shard K of M with 1 <= K <= M (e.g. 1/4)")
    return kk, mm


def _dask_address(text: str) -> str:
    from .._campaigns._dask import check_address
    from .._model._errors import InvalidArgument

    try:
        return check_address(text)
    except InvalidArgument:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected 'local' or a Dask scheduler address such as tcp://HOST:8786"
        ) from None


def _param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``; the value is JSON if it parses (numbers, true, null, lists), else a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE, e.g. poll_interval=65536")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def _parser() -> argparse.ArgumentParser:
    from .._search import DEFAULT_STRATEGY, STRATEGIES

    parser = _Parser(
        prog="lockfuzz",
        description="Find the interleavings that break a lock: fuzz a lock target over deterministic "
        "schedules, interrupts and virtual-time timeouts, and replay what it finds.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"lockfuzz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    fuzz = sub.add_parser(
        "fuzz", help="fuzz a target", epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a campaign against TARGET; print and save each failure as its minimal case.",
    )
    fuzz.add_argument(
        "target", metavar="TARGET", help="a bundled target name (see 'lockfuzz targets') or package.module:Class"
    )
    fuzz.add_argument("--cpus", type=_positive_int, default=None, metavar="N",
                      help="at most N CPUs (default 3, or fewer if the target is written for fewer)")
    fuzz.add_argument("--locks", type=_positive_int, default=2, metavar="N", help="at most N locks (default 2)")
    fuzz.add_argument("--interrupts", action=argparse.BooleanOptionalAction, default=None,
                      help="let programs have an interrupt handler per CPU (default: the target's; on for "
                           "targets over cells, off for targets over trio unless they ask for handlers)")
    fuzz.add_argument("--handlers", type=_positive_int, default=1, metavar="N",
                      help="with interrupts, up to N handlers per CPU, at softirq, hardirq or NMI level: with 2 "
                           "or more, a handler may interrupt another on its CPU (default 1: no nesting)")
    fuzz.add_argument("--cancellations", action=argparse.BooleanOptionalAction, default=True,
                      help="trio targets: let the schedule cancel a call into the target at any of trio's "
                           "checkpoints inside it, as a nursery being cancelled would (default on)")
    fuzz.add_argument("--budget-max", type=_duration_ns, default=None, metavar="DURATION",
                      help="the largest per-call budget drawn, e.g. 20ms (the default, for targets with per-call "
                           "budgets), 2s: for locks whose holders or releases take longer")
    fuzz.add_argument("--strategy", choices=list(STRATEGIES), default=DEFAULT_STRATEGY,
                      help=f"how schedules are searched (default {DEFAULT_STRATEGY})")
    fuzz.add_argument("--runs", type=_positive_int, default=5000, metavar="N",
                      help="runs to spend searching, shrinking not counted (default 5000)")
    fuzz.add_argument("--time-limit", type=_seconds, default=None, metavar="SECONDS",
                      help="stop searching after this much real time")
    fuzz.add_argument("--step-timeout", type=_seconds, default=5.0, metavar="SECONDS",
                      help="a step of the target that runs this long in real time without yielding is a "
                      "finding, target-fault/no-yield (default 5)")
    fuzz.add_argument("--seed", type=_nonnegative_int, default=0, metavar="N", help="the campaign's seed (default 0)")
    fuzz.add_argument("--runs-per-program", type=_positive_int, default=None, metavar="N",
                      help="schedules tried per program (default: the campaign's, 50)")
    fuzz.add_argument("--param", type=_param, action="append", default=[], metavar="KEY=VALUE",
                      help="a parameter of the target's constructor, the value read as JSON if it parses "
                      "(repeatable), e.g. --param poll_interval=65536")
    fuzz.add_argument("--failure-dir", type=Path, default=None, metavar="DIR",
                      help="where failure files are saved (default .lockfuzz/failures)")
    fuzz.add_argument("--max-failures", type=_positive_int, default=1, metavar="N",
                      help="stop after N distinct failures (default 1)")
    fuzz.add_argument("--coverage", action="store_true",
                      help="measure the target's line and branch coverage (coverage.py) and the lock states its "
                      "runs reached, and report them at the end: what was never reached, by function "
                      "(runs are about 4x slower on Python 3.11)")
    fuzz.add_argument("--guided", action="store_true",
                      help="steer the search toward runs that reach new branches of the target or new lock states "
                      "(measures coverage too)")
    fuzz.add_argument("--program", type=Path, default=None, metavar="FILE",
                      help="fuzz this one program (its text form, as reports print it, or its JSON form) instead "
                      "of drawing programs: its schedules, interrupts and unwritten budgets are searched")
    fuzz.add_argument("--property", action="append", default=[], metavar="MODULE:FUNCTION", dest="properties",
                      help="also check this function of each run's record (lockfuzz.RunRecord); a failure is "
                      "property/FUNCTION (repeatable)")
    fuzz.add_argument("--no-steps", action="store_true", help="timelines without memory steps")
    fuzz.add_argument("--json", action="store_true",
                      help="print a machine-readable summary on stdout instead of the reports (runs, runs/s, each "
                      "failure's signature, file and runs to find); progress stays on stderr")
    fuzz.add_argument("--quiet", "-q", action="store_true",
                      help="no progress line, no timeline: one line per failure and the summary")
    scale = fuzz.add_argument_group(
        "every core and many machines",
        "A campaign of several shards: each a pure function of (seed, shard), merged by signature "
        "(the smallest case kept) whichever finishes first.")
    scale.add_argument("--workers", type=_workers, default=None, metavar="N",
                       help="run the shards on N processes of this machine ('auto': one per core; default 1), "
                       "or start N worker processes with --dask local (default: one per core)")
    scale.add_argument("--shards", type=_positive_int, default=None, metavar="M",
                       help="cut the campaign into M shards (default: one per worker; with --dask, four per "
                       "worker thread of the cluster); the same seed and M give the same result")
    scale.add_argument("--dask", type=_dask_address, default=None, metavar="ADDRESS",
                       help="run the shards on the Dask cluster at ADDRESS (tcp://HOST:8786), or 'local' to "
                       "start one here (needs pip install 'lockfuzz[dask]')")
    scale.add_argument("--shard", type=_shard, default=None, metavar="K/M",
                       help="run shard K of M alone (a CI matrix job, a SLURM array task): failures and a "
                       "summary go to --failure-dir; 'lockfuzz merge' joins the folders")

    merge = sub.add_parser(
        "merge", help="merge the folders of --shard jobs into one report", epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Merge what 'lockfuzz fuzz --shard K/M' jobs wrote into one report: failures by signature "
        "(the smallest case kept), runs added up, coverage joined.",
    )
    merge.add_argument("dirs", metavar="DIR", type=Path, nargs="+", help="a folder that a --shard job wrote")
    merge.add_argument("--failure-dir", type=Path, default=None, metavar="DIR",
                       help="where the merged failure files are saved (default .lockfuzz/failures)")
    merge.add_argument("--max-failures", type=_positive_int, default=None, metavar="N",
                       help="keep at most N distinct failures (default: the campaign's)")

    replay = sub.add_parser(
        "replay", help="replay a failure file", epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a failure file again and say whether it still fails the same way.",
    )
    replay.add_argument("file", metavar="FILE", type=Path, help="a failure file")
    replay.add_argument("--no-steps", action="store_true", help="the timeline without memory steps")
    replay.add_argument("--step-timeout", type=_seconds, default=5.0, metavar="SECONDS",
                        help="a step that runs this long in real time without yielding is target-fault/no-yield "
                        "(default 5)")

    show = sub.add_parser(
        "show", help="show a failure file's recorded trace", epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Print the trace recorded in a failure file as a per-CPU timeline, without running it.",
    )
    show.add_argument("file", metavar="FILE", type=Path, help="a failure file")
    show.add_argument("--perfetto", type=Path, default=None, metavar="OUT.json",
                      help="also write the trace for ui.perfetto.dev or chrome://tracing")
    show.add_argument("--no-steps", action="store_true", help="the timeline (and Perfetto trace) without memory steps")

    targets = sub.add_parser(
        "targets", help="list the bundled targets", epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="List the targets 'lockfuzz fuzz' knows by name, with what each promises.",
    )
    targets.add_argument("--mutants", action="store_true", help="also list the known-broken mutants")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit code (the console script exits with it)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from hypothesis.errors import InvalidArgument as HypothesisInvalidArgument

    from .._model._errors import InvalidArgument, ProgramError, ReplayError

    try:
        return int(_COMMANDS[args.command](args))
    except (UsageError, InvalidArgument, ReplayError, ProgramError, HypothesisInvalidArgument) as exc:
        _clear_progress()
        print(f"lockfuzz: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        _clear_progress()
        if not (args.command == "fuzz" and _interrupted(exc, args)):
            print("lockfuzz: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``lockfuzz targets | head``): stop quietly, as a process killed by
        # SIGPIPE would, and keep Python from complaining again when it flushes stdout at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return EXIT_BROKEN_PIPE


def _one_line(text: str) -> str:
    return " ".join(text.split())


# -- helpers ------------------------------------------------------------------------------------
def _resolve(spec: str) -> type:
    """The target class. A user's module that fails to import in any way (a SyntaxError, a
    NameError at import time) is bad input, not a lockfuzz bug: one line and exit 2."""
    import importlib

    from .._model._target import _path_hint, resolve_target

    module_name = spec.partition(":")[0] if ":" in spec else ""
    hint = _path_hint(module_name)
    if hint:  # ``./mylock.py:MyLock``: a file, where a module belongs
        raise UsageError(f"target {spec!r}: {module_name!r} is not a module name{hint}")
    if module_name:
        # As ``python -m`` would: a module in the current directory is found (a console script
        # has only its own folder on sys.path), after the installed ones, which it cannot shadow.
        cwd = os.getcwd()
        if cwd not in sys.path and "" not in sys.path:
            sys.path.append(cwd)
        try:
            importlib.import_module(module_name)
        except ImportError:
            pass  # resolve_target says it in its words
        except Exception as exc:  # noqa: BLE001 - whatever the user's module raises
            raise UsageError(f"target {spec!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}") from None
    return resolve_target(spec)


def _check_params(target_cls: type, params: dict[str, Any], n_cpus: int, n_locks: int, option: str = "--param") -> None:
    """Fail now, naming the parameters the target takes, rather than in every run as a target
    fault (``option`` names where they came from: the pytest marker checks its own the same way)."""
    if not params:
        return
    _check_signature(target_cls, params, option)
    # The constructor's own validation (``InvalidArgument``: poll_interval=0) is about the
    # value the user typed, so it is a usage error too; a target built on a throwaway machine.
    from .._model._errors import InvalidArgument
    from .._engine._machine import Machine

    try:
        target_cls(Machine(n_cpus=n_cpus, n_locks=n_locks), **params)
    except InvalidArgument as exc:
        raise UsageError(f"{option}: {target_cls.__qualname__} rejects {_one_line(str(exc))}") from None


def _check_signature(target_cls: type, params: dict[str, Any], option: str = "--param") -> None:
    try:
        sig = inspect.signature(target_cls)
    except (TypeError, ValueError):  # no signature to check against: let the target judge
        return
    try:
        sig.bind(object(), **params)
    except TypeError:
        takes = [p.name for p in list(sig.parameters.values())[1:]
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        bad = sorted(k for k in params if k not in takes)
        raise UsageError(
            f"{option} {', '.join(bad) or ', '.join(params)}: {target_cls.__qualname__} takes "
            + (f"only {', '.join(takes)}" if takes else "no parameters")
        ) from None


def _check_failure_dir(failure_dir: Path) -> None:
    """Before the campaign: a finding must never be lost to a directory it cannot be saved in."""
    from .._model._errors import InvalidArgument
    from .._reports._failure_file import check_directory

    try:
        check_directory(failure_dir)
    except InvalidArgument as exc:
        raise UsageError(f"--failure-dir {failure_dir}: {str(exc).partition(': ')[2]}") from None


def _display_path(path: Path | None) -> str:
    from .._reports._report import display_path

    return "(not saved)" if path is None else display_path(path)


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


#: Seconds between progress lines when stderr is not a terminal (a CI log): often enough to show
#: the job is alive, rarely enough not to flood the log.
LOG_INTERVAL = 10.0


class _Progress:
    """Progress on stderr: on a terminal, one \\r-updated line; elsewhere (a CI log), a line
    every ``LOG_INTERVAL`` seconds. Each says the runs of the total, the rate, the failures, the
    time and the time left; while a failure is shrunk or minimised, that, with its runs."""

    def __init__(self, stream: TextIO, enabled: bool, terminal: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self.terminal = terminal
        self.width = 0
        self.next_line = LOG_INTERVAL

    def __call__(self, report: Any) -> None:
        if not self.enabled or (not self.width and report.seconds < 0.5):
            return  # a campaign over within half a second needs no progress line
        if not self.terminal:
            if report.seconds < self.next_line:
                return
            self.next_line = report.seconds + LOG_INTERVAL
            self.stream.write(progress_text(report) + "\n")
            self.stream.flush()
            return
        line = progress_text(report)
        self.width = max(self.width, len(line))
        self.stream.write("\r" + line.ljust(self.width))
        self.stream.flush()

    def clear(self) -> None:
        if self.enabled and self.terminal and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0


def progress_text(report: Any) -> str:
    """One progress line: the search's runs of the total, with its rate and an estimate of the
    time left (from the rate so far), or what is being done to a failure found."""
    found = _count(len(report.found), "failure")
    total = report.max_runs
    runs = f"{report.runs:,} of {total:,} runs ({100 * report.runs // total}%)" if total else _count(report.runs, "run")
    if report.phase:
        return (f"lockfuzz: {report.phase}: {_count(report.phase_runs, 'run')}, {report.seconds:.1f} s "
                f"(search: {runs}, {found})")
    rate = report.runs_per_second
    left = f", about {(total - report.runs) / rate:.0f} s left" if total and rate and report.runs < total else ""
    return f"lockfuzz: {runs}, {rate:,.0f} runs/s, {found}, {report.seconds:.1f} s{left}"


_progress: _Progress | None = None


def _clear_progress() -> None:
    if _progress is not None:
        _progress.clear()


def _read_program(path: Path) -> Any:
    """``--program FILE``: the text form (``Program.from_text``) or the JSON form (``to_json``)."""
    from .._model._errors import InvalidArgument, ProgramError
    from .._model._program import Program

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--program {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        if text.lstrip().startswith("{"):
            try:
                data = json.loads(text)
            except ValueError as exc:
                raise UsageError(f"--program {path}: not valid JSON ({exc})") from None
            return Program.from_json(data.get("program", data) if isinstance(data, dict) else data)
        return Program.from_text(text)
    except (InvalidArgument, ProgramError) as exc:
        raise UsageError(f"--program {path}: {exc}") from None


def _resolve_property(path: str) -> Any:
    from .._model._errors import InvalidArgument
    from .._oracles._properties import resolve_property

    try:
        return resolve_property(path)
    except InvalidArgument as exc:
        raise UsageError(f"--property: {exc}") from None


def _cpus_for(target_cls: type, asked: int | None) -> int:
    """``--cpus``, within what the target is written for (``Capabilities.max_cpus``)."""
    limit = getattr(target_cls, "capabilities").max_cpus  # noqa: B009 - checked by resolve_target
    if asked is None:
        return 3 if limit is None else min(3, limit)
    if limit is not None and asked > limit:
        raise UsageError(f"--cpus {asked}: {target_cls.__name__} is written for at most {limit} CPUs")
    return asked


# -- commands -----------------------------------------------------------------------------------
def _cmd_fuzz(args: argparse.Namespace) -> int:
    global _progress
    from lockfuzz.strategies import detection_scenarios, interrupts_for, programs_for

    from .._campaigns._campaign import fuzz
    from .._reports._report import failure_report

    target_cls = _resolve(args.target)
    params = dict(args.param)
    program = _read_program(args.program) if args.program is not None else None
    properties = [_resolve_property(path) for path in args.properties]
    if program is not None:
        limit = getattr(target_cls, "capabilities").max_cpus  # noqa: B009 - checked by resolve_target
        if limit is not None and program.n_cpus > limit:
            raise UsageError(
                f"--program {args.program}: {program.n_cpus} CPUs, but {target_cls.__name__} is written for at "
                f"most {limit}"
            )
        args.cpus, args.locks = program.n_cpus, program.n_locks  # what the parameter check builds
    args.cpus = _cpus_for(target_cls, args.cpus)
    _check_params(target_cls, params, args.cpus, args.locks)
    interrupts = interrupts_for(target_cls) if args.interrupts is None else args.interrupts
    program_options = {
        "max_cpus": args.cpus, "max_locks": args.locks, "max_handlers": args.handlers if interrupts else 0,
    }
    if args.budget_max is not None:
        program_options["budget_max_ns"] = args.budget_max
    programs = programs_for(target_cls, params=params, **program_options)
    scenarios = detection_scenarios(target_cls, params=params, **program_options)
    from .._engine._run import Settings
    from .._trio._driver import driver_of

    trio_target = driver_of(target_cls) == "trio"
    args.settings_in_force = Settings(cancels=args.cancellations)  # shards run with it too (_scale_cli)
    failure_dir = args.failure_dir if args.failure_dir is not None else Path.cwd() / ".lockfuzz" / "failures"
    args.interrupts_in_force = interrupts  # for the summary of an interrupted campaign
    _check_failure_dir(failure_dir)
    _progress = _Progress(sys.stderr, enabled=not args.quiet, terminal=_isatty(sys.stderr))
    extra = {} if args.runs_per_program is None else {"runs_per_program": args.runs_per_program}
    shards = ""
    try:
        if (args.workers or 1) > 1 or args.shards or args.dask or args.shard:  # a campaign of shards (_scale_cli)
            from ._scale_cli import fuzz_shards

            report, shards = fuzz_shards(args, target_cls, params, program_options, failure_dir, _progress)
        else:
            report = fuzz(
                target_cls, params=params, programs=None if program is not None else programs,
                strategy=args.strategy, runs=args.runs, seed=args.seed, failure_dir=failure_dir,
                time_limit=args.time_limit, max_failures=args.max_failures, progress=_progress,
                coverage=args.coverage, guided=args.guided, step_timeout=args.step_timeout, program=program,
                properties=properties, settings=args.settings_in_force,
                budget_max_ns=args.budget_max if program is not None else None, scenarios=scenarios, **extra,
            )
    except OSError as exc:
        raise UsageError(f"cannot save failure files in {failure_dir}: {exc.strerror or exc}") from None
    finally:
        _progress.clear()
        _progress = None
    out = sys.stdout
    if args.json:
        print(json.dumps(_summary(report, args, interrupts), indent=1), file=out)
        return EXIT_FOUND if report.found else EXIT_OK
    for n, found in enumerate(report.found, 1):
        f = found.failure
        oracle, kind = f.signature
        how = "" if found.how == "search" else f" {found.how},"
        heading = (f"FAILURE {n}: {oracle}/{kind} in {args.target}, found{how} after "
                   f"{_count(found.runs_to_find, 'run')} ({found.seconds_to_find:.2f} s)")
        if args.quiet:
            print(f"{heading}: {_display_path(found.path)}", file=out)
        else:
            print(failure_report(f, found.path, heading=heading, steps=not args.no_steps), file=out)
            print(file=out)
    if report.coverage is not None:
        print(report.coverage.text(), file=out)
    rate = f"{report.runs_per_second:,.0f} runs/s"
    handlers = (f"program {args.program}" if program is not None
                else "interrupts off" if not interrupts
                else "interrupts on" if args.handlers == 1 else f"interrupts on, up to {args.handlers} a CPU")
    if trio_target:
        handlers += ", cancellations on" if args.cancellations else ", cancellations off"
    print(f"lockfuzz: {args.target} ({report.strategy}, seed {args.seed}, {handlers}{shards}): "
          f"{_count(report.runs, 'run')} "
          f"in {report.seconds:.2f} s ({rate}), {_count(len(report.found), 'failure')}", file=out)
    return EXIT_FOUND if report.found else EXIT_OK


def _summary(report: Any, args: argparse.Namespace, interrupts: bool, interrupted: bool = False,
             unfinished: Sequence[tuple[tuple[str, str], Path | None]] = ()) -> dict[str, Any]:
    """``fuzz --json``: what a script needs, the same keys whether the campaign ended or was
    interrupted (``unfinished``: failures found but not yet minimised, with their raw files)."""
    failures = [
        {"oracle": f.failure.signature[0], "kind": f.failure.signature[1], "signature": "/".join(f.failure.signature),
         "file": None if f.path is None else str(f.path), "runs_to_find": f.runs_to_find,
         "seconds_to_find": round(f.seconds_to_find, 3), "found": f.how, "minimal": f.failure.minimal}
        for f in report.found
    ]
    failures += [
        {"oracle": sig[0], "kind": sig[1], "signature": "/".join(sig), "file": None if path is None else str(path),
         "runs_to_find": None, "seconds_to_find": None, "found": "search (not minimised: interrupted)",
         "minimal": False}
        for sig, path in unfinished
    ]
    return {"target": args.target, "strategy": report.strategy, "seed": args.seed, "interrupts": interrupts,
            "runs": report.runs, "seconds": round(report.seconds, 3),
            "runs_per_second": round(report.runs_per_second, 1), "interrupted": interrupted, "failures": failures}


def _interrupted(exc: KeyboardInterrupt, args: argparse.Namespace) -> bool:
    """Ctrl-C during ``fuzz``: what was found so far and where it is saved (the campaign saves
    each failure the moment it is seen), on stderr; with --json, the summary on stdout too."""
    report = getattr(exc, "lockfuzz_report", None)
    if report is None:
        return False  # before the campaign began
    unfinished = getattr(exc, "lockfuzz_unfinished", [])
    n = len(report.found) + len(unfinished)
    print(f"lockfuzz: interrupted after {_count(report.runs, 'run')} ({report.seconds:.1f} s): "
          f"{_count(n, 'failure')} found so far", file=sys.stderr)
    for found in report.found:
        print(f"  {'/'.join(found.failure.signature)}: {_display_path(found.path)}", file=sys.stderr)
    for signature, path in unfinished:
        print(f"  {'/'.join(signature)} (not minimised yet): {_display_path(path)}", file=sys.stderr)
    if getattr(args, "json", False):
        interrupts = bool(getattr(args, "interrupts_in_force", False))
        print(json.dumps(_summary(report, args, interrupts, True, unfinished), indent=1))
    return True


def _cmd_replay(args: argparse.Namespace) -> int:
    from .._reports._failure_file import load_failure, replay
    from .._reports._report import timeline
    from .._engine._watchdog import step_timeout

    failure = load_failure(args.file)
    _resolve(failure.target)  # a target that no longer imports: one line, exit 2
    with step_timeout(args.step_timeout):
        outcome = replay(failure, where=str(args.file))
    print(f"replaying {_display_path(args.file)}")
    print(f"  target {failure.target}, recorded {'/'.join(failure.signature)}")
    print("\n".join(textwrap.wrap(outcome.message, 120, subsequent_indent="  ", break_on_hyphens=False)))
    print(timeline(outcome.result.trace, outcome.result.violation, steps=not args.no_steps))
    return EXIT_FOUND if outcome.result.violation is not None else EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    from .._reports._failure_file import load_failure
    from .._reports._report import failure_report, perfetto

    failure = load_failure(args.file)
    if failure.trace is None and args.perfetto is not None:
        raise UsageError(f"{args.file}: the file holds no recorded trace to export; 'lockfuzz replay' runs it")
    found_by = failure.found_by or {}
    origin = ""
    if found_by:
        runs = found_by.get("runs")
        origin = f", found by {found_by.get('strategy', '?')} (seed {found_by.get('seed', '?')}) " \
                 f"after {_count(runs, 'run') if isinstance(runs, int) else '? runs'}"
    params = f" {json.dumps(failure.params, sort_keys=True)}" if failure.params else ""
    heading = (f"{_display_path(args.file)}\n  target {failure.target}{params}, "
               f"written by lockfuzz {failure.lockfuzz_version}{origin}")
    print(failure_report(failure, None, heading=heading, steps=not args.no_steps))
    if args.perfetto is not None:
        assert failure.trace is not None
        data = perfetto(failure.trace, failure.violation, steps=not args.no_steps)
        try:
            args.perfetto.write_text(json.dumps(data) + "\n", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.perfetto}: {exc.strerror or exc}") from None
        print(f"\nwrote {args.perfetto} (open it in ui.perfetto.dev or chrome://tracing)")
    return EXIT_OK


def _cmd_targets(args: argparse.Namespace) -> int:
    from .._model._registry import bundled_targets

    sections = [("targets", bundled_targets(mutants=False))]
    if args.mutants:
        from lockfuzz.targets.mutants import MUTANTS

        sections.append(("mutants (known-broken)", dict(MUTANTS)))
    width = max((len(name) for _, names in sections for name in names), default=8) + 2
    for n, (title, names) in enumerate(sections):
        if n:
            print()
        print(f"{title}:")
        for name, path in names.items():
            print(f"  {name.ljust(width)}{path}")
            for line in _describe_target(path):
                print(f"  {' ' * width}  {line}")
    return EXIT_OK


def _describe_target(path: str) -> list[str]:
    from .._model._errors import LockfuzzError

    try:
        cls = _resolve(path)
    except (LockfuzzError, UsageError) as exc:  # list the others even if one is broken
        return [f"(cannot load: {_one_line(str(exc))})"]
    # The docstring's first sentence (a first line may stop mid-sentence), wrapped.
    paragraph = " ".join((inspect.getdoc(cls) or "").strip().split("\n\n")[0].split())
    end = paragraph.find(". ")
    sentence = paragraph[: end + 1] if end >= 0 else paragraph
    lines = textwrap.wrap(sentence, 96)
    for promise in getattr(cls, "capabilities").describe():  # noqa: B009 - checked by resolve_target
        lines += textwrap.wrap(promise, 96, subsequent_indent="  ", break_on_hyphens=False)
    return lines


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def _cmd_merge(args: argparse.Namespace) -> int:
    from ._scale_cli import merge_dirs

    return merge_dirs(args)


_COMMANDS = {"fuzz": _cmd_fuzz, "replay": _cmd_replay, "show": _cmd_show, "targets": _cmd_targets,
             "merge": _cmd_merge}
