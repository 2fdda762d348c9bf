"""Reports of a trace for people: a per-CPU timeline in text, and a Perfetto / chrome://tracing file.

The timeline is what a failing case is read through (the CLI, the pytest plugin and
``lockfuzz.check`` all print it), so it is built for a terminal of 120 columns: one column per
CPU, one row per event, the violating event marked. A row holds one event only, so text may run
past its own column without ever hiding another's: the columns show *where* an event happened,
the row order shows *when*.

A run of a lock with timeouts is mostly one polling loop repeated thousands of times (6,000
events to show a 1 s budget overrun). Identical stretches of rows (same contexts, same accesses,
same values; only the times differ) are folded to their first occurrence and one line saying how
often and until when they repeat, so that such a case still reads in a screenful. The final
check (a fresh context taking every lock once the programs ended) is one line when it passed,
and shown in full only when it is what failed.

The Perfetto export uses the Chrome JSON trace event format, which both Perfetto and
chrome://tracing open: https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from .._model._errors import Violation
from .._engine._events import (
    ACQUIRE, ACQUIRED, CLOCK, DONE, FINAL, IRQ_ENTER, IRQ_EXIT, KIND_NAMES, MARK, RELEASE, RELEASED, Trace, event_text,
)
from .._engine._events import CANCEL, SHARED_RELEASE, acquire_budget, acquire_shared, cancel_text
from .._engine._machine import CHECKPOINT, LOAD, SLEEP, START, STORE, STORE_FIELD, WAIT
from .._model._status import Status

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from ._failure_file import Failure

__all__ = ["display_path", "failure_report", "minimality", "perfetto", "timeline", "violation_text"]

ViolationLike = Union[Violation, Mapping[str, Any], None]

#: The longest repeated stretch of rows the folder looks for. A polling loop of the bundled
#: targets is 5-7 rows (a clock jump and the accesses of one check); 64 leaves room for loops
#: of several contexts that alternate.
_MAX_PERIOD = 64
_CONTEXT_NAME = re.compile(r"^cpu(\d+)\.(.+)$")


def violation_text(violation: ViolationLike) -> str:
    """The one-line description of a violation, whether a ``Violation`` or its JSON form (as a
    failure file stores it): the same text either way, so a replay prints what the fuzz printed."""
    if violation is None:
        return ""
    if isinstance(violation, Violation):
        return violation.describe()
    v = Violation(
        str(violation.get("oracle", "?")), str(violation.get("kind", "?")), str(violation.get("message", "")),
        contexts=tuple(violation.get("contexts") or ()), locks=tuple(violation.get("locks") or ()),
        time_ns=int(violation.get("time_ns") or 0), event_index=int(violation.get("event_index", -1)),
    )
    return v.describe()


def _violation_index(violation: ViolationLike) -> int | None:
    if violation is None:
        return None
    if isinstance(violation, Violation):
        return violation.event_index
    return int(violation.get("event_index", -1))


def _final_index(trace: Trace) -> int | None:
    """The index of the FINAL event (the final check begins), or None when the run has none."""
    for index in range(len(trace.events) - 1, -1, -1):
        if trace.events[index][2] == FINAL:
            return index
    return None


def _final_failed(violation: ViolationLike, final: int) -> bool:
    """Whether the violation is the final check's: from its oracle, or at or after its start. An
    unknown event index counts as the final check's, so that nothing that may matter is hidden."""
    if violation is None:
        return False
    if isinstance(violation, Violation):
        oracle, index = violation.oracle, violation.event_index
    else:
        oracle, index = str(violation.get("oracle")), int(violation.get("event_index", -1))
    return oracle == "final-state" or not 0 <= index < final


