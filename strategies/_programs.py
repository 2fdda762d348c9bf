"""``programs()``, ``budgets()`` and ``schedules()``."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Sequence

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from lockfuzz._model._program import CpuProgram, Handler, Lock, OnError, Program, Unlock, Work
from lockfuzz._model._status import Level

__all__ = ["budgets", "programs", "programs_for", "schedules"]

_MS = 1_000_000
#: The largest per-call budget ``programs_for`` draws by default (``budget_max_ns``).
BUDGET_MAX_NS = 20 * _MS


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


@dataclass(frozen=True)
class _Shape:
    """Everything ``programs()`` was asked for, passed down to the composite strategies."""

    min_cpus: int
    max_cpus: int
    min_locks: int
    max_locks: int
    max_depth: int
    max_sections: int
    max_handlers: int
    levels: tuple[Level, ...]
    work: st.SearchStrategy[int] | None
    budget: st.SearchStrategy[int]
    max_retries: int
    ordered: bool
    modes: tuple[str, ...] = ("exclusive",)
    capacity_range: tuple[int, int] | None = None


# The composites below draw through strategy objects made once per (shape, locks, depth) and
# kept (``_sections``, ``_pick``, ``_ints``): a Hypothesis strategy made afresh at each draw is
# validated and unwrapped again (LazyStrategy), which cost a campaign more than the draws
# themselves (a third of a ticket campaign's time outside the engine). The programs come from
# the same distribution, but not the same ones per seed: Hypothesis's generation (its mutations
# and constant injection) keys some of its state on strategy objects, so reusing them changed
# which programs a given seed draws.
_BOOLEANS = st.booleans()


@lru_cache(maxsize=4096)
def _ints(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high)


def _pick(values: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    # Keyed by the values' types too: (Level.SOFTIRQ,) == (1,), and locks must not be drawn as levels.
    return _sampled(values, tuple(type(v) for v in values))


@lru_cache(maxsize=4096)
def _sampled(values: tuple[Any, ...], types: tuple[type, ...]) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


@lru_cache(maxsize=1024)
def _sections(
    shape: _Shape, locks: tuple[int, ...], depth: int, min_size: int, max_size: int
) -> st.SearchStrategy[Any]:
    return st.lists(_section(shape, locks, depth), min_size=min_size, max_size=max_size)


@lru_cache(maxsize=1024)
def _lines(shape: _Shape, locks: tuple[int, ...], max_sections: int) -> st.SearchStrategy[tuple[Any, ...]]:
    return _line(shape, locks, max_sections)


@st.composite
def _section(draw: Any, shape: _Shape, locks: tuple[int, ...], depth: int) -> list[Any]:
    """One critical section: lock, work and nested sections, unlock (flattened)."""
    lock = draw(_pick(locks))
    budget = draw(shape.budget)
    # Exclusive first, so that shrinking goes toward exclusive where the target allows it; with
    # one mode nothing is drawn, so exclusive-only programs are drawn exactly as before modes.
    shared = shape.modes == ("shared",) or (len(shape.modes) > 1 and draw(_pick(shape.modes)) == "shared")
    ops: list[Any] = [Lock(lock, budget, shared=shared)]
    if shape.work is not None:
        ops.append(Work(draw(shape.work)))
    if depth > 1:
        inner = tuple(x for x in locks if x > lock) if shape.ordered else locks
        if inner:
            for sub in draw(_sections(shape, inner, depth - 1, 0, shape.max_sections)):
                ops.extend(sub)
    ops.append(Unlock(lock))
    return ops


@st.composite
def _line(draw: Any, shape: _Shape, locks: tuple[int, ...], max_sections: int) -> tuple[Any, ...]:
    """What one context does: critical sections, with work between them."""
    ops: list[Any] = []
    for sec in draw(_sections(shape, locks, shape.max_depth, 1, max_sections)):
        ops.extend(sec)
        if shape.work is not None and draw(_BOOLEANS):
            ops.append(Work(draw(shape.work)))
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
    long_work_ns: Sequence[int] = (),
    budgets: st.SearchStrategy[int] | None = None,
    max_retries: int = 0,
    ordered: bool = False,
    modes: Sequence[str] = ("exclusive",),
    capacity_range: tuple[int, int] | None = None,
) -> st.SearchStrategy[Program]:
    """Lock-nesting programs.

    Work inside and between critical sections is drawn from ``[0, max_work_ns]``, and now and
    then from ``long_work_ns`` (holds long enough to make a fixed-timeout lock's waiters give
    up: rqspinlock's 250 ms and 500 ms). ``ordered=True`` draws only programs that cannot
    deadlock, for targets that neither detect deadlocks nor time out: nested sections take locks
    in increasing order, and interrupt handlers run at one level (the first of
    ``handler_levels``) and take only locks that no task takes (the kernel's irq-safe locks), so
    no cycle can form through an interrupt.

    ``modes``: the modes acquisitions are drawn in, a target's ``Sharing.modes``: exclusive only
    (the default), ``("exclusive", "shared")`` (a reader-writer lock: each acquisition either,
    shrinking toward exclusive) or ``("shared",)`` (a semaphore). ``ordered=True`` keeps shared
    programs deadlock-free too: a lock is never taken again inside its own section (so no reader
    re-takes its lock while a writer may queue behind it, and no permit holder asks a full
    semaphore for another), and whoever waits for a lock, in either mode and behind any queued
    writer, waits only for contexts that hold it or wait for it, each holding only earlier locks.
    Unordered programs (for targets that time out or detect deadlocks) may re-take a lock in
    either mode, as they may re-take an exclusive one: the target's timeouts or detection are
    what is tested there.

    ``capacity_range=(low, high)``: each lock gets a capacity drawn from it (``Program.capacities``,
    shrinking toward ``low``), for a target built with one per lock (``Sharing.capacity_range``);
    None (the default) draws none.
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
    for i, ns in enumerate(long_work_ns):
        _check_int(f"long_work_ns[{i}]", ns, 0)
    known = ("exclusive", "shared")
    if isinstance(modes, str) or not modes or not set(modes) <= set(known) or len(set(modes)) != len(modes):
        raise InvalidArgument(
            f"modes={modes!r}: expected ('exclusive',), ('shared',) or ('exclusive', 'shared') (Sharing.modes)"
        )
    modes = tuple(sorted(modes, key=known.index))
    if capacity_range is not None:
        pair = tuple(capacity_range) if isinstance(capacity_range, (tuple, list)) else ()
        if len(pair) != 2:
            raise InvalidArgument(f"capacity_range={capacity_range!r}: expected None or (low, high)")
        _check_int("capacity_range[0]", pair[0], 1)
        _check_int("capacity_range[1]", pair[1], 1)
        _check_range("capacity_range[0]", pair[0], "capacity_range[1]", pair[1])
        capacity_range = (pair[0], pair[1])
    try:
        levels = tuple(Level[x.upper()] if isinstance(x, str) else Level(x) for x in handler_levels)
    except (KeyError, ValueError):
        levels = ()
    if max_handlers and (not levels or Level.TASK in levels):
        raise InvalidArgument(f"handler_levels={handler_levels!r}: expected levels above task")
    if ordered and max_handlers and max_locks < 2:
        raise InvalidArgument(
            f"max_locks={max_locks!r} with ordered=True and handlers: handlers need a lock of their own, "
            "so at least 2"
        )
    work: st.SearchStrategy[int] | None = st.integers(0, max_work_ns) if max_work_ns else None
    if long_work_ns:
        # About one work in eight is long: enough to reach the timeout paths in most programs,
        # few enough that runs stay short (a 500 ms wait runs a deadlock check every 1 ms).
        longs = st.sampled_from(sorted(set(long_work_ns)))
        work = longs if work is None else st.one_of(*[work] * 7, longs)
    shape = _Shape(
        min_cpus, max_cpus, min_locks, max_locks, max_depth, max_sections, max_handlers, levels, work,
        budgets if budgets is not None else st.just(1_000 * _MS), max_retries, ordered, tuple(modes), capacity_range,
    )
    return _programs(shape)


@st.composite
def _programs(draw: Any, shape: _Shape) -> Program:
    ordered_irqs = shape.ordered and shape.max_handlers
    n_locks = draw(_ints(max(shape.min_locks, 2 if ordered_irqs else 1), shape.max_locks))
    all_locks = tuple(range(n_locks))
    capacities: tuple[int, ...] = ()
    if shape.capacity_range is not None:
        low, high = shape.capacity_range
        capacities = tuple(draw(st.lists(_ints(low, high), min_size=n_locks, max_size=n_locks)))
    if ordered_irqs:
        task_locks, irq_locks, irq_levels = all_locks[:-1], all_locks[-1:], shape.levels[:1]
    else:
        task_locks, irq_locks, irq_levels = all_locks, all_locks, shape.levels
    cpus = []
    for _ in range(draw(_ints(shape.min_cpus, shape.max_cpus))):
        task = draw(_lines(shape, task_locks, shape.max_sections))
        handlers = []
        for _ in range(draw(_ints(0, shape.max_handlers))):
            level = draw(_pick(irq_levels))
            handlers.append(Handler(level, draw(_lines(shape, irq_locks, 1))))
        cpus.append(CpuProgram(task=task, handlers=tuple(handlers)))
    retries = draw(_ints(0, shape.max_retries)) if shape.max_retries else 0
    backoff = draw(shape.work) if retries and shape.work is not None else 0
    return Program(
        cpus=tuple(cpus), n_locks=n_locks, on_error=OnError(retries=retries, backoff_ns=backoff), capacities=capacities
    )


def programs_like(program: Program, *, budgets: st.SearchStrategy[int] | None = None) -> st.SearchStrategy[Program]:
    """One program, as written: ``lockfuzz fuzz --program`` searches its schedules only.

    With ``budgets`` (a target that honours per-call budgets), each ``Lock`` written without a
    budget (``Lock(0)``: the default one second, ``lock L0`` in the text form) gets one drawn,
    so both sides of its deadline are tried; budgets written down are kept as they are.
    """
    if not isinstance(program, Program):
        raise InvalidArgument(f"program={program!r}: expected a lockfuzz.Program")
    default = Lock.budget_ns  # what ``lock L0`` means when no budget is written
    open_slots = [
        (c, h, i)
        for c, cp in enumerate(program.cpus)
        for h, ops in enumerate((cp.task, *(x.ops for x in cp.handlers)))
        for i, op in enumerate(ops)
        if isinstance(op, Lock) and op.budget_ns == default
    ]
    if budgets is None or not open_slots:
        return st.just(program)

    def with_budgets(drawn: list[int]) -> Program:
        given = dict(zip(open_slots, drawn))
        cpus = []
        for c, cp in enumerate(program.cpus):
            lines = [cp.task, *(x.ops for x in cp.handlers)]
            new = [
                tuple(Lock(op.lock, given[(c, h, i)], shared=op.shared) if isinstance(op, Lock) and (c, h, i) in given
                      else op for i, op in enumerate(ops))
                for h, ops in enumerate(lines)
            ]
            handlers = tuple(Handler(x.level, ops) for x, ops in zip(cp.handlers, new[1:]))
            cpus.append(CpuProgram(task=new[0], handlers=handlers))
        return replace(program, cpus=tuple(cpus))

    n = len(open_slots)
    return st.lists(budgets, min_size=n, max_size=n).map(with_budgets)


def budgets_for(target: Any, *, budget_max_ns: int | None = None) -> st.SearchStrategy[int] | None:
    """The budgets campaigns draw for ``target``'s acquisitions: up to ``budget_max_ns``
    (``BUDGET_MAX_NS``, 20 ms, if not given), often near 1 ms; None (the default budget) for a
    target without per-call budgets unless ``budget_max_ns`` is given."""
    t = target.capabilities.timeouts
    if budget_max_ns is None and (t is None or not t.per_call):
        return None
    hi = BUDGET_MAX_NS if budget_max_ns is None else budget_max_ns
    return budgets(min_ns=0, max_ns=hi, near=(_MS,) if hi >= _MS else ())


def interrupts_for(target: Any) -> bool:
    """Whether programs for ``target`` have interrupt handlers by default: what its capabilities
    say, else on for targets over cells and off for targets over trio."""
    from lockfuzz._trio._driver import driver_of  # checks the driver's name, as the engine does

    wanted = target.capabilities.interrupts
    if wanted is not None:
        return bool(wanted)
    return driver_of(target) != "trio"


def capabilities_for(target: Any, params: dict[str, Any] | None = None) -> Any:
    """What ``target`` promises when built with ``params``: the class's ``capabilities``, or,
    given parameters, those of an instance built with them on a one-CPU machine. A target whose
    promises depend on its parameters says so on its instance (``trio_semaphore``'s capacity:
    ``--param capacity=3``), as every run of the engine reads them."""
    if not params:
        return target.capabilities
    from lockfuzz._engine._machine import Machine

    instance = target(Machine(n_cpus=1, n_locks=1), **params)
    return getattr(instance, "capabilities", None) or target.capabilities


class _Promising:
    """``target`` as the strategies see it, with the promises of an instance (``capabilities_for``)."""

    def __init__(self, target: Any, capabilities: Any) -> None:
        self._target = target
        self.capabilities = capabilities
        self.__name__ = target.__name__

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def programs_for(target: Any, *, params: dict[str, Any] | None = None, **kwargs: Any) -> st.SearchStrategy[Program]:
    """``programs()`` suited to a target's capabilities. Keyword arguments override.

    ``params`` are the target's constructor parameters, where its promises depend on them (a
    semaphore's capacity): the programs are drawn for what an instance built with them declares.

    - A target that neither detects deadlocks nor times out gets ordered programs (otherwise
      every deadlock would be the program's, not the target's).
    - A target with per-call budgets gets budgets around 1 ms, on both sides of the work.
    - A target with fixed timeouts gets some holds just past them (``long_work_ns``), so that its
      waiters give up and its timeout and teardown paths run.
    - A target over trio gets no interrupt handlers unless its capabilities ask for them
      (``Capabilities.interrupts``; see ``interrupts_for``).
    - A target written for at most N CPUs (``Capabilities.max_cpus``) gets programs of at most N;
      asking for more is an ``InvalidArgument``.
    - A shared lock (``Capabilities.sharing``) gets acquisitions in its modes (``Sharing.modes``):
      exclusive and shared for a reader-writer lock, shared only for a semaphore; one built with a
      capacity per lock (``Sharing.capacity_range``) gets each lock's capacity drawn from it.
    - ``budget_max_ns`` (default ``BUDGET_MAX_NS``, 20 ms, for targets with per-call budgets;
      for any other target only when given) bounds the drawn budgets: raise it to test a lock
      whose holders or releases take longer (``lockfuzz fuzz --budget-max``).
    """
    budget_max_ns = kwargs.pop("budget_max_ns", None)
    if budget_max_ns is not None:
        _check_int("budget_max_ns", budget_max_ns, 1)
    if params:
        target = _Promising(target, capabilities_for(target, params))
    caps = target.capabilities
    limit = caps.max_cpus
    if limit is not None:
        wanted = kwargs.get("max_cpus", min(3, limit))
        if isinstance(wanted, int) and wanted > limit:
            raise InvalidArgument(
                f"max_cpus={wanted!r}: {target.__name__} is written for at most {limit} CPUs "
                "(Capabilities.max_cpus)"
            )
        kwargs["max_cpus"] = wanted
    if "max_handlers" not in kwargs and not interrupts_for(target):
        kwargs["max_handlers"] = 0
    if "ordered" not in kwargs:
        kwargs["ordered"] = caps.timeouts is None and not caps.detects_deadlocks
        if kwargs["ordered"] and kwargs.get("max_handlers", 1) and kwargs.get("max_locks", 2) < 2:
            kwargs["max_handlers"] = 0
    t = caps.timeouts
    if "budgets" not in kwargs:
        drawn = budgets_for(target, budget_max_ns=budget_max_ns)
        if drawn is not None:
            kwargs["budgets"] = drawn
    if "modes" not in kwargs and caps.sharing is not None:
        kwargs["modes"] = caps.sharing.modes
    if "capacity_range" not in kwargs and caps.sharing is not None:
        kwargs["capacity_range"] = caps.sharing.capacity_range
    if "long_work_ns" not in kwargs and t is not None and not t.per_call:
        kwargs["long_work_ns"] = (t.min_ns + t.slack_ns, t.max_quiet_ns + t.slack_ns)
    return programs(**kwargs)
