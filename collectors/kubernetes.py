"""Kubernetes object state as series, named and labelled like kube-state-metrics.

One informer thread per resource (pods, deployments, nodes, events) keeps a cache through the
official client's list + watch: a list gives the objects and a resourceVersion, a watch from
there streams the changes; ``410 Gone``/``Expired`` (the server compacted that version) or any
other failure re-lists (with a capped backoff), and a full re-list every ``resync_s`` bounds
drift. ``collect`` renders the caches, so a collection costs no API call:

| series | labels |
|---|---|
| ``kube_pod_status_phase`` (1 for the current phase, 0 for the others) | namespace, pod, phase |
| ``kube_pod_status_ready`` (1 for the current value) | namespace, pod, condition (true/false/unknown) |
| ``kube_pod_info`` | namespace, pod, node, created_by_kind, created_by_name |
| ``kube_pod_container_status_restarts_total`` | namespace, pod, container |
| ``kube_pod_container_status_last_terminated_reason`` (1) | namespace, pod, container, reason |
| ``kube_pod_container_status_waiting_reason`` (1) | namespace, pod, container, reason |
| ``kube_pod_container_resource_requests`` | namespace, pod, container, node, resource, unit |
| ``kube_deployment_spec_replicas``, ``_status_replicas``, ``_status_replicas_available`` | namespace, deployment |
| ``kube_node_status_condition`` (1 for the current status) | node, condition, status |
| ``kube_node_spec_unschedulable`` | node |
| ``aiops_kube_warning_events_total`` (sum of the events' ``count``) | namespace, reason, kind, name |

A series whose object went away gets one Prometheus staleness marker, as scraped series do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiops.errors import CollectError
from aiops.kubeconfig import kube_api_client
from aiops.logs import get_logger
from aiops.model import Sample, Series
from collectors.kubesettings import KubernetesStateSettings
from collectors.scrape import STALE_NAN

__all__ = ["KubernetesStateCollector", "Informer", "quantity"]

log = get_logger("collectors.kubernetes")

_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
_TRUTH = ("true", "false", "unknown")
_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
           "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}


def quantity(text: object) -> float:
    """A Kubernetes quantity as a number: ``"500m"`` → 0.5, ``"2Gi"`` → 2147483648.

    Examples:
        >>> quantity("500m"), quantity("2Gi"), quantity(4)
        (0.5, 2147483648.0, 4.0)
    """
    s = str(text).strip()
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if s.endswith(suffix) and s[: -len(suffix)]:
            return float(s[: -len(suffix)]) * _SUFFIX[suffix]
    return float(s)


class Informer:
    """A list + watch cache of one resource, kept fresh by its own thread.

    Args:
        name: what it watches (for logs and health), e.g. ``pods``.
        list_fn: the client's list function (``CoreV1Api.list_pod_for_all_namespaces``, ...).
        resync_s: re-list at least this often.
        watch_timeout_s: server-side timeout of one watch request.
    """

    def __init__(self, name: str, list_fn: Callable[..., Any], resync_s: float, watch_timeout_s: float) -> None:
        self.name = name
        self.list_fn = list_fn
        self.resync_s = resync_s
        self.watch_timeout_s = watch_timeout_s
        self.objects: dict[str, Any] = {}  # uid -> object (client model)
        self.lock = threading.Lock()
        self.synced = threading.Event()
        self.error: str | None = None
        self.relists = 0
        self.expired = 0
        self._stop = threading.Event()
        self._watch: Any = None
        self._thread = threading.Thread(target=self._run, name=f"informer-{name}", daemon=True)

    def start(self) -> Informer:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 2.0) -> None:
        """Ask the thread to end (it ends at the next event or when its watch request times out)."""
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        if timeout_s > 0:
            self._thread.join(timeout_s)

    def snapshot(self) -> list[Any]:
        with self.lock:
            return list(self.objects.values())

    def _relist(self) -> str:
        got = self.list_fn(_request_timeout=30)
        with self.lock:
            self.objects = {o.metadata.uid or f"{o.metadata.namespace}/{o.metadata.name}": o for o in got.items}
        self.relists += 1
        self.error = None
        self.synced.set()
        return str(got.metadata.resource_version or "")

    def _run(self) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        backoff = 1.0
        while not self._stop.is_set():
            try:
                rv = self._relist()
                listed_at = time.monotonic()
                while not self._stop.is_set() and time.monotonic() - listed_at < self.resync_s:
                    self._watch = watch.Watch()  # type: ignore[no-untyped-call]
                    timeout = int(max(1, min(self.watch_timeout_s, self.resync_s - (time.monotonic() - listed_at))))
                    for event in self._watch.stream(self.list_fn, resource_version=rv, timeout_seconds=timeout,
                                                    _request_timeout=timeout + 10):
                        obj = event["object"]
                        key = obj.metadata.uid or f"{obj.metadata.namespace}/{obj.metadata.name}"
                        with self.lock:
                            if event["type"] == "DELETED":
                                self.objects.pop(key, None)
                            else:
                                self.objects[key] = obj
                        rv = str(obj.metadata.resource_version or rv)
                        if self._stop.is_set():
                            break
                    rv = self._watch.resource_version or rv
                backoff = 1.0
            except ApiException as exc:
                if exc.status == 410:  # compacted: list again from now
                    self.expired += 1
                    continue
                self._failed(f"HTTP {exc.status} {exc.reason}")
            except Exception as exc:  # network errors, timeouts: list again after a pause
                self._failed(type(exc).__name__)
            else:
                continue
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, 30.0)

    def _failed(self, why: str) -> None:
        if self._stop.is_set():
            return  # the connection broke because we are closing
        self.error = f"{self.name}: {why}"
        log.warning("kubernetes_watch_failed", error=self.error)


class KubernetesStateCollector:
    """kube-state-metrics-style series from list + watch caches of the cluster.

    Args:
        settings: kubeconfig/context, namespaces, resync and watch timeouts, schedule.
        api_client: a ready ``kubernetes.client.ApiClient`` (tests); default: from ``settings``.
    """

    name = "kubernetes"

    def __init__(self, settings: KubernetesStateSettings, api_client: Any = None) -> None:
        from kubernetes import client

        self.settings = settings
        self.target = settings.context or "cluster"
        self.interval_s = settings.interval_s
        self.timeout_s = settings.timeout_s
        self.jitter_s = settings.jitter_s
        self._api = api_client if api_client is not None else _api_client(settings)
        core, apps = client.CoreV1Api(self._api), client.AppsV1Api(self._api)
        spans: list[tuple[str, Callable[..., Any]]] = []
        scopes: list[str | None] = list(settings.namespaces) or [None]
        for ns in scopes:
            def scoped(all_fn: Callable[..., Any], ns_fn: Callable[..., Any],
                       ns: str | None = ns) -> Callable[..., Any]:
                if ns is None:
                    return all_fn
                return lambda **kw: ns_fn(ns, **kw)

            where = ns or "all"
            spans.append((f"pods/{where}", scoped(core.list_pod_for_all_namespaces, core.list_namespaced_pod)))
            spans.append((f"deployments/{where}", scoped(apps.list_deployment_for_all_namespaces,
                                                         apps.list_namespaced_deployment)))
            if settings.events:
                spans.append((f"events/{where}", scoped(core.list_event_for_all_namespaces,
                                                        core.list_namespaced_event)))
        spans.append(("nodes", core.list_node))
        self.informers = [Informer(n, fn, settings.resync_s, settings.watch_timeout_s).start() for n, fn in spans]
        self._emitted: set[Series] = set()

    def wait_synced(self, timeout_s: float = 10.0) -> bool:
        """True once every informer has listed once (tests, start-up)."""
        deadline = time.monotonic() + timeout_s
        return all(i.synced.wait(max(0.0, deadline - time.monotonic())) for i in self.informers)

    def collect(self, now_ms: int) -> list[Sample]:
        """Render the caches; informers that never listed fail the collection (with what the others have).

        Raises:
            CollectError: an informer has no data yet because listing failed.
        """
        out: list[Sample] = []
        for inf in self.informers:
            kind = inf.name.split("/", 1)[0]
            render = {"pods": _pod_samples, "deployments": _deployment_samples, "nodes": _node_samples,
                      "events": _event_samples}[kind]
            out.extend(render(inf.snapshot(), now_ms))
        out = _sum_duplicates(out)
        current = {s.series for s in out}
        out.extend(Sample(s, now_ms, STALE_NAN) for s in sorted(self._emitted - current))
        self._emitted = current
        broken = [i.error for i in self.informers if i.error and not i.synced.is_set()]
        if broken:
            raise CollectError(f"kubernetes {self.target}: " + "; ".join(str(b) for b in broken), samples=out)
        return out

    def close(self) -> None:
        for inf in self.informers:
            inf.stop(timeout_s=0)
        deadline = time.monotonic() + 1.0
        for inf in self.informers:
            inf.stop(timeout_s=max(0.0, deadline - time.monotonic()))


def _api_client(settings: KubernetesStateSettings) -> Any:
    return kube_api_client(settings.kubeconfig, settings.context)


def _s(metric: str, value: float, ts: int, /, **labels: str) -> Sample:
    return Sample(Series.of(metric, labels), ts, float(value))


def _pod_samples(pods: Iterable[Any], ts: int) -> list[Sample]:
    out: list[Sample] = []
    for p in pods:
        ns, pod = p.metadata.namespace or "", p.metadata.name or ""
        phase = (p.status.phase if p.status else None) or "Unknown"
        out.extend(_s("kube_pod_status_phase", 1 if ph == phase else 0, ts, namespace=ns, pod=pod, phase=ph)
                   for ph in _PHASES)
        ready = next((c.status for c in (p.status.conditions or []) if c.type == "Ready"), "Unknown") \
            if p.status else "Unknown"
        out.extend(_s("kube_pod_status_ready", 1 if t == str(ready).lower() else 0, ts, namespace=ns, pod=pod,
                      condition=t) for t in _TRUTH)
        owner = next(iter(p.metadata.owner_references or []), None)
        node = (p.spec.node_name if p.spec else None) or ""
        out.append(_s("kube_pod_info", 1, ts, namespace=ns, pod=pod, node=node,
                      created_by_kind=owner.kind if owner else "", created_by_name=owner.name if owner else ""))
        for c in (p.spec.containers if p.spec else None) or []:
            for resource, qty in ((c.resources.requests if c.resources else None) or {}).items():
                res = resource.replace(".", "_").replace("/", "_").replace("-", "_")
                unit = "core" if resource == "cpu" else "byte" if resource in ("memory", "ephemeral-storage") \
                    else "integer"
                try:
                    out.append(_s("kube_pod_container_resource_requests", quantity(qty), ts, namespace=ns, pod=pod,
                                  container=c.name, node=node, resource=res, unit=unit))
                except ValueError:
                    continue
        for cs in (p.status.container_statuses if p.status else None) or []:
            out.append(_s("kube_pod_container_status_restarts_total", cs.restart_count or 0, ts, namespace=ns,
                          pod=pod, container=cs.name))
            last = cs.last_state.terminated if cs.last_state else None
            if last is not None and last.reason:
                out.append(_s("kube_pod_container_status_last_terminated_reason", 1, ts, namespace=ns, pod=pod,
                              container=cs.name, reason=last.reason))
            waiting = cs.state.waiting if cs.state else None
            if waiting is not None and waiting.reason:
                out.append(_s("kube_pod_container_status_waiting_reason", 1, ts, namespace=ns, pod=pod,
                              container=cs.name, reason=waiting.reason))
    return out


def _deployment_samples(deployments: Iterable[Any], ts: int) -> list[Sample]:
    out: list[Sample] = []
    for d in deployments:
        labels = {"namespace": d.metadata.namespace or "", "deployment": d.metadata.name or ""}
        st = d.status
        out.append(_s("kube_deployment_spec_replicas", (d.spec.replicas if d.spec else None) or 0, ts, **labels))
        out.append(_s("kube_deployment_status_replicas", (st.replicas if st else None) or 0, ts, **labels))
        out.append(_s("kube_deployment_status_replicas_available", (st.available_replicas if st else None) or 0, ts,
                      **labels))
    return out


def _node_samples(nodes: Iterable[Any], ts: int) -> list[Sample]:
    out: list[Sample] = []
    for n in nodes:
        node = n.metadata.name or ""
        out.append(_s("kube_node_spec_unschedulable", 1 if (n.spec and n.spec.unschedulable) else 0, ts, node=node))
        for c in (n.status.conditions if n.status else None) or []:
            out.extend(_s("kube_node_status_condition", 1 if t == str(c.status).lower() else 0, ts, node=node,
                          condition=c.type, status=t) for t in _TRUTH)
    return out


def _event_samples(events: Iterable[Any], ts: int) -> list[Sample]:
    out: list[Sample] = []
    for e in events:
        if e.type != "Warning":
            continue
        inv = e.involved_object
        out.append(_s("aiops_kube_warning_events_total", e.count or 1, ts, namespace=e.metadata.namespace or "",
                      reason=e.reason or "", kind=inv.kind if inv else "", name=inv.name if inv else ""))
    return out


def _sum_duplicates(samples: list[Sample]) -> list[Sample]:
    """Events of one (reason, object) arrive as several Event objects: their counts add up."""
    seen: dict[Series, Sample] = {}
    for s in samples:
        prev = seen.get(s.series)
        seen[s.series] = s if prev is None or s.series.name != "aiops_kube_warning_events_total" \
            else Sample(s.series, s.ts_ms, prev.value + s.value)
    return list(seen.values())
