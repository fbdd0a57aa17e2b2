"""PodDisruptionBudgets in the fake cluster, as the API server's eviction subresource applies them.

A ``policy/v1`` ``PodDisruptionBudget`` selects pods of its namespace (``spec.selector``,
``matchLabels`` and ``matchExpressions``) and says how many must stay healthy: ``minAvailable``
or ``maxUnavailable``, an integer or a percentage of the expected pods (rounded up, as
``intstr.GetScaledValueFromIntOrPercent(..., roundUp=true)``). Healthy means Ready. As in the
real disruption controller, the expected pods are the owning ReplicaSets' and StatefulSets'
``spec.replicas`` (so a pod just evicted and not yet replaced counts as missing), except for an
integer ``minAvailable``, which is compared with the pods that exist.

An eviction (``POST .../pods/<name>/eviction``) of a pod a budget covers is refused with the
API server's own answer when it would break the budget: 429 ``TooManyRequests``, message
"Cannot evict pod as it would violate the pod's disruption budget.", one ``DisruptionBudget``
cause "The disruption budget <name> needs <desired> healthy pods and has <current> currently"
(``pkg/registry/core/pod/storage/eviction.go``). A pod that is not Ready may go while the
budget holds (the default ``unhealthyPodEvictionPolicy: IfHealthyBudget``). A pod covered by
more than one budget answers 500, as the real server does; a budget with neither field set
allows no eviction here (the fake's reading). A budget's ``status``
(``currentHealthy``, ``desiredHealthy``, ``disruptionsAllowed``, ``expectedPods``) is
refreshed at every eviction that consults it.
"""

from __future__ import annotations

import math
from typing import Any

from app.testing.k8s_objects import match_labels, rfc3339

__all__ = ["pdb", "eviction_refusal", "validate_pdb"]

Obj = dict[str, Any]
_TOO_MANY = "Cannot evict pod as it would violate the pod's disruption budget."
_MULTIPLE = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."


def pdb(ns: str, name: str, selector: dict[str, str], min_available: int | str | None = None,
        max_unavailable: int | str | None = None) -> Obj:
    """A ``policy/v1`` PodDisruptionBudget selecting pods by ``matchLabels``."""
    spec: Obj = {"selector": {"matchLabels": dict(selector)}}
    if min_available is not None:
        spec["minAvailable"] = min_available
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": ns, "labels": {}, "annotations": {},
                         "creationTimestamp": rfc3339()},
            "spec": spec, "status": {}}


def validate_pdb(obj: Obj) -> str | None:
    """Why the API server would reject this budget (422), or None."""
    spec = obj.get("spec") or {}
    name = obj["metadata"]["name"]
    if "minAvailable" in spec and "maxUnavailable" in spec:
        return f'PodDisruptionBudget.policy "{name}" is invalid: spec: Invalid value: ' \
               '"...": minAvailable and maxUnavailable cannot be both set'
    for key in ("minAvailable", "maxUnavailable"):
        if key in spec and _scaled(spec[key], 100) is None:
            return f'PodDisruptionBudget.policy "{name}" is invalid: spec.{key}: Invalid value: {spec[key]!r}: ' \
                   "must be a non-negative integer or a percentage"
    if not isinstance(spec.get("selector", {}), dict):
        return f'PodDisruptionBudget.policy "{name}" is invalid: spec.selector: must be a label selector'
    return None


def _scaled(value: Any, total: int) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.endswith("%") and value[:-1].isdigit():
        return math.ceil(int(value[:-1]) * total / 100)
    return None


def _selector_text(selector: Obj) -> str:
    """A label selector object as the selector string :func:`match_labels` reads."""
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], ", ".join(e.get("values") or [])
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})",
                      "Exists": key, "DoesNotExist": f"!{key}"}[op])
    return ",".join(parts)


def _selects(budget: Obj, pod: Obj) -> bool:
    selector = (budget.get("spec") or {}).get("selector")
    if selector is None:
        return False  # policy/v1: a null selector selects nothing (an empty one selects everything)
    return match_labels(pod["metadata"].get("labels") or {}, _selector_text(selector))


def _ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions", []))


def _expected(objects: dict[str, Any], ns: str, pods: list[Obj]) -> int:
    """The pods there should be: the owning ReplicaSets' and StatefulSets' ``spec.replicas``, one
    per pod without such an owner (the disruption controller's ``getExpectedScale``)."""
    owners: dict[tuple[str, str], int] = {}
    loose = 0
    for p in pods:
        ref = next((o for o in p["metadata"].get("ownerReferences") or []
                    if o.get("kind") in ("ReplicaSet", "StatefulSet")), None)
        owner = None if ref is None else objects[ref["kind"].lower() + "s"].get((ns, ref["name"]))
        if ref is None or owner is None:
            loose += 1
        else:
            owners[(ref["kind"], ref["name"])] = int((owner.get("spec") or {}).get("replicas", 1))
    return loose + sum(owners.values())


def _refresh(budget: Obj, pods: list[Obj], scale: int) -> tuple[int, int]:
    """Write the budget's status from ``pods`` (those it selects) and their controllers' ``scale``;
    returns (current, desired) healthy. An integer ``minAvailable`` counts the pods themselves,
    as the real controller does; a percentage or ``maxUnavailable`` counts the controllers' scale."""
    spec = budget.get("spec") or {}
    by_pods = isinstance(spec.get("minAvailable"), int) and not isinstance(spec.get("minAvailable"), bool)
    expected = len(pods) if by_pods else scale
    healthy = sum(1 for p in pods if _ready(p))
    if "maxUnavailable" in spec:
        desired = max(0, expected - (_scaled(spec["maxUnavailable"], expected) or 0))
    elif "minAvailable" in spec:
        desired = _scaled(spec["minAvailable"], expected) or 0
    else:
        desired = expected  # neither set: the fake allows no voluntary disruption
    budget["status"] = {"currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": expected,
                        "disruptionsAllowed": max(0, healthy - desired),
                        "observedGeneration": budget["metadata"].get("generation", 1)}
    return healthy, desired


def eviction_refusal(objects: dict[str, Any], ns: str, pod: Obj) -> tuple[int, str, Obj | None] | None:
    """Why evicting ``pod`` is refused: (code, message, details) as the API server answers, or None."""
    budgets = [b for (bns, _), b in objects["poddisruptionbudgets"].items() if bns == ns and _selects(b, pod)]
    if not budgets:
        return None
    if len(budgets) > 1:
        return 500, _MULTIPLE, None
    budget = budgets[0]
    covered = [p for (pns, _), p in objects["pods"].items() if pns == ns and _selects(budget, p)]
    healthy, desired = _refresh(budget, covered, _expected(objects, ns, covered))
    allowed = healthy - desired >= 1 if _ready(pod) else healthy >= desired
    if allowed:
        return None
    cause = {"reason": "DisruptionBudget",
             "message": f"The disruption budget {budget['metadata']['name']} needs {desired} healthy pods "
                        f"and has {healthy} currently"}
    return 429, _TOO_MANY, {"causes": [cause]}
