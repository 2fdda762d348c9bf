"""The wait-for graph and its cycles, built from the ground truth (DESIGN.md, "EDEADLK attribution").

An edge goes from each waiter to the holder of the lock it awaits (for a shared lock, to every
holder it must wait for: ``GroundTruth.blockers``), to the waiters the lock's declared order or its
marked queue puts ahead of it, and from each interrupted context to the handler running directly
above it on the same CPU (the interrupted context cannot run until that handler returns). A
context is *on a cycle* if it can reach itself; each strongly connected set of contexts is a
``Cycle``, classified by the deadlock classes targets declare (``CYCLE_CLASSES``). The ground
truth recomputes the cycles whenever an event may have changed an edge (``GroundTruth._recompute``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from .._engine._run import Context
    from ._attempt import Attempt
    from ._truth import GroundTruth

__all__ = ["Cycle", "describe", "edges", "find_cycles", "on_cycle_if_taken"]


class Cycle:
    """A strongly connected set of contexts in the wait-for graph."""

    __slots__ = ("clean", "cls", "first_waiter", "key", "max_table", "members", "scan_blinded", "task_only")

    def __init__(self, members: list[Context], truth: GroundTruth) -> None:
        self.members = members
        self.key = tuple(c.index for c in members)  # ``_cycles`` sorts the members by index
        cpus = {c.cpu for c in members}
        if len(cpus) == 1:
            self.cls = "AA"
        elif len(members) == 2 and len(cpus) == 2 and all(c.top for c in members):
            self.cls = "ABBA"
        else:
            self.cls = "cycle"
        self.task_only = all(c.top for c in members)  # no interrupt edge on the cycle
        # Clean: no member is held up by a handler that is not itself on the cycle.
        index = set(self.key)
        self.clean = all(c.top or truth.above(c).index in index for c in members)
        self.max_table = max(len(truth.table[cpu]) for cpu in cpus)
        # A CPU outside the cycle lists a lock the cycle waits for below its top entry: the kernel's
        # table scan stops at the first such CPU and looks no further.
        awaited = {truth.attempts[c.index].lock for c in members if c.index in truth.attempts}
        self.scan_blinded = any(
            cpu not in cpus and any(lock in table[:-1] for lock in awaited) for cpu, table in enumerate(truth.table)
        )
        # Some member is the first waiter of its lock: the pending waiter or the queue head the
        # target marked, or, for a target that marks nothing, the earliest attempt still waiting.
        self.first_waiter = False
        for c in members:
            a = truth.attempts.get(c.index)
            if a is not None and truth.first_waiter(a):
                self.first_waiter = True
                break

    def matches(self, cls: str) -> bool:
        """Is this cycle of the declared detection class ``cls``?"""
        if cls == "cycle":
            return True
        if cls == "task-cycle":
            return self.task_only
        return self.cls == cls

    def describe(self) -> str:
        return "{" + ", ".join(c.name for c in self.members) + "}"


def edges(truth: GroundTruth) -> dict[Context, list[Context]]:
    """Each context's out-edges: whom it waits for (see the module doc)."""
    out: dict[Context, list[Context]] = {}
    sharing = truth.sharing is not None
    for a in truth.attempts.values():
        if a.taken or a.left:
            # It holds the lock it asked for (what it waits for next is not the lock), or it
            # gave its place up and is on its way out with an error (``Mark.LEFT``).
            continue
        lock = a.lock
        if sharing:
            for blocker in truth.blockers(a):
                out.setdefault(a.ctx, []).append(blocker)
            for b in truth.preferred(a):
                if b not in a.ahead:  # those are added below
                    out.setdefault(a.ctx, []).append(b.ctx)
        else:
            h = truth.holder[lock]
            if h is None:
                # Free for mutual exclusion from the moment its release began, the lock is not
                # free for its waiters until the release returns: they wait for the releaser.
                h = truth.releaser[lock]
            if h is not None:
                out.setdefault(a.ctx, []).append(h)
        # Marked queue positions: every other waiter waits behind the pending waiter, and
        # the waiters queued after the head behind the head.
        p, hd = truth.pending[lock], truth.head[lock]
        if p is not None and p is not a:
            out.setdefault(a.ctx, []).append(p.ctx)
        if hd is not None and hd is not a and p is not a:
            out.setdefault(a.ctx, []).append(hd.ctx)
        if a.ahead:  # a FIFO lock: a later arrival also waits for every earlier one
            for b in a.ahead:
                if b.end < 0:
                    out.setdefault(a.ctx, []).append(b.ctx)
    for stack in truth.engine.stacks:
        for lower, upper in zip(stack, stack[1:]):
            out.setdefault(lower, []).append(upper)
    return out


