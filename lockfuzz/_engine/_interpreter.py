"""The program interpreter: runs one context's line against the target.

It is the only code that calls the target, so it is where a target's faults become findings:
an exception from ``acquire``/``release`` or a return value that is not a Status is turned into a
``target-fault`` violation here, with the context and lock, and the campaign goes on.

Cancellation (the trio driver, ``engine.cancels``): each call into the target goes through
``TrioEngine.call``, and the schedule may cancel the context's task at any of trio's checkpoints
inside the call. A cancelled line ends as a trio task whose nursery was cancelled does:
an ``acquire`` that raised ``trio.Cancelled`` is logged as returning ``ECANCELED`` and holds
nothing; a call whose scope was cancelled but which returned anyway keeps what it returned (the
cancellation would come at the task's next checkpoint); then the locks held are released,
newest first, each release itself running cancelled (as ``async with`` blocks exit under a
cancelled scope), and the line stops: no retry. A release that raised ``trio.Cancelled`` has
still released the lock, as far as the ground truth goes: if the target kept it, the oracles say
so (final-state, or a waiter timed out on a free lock).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from .._model._errors import Violation
from ._events import ACQUIRE, ACQUIRED, RELEASE, RELEASED, SHARED_RELEASE
from ._machine import checkpoint, sleep_until
from .._model._program import Lock, OnError, Op, Unlock
from .._model._status import Status
from ._watchdog import NoYield

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from ._run import Context, Engine

_STATUSES = {int(s): s for s in (Status.OK, Status.EDEADLK, Status.ETIMEDOUT, Status.EALREADY)}
#: What may pass out of a target untouched: Ctrl-C, a coroutine being closed, and trio's own
#: cancellation (the trio driver's to deliver). Anything else a target raises, ``SystemExit``
#: included, is a target fault: a finding, never the end of lockfuzz.
PASS_THROUGH: tuple[type[BaseException], ...] = (KeyboardInterrupt, GeneratorExit, trio.Cancelled)
#: What ``engine.call`` returns for a call that raised the schedule's ``trio.Cancelled``.
CANCELLED = object()


async def run_line(engine: Engine, ctx: Context, ops: tuple[Op, ...], on_error: OnError) -> None:
    target = engine.target
    cancels = engine.cancels
    retries = 0
    while True:
        # What the line holds, newest last: the lock, or ~lock for a Lock answered EALREADY
        # (nothing to release); and, beside it, whether it was taken shared (released shared).
        held: list[int] = []
        modes: list[bool] = []
        failed = False
        for op in ops:
            kind = type(op)
            if kind is Lock:
                lock = op.lock  # type: ignore[union-attr]
                shared = op.shared  # type: ignore[union-attr]
                budget = op.budget_ns  # type: ignore[union-attr]
                engine.log(ctx, ACQUIRE, lock, ~budget if shared else budget)  # _events.acquire_value
                try:
                    if cancels:
                        status: Any = await engine.call(ctx, lock, budget, shared)
                    else:
                        status = await acquire_call(target, ctx, lock, budget, shared)
                except PASS_THROUGH:
                    raise
                except BaseException as exc:  # noqa: BLE001 - SystemExit from a target is its fault
                    raise _fault(engine, ctx, lock, "acquire", exc) from exc
                checked = _STATUSES.get(status) if isinstance(status, int) else None
                if status is CANCELLED:
                    engine.log(ctx, ACQUIRED, lock, int(Status.ECANCELED))
                    return await _unwind(engine, ctx, held, modes)
                if checked is None:
                    raise Violation(
                        "target-fault", "bad-status",
                        f"acquire(L{lock}) returned {status!r}; expected Status.OK, EDEADLK, ETIMEDOUT or EALREADY",
                        contexts=(ctx.name,), locks=(lock,), time_ns=engine.machine.now,
                    )
                engine.log(ctx, ACQUIRED, lock, int(checked))
                if checked is Status.OK:
                    held.append(lock)
                    modes.append(shared)
                elif checked is Status.EALREADY:
                    # ww_mutex's answer to a re-lock in the same acquire context: nothing more is
                    # held, and the matching Unlock releases nothing (marked as ~lock).
                    if not engine.truth.holds(ctx, lock):
                        raise Violation(
                            "target-fault", "bad-ealready",
                            f"acquire(L{lock}) returned EALREADY, but {ctx.name} does not hold L{lock}",
                            contexts=(ctx.name,), locks=(lock,), time_ns=engine.machine.now,
                        )
                    held.append(~lock)
                    modes.append(shared)
                else:
                    failed = True
                if cancels and engine.cut(ctx):  # cancelled, but it returned: it ends here
                    return await _unwind(engine, ctx, held, modes)
                if failed:
                    break
            elif kind is Unlock:
                # The critical section has at least one step: the holder may be preempted or
                # interrupted while it holds the lock, before its release begins.
                await checkpoint()
                if held and held[-1] < 0:  # its Lock was answered EALREADY: nothing to release
                    held.pop()
                    modes.pop()
                else:
                    # (An Unlock of a lock not held reaches the ownership oracle, which blames
                    # the program, before anything is popped: a release in exclusive mode.)
                    await _release(engine, ctx, op.lock, modes[-1] if modes else False)  # type: ignore[union-attr]
                    held.pop()
                    modes.pop()
                    if cancels and engine.cut(ctx):
                        return await _unwind(engine, ctx, held, modes)
            else:
                await sleep_until(engine.machine.now + op.ns)  # type: ignore[union-attr]
        if not failed:
            return
        # The verifier's rule: release what is held, newest first; never the failed lock.
        await _unwind(engine, ctx, held, modes)
        if retries >= on_error.retries or cancels and engine.cut(ctx):
            return
        retries += 1
        if on_error.backoff_ns:
            await sleep_until(engine.machine.now + on_error.backoff_ns)


def acquire_call(target: Any, ctx: Context, lock: int, budget_ns: int, shared: bool) -> Any:
    """The target's ``acquire`` for one ``Lock``: with ``shared=True`` for a shared one, and for
    an exclusive one exactly as before modes existed (no keyword: every target takes that call)."""
    if shared:
        return target.acquire(ctx, lock, budget_ns, shared=True)
    return target.acquire(ctx, lock, budget_ns)


def release_call(target: Any, ctx: Context, lock: int, shared: bool) -> Any:
    """The target's ``release`` for one ``Unlock``, in the mode its lock was taken (as ``acquire_call``)."""
    if shared:
        return target.release(ctx, lock, shared=True)
    return target.release(ctx, lock)


