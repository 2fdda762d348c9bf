"""The exceptions lockfuzz raises.

Three families, kept apart because they blame different people:

- ``InvalidArgument``: the caller passed a bad value (names the value and what was expected).
- ``ProgramError``: the *program* misused a lock (released one it does not hold, ...). Never
  blamed on the target.
- ``Violation``: an oracle caught the *target* breaking a promise, or the target faulted.
"""

from __future__ import annotations

from typing import Any

__all__ = ["InvalidArgument", "LockfuzzError", "LockfuzzWarning", "ProgramError", "ReplayError", "Violation"]


class LockfuzzError(Exception):
    """Base class of every error lockfuzz raises on purpose."""


class InvalidArgument(LockfuzzError, ValueError):
    """A bad argument: the message names the value and what was expected."""


class ProgramError(LockfuzzError):
    """The program under run misused a lock; the target is not to blame."""


class ReplayError(LockfuzzError):
    """A failure file cannot be replayed: the message says why."""


class LockfuzzWarning(UserWarning):
    """A saved failure no longer fails: the lock was fixed (or the file outlived its cause).

    The pytest plugin shows it without letting ``-W error`` turn it into a failure (a fix is
    good news); ``--lockfuzz-strict`` (ini ``lockfuzz_strict = true``) fails the test instead."""


class Violation(LockfuzzError):
    """An oracle's verdict against the target.

    ``oracle`` names the property, ``kind`` refines it (a cycle class, a status, an exception
    type); together they are the *signature*, which stays the same while a failing schedule is
    minimised. ``contexts``, ``locks``, ``time_ns`` and ``event_index`` say where it happened.
    """

    def __init__(
        self,
        oracle: str,
        kind: str,
        message: str,
        *,
        contexts: tuple[str, ...] = (),
        locks: tuple[int, ...] = (),
        time_ns: int = 0,
        event_index: int = -1,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.oracle = oracle
        self.kind = kind
        self.message = message
        self.contexts = tuple(contexts)
        self.locks = tuple(locks)
        self.time_ns = time_ns
        self.event_index = event_index
        self.details = dict(details or {})
        super().__init__(message)

    def __str__(self) -> str:
        return self.describe()

    @property
    def signature(self) -> tuple[str, str]:
        """What must stay the same while the failing case is shrunk."""
        return (self.oracle, self.kind)

    def describe(self) -> str:
        where = []
        if self.contexts:
            where.append("contexts " + ", ".join(self.contexts))
        if self.locks:
            where.append("locks " + ", ".join(f"L{lock}" for lock in self.locks))
        where.append(f"t={self.time_ns}ns")
        where.append(f"event #{self.event_index}")
        return f"[{self.oracle}/{self.kind}] {self.message} ({'; '.join(where)})"

    def to_json(self) -> dict[str, Any]:
        return {
            "oracle": self.oracle,
            "kind": self.kind,
            "message": self.message,
            "contexts": list(self.contexts),
            "locks": list(self.locks),
            "time_ns": self.time_ns,
            "event_index": self.event_index,
        }