def find_cycles(truth: GroundTruth) -> list[Cycle]:
    """The cycles of the wait-for graph now (most of the time there are none)."""
    out = edges(truth)
    # A cycle needs an edge into a node that has an edge out: most of the time none does.
    if not any(w in out for targets in out.values() for w in targets):
        return []
    return _cycles(out, truth)


def on_cycle_if_taken(truth: GroundTruth, a: Attempt) -> bool:
    """Would the attempt ``a``, which has just returned, be on a cycle now if every interrupted
    acquisition had already taken its lock? (``_attribution.maybe_taken``.) Its own edge is put
    back (the ground truth ended its attempt before the oracles look), and each waiter on a lock
    that an interrupted context is still acquiring waits for that context too."""
    out = _edges_if_taken(truth)
    mine = out.setdefault(a.ctx, [])
    if truth.sharing is not None:
        mine.extend(truth.blockers(a))
    else:
        h = truth.holder[a.lock] or truth.releaser[a.lock]
        if h is not None:
            mine.append(h)
    mine.extend(b.ctx for b in _interrupted_acquiring(truth) if b.lock == a.lock)
    seen: set[Context] = set()
    todo = list(mine)
    while todo:
        v = todo.pop()
        if v is a.ctx:
            return True
        if v not in seen:
            seen.add(v)
            todo.extend(out.get(v, ()))
    return False


def _interrupted_acquiring(truth: GroundTruth) -> list[Attempt]:
    """The acquisitions in progress that an interrupt stopped and whose taking is unmarked: each
    may already have taken its lock (``_attribution.maybe_taken``)."""
    return [b for b in truth.attempts.values() if not b.ctx.top and not b.taken]


def _edges_if_taken(truth: GroundTruth) -> dict[Context, list[Context]]:
    """The wait-for graph (``edges``) as it would be if every interrupted acquisition had taken
    its lock: each other waiter on that lock waits for it too."""
    out = edges(truth)
    for b in _interrupted_acquiring(truth):
        for w in truth.on_lock[b.lock]:
            if w is not b:
                out.setdefault(w.ctx, []).append(b.ctx)
    return out


def cycle_if_taken(truth: GroundTruth) -> bool:
    """Is there a cycle now, anywhere, if every interrupted acquisition had taken its lock? For a
    target that marks nothing, an EDEADLK off such a cycle is a bystander's, not a deadlock
    invented (``edeadlk_sound``, ``bystander``)."""
    return bool(_peel(_edges_if_taken(truth)))


def describe(truth: GroundTruth) -> list[str]:
    """The wait-for graph in words, one line per waiting or interrupted context."""
    lines = []
    for a in sorted(truth.attempts.values(), key=lambda a: a.ctx.index):
        h = truth.holder[a.lock]
        r = truth.releaser[a.lock]
        sharers = truth.sharers[a.lock]
        if h is not None:
            held = f"held by {h.name}" + (" (exclusive)" if truth.sharing is not None else "")
        elif sharers:
            full = " (at capacity)" if truth.at_capacity(a.lock) else ""
            held = f"held shared by {', '.join(c.name for c in sharers)}{full}"
        elif r is not None:
            held = f"which {r.name} is still releasing"
        elif truth.shared_releasing[a.lock]:
            held = f"which {', '.join(c.name for c in truth.shared_releasing[a.lock])} are still releasing"
        else:
            held = "which nobody holds"
        behind = [b.ctx.name for b in (truth.preferred(a) if truth.sharing is not None else a.ahead) if b.end < 0]
        queued = f", queued behind {', '.join(behind)}" if behind else ""
        mode = " shared" if a.shared else (" exclusively" if truth.sharing is not None else "")
        lines.append(f"{a.ctx.name} waits for L{a.lock}{mode}, {held}{queued} (since t={a.start}ns)")
    for stack in truth.engine.stacks:
        for lower, upper in zip(stack, stack[1:]):
            lines.append(f"{lower.name} is interrupted by {upper.name}")
    for cyc in truth.cycles:
        lines.append(f"cycle ({cyc.cls}): {cyc.describe()}")
    return lines


