"""The wait-for graph's cycle finder: the fast path for graphs where every node has one successor
finds exactly the cycles Tarjan's algorithm finds, in the same order (``_graph._cycles``)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lockfuzz._oracles import _graph

from support import left_to_the_collector


class _Node:
    """What a cycle reads of a context: its index, CPU and whether it runs at the top of its CPU."""

    def __init__(self, index: int) -> None:
        self.index, self.cpu, self.top = index, 0, True

    def __repr__(self) -> str:
        return f"N{self.index}"


class _Truth:
    """What ``Cycle`` reads of the ground truth, for nodes that wait for nothing in particular."""

    table: list[list[int]] = [[]]
    attempts: dict[int, Any] = {}

    def first_waiter(self, attempt: Any) -> bool:  # pragma: no cover - no attempts here
        return False


@st.composite
def functional_graphs(draw: Any) -> dict[_Node, list[_Node]]:
    """Up to 8 nodes with distinct indices, in any order, each with one successor among them."""
    indices = draw(st.lists(st.integers(0, 30), min_size=1, max_size=8, unique=True))
    nodes = [_Node(i) for i in indices]
    return {v: [nodes[draw(st.integers(0, len(nodes) - 1))]] for v in nodes}


@settings(max_examples=300, database=None, derandomize=True)
@given(functional_graphs())
def test_functional_fast_path_matches_tarjan(out: dict[_Node, list[_Node]]) -> None:
    fast = [[c.index for c in cyc.members] for cyc in _graph._functional_cycles(dict(out), _Truth())]  # type: ignore[arg-type]
    slow = [[c.index for c in cyc.members] for cyc in _graph._tarjan(dict(out), _Truth())]  # type: ignore[arg-type]
    assert fast == slow
    # Every node is on at most one cycle, and a functional graph always has one.
    assert fast and len({i for cyc in fast for i in cyc}) == sum(map(len, fast))


def test_tarjan_leaves_nothing_to_the_cyclic_garbage_collector() -> None:
    # Its recursive ``visit`` closure refers to itself: left so, every graph it searched (with the
    # contexts, coroutines and machine the graph reaches) waited for the collector.
    a, b, c = _Node(0), _Node(1), _Node(2)
    with left_to_the_collector() as left:
        found = _graph._tarjan({a: [b, c], b: [a], c: [a]}, _Truth())  # type: ignore[arg-type]
        assert [[n.index for n in cyc.members] for cyc in found] == [[0, 1, 2]]
        del found
    assert left == []
