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

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._engine import Engine, RunResult, Schedule, Settings
from ._errors import InvalidArgument, ReplayError
from ._events import Trace
from ._program import Program
from ._target import resolve_target, target_path

__all__ = ["FORMAT", "SCHEMA", "Failure", "ReplayOutcome", "load_failure", "replay", "write_failure"]

FORMAT = "lockfuzz-failure"
SCHEMA = 1


def _version() -> str:
    from . import __version__

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
        """A file name that says what failed: target, oracle, kind and a short hash."""
        short = self.target.rpartition(":")[2].lower()
        oracle, kind = self.signature
        return f"{short}-{oracle}-{kind}-{self.trace_hash[:10]}.json"

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
            "trace": {"hash": self.trace_hash, **(self.trace.to_json() if self.trace is not None else {})},
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "failure file") -> Failure:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ReplayError(f"{where}: not a lockfuzz failure file (expected a JSON object with format={FORMAT!r})")
        schema = data.get("schema")
        if not isinstance(schema, int):
            raise ReplayError(f"{where}: schema={schema!r}, expected an int")
        version = str(data.get("lockfuzz_version", "0"))
        if schema > SCHEMA or _vtuple(version) > _vtuple(_version()):
            raise ReplayError(
                f"{where}: written by lockfuzz {version} (schema {schema}), newer than this lockfuzz "
                f"{_version()} (schema {SCHEMA}): upgrade lockfuzz to replay it"
            )
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
            if not isinstance(schedule, list) or not all(isinstance(d, int) and d >= 0 for d in schedule):
                raise ReplayError(f"{where}: schedule={schedule!r}, expected a list of ints >= 0")
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
            )
        except ReplayError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, InvalidArgument) as exc:
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ReplayError(f"{where}: broken failure file ({detail})") from None


def _optional_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def write_failure(failure: Failure, directory: str | os.PathLike[str], name: str | None = None) -> Path:
    """Write ``failure`` into ``directory`` atomically; return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (name or failure.name)
    text = json.dumps(failure.to_json(), indent=1, sort_keys=True) + "\n"
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
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplayError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
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


def replay(source: str | os.PathLike[str] | Failure) -> ReplayOutcome:
    """Run a failure file again. Raises ``ReplayError`` if it cannot be replayed at all."""
    failure = source if isinstance(source, Failure) else load_failure(source)
    try:
        target_cls = resolve_target(failure.target)
    except InvalidArgument as exc:
        raise ReplayError(f"cannot replay: {exc}") from None
    result = Engine(
        target_cls, failure.program, Schedule(failure.schedule), failure.settings, params=failure.params
    ).run()
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
