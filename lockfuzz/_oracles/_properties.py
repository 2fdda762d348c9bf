"""Your own properties: functions of a finished run, checked like the built-in oracles.

The built-in oracles judge the lock against what it promises. An application has promises of
its own ("the waiter got the lock", "the statistics counter counts every acquisition"), and
smuggling them into a target's ``check()`` hides them from the report. A *property* is a plain
function of the run's public record (``RunRecord``): who acquired what, when, with what result,
and the memory when every line had ended. It fails by raising ``AssertionError`` (a bare
``assert`` is the idiom, as in a test) or by returning ``False``; anything else it raises is a
bug in the property, reported as a ``PropertyError``, never blamed on the target.

A failing property is a violation like any other: its signature is ``("property", NAME)``
(the function's name), it shrinks, minimises, is saved and replays. Properties run when every
line has ended, before the final-state check (whose acquisitions would otherwise show up in
the record), and only if no built-in oracle fired first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .._model._errors import InvalidArgument, LockfuzzError, Violation
from .._engine._events import ACQUIRE, ACQUIRED, RELEASED, Trace, acquire_budget
from ._base import Oracle
from .._model._status import Level, Status

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from .._engine._run import Engine
    from .._model._program import Program

__all__ = [
    "Acquisition", "PropertyError", "PropertyOracle", "RunRecord", "oracles_for", "property_name", "property_path",
    "resolve_property",
]  # fmt: skip


@dataclass(frozen=True)
class Acquisition:
    """One ``Lock`` operation of the program, as it went: ``status`` is None and ``end_ns`` is
    None if it never returned; ``released_ns`` is when its ``Unlock`` returned (None if it was
    never released, or did not succeed)."""

    context: str
    cpu: int
    level: Level
    lock: int
    budget_ns: int
    start_ns: int
    end_ns: int | None
    status: Status | None
    released_ns: int | None = None
    shared: bool = False  # a shared acquisition (``Lock(shared=True)``)


@dataclass(frozen=True)
class RunRecord:
    """A finished run, as properties see it: the program, every acquisition in the order they
    began, the memory (cell name -> value) when every line had ended, the virtual time then,
    and the raw trace (``lockfuzz.Trace``) for anything else."""

    program: Program
    acquisitions: tuple[Acquisition, ...]
    memory: Mapping[str, int]
    time_ns: int
    trace: Trace

    def by(self, context: str) -> tuple[Acquisition, ...]:
        """The acquisitions of one context (``"cpu1.task"``, ``"cpu0.hardirq#0"``)."""
        return tuple(a for a in self.acquisitions if a.context == context)

    def of(self, lock: int) -> tuple[Acquisition, ...]:
        """The acquisitions of one lock."""
        return tuple(a for a in self.acquisitions if a.lock == lock)

    @classmethod
    def of_engine(cls, engine: Engine) -> RunRecord:
        contexts = engine.contexts
        open_: dict[tuple[int, int], list[int]] = {}  # (context, lock) -> indexes, newest last
        rows: list[dict[str, Any]] = []
        for t, ci, kind, obj, value in engine.events:
            if kind == ACQUIRE:
                c = contexts[ci]
                open_.setdefault((ci, obj), []).append(len(rows))
                rows.append(dict(context=c.name, cpu=c.cpu, level=c.level, lock=obj, budget_ns=acquire_budget(value),
                                 start_ns=t, end_ns=None, status=None, shared=value < 0))
            elif kind == ACQUIRED:
                row = rows[open_[(ci, obj)][-1]]
                row["end_ns"], row["status"] = t, Status(value)
                if value != Status.OK:
                    open_[(ci, obj)].pop()
            elif kind == RELEASED:
                row = rows[open_[(ci, obj)].pop()]
                row["released_ns"] = t
        trace = Trace(events=list(engine.events), contexts=[c.name for c in contexts],
                      cells=[c.name for c in engine.machine.cells])
        return cls(
            program=engine.program,
            acquisitions=tuple(Acquisition(**row) for row in rows),
            memory={cell.name: cell.value for cell in engine.machine.cells},
            time_ns=engine.machine.now,
            trace=trace,
        )


class PropertyError(LockfuzzError):
    """A property raised something other than ``AssertionError``: a bug in the property."""


def property_name(prop: Any) -> str:
    """The name a property's violations carry (``property/NAME``)."""
    return str(getattr(prop, "__name__", None) or type(prop).__name__)


