"""Failure files: a failing case as a versioned JSON document that replays the same anywhere.

Holds the lockfuzz version and schema, the target (import path and parameters), the program,
the schedule, the machine settings, the violation's signature and the trace (its hash and its
events, so that a replay that drifts can say at which event). Written atomically: to a temporary
file in the same directory, flushed and fsynced, then renamed over the destination, so a reader
never sees half a file and a crash loses nothing already saved.

Compatibility: a file of this schema replays in every later lockfuzz (older schemas are
migrated on load); a file from a newer lockfuzz fails with a message that says so. Keys added
within a schema are optional (``program_minimal``): a file without one loads, and a lockfuzz that
predates one ignores it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from .._engine._run import Engine, RunResult, Schedule, Settings
from .._model._errors import InvalidArgument, ReplayError
from .._engine._events import Trace
from .._model._program import Program
from .._oracles._properties import oracles_for, property_name, property_path, resolve_property
from .._model._target import resolve_target, target_path

__all__ = ["FORMAT", "SCHEMA", "Failure", "ReplayOutcome", "check_directory", "load_failure", "replay", "write_failure"]

FORMAT = "lockfuzz-failure"
#: 1: every acquisition exclusive. 2: an acquisition may be shared (``["lock", L, budget,
#: "shared"]``; shared ACQUIRE events log ``~budget``, shared releases the value 1). A schema-1
#: file is a schema-2 file with no shared acquisition, so it loads and replays as it is.
#: 3: a program may give each lock a capacity (``"capacities": [3, 1]``, for a target built with
#: one per lock); a schema-2 file is a schema-3 file without them.
SCHEMA = 3


def _version() -> str:
    from .. import __version__

    return __version__


def _vtuple(v: str) -> tuple[int, ...]:
    out = []
    for part in v.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


@dataclass
class Failure:
    target: str  # import path, package.module:Class
    params: dict[str, Any]
    program: Program
    schedule: list[int]
    settings: Settings
    signature: tuple[str, str]
    violation: dict[str, Any]
    trace_hash: str
    trace: Trace | None = None
    minimal: bool = False  # the schedule: no schedule with fewer preemptions fails the same way
    #: The program: no single CPU, handler, lock or operation can be removed with the failure kept
    #: (``Minimised.program_minimal``); None when not recorded (files from before it was, and
    #: cases not minimised). An optional key, so older files load and older lockfuzz ignore it.
    program_minimal: bool | None = None
    found_by: dict[str, Any] = field(default_factory=dict)
    lockfuzz_version: str = field(default_factory=_version)
    #: The user's properties the run was checked with, as ``module:function`` paths (replay
    #: checks them again); ``<name>`` for one that cannot be imported by path (a lambda). An
    #: optional key, written only when there are properties.
    properties: tuple[str, ...] = ()

    @classmethod
    def from_run(cls, target_cls: type, params: dict[str, Any] | None, program: Program, result: RunResult,
                 settings: Settings, schedule: list[int] | None = None, **extra: Any) -> Failure:
        assert result.violation is not None
        return cls(
            target=target_path(target_cls), params=dict(params or {}), program=program,
            schedule=list(result.decisions if schedule is None else schedule), settings=settings,
            signature=result.violation.signature, violation=result.violation.to_json(),
            trace_hash=result.trace.hash(), trace=result.trace, **extra,
        )

    @property
    def name(self) -> str:
        """A file name that says what failed: target, oracle, kind and a short hash of the
        target's whole import path, its parameters and the trace, so that two classes of the
        same name in different modules (or one with other parameters) never share a file."""
        short = self.target.rpartition(":")[2].lower()
        oracle, kind = self.signature
        what = json.dumps([self.target, self.params, self.trace_hash], sort_keys=True, default=repr)
        return f"{short}-{oracle}-{kind}-{hashlib.sha256(what.encode()).hexdigest()[:10]}.json"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "schema": SCHEMA,
            "lockfuzz_version": self.lockfuzz_version,
            "target": {"path": self.target, "params": self.params},
            "program": self.program.to_json(),
            "schedule": self.schedule,
            "settings": self.settings.to_json(),
            "signature": {"oracle": self.signature[0], "kind": self.signature[1]},
            "violation": self.violation,
            "minimal": self.minimal,
            "program_minimal": self.program_minimal,
            "found_by": self.found_by,
            **({"properties": list(self.properties)} if self.properties else {}),
            "trace": {"hash": self.trace_hash, **_stored_trace(self.trace)},
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "failure file") -> Failure:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ReplayError(f"{where}: not a lockfuzz failure file (expected a JSON object with format={FORMAT!r})")
        schema = data.get("schema")
        if not isinstance(schema, int) or isinstance(schema, bool):
            raise ReplayError(f"{where}: schema={schema!r}, expected an int")
        version = data.get("lockfuzz_version", "0")
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            raise ReplayError(f"{where}: lockfuzz_version={version!r}, expected a version string such as '0.1.0'")
        if schema > SCHEMA or _vtuple(version) > _vtuple(_version()):
            raise ReplayError(
                f"{where}: written by lockfuzz {version} (schema {schema}), newer than this lockfuzz "
                f"{_version()} (schema {SCHEMA}): upgrade lockfuzz to replay it"
            )
        _check_shape(data, where, schema)
        try:
            trace_data = data["trace"]
            trace = None
            if "events" in trace_data:
                trace = Trace(
                    events=[tuple(e) for e in trace_data["events"]],
                    contexts=list(trace_data["contexts"]), cells=list(trace_data["cells"]),
                )
            if trace is not None and trace.hash() != trace_data["hash"]:
                raise ReplayError(
                    f"{where}: the stored events do not match the stored trace hash (was the file edited?)"
                )
            schedule = data["schedule"]
            if not isinstance(schedule, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in schedule
            ):
                raise ReplayError(f"{where}: schedule={_short(schedule)}, expected a list of ints >= 0")
            return cls(
                target=str(data["target"]["path"]),
                params=dict(data["target"].get("params") or {}),
                program=Program.from_json(data["program"]),
                schedule=list(schedule),
                settings=Settings.from_json(data["settings"]),
                signature=(str(data["signature"]["oracle"]), str(data["signature"]["kind"])),
                violation=dict(data.get("violation") or {}),
                trace_hash=str(trace_data["hash"]),
                trace=trace,
                minimal=bool(data.get("minimal", False)),
                program_minimal=_optional_bool(data.get("program_minimal")),
                found_by=dict(data.get("found_by") or {}),
                lockfuzz_version=version,
                properties=tuple(data.get("properties") or ()),
            )
        except ReplayError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, InvalidArgument) as exc:
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ReplayError(f"{where}: broken failure file ({detail})") from None


#: Traces longer than this are not stored, only their hash and length: a livelock's 500,000
#: events made a 25 MB file that took seconds to write. Replay rebuilds the trace from the
#: decisions (and checks it against the hash); ``show`` says so.
MAX_STORED_EVENTS = 10_000


def _stored_trace(trace: Trace | None) -> dict[str, Any]:
    if trace is None:
        return {}
    if len(trace) > MAX_STORED_EVENTS:
        return {"length": len(trace)}
    return trace.to_json()


def _dumps(doc: dict[str, Any]) -> str:
    """The document as JSON a person can read and diff: one key per line, the trace's events one
    per line, every other value compact (a schedule is one line, however long)."""

    def compact(value: Any) -> str:
        return json.dumps(value, sort_keys=True, separators=(", ", ": "))

    def obj(d: dict[str, Any], indent: str, expand: dict[str, Any]) -> str:
        lines = []
        for key in sorted(d):
            value = d[key]
            if key in expand and isinstance(value, dict):
                text = obj(value, indent + " ", expand[key])
            elif key in expand and isinstance(value, list):
                inner = indent + "  "
                text = "[\n" + ",\n".join(inner + compact(v) for v in value) + f"\n{indent} ]" if value else "[]"
            else:
                text = compact(value)
            lines.append(f"{indent} {json.dumps(key)}: {text}")
        return "{\n" + ",\n".join(lines) + f"\n{indent}}}"

    return obj(doc, "", {"trace": {"events": {}}}) + "\n"


def _optional_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


_VERSION = re.compile(r"\d+(\.\d+)*([a-z]+\d*)?(\.dev\d+)?(\+[\w.]+)?")
#: Bounds on what a file may ask a replay to build: a program far beyond what any campaign
#: draws (``n_locks: 10000000``) would make one replay run for minutes before saying anything.
MAX_CPUS = 256
MAX_LOCKS = 256
MAX_OPS = 100_000
MAX_SETTINGS_STEPS = 100_000_000


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_shape(data: dict[str, Any], where: str, schema: int = SCHEMA) -> None:
    """The types and bounds of every field, before anything is built from them: a wrong file
    is a one-line ``ReplayError`` naming the field, the value and what was expected."""

    def bad(field: str, value: Any, expected: str) -> NoReturn:
        shown = value[0] if isinstance(value, tuple) else _short(value)  # (summary,): said as is
        raise ReplayError(f"{where}: {field}={shown}, expected {expected}")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    for key in ("target", "program", "schedule", "settings", "signature", "trace"):
        if key not in data:
            raise ReplayError(f"{where}: broken failure file (missing field {key!r})")
    target = data.get("target")
    if not isinstance(target, dict):
        bad("target", target, "an object with path and params")
    if not isinstance(target.get("path"), str) or not target["path"]:
        bad("target.path", target.get("path"), "'package.module:Class' or a bundled name")
    params = target.get("params")
    if params is not None and not (isinstance(params, dict) and all(k.isidentifier() for k in params)):
        bad("target.params", params, "an object of keyword arguments")
    signature = data.get("signature")
    if not isinstance(signature, dict) or not all(isinstance(signature.get(k), str) for k in ("oracle", "kind")):
        bad("signature", signature, "an object with oracle and kind strings")
    trace = data.get("trace")
    if not isinstance(trace, dict) or not isinstance(trace.get("hash"), str):
        bad("trace", trace, "an object with a hash string")
    for name in ("violation", "found_by"):
        if data.get(name) is not None and not isinstance(data[name], dict):
            bad(name, data[name], "an object")
    for name in ("minimal", "program_minimal"):
        if data.get(name) is not None and not isinstance(data[name], bool):
            bad(name, data[name], "true or false")
    props = data.get("properties")
    if props is not None and not (isinstance(props, list) and all(isinstance(p, str) for p in props)):
        bad("properties", props, "a list of module:function strings")
    settings = data.get("settings")
    if not isinstance(settings, dict):
        bad("settings", settings, "an object")
    if "final_check" in settings and not isinstance(settings["final_check"], bool):
        bad("settings.final_check", settings["final_check"], "true or false")
    max_steps = settings.get("max_steps", Settings.max_steps)
    if not is_int(max_steps) or not 1 <= max_steps <= MAX_SETTINGS_STEPS:
        bad("settings.max_steps", max_steps, f"an int in [1, {MAX_SETTINGS_STEPS:,}]")
    schedule = data.get("schedule")
    if isinstance(schedule, list) and len(schedule) > max_steps:
        bad("schedule", (f"<{len(schedule):,} decisions>",), f"at most settings.max_steps ({max_steps:,}) decisions")
    program = data.get("program")
    if not isinstance(program, dict):
        bad("program", program, "an object")
    n_locks: Any = program.get("n_locks")
    if not is_int(n_locks) or not 1 <= n_locks <= MAX_LOCKS:
        bad("program.n_locks", n_locks, f"an int in [1, {MAX_LOCKS}]")
    capacities = program.get("capacities") if schema >= 3 else None
    if capacities is not None and not (
        isinstance(capacities, list) and len(capacities) == n_locks and all(is_int(c) and c >= 1 for c in capacities)
    ):
        bad("program.capacities", capacities, f"a list of {n_locks} ints >= 1, one per lock")
    cpus = program.get("cpus")
    if not isinstance(cpus, list) or not 1 <= len(cpus) <= MAX_CPUS:
        bad("program.cpus", cpus if not isinstance(cpus, list) else (f"<{len(cpus)} CPUs>",),
            f"a list of 1 to {MAX_CPUS} CPU programs")
    for i, cpu in enumerate(cpus):
        if not isinstance(cpu, dict):
            bad(f"program.cpus[{i}]", cpu, "an object with task and handlers")
        lines = [cpu.get("task")] + [h.get("ops") if isinstance(h, dict) else h for h in cpu.get("handlers") or []]
        for line in lines:
            if not isinstance(line, list) or len(line) > MAX_OPS:
                bad(f"program.cpus[{i}]", ("<a line>",) if isinstance(line, list) else line,
                    f"lines of at most {MAX_OPS:,} operations")
            for op in line:
                # Schema 2 adds the shared acquisition, ['lock', L, budget, 'shared'].
                shared = schema >= 2 and isinstance(op, list) and len(op) == 4 and op[0] == "lock" and op[3] == "shared"
                args = op[1:3] if shared else op[1:] if isinstance(op, list) else ()
                if not isinstance(op, list) or not op or not all(is_int(x) for x in args):
                    bad(f"program.cpus[{i}] operation", op,
                        "['lock', L, budget], ['unlock', L] or ['work', ns]" if schema < 2 else
                        "['lock', L, budget], ['lock', L, budget, 'shared'], ['unlock', L] or ['work', ns]")


#: A temporary file older than this was left by a write that was killed (a live write takes
#: milliseconds): the next write into the directory removes it.
STALE_TMP_SECONDS = 600


def check_directory(directory: str | os.PathLike[str]) -> None:
    """Raise ``InvalidArgument`` now, before a campaign, if failure files cannot be saved in
    ``directory`` (under a file, or not writable); creates nothing."""
    path = Path(directory).absolute()
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise InvalidArgument(f"failure directory {directory}: cannot save failure files there "
                              f"({existing} is not a directory)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidArgument(f"failure directory {directory}: cannot save failure files there "
                              f"({existing} is not writable)")


def _remove_stale_tmp(directory: Path) -> None:
    now = time.time()
    for tmp in directory.glob(".*.json.*.tmp"):
        try:
            if now - tmp.stat().st_mtime > STALE_TMP_SECONDS:
                tmp.unlink()
        except OSError:  # another process's, removed or renamed meanwhile: not ours to judge
            pass


def write_failure(failure: Failure, directory: str | os.PathLike[str], name: str | None = None) -> Path:
    """Write ``failure`` into ``directory`` atomically; return its path. Temporary files left
    there by a killed write (older than ``STALE_TMP_SECONDS``) are removed first."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(directory)
    path = directory / (name or failure.name)
    text = _dumps(failure.to_json())
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def load_failure(path: str | os.PathLike[str]) -> Failure:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ReplayError(f"{path}: not a lockfuzz failure file (not UTF-8 text: byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplayError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise ReplayError(f"{path}: not a lockfuzz failure file (JSON nested too deeply)") from None
    return Failure.from_json(data, where=str(path))


@dataclass
class ReplayOutcome:
    """``status`` is ``reproduced`` (same signature, same trace hash), ``passes`` (no violation
    now), or ``differs`` (a different run: ``message`` says from which event)."""

    status: str
    failure: Failure
    result: RunResult
    message: str
    first_difference: int | None = None

    @property
    def reproduced(self) -> bool:
        return self.status == "reproduced"


class FileSchedule(Schedule):
    """A saved schedule, replayed strictly: a decision outside its point's options is a corrupt
    (or hand-edited) file, never taken modulo the options as a search's decisions are; every
    decision a run records is in range, so a file written by lockfuzz never trips it."""

    __slots__ = ("where",)

    def __init__(self, decisions: list[int], where: str = "failure file") -> None:
        super().__init__(decisions)
        self.where = where

    def choose(self, n: int, engine: Engine) -> int | None:
        d = super().choose(n, engine)
        if d is not None and d >= n:
            raise ReplayError(
                f"{self.where}: corrupt schedule: decision {self.position - 1} is {d}, but that decision "
                f"point has {n} options (0 to {n - 1})"
            )
        return d


def run_failure(target_cls: type, failure: Failure, where: str = "failure file") -> RunResult:
    """One run of a failure's program and schedule (strictly: ``FileSchedule``), checked with
    the properties it was found with."""
    schedule = FileSchedule(failure.schedule, where)
    oracles = oracles_for([p for p in (_property(path, failure, where) for path in failure.properties) if p])
    return Engine(target_cls, failure.program, schedule, failure.settings, params=failure.params,
                  oracles=oracles).run()


def property_paths(properties: Any) -> tuple[str, ...]:
    """What a failure file records of the properties a campaign checked (``Failure.properties``)."""
    return tuple(property_path(p) or f"<{property_name(p)}>" for p in properties)


def _property(path: str, failure: Failure, where: str) -> Any:
    """The property a recorded path names; None for one that cannot be loaded, unless the
    failure is that property's (which cannot be checked without it)."""
    try:
        return resolve_property(path)
    except InvalidArgument as exc:
        named = path.startswith("<") and path.endswith(">")  # "<name>": recorded without a path
        name = path[1:-1] if named else path.rpartition(":")[2].rpartition(".")[2]
        if failure.signature == ("property", name):
            raise ReplayError(
                f"{where}: the failure is property/{name}, which cannot be loaded here ({exc}); replay it "
                "where that function can be imported by its module:function path (not a lambda or a "
                "function defined inside another)"
            ) from None
        return None


def replay(source: str | os.PathLike[str] | Failure, *, where: str | None = None) -> ReplayOutcome:
    """Run a failure file again. Raises ``ReplayError`` if it cannot be replayed at all
    (``where`` names the file in its messages, for a ``Failure`` given loaded)."""
    failure = source if isinstance(source, Failure) else load_failure(source)
    where = where or ("failure file" if isinstance(source, Failure) else str(source))
    try:
        target_cls = resolve_target(failure.target)
    except InvalidArgument as exc:
        raise ReplayError(f"cannot replay: {exc}") from None
    result = run_failure(target_cls, failure, where)
    new_hash = result.trace.hash()
    same_signature = result.violation is not None and result.violation.signature == failure.signature
    if same_signature and new_hash == failure.trace_hash:
        return ReplayOutcome("reproduced", failure, result, f"reproduced: {result.violation}")
    diff = failure.trace.first_difference(result.trace) if failure.trace is not None else None
    if result.violation is None:
        status, what = "passes", "passes now: no violation"
    elif result.violation.signature == failure.signature:
        status, what = "differs", f"the same violation through a different trace: {result.violation}"
    else:
        status, what = "differs", f"a different violation: {result.violation}"
    if diff is not None and failure.trace is not None:
        rec = failure.trace.events[diff] if diff < len(failure.trace) else "the end of the trace"
        now = result.trace.events[diff] if diff < len(result.trace) else "the end of the trace"
        what += f"; the trace differs from the recorded one at event {diff} (recorded {rec}, now {now})"
    return ReplayOutcome(status, failure, result, what, diff)
