"""Kubernetes object shapes, patch semantics and selectors for :class:`FakeKubernetes`.

Plain dicts in the JSON shape the API server returns (``apiVersion``, ``kind``, ``metadata``,
``spec``, ``status``), so the real ``kubernetes`` client deserialises them into its models.
Patches follow the three content types the API server accepts for built-in kinds:
JSON Patch (RFC 6902), JSON Merge Patch (RFC 7386) and a strategic merge patch reduced to
what our actions send (lists of named items such as ``containers`` merge by ``name``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Resource",
    "RESOURCES",
    "PatchError",
    "apply_patch",
    "deployment",
    "statefulset",
    "hpa",
    "node",
    "pod",
    "replicaset",
    "service",
    "event",
    "status_body",
    "template_hash",
    "match_labels",
    "match_fields",
    "rfc3339",
]

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Resource:
    """One REST resource the fake serves: URL prefix parts and the kind it holds."""

    plural: str
    group: str  # "" for the core group
    version: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``deployments.apps`` as the API server names it in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES: dict[tuple[str, str, str], Resource] = {
    (r.group, r.version, r.plural): r
    for r in (
        Resource("deployments", "apps", "v1", "Deployment"),
        Resource("statefulsets", "apps", "v1", "StatefulSet"),
        Resource("replicasets", "apps", "v1", "ReplicaSet"),
        Resource("services", "", "v1", "Service"),
        Resource("horizontalpodautoscalers", "autoscaling", "v2", "HorizontalPodAutoscaler"),
        Resource("pods", "", "v1", "Pod"),
        Resource("events", "", "v1", "Event"),
        Resource("nodes", "", "v1", "Node", namespaced=False),
        Resource("scaledobjects", "keda.sh", "v1alpha1", "ScaledObject"),
        Resource("resourcequotas", "", "v1", "ResourceQuota"),
        Resource("priorityclasses", "scheduling.k8s.io", "v1", "PriorityClass", namespaced=False),
        Resource("poddisruptionbudgets", "policy", "v1", "PodDisruptionBudget"),
    )
}


def rfc3339(ts: float | None = None) -> str:
    """UTC time as the API server writes it: ``2026-01-02T03:04:05Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if ts is None else ts))


def _meta(name: str, namespace: str | None, labels: dict[str, str] | None,
          annotations: dict[str, str] | None = None) -> Obj:
    meta: Obj = {"name": name, "uid": str(uuid.uuid4()), "creationTimestamp": rfc3339(),
                 "labels": dict(labels or {}), "annotations": dict(annotations or {})}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def _workload(kind: str, ns: str, name: str, replicas: int, labels: dict[str, str] | None,
              image: str) -> Obj:
    sel = dict(labels or {"app": name})
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": _meta(name, ns, sel),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": sel},
            "template": {"metadata": {"labels": dict(sel), "annotations": {}},
                         "spec": {"containers": [{"name": name, "image": image}]}},
        },
        "status": {"observedGeneration": 1, "replicas": 0, "readyReplicas": 0, "availableReplicas": 0,
                   "updatedReplicas": 0},
    }