def _cycles(out: dict[Context, list[Context]], truth: GroundTruth) -> list[Cycle]:
    """Strongly connected components with a cycle (Tarjan's algorithm on a graph of a few nodes).

    Nodes from which no cycle can be reached are peeled off first (a node all of whose
    successors are peeled is peeled too), so the usual graph, a few chains, costs a few dict
    operations and Tarjan runs only on what is left; where each node left has one successor (the
    commonest graph that has a cycle: an interrupt's AA, a simple ABBA), following successors
    finds the same cycles in the same order for less (``_functional_cycles``).
    """
    live = _peel(out)
    if not live:
        return []
    if all(len(ws) == 1 for ws in live.values()):
        return _functional_cycles(live, truth)
    return _tarjan(live, truth)


def _peel(out: dict[Context, list[Context]]) -> dict[Context, list[Context]]:
    """``out`` without the nodes from which no cycle can be reached (a node all of whose
    successors are peeled is peeled too): what is left, each node with a successor left, has a
    cycle, and is empty when the graph has none."""
    live = {v: [w for w in ws if w in out] for v, ws in out.items()}
    peeled = True
    while peeled:
        peeled = False
        for v in list(live):
            succ = [w for w in live[v] if w in live]
            if succ:
                live[v] = succ
            else:
                del live[v]
                peeled = True
    return live


def _tarjan(out: dict[Context, list[Context]], truth: GroundTruth) -> list[Cycle]:
    """The strongly connected components of ``out`` with a cycle, by Tarjan's algorithm, from the
    nodes in index order."""
    index: dict[Context, int] = {}
    low: dict[Context, int] = {}
    stack: list[Context] = []
    on_stack: set[Context] = set()
    found: list[Cycle] = []
    counter = 0

    def visit(v: Context) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in out.get(v, ()):
            if w not in index:
                visit(w)  # noqa: F821 - bound while the search runs; ``del visit`` below unbinds it after
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w is v:
                    break
            if len(comp) > 1 or v in out.get(v, ()):
                comp.sort(key=lambda c: c.index)
                found.append(Cycle(comp, truth))

    for v in sorted(out, key=lambda c: c.index):
        if v not in index:
            visit(v)
    # ``visit`` refers to itself through its closure: a reference cycle that would keep this graph,
    # and the contexts, coroutines and machine it reaches, for the cyclic garbage collector (see
    # ``Engine._unlink``). Deleting the name empties the closure's cell.
    del visit
    return found


def _functional_cycles(out: dict[Context, list[Context]], truth: GroundTruth) -> list[Cycle]:
    """``_cycles`` where every node has one successor (most wait-for graphs: a waiter waits for one
    holder, an interrupted context for the handler above it): follow the successors from each node
    in index order, and a walk that comes back onto itself closed a cycle. The cycles come out in
    the order Tarjan's algorithm above finds them from the same start nodes."""
    seen: set[Context] = set()
    found: list[Cycle] = []
    for v in sorted(out, key=lambda c: c.index):
        if v in seen:
            continue
        path: list[Context] = []
        while v not in seen:
            seen.add(v)
            path.append(v)
            v = out[v][0]
        if v in path:  # the walk met itself: the rest of the path from there is a cycle
            comp = path[path.index(v):]
            comp.sort(key=lambda c: c.index)
            found.append(Cycle(comp, truth))
    return found