async def _unwind(engine: Engine, ctx: Context, held: list[int], modes: list[bool]) -> None:
    """Release what the line holds, newest first, in the mode each was taken (after an error
    status, or when the line was cancelled: then each release is cancelled too)."""
    while held:
        lock = held.pop()
        shared = modes.pop()
        if lock >= 0:
            await _release(engine, ctx, lock, shared)


async def _release(engine: Engine, ctx: Context, lock: int, shared: bool) -> None:
    flag = SHARED_RELEASE if shared else 0
    engine.log(ctx, RELEASE, lock, flag)
    try:
        if engine.cancels:
            await engine.call(ctx, lock, None, shared)
        else:
            await release_call(engine.target, ctx, lock, shared)
    except PASS_THROUGH:
        raise
    except BaseException as exc:  # noqa: BLE001 - SystemExit from a target is its fault
        raise _fault(engine, ctx, lock, "release", exc) from exc
    engine.log(ctx, RELEASED, lock, flag)


def _fault(engine: Engine, ctx: Context, lock: int, call: str, exc: BaseException) -> Violation:
    if isinstance(exc, Violation):  # a fault already reported deeper down
        return exc
    if isinstance(exc, NoYield):
        return Violation("target-fault", "no-yield", f"{call}(L{lock}): {exc}",
                         contexts=(ctx.name,), locks=(lock,), time_ns=engine.machine.now)
    return Violation(
        "target-fault", f"raised-{type(exc).__name__}",
        f"{call}(L{lock}) raised {type(exc).__name__}: {exc}",
        contexts=(ctx.name,), locks=(lock,), time_ns=engine.machine.now,
    )
