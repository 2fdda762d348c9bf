"""Programs: what the contexts of each CPU do, as plain frozen data.

A context runs a straight line of operations: ``Lock(lock, budget_ns, shared=False)``,
``Unlock(lock)`` and ``Work(ns)``. A shared ``Lock`` asks for the lock beside other shared holders
(a reader of a reader-writer lock, a permit of a semaphore: ``Sharing``); its ``Unlock`` releases
it in the same mode. Every ``Lock`` result is checked, as the BPF verifier demands of rqspinlock users:
on an error the context releases what it holds, newest first (never the lock whose acquisition
failed), then either retries its whole line after ``backoff_ns`` (at most ``retries`` times) or
ends. Unlocks are LIFO and every lock is released by the context that took it: ``Program``
rejects anything else as a ``ProgramError`` when it is built, so a misuse is never blamed on the
target.

Each CPU has a task line and interrupt handlers; a handler fires at most once, between any two
steps of a lower-level context of its CPU, when a decision says so.

A program may give each lock a capacity (``capacities``: how many holders it admits, a
semaphore's initial count), for a target built with a capacity per lock
(``Sharing.capacity_range``); empty, every lock has the capacity the target declares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Union

from ._errors import InvalidArgument, ProgramError
from ._status import Level

__all__ = ["CpuProgram", "Handler", "Lock", "OnError", "Program", "Unlock", "Work"]


@dataclass(frozen=True)
class Lock:
    """Acquire ``lock`` with a budget (ignored by targets whose timeouts are fixed).

    ``shared=True``: in shared mode (a reader, a semaphore's permit), for targets that declare
    ``Capabilities(sharing=...)``; the target is called with ``shared=True`` for it and for its
    release. Exclusive acquisitions are called without the keyword, so targets written before
    shared modes existed keep working.
    """

    lock: int
    budget_ns: int = 1_000_000_000
    shared: bool = False


@dataclass(frozen=True)
class Unlock:
    lock: int


@dataclass(frozen=True)
class Work:
    """Spend ``ns`` of virtual time without touching shared memory."""

    ns: int


Op = Union[Lock, Unlock, Work]


@dataclass(frozen=True)
class Handler:
    """An interrupt handler: a line of its own, run at ``level`` above what it interrupts."""

    level: Level
    ops: tuple[Op, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", _level(self.level))
        object.__setattr__(self, "ops", tuple(self.ops))


@dataclass(frozen=True)
class CpuProgram:
    task: tuple[Op, ...] = ()
    handlers: tuple[Handler, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", tuple(self.task))
        object.__setattr__(self, "handlers", tuple(self.handlers))


@dataclass(frozen=True)
class OnError:
    """What a context does after it has unwound an error: retry its line, or end."""

    retries: int = 0
    backoff_ns: int = 0


@dataclass(frozen=True)
class Program:
    cpus: tuple[CpuProgram, ...]
    n_locks: int
    on_error: OnError = field(default_factory=OnError)
    #: One capacity per lock (``capacities[k]`` for ``Lk``), or empty: the target's for every lock.
    capacities: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "cpus", tuple(self.cpus))
        if isinstance(self.capacities, (list, tuple)):
            object.__setattr__(self, "capacities", tuple(self.capacities))
        self.validate()

    # -- checks ---------------------------------------------------------------------------
    def validate(self) -> None:
        if not isinstance(self.n_locks, int) or self.n_locks < 1:
            raise InvalidArgument(f"n_locks={self.n_locks!r}: expected an int >= 1")
        if not self.cpus:
            raise InvalidArgument("cpus=(): expected at least one CpuProgram")
        for name, v in (("retries", self.on_error.retries), ("backoff_ns", self.on_error.backoff_ns)):
            if not isinstance(v, int) or v < 0:
                raise InvalidArgument(f"on_error.{name}={v!r}: expected an int >= 0")
        caps = self.capacities
        if not isinstance(caps, tuple) or (caps and len(caps) != self.n_locks) or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in caps
        ):
            raise InvalidArgument(
                f"capacities={caps!r}: expected () or one int >= 1 per lock ({self.n_locks} of them)"
            )
        for cpu, cp in enumerate(self.cpus):
            if not isinstance(cp, CpuProgram):
                raise InvalidArgument(f"cpus[{cpu}]={cp!r}: expected a CpuProgram")
            self._check_line(f"cpu{cpu}.task", cp.task)
            for i, h in enumerate(cp.handlers):
                if h.level == Level.TASK:
                    raise InvalidArgument(f"cpu{cpu}.handlers[{i}].level=task: a handler runs above task level")
                self._check_line(f"cpu{cpu}.handlers[{i}]", h.ops)

    def _check_line(self, where: str, ops: tuple[Op, ...]) -> None:
        held: list[int] = []
        for i, op in enumerate(ops):
            if isinstance(op, Lock):
                self._check_lock_id(where, i, op.lock)
                if not isinstance(op.budget_ns, int) or isinstance(op.budget_ns, bool) or op.budget_ns < 0:
                    raise InvalidArgument(f"{where}[{i}]: budget_ns={op.budget_ns!r}, expected an int >= 0")
                if op.shared is not True and op.shared is not False:
                    raise InvalidArgument(f"{where}[{i}]: shared={op.shared!r}, expected True or False")
                held.append(op.lock)
            elif isinstance(op, Unlock):
                self._check_lock_id(where, i, op.lock)
                if op.lock not in held:
                    raise ProgramError(f"{where}[{i}]: Unlock(L{op.lock}) of a lock this context does not hold")
                if held[-1] != op.lock:
                    raise ProgramError(
                        f"{where}[{i}]: Unlock(L{op.lock}) out of order: L{held[-1]} was taken later "
                        "(unlocks must be LIFO)"
                    )
                held.pop()
            elif isinstance(op, Work):
                if not isinstance(op.ns, int) or op.ns < 0:
                    raise InvalidArgument(f"{where}[{i}]: Work(ns={op.ns!r}), expected an int >= 0")
            else:
                raise InvalidArgument(f"{where}[{i}]={op!r}: expected Lock, Unlock or Work")
        if held:
            raise ProgramError(
                f"{where}: ends holding {', '.join(f'L{x}' for x in held)}: every Lock needs its Unlock"
            )

    def _check_lock_id(self, where: str, i: int, lock: object) -> None:
        if not isinstance(lock, int) or not 0 <= lock < self.n_locks:
            raise InvalidArgument(f"{where}[{i}]: lock={lock!r}, expected an int in [0, {self.n_locks})")

    # -- views ----------------------------------------------------------------------------
    @property
    def n_cpus(self) -> int:
        return len(self.cpus)

    @property
    def n_handlers(self) -> int:
        return sum(len(cp.handlers) for cp in self.cpus)

    @cached_property
    def modes(self) -> frozenset[str]:
        """The modes its acquisitions ask for: a subset of ``{"exclusive", "shared"}``. Computed
        once per program (it is frozen): every run of it checks them against the target's."""
        return frozenset(
            "shared" if op.shared else "exclusive"
            for cp in self.cpus
            for ops in (cp.task, *(h.ops for h in cp.handlers))
            for op in ops
            if isinstance(op, Lock)
        )

    def first_lock(self, shared: bool) -> str | None:
        """Where its first acquisition in the given mode is (``cpu0.task[2]``), or None."""
        for c, cp in enumerate(self.cpus):
            lines = [(f"cpu{c}.task", cp.task)] + [(f"cpu{c}.{h.level}#{i}", h.ops) for i, h in enumerate(cp.handlers)]
            for where, ops in lines:
                for i, op in enumerate(ops):
                    if isinstance(op, Lock) and op.shared == shared:
                        return f"{where}[{i}] ({_line((op,))})"
        return None

    def describe(self) -> str:
        """The program as a person reads it, one line per context."""
        capacities = ", ".join(f"L{k} {c}" for k, c in enumerate(self.capacities))
        lines = [f"{self.n_cpus} CPU(s), {self.n_locks} lock(s)"
                 + (f" (capacities {capacities})" if capacities else "")
                 + (f", on error retry {self.on_error.retries}x after {self.on_error.backoff_ns} ns"
                    if self.on_error.retries else ", on error unwind and stop")]
        for cpu, cp in enumerate(self.cpus):
            lines.append(f"  cpu{cpu}.task: {_line(cp.task)}")
            for i, h in enumerate(cp.handlers):
                lines.append(f"  cpu{cpu}.{h.level}#{i}: {_line(h.ops)}")
        return "\n".join(lines)

    @classmethod
    def from_text(cls, text: str) -> Program:
        """The program a text form describes: what ``describe()`` prints (``_program_text``)."""
        from ._program_text import parse_program

        program: Program = parse_program(text)
        return program

    # -- JSON -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        # Capacities only when given, so that a program without them reads as before they existed.
        return {
            "n_locks": self.n_locks,
            **({"capacities": list(self.capacities)} if self.capacities else {}),
            "on_error": {"retries": self.on_error.retries, "backoff_ns": self.on_error.backoff_ns},
            "cpus": [
                {
                    "task": [_op_json(op) for op in cp.task],
                    "handlers": [{"level": h.level.name.lower(), "ops": [_op_json(op) for op in h.ops]}
                                 for h in cp.handlers],
                }
                for cp in self.cpus
            ],
        }

    @classmethod
    def from_json(cls, data: Any) -> Program:
        try:
            return cls(
                cpus=tuple(
                    CpuProgram(
                        task=tuple(_op_from_json(o) for o in cp["task"]),
                        handlers=tuple(
                            Handler(level=_level(h["level"]), ops=tuple(_op_from_json(o) for o in h["ops"]))
                            for h in cp.get("handlers", ())
                        ),
                    )
                    for cp in data["cpus"]
                ),
                n_locks=data["n_locks"],
                on_error=OnError(**data.get("on_error", {})),
                capacities=data.get("capacities", ()),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidArgument(f"program: malformed JSON ({type(exc).__name__}: {exc})") from None


def _level(value: object) -> Level:
    if isinstance(value, Level):
        return value
    try:
        if isinstance(value, str):
            return Level[value.upper()]
        if isinstance(value, int):
            return Level(value)
    except (KeyError, ValueError):
        pass
    raise InvalidArgument(f"level={value!r}: expected one of {', '.join(x.name.lower() for x in Level)}")


def _op_json(op: Op) -> list[Any]:
    if isinstance(op, Lock):
        # Exclusive stays the 3-element form of schema 1, so exclusive programs read the same.
        return ["lock", op.lock, op.budget_ns, "shared"] if op.shared else ["lock", op.lock, op.budget_ns]
    if isinstance(op, Unlock):
        return ["unlock", op.lock]
    return ["work", op.ns]


def _op_from_json(data: Any) -> Op:
    kind, *args = data
    if kind == "lock":
        if len(args) == 3 and args[2] == "shared":
            return Lock(args[0], args[1], shared=True)
        if len(args) > 2:
            raise InvalidArgument(f"program op {data!r}: expected ['lock', L, budget] or ['lock', L, budget, 'shared']")
        return Lock(*args)
    if kind == "unlock":
        return Unlock(*args)
    if kind == "work":
        return Work(*args)
    raise InvalidArgument(f"program op {data!r}: expected ['lock', L, budget], ['lock', L, budget, 'shared'], "
                           "['unlock', L] or ['work', ns]")


def _line(ops: tuple[Op, ...]) -> str:
    if not ops:
        return "(nothing)"
    out = []
    for op in ops:
        if isinstance(op, Lock):
            out.append(
                f"lock L{op.lock}" + (" shared" if op.shared else "")
                + (f" ({_ns(op.budget_ns)})" if op.budget_ns != Lock.budget_ns else "")
            )
        elif isinstance(op, Unlock):
            out.append(f"unlock L{op.lock}")
        else:
            out.append(f"work {_ns(op.ns)}")
    return "; ".join(out)


def _ns(ns: int) -> str:
    for unit, scale in (("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)):
        if ns >= scale and ns % scale == 0:
            return f"{ns // scale}{unit}"
    return f"{ns}ns"
