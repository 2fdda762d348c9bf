"""Programs as people write them: the text form that ``Program.describe()`` prints.

A report shows a program as text (``lockfuzz show``, a failure's report, ``Program.describe``);
a user reproducing a problem from the field writes one the same way and hands it to ``lockfuzz
fuzz TARGET --program FILE``. This module reads that form back, so the two never drift apart
(``Program.from_text(p.describe()) == p`` is a tested property). The form::

    2 CPU(s), 1 lock(s), on error unwind and stop          <- optional header
      cpu0.task: lock L0; work 600us; unlock L0
      cpu0.hardirq#0: lock L1 (5ms); unlock L1             <- a handler, by level
      cpu1.task: lock L0 shared; unlock L0                 <- a shared acquisition (a reader)

One line per context (``cpuN.task`` or ``cpuN.LEVEL#I``); operations ``lock Lk``, ``lock Lk
(BUDGET)``, ``lock Lk shared``, ``lock Lk shared (BUDGET)`` (a shared acquisition: a reader of a
reader-writer lock, a semaphore's permit; its ``unlock Lk`` releases it in that mode), ``unlock
Lk``, ``work DURATION`` separated by ``;`` (``(nothing)`` for an empty line); durations in ``ns``,
``us``, ``ms`` or ``s``. Without a header the lock count is one more than the highest lock named
and errors unwind and stop. A header may give each lock a capacity, for a target built with one
per lock (``Sharing.capacity_range``): ``2 CPU(s), 2 lock(s) (capacities L0 3, L1 1), on error
unwind and stop``. Blank lines and comments (from a ``#``
that starts a line or follows a space) are skipped. Anything else is an ``InvalidArgument``
naming the line and what was expected.
"""

from __future__ import annotations

import re
from typing import Any

from ._errors import InvalidArgument
from ._status import Level

__all__ = ["parse_program"]

_HEADER = re.compile(
    r"^(?P<cpus>\d+) CPU\(s\), (?P<locks>\d+) lock\(s\)(?: \(capacities (?P<capacities>[^)]*)\))?, "
    r"(?:on error unwind and stop|on error retry (?P<retries>\d+)x after (?P<backoff>\d+) ns)$"
)
_LINE = re.compile(r"^cpu(?P<cpu>\d+)\.(?:(?P<task>task)|(?P<level>[a-z]+)#(?P<index>\d+)):\s*(?P<ops>.*)$")
_LOCK = re.compile(r"^lock L(?P<lock>\d+)(?P<shared> shared)?(?: \((?P<budget>[^)]*)\))?$")
_CAPACITY = re.compile(r"^L(?P<lock>\d+) (?P<capacity>\d+)$")
_UNLOCK = re.compile(r"^unlock L(?P<lock>\d+)$")
_WORK = re.compile(r"^work (?P<ns>\S+)$")
_DURATION = re.compile(r"^(?P<n>\d+)(?P<unit>ns|us|ms|s)$")
_SCALE = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_OPS_EXPECTED = (
    "'lock Lk', 'lock Lk (BUDGET)', 'lock Lk shared', 'lock Lk shared (BUDGET)', 'unlock Lk' or 'work DURATION'"
)


