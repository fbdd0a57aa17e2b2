"""The service topology: components, their relations and the metrics that belong to each.

Components are services, workloads (Deployment, StatefulSet, ReplicaSet), pods, nodes, GPUs,
databases and queues; ids read ``kind/namespace/name`` (``kind/name`` for cluster-scoped ones)
and never contain a colon, so ``<component>:<metric>`` splits cleanly.

Relations say what a source knows, in its own direction (``owns``, ``selects``, ``runs_on``,
``uses_gpu``, ``calls``); :meth:`Topology.causal_edges` turns them into the cause→effect edges
the localiser needs (a pod's trouble shows in the service selecting it and in the workload owning
it; a node's in the pods running on it; a callee's in its caller).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiops.model import Series
from rca.graph import CausalGraph

__all__ = ["Component", "Relation", "Topology", "component_id", "RELATION_KINDS"]

# relation kind -> True when the cause is the relation's source, False when it is its target
RELATION_KINDS: dict[str, bool] = {
    "owns": False,  # Deployment owns ReplicaSet owns Pod: the pod's trouble shows in its owner
    "selects": False,  # Service selects Pod
    "runs_on": False,  # Pod runs on Node: the node's trouble shows in the pod
    "uses_gpu": False,  # Pod uses GPU
    "calls": False,  # api calls feature-store: the callee's trouble shows in the caller
    "causes": True,  # declared cause -> effect
    "learned": True,  # learned from the data, cause -> effect
}


def component_id(kind: str, name: str, namespace: str = "") -> str:
    """``kind/namespace/name`` (or ``kind/name``), colons replaced so the id splits cleanly.

    Examples:
        >>> component_id("pod", "llm-1", "inference")
        'pod/inference/llm-1'
        >>> component_id("instance", "10.0.0.1:9100")
        'instance/10.0.0.1_9100'
    """
    parts = [kind, namespace, name] if namespace else [kind, name]
    return "/".join(p.replace(":", "_") for p in parts)


@dataclass(frozen=True, slots=True)
class Component:
    """One node of the topology."""

    id: str
    kind: str
    name: str
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class Relation:
    """``src`` --kind--> ``dst`` as the source reported it (``kubernetes``, ``labels``, ``config``, ``learned``)."""

    src: str
    dst: str
    kind: str
    source: str

    @property
    def learned(self) -> bool:
        return self.source == "learned"

    def causal(self) -> tuple[str, str]:
        """(cause, effect)."""
        return (self.src, self.dst) if RELATION_KINDS.get(self.kind, True) else (self.dst, self.src)


@dataclass
class Topology:
    """A graph of components and relations, plus each component's metrics (stored series)."""

    components: dict[str, Component] = field(default_factory=dict)
    relations: list[Relation] = field(default_factory=list)
    metrics: dict[str, dict[str, Series]] = field(default_factory=dict)

    def add(self, component: Component) -> str:
        """Add (or keep) a component; returns its id."""
        self.components.setdefault(component.id, component)
        return component.id

    def relate(self, src: str, dst: str, kind: str, source: str) -> None:
        """Add a relation once (the first source to report it is kept)."""
        if src == dst or any(r.src == src and r.dst == dst and r.kind == kind for r in self.relations):
            return
        self.relations.append(Relation(src, dst, kind, source))

    def add_metric(self, component: str, metric: str, series: Series) -> None:
        self.metrics.setdefault(component, {})[metric] = series

    def resolve(self, name: str) -> str | None:
        """A component id for a name from config: an id, else a unique bare name (services first)."""
        if name in self.components:
            return name
        hits = [c for c in self.components.values() if c.name == name]
        for kind in ("service", "deployment", "statefulset"):
            of_kind = [c for c in hits if c.kind == kind]
            if len(of_kind) == 1:
                return of_kind[0].id
        return hits[0].id if len(hits) == 1 else None

    def causal_edges(self) -> list[tuple[str, str]]:
        """Component-level cause→effect edges."""
        return list(dict.fromkeys(r.causal() for r in self.relations))

    def causal_graph(self) -> CausalGraph:
        return CausalGraph.of(self.causal_edges(), self.components)

    def with_relations(self, relations: Iterable[Relation]) -> Topology:
        """A copy with ``relations`` added (the cached topology itself is never changed)."""
        copy = Topology(dict(self.components), list(self.relations), self.metrics)
        for r in relations:
            copy.relate(r.src, r.dst, r.kind, r.source)
        return copy

    def distances(self, component: str) -> dict[str, int]:
        """Relations between ``component`` and every component it reaches (either direction)."""
        return self._hops(component, len(self.components) + 1)

    def neighbourhood(self, component: str, hops: int) -> set[str]:
        """Components within ``hops`` relations of ``component`` (either direction)."""
        return set(self._hops(component, hops))

    def _hops(self, component: str, hops: int) -> dict[str, int]:
        adj: dict[str, set[str]] = {}
        for r in self.relations:
            adj.setdefault(r.src, set()).add(r.dst)
            adj.setdefault(r.dst, set()).add(r.src)
        seen = {component: 0}
        queue: deque[str] = deque([component])
        while queue:
            c = queue.popleft()
            if seen[c] >= hops:
                continue
            for n in adj.get(c, ()):
                if n not in seen:
                    seen[n] = seen[c] + 1
                    queue.append(n)
        return seen

    def owner_workload(self, component: str) -> str | None:
        """The Deployment/StatefulSet a pod or ReplicaSet belongs to (following ``owns``)."""
        current, seen = component, set()
        while current not in seen:
            seen.add(current)
            kind = self.components.get(current, Component(current, "", current)).kind
            if kind in ("deployment", "statefulset"):
                return current
            owners = [r.src for r in self.relations if r.kind == "owns" and r.dst == current]
            if not owners:
                return None
            current = owners[0]
        return None

    def to_json(self) -> dict[str, object]:
        return {
            "components": [
                {"id": c.id, "kind": c.kind, "name": c.name, "namespace": c.namespace,
                 "metrics": sorted(self.metrics.get(c.id, {}))}
                for c in sorted(self.components.values(), key=lambda c: c.id)
            ],
            "relations": [
                {"from": r.src, "to": r.dst, "kind": r.kind, "source": r.source, "learned": r.learned}
                for r in self.relations
            ],
            "causal_edges": [list(e) for e in self.causal_edges()],
        }

    def to_dot(self) -> str:
        """Graphviz DOT: components as boxes (metrics listed), relations as labelled arrows."""
        lines = ["digraph topology {", "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
        for c in sorted(self.components.values(), key=lambda c: c.id):
            metrics = sorted(self.metrics.get(c.id, {}))
            label = c.id + "".join("\\n" + _dot_escape(m) for m in metrics[:8])
            if len(metrics) > 8:
                label += f"\\n(+{len(metrics) - 8} more)"
            lines.append(f"  {json.dumps(c.id)} [label={json.dumps(label).replace(chr(92) * 2, chr(92))}];")
        for r in self.relations:
            style = ", style=dashed" if r.learned else ""
            lines.append(f"  {json.dumps(r.src)} -> {json.dumps(r.dst)} [label={json.dumps(r.kind)}{style}];")
        lines.append("}")
        return "\n".join(lines) + "\n"


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")


def merge(parts: Iterable[Topology]) -> Topology:
    """One topology from several sources (first component/relation wins)."""
    out = Topology()
    for t in parts:
        for c in t.components.values():
            out.add(c)
        for r in t.relations:
            out.relate(r.src, r.dst, r.kind, r.source)
        for comp, ms in t.metrics.items():
            for m, s in ms.items():
                out.add_metric(comp, m, s)
    return out
