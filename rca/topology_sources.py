"""Where the topology comes from: stored series' labels, declared edges, the Kubernetes API.

Kubernetes is read through the official ``kubernetes`` client (tested against the fake API
server at the wire): Deployments/StatefulSets → ReplicaSets → Pods (owner references), Pods →
Nodes (``spec.nodeName``), Services → Pods (selectors), Pods → GPUs (pods requesting
``nvidia.com/gpu``; one GPU per ``nvidia.com/gpu.uuid`` pod annotation/label value, otherwise the
node's GPUs as one component).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from aiops.errors import ConfigError, TemporaryError, trim
from aiops.kubeconfig import kube_api_client
from aiops.model import Series
from rca.topology import Component, Topology, component_id

__all__ = ["from_series", "add_declared", "from_kubernetes", "metric_of", "component_of", "assemble"]

# labels that locate a series, most specific first; what remains names the metric
_PLACE = ("pod", "deployment", "statefulset", "service", "gpu", "node", "instance", "job")
_CONTEXT = {"namespace", "container", "job", "instance", "pod", "deployment", "statefulset", "service", "node",
            "gpu", "UUID", "Hostname", "endpoint", "uid", "pod_template_hash"}


def component_of(series: Series) -> tuple[Component, list[tuple[str, Component, str]]]:
    """The component a series belongs to, and the relations its labels imply.

    Returns:
        the component, and ``(relation kind, other component, direction)`` pairs where the
        direction says whether the other is the relation's ``src`` or ``dst``.
    """
    lab = series.label_dict
    ns = lab.get("namespace", "")
    node = lab.get("node") or lab.get("Hostname", "")
    pod = lab.get("pod", "")
    gpu = lab.get("gpu") or lab.get("UUID", "")
    rel: list[tuple[str, Component, str]] = []
    workload = next(((k, lab[k]) for k in ("deployment", "statefulset") if lab.get(k)), None)
    if gpu and (node or pod):
        host = node or "unknown"
        comp = Component(component_id("gpu", gpu, host), "gpu", gpu, host)
        if pod:
            rel.append(("uses_gpu", Component(component_id("pod", pod, ns), "pod", pod, ns), "src"))
        if node:
            rel.append(("installed_in", Component(component_id("node", node), "node", node), "dst"))
        return comp, rel
    if pod:
        comp = Component(component_id("pod", pod, ns), "pod", pod, ns)
        if workload:
            rel.append(("owns", Component(component_id(workload[0], workload[1], ns), workload[0], workload[1], ns),
                        "src"))
        if node:
            rel.append(("runs_on", Component(component_id("node", node), "node", node), "dst"))
        return comp, rel
    if workload:
        return Component(component_id(workload[0], workload[1], ns), workload[0], workload[1], ns), rel
    if lab.get("service"):
        return Component(component_id("service", lab["service"], ns), "service", lab["service"], ns), rel
    if node:
        return Component(component_id("node", node), "node", node), rel
    if lab.get("instance"):
        job = lab.get("job", "")
        return Component(component_id("instance", lab["instance"], job), "instance", lab["instance"], job), rel
    if lab.get("job"):
        return Component(component_id("job", lab["job"]), "job", lab["job"]), rel
    return Component(component_id("series", series.name), "series", series.name), rel


def metric_of(series: Series) -> str:
    """The metric's name within its component: the series name plus labels that do not place it.

    Examples:
        >>> metric_of(Series.of("cpu_seconds_total", pod="p", mode="idle", namespace="ns"))
        'cpu_seconds_total{mode="idle"}'
    """
    rest = [(k, v) for k, v in series.labels if k not in _CONTEXT]
    if not rest:
        return series.name
    return series.name + "{" + ",".join(f'{k}="{v}"' for k, v in rest) + "}"


def from_series(series: Iterable[Series]) -> Topology:
    """Components and relations implied by the labels of stored series."""
    topo = Topology()
    for s in series:
        comp, rels = component_of(s)
        topo.add(comp)
        topo.add_metric(comp.id, metric_of(s), s)
        for kind, other, side in rels:
            topo.add(other)
            kind = "runs_on" if kind == "installed_in" else kind
            if side == "src":
                topo.relate(other.id, comp.id, kind, "labels")
            else:
                topo.relate(comp.id, other.id, kind, "labels")
    return topo


def add_declared(topo: Topology, edges: Sequence[Any], source_name: str = "topology.edges") -> None:
    """Add ``topology.edges`` (``from``/``to``/``kind``) to ``topo``.

    A name that is not a known component id becomes a ``service`` component of that name,
    unless it is the unique bare name of a known component (a Service, Deployment, ...).

    Raises:
        ConfigError: an unknown relation kind, naming the edge.
    """
    from rca.topology import RELATION_KINDS

    for i, e in enumerate(edges):
        src, dst, kind = str(e.from_), str(e.to), str(e.kind)
        if kind not in RELATION_KINDS:
            raise ConfigError(f"{source_name}[{i}].kind: expected one of {sorted(RELATION_KINDS)}, got {kind!r}")
        ids = []
        for name in (src, dst):
            found = topo.resolve(name)
            if found is None:
                found = topo.add(Component(name.replace(":", "_"), "service", name))
            ids.append(found)
        topo.relate(ids[0], ids[1], kind, "config")


def _selector_matches(selector: dict[str, str] | None, labels: dict[str, str] | None) -> bool:
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def from_kubernetes(api_client: Any, namespaces: Sequence[str] = (), timeout_s: float = 10.0) -> Topology:
    """Read workloads, pods, services and nodes through the official client.

    Args:
        api_client: a ``kubernetes.client.ApiClient``.
        namespaces: namespaces to read; empty: all namespaces.
        timeout_s: per request.

    Raises:
        TemporaryError: the API could not be read (network, 5xx, 429).
        ConfigError: access denied (403) or an unknown resource (404), naming what was read.
    """
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    topo = Topology()

    def listing(what: str, fn_all: Any, fn_ns: Any) -> list[Any]:
        try:
            if not namespaces:
                return list(fn_all(_request_timeout=timeout_s).items)
            out: list[Any] = []
            for ns in namespaces:
                out += fn_ns(ns, _request_timeout=timeout_s).items
            return out
        except ApiException as exc:
            msg = f"kubernetes: list {what}: {exc.status} {trim(exc.reason or '')}"
            if exc.status in (403, 404):
                raise ConfigError(msg + " (check the RBAC rules of the agent's service account)") from exc
            raise TemporaryError(msg) from exc
        except Exception as exc:  # urllib3 errors: unreachable, timeout
            raise TemporaryError(f"kubernetes: list {what}: {type(exc).__name__}: {trim(exc)}") from exc

    for kind, items in (
        ("deployment", listing("deployments", apps.list_deployment_for_all_namespaces,
                               apps.list_namespaced_deployment)),
        ("statefulset", listing("statefulsets", apps.list_stateful_set_for_all_namespaces,
                                apps.list_namespaced_stateful_set)),
        ("replicaset", listing("replicasets", apps.list_replica_set_for_all_namespaces,
                               apps.list_namespaced_replica_set)),
    ):
        for obj in items:
            m = obj.metadata
            topo.add(Component(component_id(kind, m.name, m.namespace), kind, m.name, m.namespace))
            _owners(topo, kind, m)
    def list_nodes(_ns: str = "", **kw: Any) -> Any:
        return core.list_node(**kw)

    saved, namespaces = namespaces, ()  # nodes are cluster-scoped: one list whatever the namespaces
    nodes = listing("nodes", list_nodes, list_nodes)
    namespaces = saved
    for n in nodes:
        topo.add(Component(component_id("node", n.metadata.name), "node", n.metadata.name))
    pods = listing("pods", core.list_pod_for_all_namespaces, core.list_namespaced_pod)
    for p in pods:
        m = p.metadata
        pid = topo.add(Component(component_id("pod", m.name, m.namespace), "pod", m.name, m.namespace))
        _owners(topo, "pod", m)
        node = getattr(p.spec, "node_name", None)
        if node:
            nid = topo.add(Component(component_id("node", node), "node", node))
            topo.relate(pid, nid, "runs_on", "kubernetes")
            for gpu in _gpus_of(p):
                gid = topo.add(Component(component_id("gpu", gpu, node), "gpu", gpu, node))
                topo.relate(pid, gid, "uses_gpu", "kubernetes")
                topo.relate(gid, nid, "runs_on", "kubernetes")
    for s in listing("services", core.list_service_for_all_namespaces, core.list_namespaced_service):
        m = s.metadata
        sid = topo.add(Component(component_id("service", m.name, m.namespace), "service", m.name, m.namespace))
        selector = getattr(s.spec, "selector", None)
        for p in pods:
            if p.metadata.namespace == m.namespace and _selector_matches(selector, p.metadata.labels):
                topo.relate(sid, component_id("pod", p.metadata.name, m.namespace), "selects", "kubernetes")
    return topo


_OWNER_KINDS = {"Deployment": "deployment", "StatefulSet": "statefulset", "ReplicaSet": "replicaset"}


def _owners(topo: Topology, kind: str, meta: Any) -> None:
    for ref in meta.owner_references or []:
        owner_kind = _OWNER_KINDS.get(ref.kind)
        if owner_kind is None:
            continue
        oid = topo.add(Component(component_id(owner_kind, ref.name, meta.namespace), owner_kind, ref.name,
                                 meta.namespace))
        topo.relate(oid, component_id(kind, meta.name, meta.namespace), "owns", "kubernetes")


def _gpus_of(pod: Any) -> list[str]:
    """GPU ids of a pod: the device plugin's uuid annotation/label, else ``nvidia.com/gpu`` if requested."""
    meta = pod.metadata
    for source in (meta.annotations or {}, meta.labels or {}):
        uuids = source.get("nvidia.com/gpu.uuid") or source.get("nvidia.com/gpu-uuid")
        if uuids:
            return [u.strip() for u in str(uuids).split(",") if u.strip()]
    for c in getattr(pod.spec, "containers", None) or []:
        res = getattr(c, "resources", None)
        limits = (getattr(res, "limits", None) or {}) if res else {}
        requests = (getattr(res, "requests", None) or {}) if res else {}
        if "nvidia.com/gpu" in limits or "nvidia.com/gpu" in requests:
            return ["nvidia.com_gpu"]
    return []


def assemble(settings: Any, series: Iterable[Series] = (), api_client: Any = None) -> Topology:
    """The topology from every configured source (``settings`` is the ``topology`` section).

    Args:
        settings: a :class:`~rca.settings.TopologySettings`.
        series: stored series (their labels place them), used when ``settings.labels``.
        api_client: a Kubernetes ``ApiClient``; ``None`` builds one from the settings when
            ``settings.kubernetes`` is on.
    """
    from rca.topology import merge

    parts: list[Topology] = []
    if settings.kubernetes:
        api = api_client if api_client is not None else kube_api_client(settings.kubeconfig, settings.kube_context)
        parts.append(from_kubernetes(api, settings.namespaces, settings.request_timeout_s))
    if settings.labels:
        parts.append(from_series(series))
    topo = merge(parts)
    add_declared(topo, settings.edges)
    return topo
