"""Events and traces.

An event is a plain tuple ``(time_ns, ctx, kind, obj, value)``: the engine appends one per
step in its hot loop, and tuples of ints are the cheapest thing Python can append and hash.

- a step: ``kind`` is the access (``load`` ... ``checkpoint``, codes 0-12 from ``_machine``),
  ``obj`` the cell index, ``value`` what the access returned (loads, rmw) or the cell's new
  value (stores);
- ``ACQUIRE`` (obj = lock, value = budget; a shared acquisition logs ``~budget``, a negative
  value, so that an exclusive one logs exactly what it did before modes existed: read it with
  ``acquire_budget`` and ``acquire_shared``), ``ACQUIRED`` (obj = lock, value = status; its mode
  is its ACQUIRE's), ``RELEASE`` (obj = lock, value = 0, or 1 for a shared release; logged when
  the release begins, so the lock is free in the ground truth before any other context can take
  it), ``RELEASED`` (the release call returned; value as for ``RELEASE``),
  ``IRQ_ENTER``/``IRQ_EXIT`` (ctx = the handler,
  obj = CPU, value = level), ``CLOCK`` (the clock jumped to ``time_ns``), ``DONE`` (a context
  finished its line), ``FINAL`` (the final-state check begins), ``MARK`` (obj = lock, value = a
  ``Mark``: the target said its step took the lock, made it pending or queue head, armed its
  timeout or found it expired, gave up its place), ``CANCEL``
  (the trio driver's schedule cancelled the scope of the context's call into the target: obj =
  lock, value = 0 inside ``acquire``, 1 inside ``release``; see ``Settings.cancels``; values 2
  and 3: a trio deadline passed and woke the context, waiting in ``acquire`` or ``release``).
  A trio checkpoint is a ``checkpoint`` step with value 1 (the interpreter's own has 0).

A trace's hash is a SHA-256 of the canonical text of its events and names: stable across
processes, ``PYTHONHASHSEED`` and machines (no ``hash()``, no ``id()``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

from ._machine import OP_NAMES
from .._model._status import Mark, Status

_MARK_TEXT = {
    "TAKEN": "taken", "PENDING": "pending waiter", "HEAD": "queue head", "ARMED": "timeout armed",
    "EXPIRED": "timeout expired", "LEFT": "left its place", "TOLD": "told to leave",
}  # fmt: skip
_MARKS = {int(m): _MARK_TEXT[m.name] for m in Mark}

__all__ = [
    "SHARED_RELEASE", "acquire_budget", "acquire_shared", "acquire_value",
    "ACQUIRE", "ACQUIRED", "CANCEL", "CLOCK", "DONE", "FINAL", "IRQ_ENTER", "IRQ_EXIT", "MARK", "RELEASE", "RELEASED",
    "Trace", "cancel_text", "event_text",
]  # fmt: skip

ACQUIRE, ACQUIRED, RELEASE, IRQ_ENTER, IRQ_EXIT, CLOCK, DONE, FINAL, RELEASED, MARK, CANCEL = range(20, 31)
KIND_NAMES = {
    ACQUIRE: "acquire", ACQUIRED: "acquired", RELEASE: "release", IRQ_ENTER: "irq-enter",
    IRQ_EXIT: "irq-exit", CLOCK: "clock", DONE: "done", FINAL: "final-check", RELEASED: "released", MARK: "mark",
    CANCEL: "cancel",
}  # fmt: skip
for _code, _name in enumerate(OP_NAMES):
    KIND_NAMES[_code] = _name

Event = tuple  # (time_ns, ctx, kind, obj, value)

#: The value of a ``RELEASE``/``RELEASED`` event of a shared release (an exclusive one: 0).
SHARED_RELEASE = 1


def acquire_value(budget: int, shared: bool) -> int:
    """The value an ``ACQUIRE`` event logs: the budget, or ``~budget`` for a shared acquisition."""
    return ~budget if shared else budget


def acquire_budget(value: int) -> int:
    """The budget an ``ACQUIRE`` event's value says."""
    return ~value if value < 0 else value


def acquire_shared(value: int) -> bool:
    """Whether an ``ACQUIRE`` event's value says shared mode."""
    return value < 0


@dataclass(frozen=True)
class Trace:
    """The events of one run with the names they refer to."""

    events: Sequence[Event]
    contexts: Sequence[str]
    cells: Sequence[str]

    def hash(self) -> str:
        h = hashlib.sha256()
        h.update(repr((list(self.contexts), list(self.cells))).encode())
        h.update(repr(list(self.events)).encode())
        return h.hexdigest()

    def __len__(self) -> int:
        return len(self.events)

    def text(self, index: int) -> str:
        return event_text(self.events[index], self.contexts, self.cells)

    def first_difference(self, other: Trace) -> int | None:
        """The index of the first event where two traces differ, or None if they are equal."""
        for i, (a, b) in enumerate(zip(self.events, other.events)):
            if a != b:
                return i
        if len(self.events) != len(other.events):
            return min(len(self.events), len(other.events))
        return None

    def to_json(self) -> dict[str, Any]:
        return {"contexts": list(self.contexts), "cells": list(self.cells), "events": [list(e) for e in self.events]}


def event_text(ev: Event, contexts: Sequence[str], cells: Sequence[str]) -> str:
    """One event as a person reads it (without its time and context)."""
    t, ctx, kind, obj, value = ev
    if kind < 20:
        name = KIND_NAMES[kind]
        if kind >= 10:  # sleep, start, checkpoint: no cell
            return name
        cell = cells[obj] if 0 <= obj < len(cells) else f"cell{obj}"
        return f"{name} {cell} -> {value:#x}" if isinstance(value, int) else f"{name} {cell}"
    if kind == ACQUIRE:
        return f"acquire L{obj}" + (" shared" if value < 0 else "")
    if kind == ACQUIRED:
        return f"acquire L{obj} = {Status(value).name}"
    if kind == RELEASE:
        return f"release L{obj}" + (" shared" if value == SHARED_RELEASE else "")
    if kind == RELEASED:
        return f"release L{obj}" + (" shared" if value == SHARED_RELEASE else "") + " done"
    if kind in (IRQ_ENTER, IRQ_EXIT):
        return f"{KIND_NAMES[kind]} {contexts[ctx]}"
    if kind == CLOCK:
        return f"clock jumps to {t} ns"
    if kind == MARK:
        return f"L{obj}: {_MARKS.get(value, value)}"
    if kind == CANCEL:
        return cancel_text(obj, value)
    return KIND_NAMES.get(kind, f"kind{kind}")


def cancel_text(lock: int, value: int) -> str:
    """A ``CANCEL`` event as a person reads it."""
    call = f"in {'release' if value & 1 else 'acquire'} L{lock}"
    return f"deadline passed ({call})" if value >= 2 else f"cancelled ({call})"