def deployment(ns: str, name: str, replicas: int = 1, labels: dict[str, str] | None = None,
               image: str = "registry.local/inference:1.0") -> Obj:
    """A Deployment; ``labels`` are its selector and pod template labels (default ``app=<name>``)."""
    obj = _workload("Deployment", ns, name, replicas, labels, image)
    obj["spec"]["strategy"] = {"type": "RollingUpdate",
                               "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    return obj


def statefulset(ns: str, name: str, replicas: int = 1, labels: dict[str, str] | None = None,
                image: str = "registry.local/inference:1.0") -> Obj:
    """A StatefulSet; its pods are named ``<name>-<ordinal>``."""
    obj = _workload("StatefulSet", ns, name, replicas, labels, image)
    obj["spec"]["serviceName"] = name
    obj["status"]["currentReplicas"] = 0
    return obj


def hpa(ns: str, name: str, target: str, min_replicas: int = 1, max_replicas: int = 10,
        target_kind: str = "Deployment", cpu_utilization: int = 80) -> Obj:
    """An autoscaling/v2 HorizontalPodAutoscaler scaling ``target_kind/target`` on CPU."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(name, ns, {}),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": target_kind, "name": target},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu_utilization}}}],
        },
        "status": {"currentReplicas": min_replicas, "desiredReplicas": min_replicas},
    }


def node(name: str, labels: dict[str, str] | None = None, gpus: int = 1) -> Obj:
    """A Ready, schedulable Node with ``gpus`` ``nvidia.com/gpu`` devices."""
    capacity = {"cpu": "16", "memory": "128Gi", "pods": "110", "nvidia.com/gpu": str(gpus)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": _meta(name, None, {"kubernetes.io/hostname": name, **(labels or {})}),
        "spec": {"unschedulable": False},
        "status": {"capacity": capacity, "allocatable": dict(capacity),
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                   "lastTransitionTime": rfc3339()}]},
    }


def pod(ns: str, name: str, labels: dict[str, str], template_spec: Obj, owner: Obj,
        node_name: str | None) -> Obj:
    """A Pending Pod created by the controller for ``owner`` (its ReplicaSet or StatefulSet)."""
    obj: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**_meta(name, ns, labels), "ownerReferences": [owner]},
        "spec": copy.deepcopy(template_spec),
        "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False" if node_name is None else "True"}]},
    }
    if node_name:
        obj["spec"]["nodeName"] = node_name
    return obj


def replicaset(ns: str, name: str, deployment: Obj, pod_hash: str, replicas: int) -> Obj:
    """The ReplicaSet a Deployment's controller keeps for one pod template (owned by the Deployment)."""
    template = copy.deepcopy(deployment["spec"]["template"])
    labels = {**template.get("metadata", {}).get("labels", {}), "pod-template-hash": pod_hash}
    template.setdefault("metadata", {})["labels"] = labels
    meta = _meta(name, ns, labels)
    meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"],
                                "uid": deployment["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta,
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template},
            "status": {"replicas": replicas, "observedGeneration": 1}}


