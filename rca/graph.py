"""A causal graph over components or ``component:metric`` names, expanded to metrics.

Edges point from cause to effect (``[from, to]``: a fault in ``from`` can show in ``to``).
A graph may mix levels: an edge between two components makes every metric of the first a
parent of every metric of the second; an edge naming metrics links just those. Cycles are
allowed (topologies have them); every walk keeps a visited set.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rca.model import split_name

__all__ = ["CausalGraph", "MetricGraph"]


@dataclass(frozen=True, slots=True)
class CausalGraph:
    """Nodes and cause→effect edges as given (components, metrics or both).

    Examples:
        >>> g = CausalGraph.of([("db", "api")])
        >>> g.expand(["db:cpu", "api:latency"]).parents["api:latency"]
        ('db:cpu',)
    """

    nodes: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, edges: Iterable[tuple[str, str]], nodes: Iterable[str] = ()) -> CausalGraph:
        """Build from edges (nodes are added from them)."""
        es = tuple(dict.fromkeys((str(a), str(b)) for a, b in edges if a != b))
        ns = dict.fromkeys(str(n) for n in nodes)
        for a, b in es:
            ns.setdefault(a)
            ns.setdefault(b)
        return cls(tuple(ns), es)

    def expand(self, names: Sequence[str]) -> MetricGraph:
        """Map the edges onto the metric columns ``names``.

        A node equal to a column name is that metric; otherwise a node is a component and
        stands for all of its columns. Nodes matching no column are dropped, and so are their
        edges (an edge cannot pass through data we do not have).
        """
        by_component: dict[str, list[str]] = {}
        for n in names:
            by_component.setdefault(split_name(n)[0], []).append(n)
        columns = set(names)

        def members(node: str) -> list[str]:
            if node in columns:
                return [node]
            return by_component.get(node, [])

        parents: dict[str, dict[str, None]] = {n: {} for n in names}
        for a, b in self.edges:
            for child in members(b):
                for parent in members(a):
                    if parent != child:
                        parents[child][parent] = None
        return MetricGraph(tuple(names), {n: tuple(p) for n, p in parents.items()})


@dataclass(frozen=True, slots=True)
class MetricGraph:
    """Parents of every metric column; the localiser's view of a :class:`CausalGraph`."""

    names: tuple[str, ...]
    parents: dict[str, tuple[str, ...]]

    def children(self) -> dict[str, tuple[str, ...]]:
        """Children of every metric (the inverse of ``parents``)."""
        out: dict[str, list[str]] = {n: [] for n in self.names}
        for child, ps in self.parents.items():
            for p in ps:
                out[p].append(child)
        return {n: tuple(c) for n, c in out.items()}

    def depth(self) -> dict[str, int]:
        """Longest-path depth from a source, ignoring edges that close a cycle (0 = no parent).

        Used to break score ties towards the upstream node.
        """
        depth: dict[str, int] = {}
        state: dict[str, int] = {}  # 1 = on the stack, 2 = done
        for root in self.names:
            if root in state:
                continue
            stack: list[tuple[str, int]] = [(root, 0)]
            while stack:
                node, i = stack.pop()
                if i == 0:
                    state[node] = 1
                ps = self.parents.get(node, ())
                if i < len(ps):
                    stack.append((node, i + 1))
                    p = ps[i]
                    if p not in state:
                        stack.append((p, 0))
                    continue
                state[node] = 2
                depth[node] = 1 + max((depth[p] for p in ps if state.get(p) == 2 and p in depth), default=-1)
        return depth

    def path_to(self, source: str, target: str, max_hops: int | None = None) -> tuple[str, ...]:
        """Shortest cause→effect path from ``source`` to ``target`` (both included), or ``()``."""
        if source == target:
            return (source,)
        kids = self.children()
        prev: dict[str, str] = {source: source}
        queue: deque[tuple[str, int]] = deque([(source, 0)])
        while queue:
            node, hops = queue.popleft()
            if max_hops is not None and hops >= max_hops:
                continue
            for c in kids.get(node, ()):
                if c in prev:
                    continue
                prev[c] = node
                if c == target:
                    path = [c]
                    while path[-1] != source:
                        path.append(prev[path[-1]])
                    return tuple(reversed(path))
                queue.append((c, hops + 1))
        return ()

    def ancestors(self, target: str, max_hops: int | None = None) -> dict[str, int]:
        """Metrics with a path to ``target`` within ``max_hops``, with their distance."""
        dist = {target: 0}
        queue: deque[str] = deque([target])
        while queue:
            node = queue.popleft()
            if max_hops is not None and dist[node] >= max_hops:
                continue
            for p in self.parents.get(node, ()):
                if p not in dist:
                    dist[p] = dist[node] + 1
                    queue.append(p)
        return dist