def _final_summary(trace: Trace, final: int) -> str:
    """The final check that passed, in one line: who took which locks, and how it went."""
    events = trace.events[final + 1 :]
    contexts = trace.contexts
    names = list(dict.fromkeys(contexts[c] for _, c, *_ in events if c is not None and 0 <= c < len(contexts)))
    took = [f"L{obj}" for _, _, kind, obj, value in events if kind == ACQUIRED and value == Status.OK]
    refused = [f"L{obj} -> {_status_name(value)}" for _, _, kind, obj, value in events
               if kind == ACQUIRED and value != Status.OK]
    released = sum(1 for e in events if e[2] == RELEASED)
    what = f"{', '.join(names) or 'a fresh context'} took {', '.join(took) or 'no lock'}"
    if took and released == len(took):
        what += " and released " + ("it" if len(took) == 1 else "them")
    verdict = "ok" if not refused and released == len(took) else "; ".join(refused) or "not all released"
    return f"== final check: {what}: {verdict} ({_count(len(events), 'event')}) =="


def _split_context(name: str) -> tuple[str, str]:
    """``cpu1.hardirq#0`` -> (``cpu1``, ``hardirq#0``). A context not named after a CPU gets a
    column of its own (adapters over real code may name their contexts differently)."""
    m = _CONTEXT_NAME.match(name)
    if m is None:
        return name, ""
    return f"cpu{m.group(1)}", m.group(2)


def _cpu_order(column: str) -> tuple[int, Any]:
    m = re.match(r"^cpu(\d+)$", column)
    return (0, int(m.group(1))) if m else (1, column)


def _value(v: Any) -> str:
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v) if -10 < v < 10 else hex(v)
    return repr(v)