def service(ns: str, name: str, selector: dict[str, str], port: int = 80) -> Obj:
    """A ClusterIP Service selecting pods by ``selector``."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, ns, {}),
            "spec": {"type": "ClusterIP", "selector": dict(selector),
                     "ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}]}}


def event(ns: str, involved: Obj, reason: str, message: str, type_: str = "Normal",
          component: str = "deployment-controller") -> Obj:
    """A core/v1 Event about ``involved`` (an object whose metadata names it)."""
    meta = involved["metadata"]
    now = rfc3339()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": _meta(f"{meta['name']}.{uuid.uuid4().hex[:16]}", ns, {}),
        "involvedObject": {"apiVersion": involved.get("apiVersion", "v1"), "kind": involved["kind"],
                           "name": meta["name"], "namespace": ns, "uid": meta.get("uid", "")},
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": component},
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "reportingComponent": component,
    }


def status_body(code: int, reason: str, message: str, details: Obj | None = None) -> Obj:
    """A ``Status`` object, the body of every API error (and of some successes)."""
    body: Obj = {"apiVersion": "v1", "kind": "Status", "metadata": {},
                 "status": "Success" if code < 400 else "Failure",
                 "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


def template_hash(template: Obj) -> str:
    """A stable 10-character hash of a pod template, like ``pod-template-hash``."""
    raw = json.dumps(template, sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()[:10]


# --- patches ---------------------------------------------------------------------------------


class PatchError(ValueError):
    """A patch body that cannot be applied (the API server answers 422 or 400)."""


def apply_patch(obj: Obj, patch: Any, content_type: str) -> Obj:
    """Return a patched deep copy of ``obj``.

    Raises:
        PatchError: the body does not fit its content type, or a JSON Patch op fails.
    """
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/json-patch+json":
        if not isinstance(patch, list):
            raise PatchError("json patch body must be a list of operations")
        return _json_patch(copy.deepcopy(obj), patch)
    if not isinstance(patch, dict):
        raise PatchError(f"{ctype} body must be a JSON object")
    if ctype == "application/merge-patch+json":
        merged: Obj = _merge(copy.deepcopy(obj), patch, strategic=False)
        return merged
    if ctype in ("application/strategic-merge-patch+json", "application/json"):
        merged = _merge(copy.deepcopy(obj), patch, strategic=True)
        return merged
    raise PatchError(f"unsupported patch content type {content_type!r}")


def _merge(target: Any, patch: Any, strategic: bool) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if strategic and key.startswith("$"):
            continue  # directives such as $retainKeys: this fake keeps every key
        if value is None:
            target.pop(key, None)
        elif strategic and isinstance(value, list) and isinstance(target.get(key), list) and _named(value):
            target[key] = _merge_named_list(target[key], value)
        else:
            target[key] = _merge(target.get(key), value, strategic)
    return target


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def _merge_named_list(current: list[Any], patch: list[Any]) -> list[Any]:
    # Strategic merge: containers, env, ports, volumes... merge by their "name" key.
    out = copy.deepcopy(current)
    for item in patch:
        idx = next((i for i, c in enumerate(out) if isinstance(c, dict) and c.get("name") == item["name"]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
        elif idx is None:
            out.append(copy.deepcopy(item))
        else:
            out[idx] = _merge(out[idx], item, strategic=True)
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"json patch path {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    cur = doc
    for p in parts[:-1]:
        try:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        except (KeyError, IndexError, ValueError, TypeError):
            raise PatchError(f"json patch path {path!r} does not exist") from None
    return cur


def _json_patch(doc: Obj, ops: list[Any]) -> Obj:
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"json patch operation {op!r} needs 'op' and 'path'")
        kind, path = op["op"], op["path"]
        parts = _pointer(path)
        if not parts:
            raise PatchError("json patch on the whole document is not supported")
        parent, last = _parent(doc, parts, path), parts[-1]
        if kind == "test":
            if _get(parent, last, path) != op.get("value"):
                raise PatchError(f"json patch test failed at {path!r}")
        elif kind == "remove":
            _get(parent, last, path)
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                del parent[last]
        elif kind in ("add", "replace"):
            if kind == "replace":
                _get(parent, last, path)
            if isinstance(parent, list):
                if last == "-":
                    parent.append(copy.deepcopy(op.get("value")))
                elif kind == "add":
                    parent.insert(int(last), copy.deepcopy(op.get("value")))
                else:
                    parent[int(last)] = copy.deepcopy(op.get("value"))
            elif isinstance(parent, dict):
                parent[last] = copy.deepcopy(op.get("value"))
            else:
                raise PatchError(f"json patch path {path!r} does not exist")
        else:
            raise PatchError(f"json patch op {kind!r} is not supported")
    return doc


def _get(parent: Any, key: str, path: str) -> Any:
    try:
        return parent[int(key)] if isinstance(parent, list) else parent[key]
    except (KeyError, IndexError, ValueError, TypeError):
        raise PatchError(f"json patch path {path!r} does not exist") from None


# --- selectors -------------------------------------------------------------------------------

_SET_EXPR = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(selector: str) -> list[str]:
    # Commas separate requirements, except inside "in (a,b)".
    parts, depth, cur = [], 0, ""
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def match_labels(labels: dict[str, str], selector: str | None) -> bool:
    """Whether ``labels`` satisfy a label selector (``=``, ``==``, ``!=``, ``in``, ``notin``, ``k``, ``!k``).

    Examples:
        >>> match_labels({"app": "web", "tier": "gpu"}, "app=web,tier in (gpu, cpu)")
        True
        >>> match_labels({"app": "web"}, "!app")
        False
    """
    if not selector:
        return True
    for req in _split_selector(selector):
        m = _SET_EXPR.match(req)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            ok = labels.get(key) in values if op == "in" else labels.get(key) not in values
        elif "!=" in req:
            key, value = (s.strip() for s in req.split("!=", 1))
            ok = labels.get(key) != value
        elif "=" in req:
            key, value = (s.strip() for s in req.replace("==", "=").split("=", 1))
            ok = labels.get(key) == value
        elif req.startswith("!"):
            ok = req[1:].strip() not in labels
        else:
            ok = req in labels
        if not ok:
            return False
    return True


def match_fields(obj: Obj, selector: str | None) -> bool:
    """Whether ``obj`` satisfies a field selector such as ``spec.nodeName=n1,status.phase!=Failed``."""
    if not selector:
        return True
    for req in _split_selector(selector):
        neg = "!=" in req
        path, value = (s.strip() for s in req.replace("!=", "=").replace("==", "=").split("=", 1))
        cur: Any = obj
        for part in path.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        actual = "" if cur is None else str(cur).lower() if isinstance(cur, bool) else str(cur)
        if (actual == value) == neg:
            return False
    return True