def check_properties(properties: Sequence[Callable[[RunRecord], Any]]) -> tuple[Callable[[RunRecord], Any], ...]:
    """``properties`` as a tuple of callables with distinct names, or ``InvalidArgument``."""
    if isinstance(properties, (str, bytes)) or not isinstance(properties, Sequence):
        raise InvalidArgument(f"properties={properties!r}: expected a list of functions of a lockfuzz.RunRecord")
    seen: dict[str, Any] = {}
    for prop in properties:
        if not callable(prop):
            raise InvalidArgument(f"properties: {prop!r} is not callable; expected a function of a lockfuzz.RunRecord")
        name = property_name(prop)
        if name in seen and seen[name] is not prop:
            raise InvalidArgument(f"properties: two properties are named {name!r}; their violations would look alike")
        seen[name] = prop
    return tuple(properties)


class PropertyOracle(Oracle):
    """Runs the user's properties once every line has ended (see the module doc)."""

    name = "property"

    def __init__(self, properties: Sequence[Callable[[RunRecord], Any]]) -> None:
        self.properties = check_properties(properties)

    def finish(self, engine: Engine) -> None:
        if not self.properties:
            return
        record = RunRecord.of_engine(engine)
        for prop in self.properties:
            name = property_name(prop)
            try:
                result = prop(record)
            except AssertionError as exc:
                raise Violation(
                    "property", name, f"property {name} failed: {exc or 'assertion failed'}",
                    event_index=len(engine.events) - 1, time_ns=record.time_ns,
                ) from None
            except Exception as exc:
                raise PropertyError(
                    f"property {name} raised {type(exc).__name__}: {exc} (a property fails by raising "
                    "AssertionError or returning False; anything else is a bug in the property)"
                ) from exc
            if result is False:
                raise Violation(
                    "property", name, f"property {name} returned False",
                    event_index=len(engine.events) - 1, time_ns=record.time_ns,
                )


def oracles_for(properties: Sequence[Callable[[RunRecord], Any]]) -> list[Oracle] | None:
    """The oracles of a run that also checks ``properties`` (None: the defaults, nothing more)."""
    if not properties:
        return None
    from . import default_oracles

    return [*default_oracles(), PropertyOracle(properties)]


def property_path(prop: Any) -> str | None:
    """``module:function`` for a property importable by that path (saved in failure files so that
    replay checks it again), else None (a lambda, a function defined inside another)."""
    module, qualname = getattr(prop, "__module__", None), getattr(prop, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        return None
    try:
        found = resolve_property(f"{module}:{qualname}")
    except InvalidArgument:
        return None
    return f"{module}:{qualname}" if found is prop else None


def resolve_property(path: str) -> Callable[[RunRecord], Any]:
    """The property a ``module:function`` path names, or ``InvalidArgument`` saying what is wrong."""
    import importlib

    module_name, sep, qualname = str(path).partition(":")
    if not sep or not module_name or not qualname:
        raise InvalidArgument(f"property {path!r}: expected module:function (e.g. myapp.checks:counter_is_exact)")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidArgument(f"property {path!r}: cannot import {module_name!r} ({exc})") from None
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise InvalidArgument(f"property {path!r}: {module_name} has no {qualname!r}") from None
    if not callable(obj):
        raise InvalidArgument(f"property {path!r}: {obj!r} is not callable; expected a function of a RunRecord")
    return obj  # type: ignore[no-any-return] # checked callable above
