"""``programs()``, ``budgets()`` and ``schedules()``."""

from __future__ import annotations

from typing import Any, Sequence

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from lockfuzz._program import CpuProgram, Handler, Lock, OnError, Program, Unlock, Work
from lockfuzz._status import Level

__all__ = ["budgets", "programs", "programs_for", "schedules"]

_MS = 1_000_000


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f">= {low}"
        raise InvalidArgument(f"{name}={value!r}: expected an int {bound}")


def _check_range(lo_name: str, lo: int, hi_name: str, hi: int) -> None:
    if lo > hi:
        raise InvalidArgument(f"{lo_name}={lo!r} > {hi_name}={hi!r}: the minimum must not exceed the maximum")


def budgets(*, min_ns: int = 0, max_ns: int = 1_000 * _MS, near: Sequence[int] = ()) -> st.SearchStrategy[int]:
    """Acquisition budgets in virtual nanoseconds.

    Both sides of a deadline matter, so values just below, at and just above each of ``near``
    (a target's own timeouts: 250 ms, 500 ms for rqspinlock) are drawn often, and the rest
    spread over ``[min_ns, max_ns]``. Shrinks toward ``min_ns``.
    """
    _check_int("min_ns", min_ns, 0)
    _check_int("max_ns", max_ns, 0)
    _check_range("min_ns", min_ns, "max_ns", max_ns)
    for i, t in enumerate(near):
        _check_int(f"near[{i}]", t, 0)
    edges = sorted({v for t in near for v in (t - 1, t, t + 1) if min_ns <= v <= max_ns})
    spread = st.integers(min_ns, max_ns)
    if not edges:
        return spread
    return st.one_of(spread, st.sampled_from(edges))


def schedules(*, min_size: int = 0, max_size: int = 200, max_decision: int = 7) -> st.SearchStrategy[list[int]]:
    """Lists of decisions: 0 keeps the current context running, fires nothing (so a schedule
    that shrinks toward zeros has fewer preemptions); ``d`` picks option ``d % n`` of ``n``."""
    _check_int("min_size", min_size, 0)
    _check_int("max_size", max_size, 0)
    _check_range("min_size", min_size, "max_size", max_size)
    _check_int("max_decision", max_decision, 0)
    return st.lists(st.integers(0, max_decision), min_size=min_size, max_size=max_size)


@st.composite
def _section(draw: Any, locks: Sequence[int], depth: int, max_work_ns: int, budget: st.SearchStrategy[int], max_inner: int, ordered: bool) -> list[Any]:
    """One critical section: lock, work and nested sections, unlock (flattened)."""
    lock = draw(st.sampled_from(locks))
    ops: list[Any] = [Lock(lock, draw(budget))]
    if max_work_ns:
        ops.append(Work(draw(st.integers(0, max_work_ns))))
    if depth > 1:
        inner_locks = [x for x in locks if x > lock] if ordered else list(locks)
        if inner_locks:
            for sub in draw(st.lists(_section(inner_locks, depth - 1, max_work_ns, budget, max_inner, ordered), max_size=max_inner)):
                ops.extend(sub)
    ops.append(Unlock(lock))
    return ops


@st.composite
def _line(draw: Any, locks: Sequence[int], max_sections: int, max_depth: int, max_work_ns: int, budget: st.SearchStrategy[int], ordered: bool, min_sections: int = 0) -> tuple[Any, ...]:
    ops: list[Any] = []
    for sec in draw(st.lists(_section(locks, max_depth, max_work_ns, budget, max_sections, ordered), min_size=min_sections, max_size=max_sections)):
        ops.extend(sec)
        if max_work_ns and draw(st.booleans()):
            ops.append(Work(draw(st.integers(0, max_work_ns))))
    return tuple(ops)


