"""``trio_target``: any trio lock object as a target, in one line.

The common shape of a trio user's lock is an object with ``await lock.acquire()`` and
``lock.release()`` (sync or async), or one used as ``async with lock:``. ``trio_target(factory)``
makes a target class (``driver = "trio"``) that calls ``factory()`` once per lock of the program
and, for each acquisition, runs it under ``trio_budget`` (``trio.move_on_after(budget)``, with its
clock marked so that the timeout is judged to the nanosecond): OK, or ETIMEDOUT when the budget
ran out; a ``RuntimeError`` that says the caller already holds it (trio's and anyio's wording)
is EDEADLK. A release calls ``release()`` (awaited if it returns an awaitable) or
``__aexit__``. With ``sharing=`` (a ``lockfuzz.Sharing``) the lock admits shared acquisitions:
for a semaphore or limiter (``Sharing(exclusive=False, capacity=n)``) every acquisition is
shared and calls the same ``acquire``/``release``; for a reader-writer lock
(``Sharing(exclusive=True)``) a shared one calls ``acquire_shared()``/``release_shared()``. A
shared acquisition of an object that lends to borrowers (``trio.CapacityLimiter``:
``acquire_on_behalf_of``/``release_on_behalf_of``) borrows for a borrower of its own, so that a
context may hold several tokens as it may hold several permits of a semaphore: borrowing for the
task, trio would refuse the second with ``RuntimeError`` while tokens are free, a rule of trio's
for tasks, not a deadlock (once reported as an undeserved EDEADLK). The bundled adapters
(``lockfuzz.targets.trio_locks``) are subclasses of it.

Failure files name a target by import path (``module:Class``), so give the class a module-level
name equal to ``name`` (``MyLockTarget = lockfuzz.trio_target(MyLock)`` with the default name), or
subclass it (``class MyLockTarget(lockfuzz.trio_target(MyLock)): ...``).
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from typing import Any, Callable, ClassVar

from .._model._capabilities import Capabilities, Fairness, Sharing, Timeouts
from .._model._errors import InvalidArgument
from .._model._status import Status
from .._model._target import Target
from ._budget import trio_budget

__all__ = ["trio_target"]

#: Per-call budgets, timed by ``trio_budget``: the clock is marked, so the expiry is judged to the
#: nanosecond (not before the budget, and no later in the waiter's own time: ``late_ns=0``; a
#: coarser step may carry the clock past the deadline by up to a step less 1 ns, see
#: ``_TrioTarget.__init__``). The slack covers the way out: the steps between the deadline and the
#: return (trio unwinding the waiter, one step per decision the other contexts win meanwhile).
BUDGETS = Timeouts(per_call=True, slack_ns=100_000, late_ns=0)


def trio_target(
    factory: Callable[[], Any],
    *,
    name: str | None = None,
    fairness: Fairness | None = None,
    timeouts: bool = True,
    held: Callable[[Any], bool] | None = None,
    interrupts: bool | None = None,
    sharing: Sharing | None = None,
    grace_ns: int | None = None,
) -> type[Target]:
    """A target class over the lock objects ``factory()`` makes (see the module doc).

    - ``fairness``: what the lock documents (``Fairness(overtakes=0, doorway_steps=0)`` for FIFO
      like ``trio.Lock``); none by default, and the oracles hold it to exactly that;
    - ``timeouts``: whether acquisitions honour their budget (``trio_budget``); with
      False, budgets are ignored and a waiter waits until the lock is its own (or a cancellation);
    - ``held(obj)``: whether a lock object is still held, for the final check (default:
      ``obj.locked()`` if it has one);
    - ``interrupts``: ``Capabilities.interrupts`` (default: none, as for any trio target);
    - ``sharing``: ``Capabilities.sharing`` (see the module doc), None for an exclusive lock;
    - ``grace_ns``: ``Timeouts.grace_ns``, for a lock whose waiters poll by sleeping: its longest
      sleep between looks (default 100 us).
    """
    if not callable(factory):
        raise InvalidArgument(f"trio_target: factory={factory!r}, expected a callable that makes one lock")
    if fairness is not None and not isinstance(fairness, Fairness):
        raise InvalidArgument(f"trio_target: fairness={fairness!r}, expected a lockfuzz.Fairness or None")
    if not isinstance(timeouts, bool):
        raise InvalidArgument(f"trio_target: timeouts={timeouts!r}, expected True or False")
    if sharing is not None and not isinstance(sharing, Sharing):
        raise InvalidArgument(f"trio_target: sharing={sharing!r}, expected a lockfuzz.Sharing or None")
    if grace_ns is not None and (type(grace_ns) is not int or grace_ns < 0):
        raise InvalidArgument(f"trio_target: grace_ns={grace_ns!r}, expected an int >= 0 (ns) or None")
    if grace_ns is not None and not timeouts:
        raise InvalidArgument(f"trio_target: grace_ns={grace_ns!r} with timeouts=False: a grace is for timeouts")
    label = name or f"{getattr(factory, '__name__', 'Lock').strip('<>')}Target"
    budgets = BUDGETS if grace_ns is None else dataclasses.replace(BUDGETS, grace_ns=grace_ns)
    caps = Capabilities(timeouts=budgets if timeouts else None, fairness=fairness, interrupts=interrupts,
                        sharing=sharing)
    caller = sys._getframe(1).f_globals.get("__name__", __name__)
    namespace = {
        "__module__": caller, "__qualname__": label, "__doc__": f"``{label}``: {factory!r} as a trio target.",
        "capabilities": caps, "factory": staticmethod(factory), "timeouts": timeouts,
        "is_held": staticmethod(held) if held is not None else staticmethod(_locked),
    }  # fmt: skip
    return type(label, (_TrioTarget,), namespace)


def _locked(obj: Any) -> bool:
    locked = getattr(obj, "locked", None)
    return bool(locked()) if callable(locked) else False


class _TrioTarget(Target):
    """What ``trio_target`` makes: one object per lock; see the module doc."""

    driver: ClassVar[str] = "trio"
    factory: ClassVar[Callable[[], Any]]
    timeouts: ClassVar[bool] = True
    is_held: ClassVar[Callable[[Any], bool]]

    def __init__(self, machine: Any) -> None:
        super().__init__(machine)
        t = self.capabilities.timeouts
        if t is not None and t.late_ns is not None and machine.step_ns > 1:
            # A step of n ns may carry the clock past the deadline by up to n - 1 ns before trio
            # sees it pass (time moves only in steps and jumps).
            late = max(t.late_ns, machine.step_ns - 1)
            self.capabilities = dataclasses.replace(  # type: ignore[misc] # this instance's promise
                self.capabilities, timeouts=dataclasses.replace(t, late_ns=late))
        self.locks = [self.make_lock(i) for i in range(machine.n_locks)]
        sharing = self.capabilities.sharing
        #: Shared acquisitions borrow for a borrower of their own where the lock lends (module doc).
        self.lends = sharing is not None and not sharing.exclusive
        #: The borrowers of the tokens each context holds, per lock, newest last.
        self.borrowers: dict[tuple[str, int], list[object]] = {}

    def make(self) -> Any:
        """One lock object (``factory()``; a subclass may override it)."""
        return type(self).factory()

    def make_lock(self, lock: int) -> Any:
        """The object for lock number ``lock``: ``make()``. A subclass whose locks differ
        overrides this one, e.g. a semaphore built with the capacity the program gives each lock
        (``self.machine.capacity(lock, default)``, ``Sharing.capacity_range``)."""
        return self.make()

    async def acquire(self, ctx: Any, lock: int, budget_ns: int, shared: bool = False) -> Status:
        obj = self.locks[lock]
        if shared and self.lends and hasattr(obj, "acquire_on_behalf_of"):
            take = self._borrow(ctx, lock, obj)
        else:
            take = self._take(obj, shared)
        if not self.timeouts:
            return await take
        with trio_budget(ctx, lock, budget_ns):
            return await take
        return Status.ETIMEDOUT

    async def _borrow(self, ctx: Any, lock: int, obj: Any) -> Status:
        borrower = object()  # one per acquisition (module doc)
        await obj.acquire_on_behalf_of(borrower)
        self.borrowers.setdefault((ctx.name, lock), []).append(borrower)
        return Status.OK

    def _shared_method(self, shared: bool, name: str) -> str:
        """The method a call in this mode uses: ``acquire_shared`` for a reader of a lock that
        also has writers; the plain one for an exclusive call and for a semaphore's permits."""
        sharing = self.capabilities.sharing
        return f"{name}_shared" if shared and sharing is not None and sharing.exclusive else name

    def _method(self, obj: Any, shared: bool, name: str) -> Any:
        method = self._shared_method(shared, name)
        found = getattr(obj, method, None)
        if found is None and method != name:  # never fall back to the exclusive call for a reader
            raise TypeError(f"{type(obj).__name__} has no {method}(), which a shared acquisition of a lock "
                            "with writers calls (trio_target(sharing=Sharing(exclusive=True)))")
        return found

    async def _take(self, obj: Any, shared: bool = False) -> Status:
        try:
            take = self._method(obj, shared, "acquire")
            if take is not None:
                await take()
            elif hasattr(obj, "__aenter__"):
                await obj.__aenter__()
            else:
                raise TypeError(
                    f"{type(obj).__name__} has neither acquire() nor __aenter__(): trio_target calls acquire() and "
                    "release() (also for every acquisition of a semaphore, Sharing(exclusive=False)), or enters and "
                    "exits it with async with; acquire_shared()/release_shared() only for the readers of a lock with "
                    "writers (Sharing(exclusive=True))"
                )
        except RuntimeError as exc:
            sharing = self.capabilities.sharing
            if shared and sharing is not None and self.lends and sharing.per_holder is None and _says_retaken(exc):
                raise RuntimeError(
                    f"{exc} (a second shared hold by one task, refused while the lock has room: declare "
                    "Sharing(per_holder=1), so that lockfuzz knows that a task's second hold waits for itself and "
                    "EDEADLK is deserved, or lend per acquisition, as trio.CapacityLimiter's acquire_on_behalf_of "
                    "does)"
                ) from exc
            return retaken(exc)
        return Status.OK

    async def release(self, ctx: Any, lock: int, shared: bool = False) -> None:
        obj = self.locks[lock]
        if shared and self.lends and hasattr(obj, "release_on_behalf_of"):
            obj.release_on_behalf_of(self.borrowers[(ctx.name, lock)].pop())  # releases are LIFO
            return
        give = self._method(obj, shared, "release")
        if give is not None:
            result = give()
            # A sync release (trio.Lock's) returns None: no ABC check for it (isawaitable's is
            # the costliest part of a release).
            if result is not None and inspect.isawaitable(result):
                await result
        else:
            await obj.__aexit__(None, None, None)

    def check(self) -> list[str]:
        held = type(self).is_held
        return [f"L{i} is still held" for i, x in enumerate(self.locks) if held(x)]


def retaken(exc: RuntimeError) -> Status:
    """EDEADLK for the error a lock raises when its holder takes it again (trio.Lock: "attempt
    to re-acquire an already held Lock", CapacityLimiter: "this borrower is already holding one
    of this CapacityLimiter's tokens", anyio.Lock: "Attempted to acquire an already held Lock");
    any other RuntimeError is the target's fault and goes on up."""
    if _says_retaken(exc):
        return Status.EDEADLK
    raise exc


def _says_retaken(exc: RuntimeError) -> bool:
    text = str(exc)
    return "already held" in text or "already holding" in text
