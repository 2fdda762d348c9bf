"""``trio_budget``: an acquisition's budget as a trio cancel scope, timed to the nanosecond.

The natural way to honour a budget over trio is ``with trio.move_on_after(budget_ns / 1e9):``.
It works, but the oracles can judge it only loosely: trio's deadlines are float seconds, and
``current_time() + budget_ns / 1e9`` is a sum of two rounded floats that may pass a nanosecond
after the budget; and nothing tells the ground truth when the clock started or when it ran
out, so a lock that overstays its budget by less than ``Timeouts.slack_ns`` is not caught.

``with lockfuzz.trio_budget(ctx, lock, budget_ns):`` is the same scope, marked:

- it marks the timeout clock armed (``Mark.ARMED``) and sets the scope's deadline to the float
  that trio's clock (``VirtualClock``: nanoseconds / 1e9) reads at exactly start + budget, so
  the deadline passes at that nanosecond, no later;
- when the deadline ends a wait in trio, the driver marks the clock expired there
  (``Mark.EXPIRED``, ``TrioEngine._woken_in_trio``), and counts how late, in the waiter's own
  time, a timed wait that began before the deadline ended (``Timeouts.late_ns``; a shielded
  wait is no timed wait: it waits for another context);
- if the scope caught the cancellation without such a wake (the deadline reached the task at a
  checkpoint: a spinner), it marks the clock expired on the way out.

So the ETIMEDOUT is judged to the nanosecond (``etimedout/early`` before the budget,
``bounded-waiting/late`` past it), as rqspinlock's own clock is. What follows the expiry (the
waiter's way out: trio unwinding it, a ``finally`` that retakes an inner lock) is held to the
budget plus ``Timeouts.slack_ns``, as before.
"""

from __future__ import annotations

from typing import Any

import trio

from .._model._status import Mark

__all__ = ["trio_budget"]


def trio_budget(ctx: Any, lock: int, budget_ns: int) -> _BudgetScope:
    """A cancel scope for one acquisition of ``lock`` with ``budget_ns`` (see the module doc):
    use it where you would write ``trio.move_on_after(budget_ns / 1e9)``, then return
    ``Status.ETIMEDOUT`` after the ``with`` block if it was left by the deadline. Entering it
    gives the ``trio.CancelScope``."""
    ctx.mark(Mark.ARMED, lock)
    # The float trio's clock reads at start + budget (VirtualClock.current_time divides the
    # same integer the same way), so the deadline passes at exactly that nanosecond.
    scope = trio.CancelScope(deadline=(ctx.machine.now + budget_ns) / 1e9)
    ctx.budget_scope = scope
    return _BudgetScope(ctx, lock, scope)


class _BudgetScope:
    """What ``trio_budget`` returns: its cancel scope, and the expiry marked on the way out if
    the driver did not mark it at a wake. (A class, not ``contextlib.contextmanager``: it is
    entered once per acquisition, and a generator costs three times as much.)"""

    __slots__ = ("ctx", "lock", "scope")

    def __init__(self, ctx: Any, lock: int, scope: trio.CancelScope) -> None:
        self.ctx, self.lock, self.scope = ctx, lock, scope

    def __enter__(self) -> trio.CancelScope:
        return self.scope.__enter__()

    def __exit__(self, *exc: Any) -> bool:
        ctx, scope = self.ctx, self.scope
        try:
            return scope.__exit__(*exc)
        finally:
            if ctx.budget_scope is scope:  # the driver did not mark it at a wake
                ctx.budget_scope = None
                if scope.cancelled_caught:
                    ctx.mark(Mark.EXPIRED, self.lock)