def _duration(ns: int) -> str:
    """Exact and short: 1 s, 250 ms, 65.536 us, 17 ns."""
    for unit, scale in (("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)):
        if ns >= scale:
            whole, frac = divmod(ns, scale)
            if not frac:
                return f"{whole} {unit}"
            digits = len(str(scale)) - 1
            return f"{whole}.{str(frac).rjust(digits, '0').rstrip('0')} {unit}"
    return f"{ns} ns"


def _status_name(value: int) -> str:
    try:
        return Status(value).name
    except ValueError:
        return str(value)


class _Row:
    __slots__ = ("column", "index", "key", "span", "text", "time")

    def __init__(self, index: int, time: int, column: int, text: str, key: tuple[Any, ...], span: bool = False):
        self.index = index  # the event's index in the trace, -1 for a line the report adds
        self.time = time
        self.column = column
        self.text = text
        self.key = key  # what must be equal for two rows to count as a repetition
        self.span = span  # drawn across the columns (clock jumps, the final check, notes)


def _rows(trace: Trace, steps: bool, keep: int | None) -> tuple[list[_Row], list[str]]:
    """One row per shown event, and the column names (CPUs in order)."""
    contexts = list(trace.contexts)
    split = [_split_context(name) for name in contexts]
    columns = sorted({c for c, _ in split}, key=_cpu_order)
    column_of = {c: i for i, c in enumerate(columns)}
    cells = list(trace.cells)
    stacks: dict[str, list[str]] = {}  # column -> the labels of the contexts running there
    started: set[int] = set()
    shared_by: dict[int, bool] = {}  # each context's acquisition in progress: shared?
    rows: list[_Row] = []
    prev_time = 0
    for index, ev in enumerate(trace.events):
        t, ctx, kind, obj, value = ev
        if ctx is None or ctx < 0 or ctx >= len(contexts):
            if kind == CLOCK:
                text = f"~~ clock jumps +{_duration(t - prev_time)} (every context waits) ~~"
                rows.append(_Row(index, t, 0, text, ("clock",), span=True))
            elif kind == FINAL:
                text = "== final check: a fresh context takes every lock =="
                rows.append(_Row(index, t, 0, text, (kind,), span=True))
            else:
                rows.append(_Row(index, t, 0, KIND_NAMES.get(kind, f"kind {kind}"), (kind, obj, value), span=True))
            prev_time = t
            continue
        prev_time = t
        column, label = split[ctx]
        stack = stacks.setdefault(column, [])
        if ctx not in started and kind != IRQ_ENTER:
            started.add(ctx)
            stack.append(label)
        prefix = f"{label}: " if label and label != "task" else ""
        text = _event_text(ev, cells, kind, obj, value)
        if kind == ACQUIRE:
            shared_by[ctx] = acquire_shared(value)
        elif kind == ACQUIRED and shared_by.pop(ctx, False):  # its return, in the mode it asked for
            text = text.replace(f"acquire L{obj} ->", f"acquire L{obj} shared ->", 1)
        key: tuple[Any, ...] = (ctx, kind, obj, value)
        if kind < 20:
            if kind == SLEEP:
                key = (ctx, kind)  # its value is an absolute deadline: differs in every loop
            hidden = kind == START or kind == CHECKPOINT and not value or not steps  # trio's shown
            if hidden and index != keep:
                continue
            text = "  " + text  # indented under the lock operation the step belongs to
        elif kind == IRQ_ENTER:
            below = stack[-1] if stack else "nothing"
            started.add(ctx)
            stack.append(label)
            text = f"irq enter, interrupts {below}"
        elif kind == IRQ_EXIT:
            if stack and stack[-1] == label:
                stack.pop()
            text = f"irq exit, back to {stack[-1]}" if stack else "irq exit"
        elif kind == DONE and stack and stack[-1] == label:
            stack.pop()
        rows.append(_Row(index, t, column_of[column], prefix + text, key))
    return rows, columns


def _event_text(ev: Any, cells: Sequence[str], kind: int, obj: int, value: Any) -> str:
    if kind < 20:
        name = KIND_NAMES.get(kind, f"op{kind}")
        if kind == SLEEP:
            return f"sleep until {value:,}" if isinstance(value, int) else "sleep"
        if kind == CHECKPOINT and value:
            return "trio checkpoint"
        if kind > SLEEP:
            return name
        cell = cells[obj] if 0 <= obj < len(cells) else f"cell{obj}"
        if kind in (LOAD, WAIT):
            return f"{name} {cell} = {_value(value)}"
        if kind in (STORE, STORE_FIELD):
            return f"{name} {cell} := {_value(value)}"
        return f"{name} {cell} (was {_value(value)})"
    if kind == ACQUIRE:
        mode = " shared" if acquire_shared(value) else ""
        return f"acquire L{obj}{mode} ... (budget {_duration(acquire_budget(value))})"
    if kind == ACQUIRED:
        status = _status_name(value)
        return f"acquire L{obj} -> {status}" + ("" if value == Status.OK else " !")
    if kind == RELEASE:
        return f"release L{obj}{' shared' if value == SHARED_RELEASE else ''} ..."
    if kind == RELEASED:
        return f"release L{obj}{' shared' if value == SHARED_RELEASE else ''} -> returned"
    if kind == DONE:
        return "done"
    if kind == MARK:
        return f"  ({event_text(ev, (), cells)})"  # the target's own word for the step above
    if kind == CANCEL:
        return cancel_text(obj, value) + " !"
    return KIND_NAMES.get(kind, f"kind {kind}")


def _fold(rows: list[_Row], protect: int | None) -> list[_Row]:
    """Fold stretches of identical rows (by key) to their first occurrence plus a note.

    At each row, the periods tried are the distances to the next occurrences of the same key
    (up to ``_MAX_PERIOD``): a repetition must start again with the same row, and looking only
    there keeps a 500,000-event livelock trace fast. The period that covers the most rows wins
    (the shortest on a tie). A stretch is folded only if it repeats at least twice after its
    first occurrence and hides at least three rows, and never across the violating event.
    """
    keys = [r.key for r in rows]
    n = len(rows)
    following = [n] * n  # the index of the next row with the same key
    seen: dict[Any, int] = {}
    for i in range(n - 1, -1, -1):
        following[i] = seen.get(keys[i], n)
        seen[keys[i]] = i
    stop = n
    if protect is not None:
        for i, r in enumerate(rows):
            if r.index == protect:
                stop = i  # fold only before the violating row, and separately after it
                break
    out: list[_Row] = []
    i = 0
    while i < n:
        limit = stop if i < stop else n
        best_p, best_reps = 0, 0
        j = following[i]
        while j < n and j - i <= _MAX_PERIOD:
            p = j - i
            if i + 3 * p > limit:
                break
            block = keys[i:j]
            reps = 1
            while i + (reps + 1) * p <= limit and keys[i + reps * p:i + (reps + 1) * p] == block:
                reps += 1
            if reps >= 3 and p * (reps - 1) >= 3 and p * reps > best_p * best_reps:
                best_p, best_reps = p, reps
            j = following[j]
        if not best_p:
            out.append(rows[i])
            i += 1
            continue
        out.extend(rows[i:i + best_p])
        end = i + best_p * best_reps
        last = rows[end - 1]
        what = "this row repeats" if best_p == 1 else f"these {best_p} rows repeat"
        note = f"... {what} {best_reps - 1:,} more time(s), until t={last.time:,} ..."
        out.append(_Row(-1, last.time, 0, note, ("note",), span=True))
        i = end
    return out


def _limit(rows: list[_Row], max_rows: int | None, protect: int | None) -> list[_Row]:
    if max_rows is None or len(rows) <= max_rows:
        return rows
    half = max(1, max_rows // 2)
    keep = set(range(half)) | set(range(len(rows) - half, len(rows)))
    for i, row in enumerate(rows):
        if row.index == protect and protect is not None:
            keep |= set(range(max(0, i - 5), min(len(rows), i + 6)))
    out: list[_Row] = []
    skipped = 0
    for i, r in enumerate(rows):
        if i in keep:
            if skipped:
                out.append(_Row(-1, r.time, 0, f"... {skipped:,} rows not shown ...", ("note",), span=True))
                skipped = 0
            out.append(r)
        else:
            skipped += 1
    return out


def timeline(
    trace: Trace,
    violation: ViolationLike = None,
    *,
    steps: bool = True,
    width: int = 120,
    fold: bool = True,
    max_rows: int | None = 200,
) -> str:
    """The trace as a per-CPU timeline: one column per CPU, one row per event.

    Lock operations, interrupts and clock jumps are always shown; memory steps are indented
    under them (``steps=False`` hides them). ``violation`` (a ``Violation`` or its JSON dict)
    marks its event with ``>>`` and prints its message below. Repeated stretches are folded
    (``fold=False`` shows every row), and so is the final check when it is not what failed (one
    line: who took which locks, and the verdict); at most ``max_rows`` rows are printed (None: all).
    """
    if not isinstance(trace, Trace):
        raise TypeError(f"trace={trace!r}: expected a lockfuzz.Trace")
    protect = _violation_index(violation)
    if protect is not None and not 0 <= protect < len(trace.events):
        protect = None
    rows, columns = _rows(trace, steps, protect)
    final = _final_index(trace)
    if fold and final is not None and not _final_failed(violation, final):
        # The final check passed: its ten-odd rows say nothing about the failure, one line does.
        rows = [r for r in rows if r.index < final]
        rows.append(_Row(final, trace.events[final][0], 0, _final_summary(trace, final), ("final",), span=True))
    if fold:
        rows = _fold(rows, protect)
    rows = _limit(rows, max_rows, protect)

    time_w = max([len("t (ns)")] + [len(f"{r.time:,}") for r in rows])
    base = 3 + time_w + 2  # the ">> " mark, the time, a gap
    col_w = max(14, (width - base) // max(1, len(columns)))
    lines = [" " * 3 + "t (ns)".rjust(time_w) + "  " + "".join(c.ljust(col_w) for c in columns).rstrip()]
    lines.append(" " * 3 + "-" * time_w + "  " + "".join(("-" * (col_w - 2)).ljust(col_w) for _ in columns).rstrip())
    marked = False
    for r in rows:
        offset = base + (0 if r.span else r.column * col_w)
        text = r.text
        room = max(8, width - offset)
        if len(text) > room and r.index != protect:  # the judged row is shown whole, whatever the width
            text = text[: room - 3] + "..."
        mark = ">> " if protect is not None and r.index == protect else "   "
        time = "" if r.index < 0 else f"{r.time:,}"
        lines.append((mark + time.rjust(time_w) + "  ").ljust(offset) + text)
        if mark == ">> ":
            marked = True
            lines.extend(_message_lines(violation, base, width))
    if violation is not None and not marked:
        lines.extend(_message_lines(violation, base, width))
    if not steps:
        lines.append(" " * base + "(memory steps hidden)")
    return "\n".join(line.rstrip() for line in lines)


def _message_lines(violation: ViolationLike, base: int, width: int) -> list[str]:
    text = "^^ violation " + violation_text(violation)
    return textwrap.wrap(text, width=width, initial_indent=" " * base, subsequent_indent=" " * (base + 3),
                         break_on_hyphens=False)


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def minimality(schedule: bool, program: bool | None, preemptions: int) -> str:
    """What a case is minimal in, exactly, as the reports print it (``minimal: ...``).

    ``schedule``: the exhaustive search showed that no schedule with fewer preemptions fails the
    same way. ``program``: every removal of one CPU, handler, lock or operation was tried, each
    under every schedule with at most ``preemptions`` preemptions, and none failed the same way
    (False: a bound stopped that search; None: not recorded, as in files from before it was).
    """
    if not schedule and program is None:
        return "minimal: not proven (the case as found, or a bound stopped the minimiser)"
    if not schedule:
        first = "a schedule with fewer preemptions may exist (a bound stopped the exhaustive search)"
    elif preemptions:
        first = "no schedule with fewer preemptions fails this way (proven by exhaustive search)"
    else:
        first = "the schedule needs no preemption"
    if program is None:
        second = "the program's minimality is not recorded"
    elif program:
        scope = (f"every schedule with up to {_count(preemptions, 'preemption')}" if preemptions
                 else "the schedule with no preemption")
        second = f"no single CPU, handler, lock or operation can be removed (each removal was tried under {scope})"
    else:
        second = "a CPU, handler, lock or operation may still be removable (a bound stopped the search)"
    return f"minimal: {first}; {second}"


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the current directory when it is below it (shorter to read and to
    paste into ``lockfuzz replay``), else as it is."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def failure_report(
    failure: Failure,
    path: str | os.PathLike[str] | None = None,
    *,
    heading: str | None = None,
    steps: bool = True,
    width: int = 120,
) -> str:
    """A failure as the CLI and the pytest plugin print it: the violation, the (minimal)
    program, the schedule as a per-CPU timeline and, with ``path``, where it is saved."""
    preemptions = sum(1 for d in failure.schedule if d)
    schedule = f"schedule: {_count(len(failure.schedule), 'decision')}, {_count(preemptions, 'preemption')}"
    lines = [heading or f"{failure.target}: {'/'.join(failure.signature)}"]
    lines += textwrap.wrap(violation_text(failure.violation), width - 2, initial_indent="  ",
                           subsequent_indent="    ", break_on_hyphens=False)
    lines += ["", "program:", *("  " + line for line in failure.program.describe().splitlines()), ""]
    lines += textwrap.wrap(minimality(failure.minimal, failure.program_minimal, preemptions), width,
                           subsequent_indent="  ", break_on_hyphens=False)
    if failure.trace is not None:
        lines += [schedule + ", as a per-CPU timeline:", timeline(failure.trace, failure.violation, steps=steps,
                                                                   width=width)]
    else:
        shown = str(failure.schedule) if len(failure.schedule) <= 60 else f"{failure.schedule[:60]}"[:-1] + ", ...]"
        lines += [schedule + f": {shown}", "  (no trace recorded in the file: lockfuzz replay runs it)"]
    if path is not None:
        lines += ["", f"saved: {display_path(path)}", f"replay: lockfuzz replay {display_path(path)}"]
    return "\n".join(lines)


# -- Perfetto ------------------------------------------------------------------------------------
def _us(ns: int) -> float:
    return ns / 1000.0


def perfetto(trace: Trace, violation: ViolationLike = None, *, steps: bool = True) -> dict[str, Any]:
    """The trace in the Chrome trace event format (``{"traceEvents": [...]}``), for Perfetto
    (ui.perfetto.dev) and chrome://tracing.

    One process per CPU (pid = CPU number, named ``cpu0``), one thread per context (tid = the
    context's index in the trace, named after the context). A context's life (an interrupt
    handler's from irq enter to exit) is a slice; inside it, ``wait L0`` slices run from an
    acquisition's start to its return, ``hold L0`` slices from an OK return to the release.
    EDEADLK and ETIMEDOUT returns, clock jumps and the violation are instant events; with
    ``steps`` each memory step is an instant event too. Timestamps are microseconds (floats).
    """
    if not isinstance(trace, Trace):
        raise TypeError(f"trace={trace!r}: expected a lockfuzz.Trace")
    contexts = list(trace.contexts)
    cells = list(trace.cells)
    columns = sorted({_split_context(n)[0] for n in contexts}, key=_cpu_order)
    pid_of = {c: (int(c[3:]) if _cpu_order(c)[0] == 0 else 1000 + i) for i, c in enumerate(columns)}
    ctx_pid = [pid_of[_split_context(n)[0]] for n in contexts]
    meta: list[dict[str, Any]] = []
    for column in columns:
        pid = pid_of[column]
        meta.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": column}})
        meta.append({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0, "args": {"sort_index": pid}})
    for i, name in enumerate(contexts):
        meta.append({"ph": "M", "name": "thread_name", "pid": ctx_pid[i], "tid": i, "args": {"name": name}})
        meta.append({"ph": "M", "name": "thread_sort_index", "pid": ctx_pid[i], "tid": i, "args": {"sort_index": i}})

    end = trace.events[-1][0] if trace.events else 0
    slices: dict[int, list[tuple[int, int, str, dict[str, Any]]]] = {}  # ctx -> (start, end, name, args)
    instants: list[dict[str, Any]] = []
    life: dict[int, int] = {}  # ctx -> start of its life slice
    waits: dict[tuple[int, int], tuple[int, int]] = {}  # (ctx, lock) -> (start, budget)
    holds: dict[tuple[int, int], int] = {}
    releases: dict[tuple[int, int], int] = {}
    for index, (t, ctx, kind, obj, value) in enumerate(trace.events):
        if ctx is None or not 0 <= ctx < len(contexts):
            name = f"clock jumps to {t:,} ns" if kind == CLOCK else KIND_NAMES.get(kind, f"kind {kind}")
            instants.append({"ph": "i", "s": "g", "name": name, "ts": _us(t), "pid": 0, "tid": 0,
                             "args": {"event": index}})
            continue
        life.setdefault(ctx, t)
        if kind == ACQUIRE:
            waits[(ctx, obj)] = (t, value)
        elif kind == ACQUIRED:
            start, logged = waits.pop((ctx, obj), (t, 0))
            status = _status_name(value)
            mode = " shared" if acquire_shared(logged) else ""
            slices.setdefault(ctx, []).append(
                (start, t, f"wait L{obj}{mode}", {"status": status, "budget_ns": acquire_budget(logged)})
            )
            if value == Status.OK:
                holds[(ctx, obj)] = t
            else:
                instants.append({"ph": "i", "s": "t", "name": f"{status} L{obj}", "ts": _us(t), "pid": ctx_pid[ctx],
                                 "tid": ctx, "cat": "error", "args": {"event": index, "waited_ns": t - start}})
        elif kind == RELEASE:
            start = holds.pop((ctx, obj), None)
            if start is not None:
                slices.setdefault(ctx, []).append((start, t, f"hold L{obj}{' shared' if value else ''}", {}))
            releases[(ctx, obj)] = t
        elif kind == RELEASED:
            start = releases.pop((ctx, obj), None)
            if start is not None:
                slices.setdefault(ctx, []).append((start, t, f"release L{obj}", {}))
        elif kind in (IRQ_EXIT, DONE):
            label = _split_context(contexts[ctx])[1] or contexts[ctx]
            slices.setdefault(ctx, []).append((life[ctx], t, label, {}))
            life[ctx] = -1
        elif kind < 20 and steps and kind not in (START, CHECKPOINT):
            instants.append({"ph": "i", "s": "t", "name": _event_text(None, cells, kind, obj, value), "ts": _us(t),
                             "pid": ctx_pid[ctx], "tid": ctx, "cat": "step", "args": {"event": index}})
    # Whatever is still open at the end of the trace (the run stopped at a violation) ends there.
    for (ctx, lock), (start, logged) in waits.items():
        slices.setdefault(ctx, []).append(
            (start, end, f"wait L{lock}", {"unfinished": True, "budget_ns": acquire_budget(logged)})
        )
    for (ctx, lock), start in holds.items():
        slices.setdefault(ctx, []).append((start, end, f"hold L{lock}", {"unfinished": True}))
    for (ctx, lock), start in releases.items():
        slices.setdefault(ctx, []).append((start, end, f"release L{lock}", {"unfinished": True}))
    for ctx, start in life.items():
        if start >= 0:
            label = _split_context(contexts[ctx])[1] or contexts[ctx]
            slices.setdefault(ctx, []).append((start, end, label, {"unfinished": True}))

    events: list[dict[str, Any]] = list(meta)
    for ctx in sorted(slices):
        events.extend(_slice_events(ctx, ctx_pid[ctx], slices[ctx]))
    events.extend(instants)
    if violation is not None:
        events.append(_violation_event(trace, violation, contexts, ctx_pid))
    return {"traceEvents": events, "displayTimeUnit": "ns", "otherData": {"generator": "lockfuzz"}}


def _slice_events(ctx: int, pid: int, spans: list[tuple[int, int, str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Complete ("X") events for the slices of one thread that nest, async ones for the rest.

    A thread's "X" slices must nest; a program that releases out of order (take A, take B,
    release A) makes holds that overlap without nesting, which the viewers would drop or draw
    wrongly. Those go to an async track of the same process instead.
    """
    out: list[dict[str, Any]] = []
    open_: list[int] = []  # end times of the enclosing slices
    for n, (start, end, name, args) in enumerate(sorted(spans, key=lambda s: (s[0], -s[1]))):
        while open_ and open_[-1] <= start:
            open_.pop()
        if open_ and end > open_[-1]:
            ident = f"{ctx}.{n}"
            common = {"cat": "lock", "name": name, "pid": pid, "tid": ctx, "id2": {"local": ident}}
            out.append({**common, "ph": "b", "ts": _us(start), "args": args})
            out.append({**common, "ph": "e", "ts": _us(end)})
            continue
        open_.append(end)
        out.append({"ph": "X", "cat": "lock", "name": name, "pid": pid, "tid": ctx, "ts": _us(start),
                    "dur": _us(end - start), "args": args})
    return out


def _violation_event(trace: Trace, violation: ViolationLike, contexts: list[str], ctx_pid: list[int]) -> dict[str, Any]:
    if isinstance(violation, Violation):
        names, t, index = violation.contexts, violation.time_ns, violation.event_index
        oracle, kind = violation.oracle, violation.kind
    else:
        assert violation is not None
        names = tuple(violation.get("contexts") or ())
        t = int(violation.get("time_ns") or 0)
        index = int(violation.get("event_index", -1))
        oracle, kind = violation.get("oracle", "?"), violation.get("kind", "?")
    if 0 <= index < len(trace.events):
        t = trace.events[index][0]
    event: dict[str, Any] = {"ph": "i", "name": f"violation: {oracle}/{kind}", "ts": _us(t), "cat": "violation",
                             "args": {"message": violation_text(violation), "event": index}}
    # On the track of the context that did it: the last one named (the first is the victim of
    # two holders), else across the whole trace.
    target = next((contexts.index(n) for n in reversed(names) if n in contexts), None)
    if 0 <= index < len(trace.events) and 0 <= trace.events[index][1] < len(contexts):
        target = trace.events[index][1]
    if target is None:
        event.update({"s": "g", "pid": 0, "tid": 0})
    else:
        event.update({"s": "t", "pid": ctx_pid[target], "tid": target})
    return event