def parse_program(text: str) -> Any:
    """The ``Program`` a text form describes (see the module doc)."""
    from ._program import CpuProgram, Handler, Lock, OnError, Program, Unlock, Work

    if not isinstance(text, str):
        raise InvalidArgument(f"program text={text!r}: expected a str")
    header: re.Match[str] | None = None
    tasks: dict[int, tuple[Any, ...]] = {}
    handlers: dict[int, dict[int, Any]] = {}
    highest = -1
    for number, raw in enumerate(text.splitlines(), start=1):
        line = re.split(r"\s#", raw, maxsplit=1)[0].strip()  # a comment: "#" after a space ("cpu0.nmi#0" is a name)
        if not line or line.startswith("#"):
            continue
        where = f"program line {number} ({line!r})"
        if header is None and not tasks and not handlers:
            header = _HEADER.match(line)
            if header is not None:
                continue
        m = _LINE.match(line)
        if m is None:
            raise InvalidArgument(f"{where}: expected 'cpuN.task: OPS' or 'cpuN.LEVEL#I: OPS'")
        ops = []
        body = m["ops"].strip()
        for part in ([] if body == "(nothing)" else [p.strip() for p in body.split(";")]):
            op, lock = _op(part, where, Lock, Unlock, Work)
            highest = max(highest, lock)
            ops.append(op)
        cpu = int(m["cpu"])
        if m["task"]:
            if cpu in tasks:
                raise InvalidArgument(f"{where}: cpu{cpu}.task is given twice")
            tasks[cpu] = tuple(ops)
        else:
            level = _level(m["level"], where)
            index = int(m["index"])
            if index in handlers.setdefault(cpu, {}):
                raise InvalidArgument(f"{where}: cpu{cpu} handler #{index} is given twice")
            handlers[cpu][index] = Handler(level, tuple(ops))
    cpus = sorted(set(tasks) | set(handlers))
    if not cpus:
        raise InvalidArgument("program text: no 'cpuN.task: ...' line")
    if cpus != list(range(len(cpus))):
        raise InvalidArgument(f"program text: CPUs {cpus} given; expected cpu0 to cpu{len(cpus) - 1}, none missing")
    for cpu, by_index in handlers.items():
        if sorted(by_index) != list(range(len(by_index))):
            raise InvalidArgument(
                f"program text: cpu{cpu} handlers #{sorted(by_index)}; expected #0 to #{len(by_index) - 1}"
            )
    on_error = OnError()
    n_locks = highest + 1 if highest >= 0 else 1
    capacities: tuple[int, ...] = ()
    if header is not None:
        if int(header["cpus"]) != len(cpus):
            raise InvalidArgument(f"program text: the header says {header['cpus']} CPU(s); {len(cpus)} are given")
        n_locks = int(header["locks"])
        if header["retries"] is not None:
            on_error = OnError(retries=int(header["retries"]), backoff_ns=int(header["backoff"]))
        if header["capacities"] is not None:
            capacities = _capacities(header["capacities"], n_locks)
    return Program(
        cpus=tuple(
            CpuProgram(task=tasks.get(c, ()), handlers=tuple(h for _, h in sorted(handlers.get(c, {}).items())))
            for c in cpus
        ),
        n_locks=n_locks,
        on_error=on_error,
        capacities=capacities,
    )


def _capacities(text: str, n_locks: int) -> tuple[int, ...]:
    """``L0 3, L1 1``: one capacity per lock, in lock order."""
    given = [_CAPACITY.match(part.strip()) for part in text.split(",")]
    expected = ", ".join(f"L{k} N" for k in range(n_locks))
    if any(m is None for m in given) or [int(m["lock"]) for m in given if m] != list(range(n_locks)):
        raise InvalidArgument(f"program header: capacities {text!r}: expected one per lock, in order: {expected!r}")
    return tuple(int(m["capacity"]) for m in given if m)


def _op(part: str, where: str, lock_cls: Any, unlock_cls: Any, work_cls: Any) -> tuple[Any, int]:
    """One operation and the lock it names (-1 for work)."""
    m = _LOCK.match(part)
    if m is not None:
        budget = m["budget"]
        lock = int(m["lock"])
        shared = m["shared"] is not None
        ns = lock_cls.budget_ns if budget is None else _duration(budget, where)
        op = lock_cls(lock, ns, shared=shared)
        return op, lock
    m = _UNLOCK.match(part)
    if m is not None:
        return unlock_cls(int(m["lock"])), int(m["lock"])
    m = _WORK.match(part)
    if m is not None:
        return work_cls(_duration(m["ns"], where)), -1
    raise InvalidArgument(f"{where}: operation {part!r}: expected {_OPS_EXPECTED}")


def _duration(text: str, where: str) -> int:
    m = _DURATION.match(text.strip())
    if m is None:
        raise InvalidArgument(f"{where}: duration {text!r}: expected an int with ns, us, ms or s (600us)")
    return int(m["n"]) * _SCALE[m["unit"]]


def _level(name: str, where: str) -> Level:
    try:
        level = Level[name.upper()]
    except KeyError:
        level = Level.TASK
    if level == Level.TASK:
        names = ", ".join(x.name.lower() for x in Level if x != Level.TASK)
        raise InvalidArgument(f"{where}: handler level {name!r}: expected one of {names}")
    return level