def programs(
    *,
    min_cpus: int = 1,
    max_cpus: int = 3,
    min_locks: int = 1,
    max_locks: int = 2,
    max_depth: int = 2,
    max_sections: int = 2,
    max_handlers: int = 1,
    handler_levels: Sequence[Level] = (Level.SOFTIRQ, Level.HARDIRQ, Level.NMI),
    max_work_ns: int = 2 * _MS,
    budgets: st.SearchStrategy[int] | None = None,
    max_retries: int = 0,
    ordered: bool = False,
) -> st.SearchStrategy[Program]:
    """Lock-nesting programs.

    ``ordered=True`` draws only programs that cannot deadlock, for targets that neither detect
    deadlocks nor time out: nested sections take locks in increasing order, and interrupt
    handlers run at one level (the first of ``handler_levels``) and take only locks that no task
    takes (the kernel's irq-safe locks), so no cycle can form through an interrupt.
    """
    _check_int("min_cpus", min_cpus, 1)
    _check_int("max_cpus", max_cpus, 1)
    _check_range("min_cpus", min_cpus, "max_cpus", max_cpus)
    _check_int("min_locks", min_locks, 1)
    _check_int("max_locks", max_locks, 1)
    _check_range("min_locks", min_locks, "max_locks", max_locks)
    _check_int("max_depth", max_depth, 1)
    _check_int("max_sections", max_sections, 1)
    _check_int("max_handlers", max_handlers, 0)
    _check_int("max_work_ns", max_work_ns, 0)
    _check_int("max_retries", max_retries, 0)
    levels = [Level(x) if not isinstance(x, str) else Level[x.upper()] for x in handler_levels]
    if max_handlers and (not levels or Level.TASK in levels):
        raise InvalidArgument(f"handler_levels={handler_levels!r}: expected levels above task")
    if ordered and max_handlers and max_locks < 2:
        raise InvalidArgument(
            f"max_locks={max_locks!r} with ordered=True and handlers: handlers need a lock of their own, so at least 2"
        )
    budget = budgets if budgets is not None else st.just(1_000 * _MS)
    return _programs(min_cpus, max_cpus, min_locks, max_locks, max_depth, max_sections, max_handlers, tuple(levels),
                     max_work_ns, budget, max_retries, ordered)


@st.composite
def _programs(draw: Any, min_cpus, max_cpus, min_locks, max_locks, max_depth, max_sections, max_handlers, levels,  # type: ignore[no-untyped-def]
              max_work_ns, budget, max_retries, ordered) -> Program:
    n_locks = draw(st.integers(max(min_locks, 2 if ordered and max_handlers else 1), max_locks))
    all_locks = list(range(n_locks))
    if ordered and max_handlers:
        task_locks, irq_locks = all_locks[:-1], all_locks[-1:]
        irq_levels = levels[:1]
    else:
        task_locks, irq_locks, irq_levels = all_locks, all_locks, levels
    n_cpus = draw(st.integers(min_cpus, max_cpus))
    cpus = []
    for cpu in range(n_cpus):
        task = draw(_line(task_locks, max_sections, max_depth, max_work_ns, budget, ordered, min_sections=1))
        handlers = []
        for _ in range(draw(st.integers(0, max_handlers))):
            level = draw(st.sampled_from(irq_levels))
            ops = draw(_line(irq_locks, 1, max_depth, max_work_ns // 4, budget, ordered, min_sections=1))
            handlers.append(Handler(level, ops))
        cpus.append(CpuProgram(task=task, handlers=tuple(handlers)))
    retries = draw(st.integers(0, max_retries)) if max_retries else 0
    on_error = OnError(retries=retries, backoff_ns=draw(st.integers(0, max_work_ns)) if retries else 0)
    return Program(cpus=tuple(cpus), n_locks=n_locks, on_error=on_error)


def programs_for(target: Any, **kwargs: Any) -> st.SearchStrategy[Program]:
    """``programs()`` suited to a target's capabilities: ordered programs for a target that
    neither detects deadlocks nor times out (or else every deadlock would be the program's),
    and budgets around its fixed timeouts. Keyword arguments override."""
    caps = target.capabilities
    if "ordered" not in kwargs:
        kwargs["ordered"] = caps.timeouts is None and not caps.detects_deadlocks
        if kwargs["ordered"] and kwargs.get("max_handlers", 1) and kwargs.get("max_locks", 2) < 2:
            kwargs["max_handlers"] = 0
    if "budgets" not in kwargs and caps.timeouts is not None and caps.timeouts.per_call:
        kwargs["budgets"] = budgets(min_ns=0, max_ns=20 * _MS, near=(_MS,))
    return programs(**kwargs)
