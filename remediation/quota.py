"""GPU priority quotas made real on Kubernetes: PriorityClasses, ResourceQuotas, loans, use vs share.

The policy (``remediation.gpu_quota``, :mod:`remediation.quota_settings`) divides a pool of GPUs
between workload classes by share. On the cluster that becomes:

- one ``PriorityClass`` per class, ``aiops-gpu-<class>`` with the class's ``priority`` (higher
  preempts lower, so inference displaces preprocessing under pressure);
- one ``ResourceQuota`` (``quota_name``) per namespace of a class whose ``requests.<resource>``
  is the class's GPUs (``floor(share x pool)``, plus what it borrowed, minus what it lent), split
  evenly over the class's namespaces.

:func:`plan_quota` diffs that with what the cluster has (``aiops quota plan``); :func:`apply_quota`
writes the diff (``aiops quota apply``), honouring the kill switch and dry-run, and audits it.
Loans (:func:`lend`) move idle GPUs of a lending class to a borrowing one within ``min_share`` /
``max_share`` and are kept in the state database, so every agent and worker sees the same ones;
the ``gpu_quota_lend`` action does it from a playbook and gives them back on rollback.
:class:`GpuQuotaCollector` exports use versus share per class.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from aiops.model import Sample, Series
from aiops.state import StateDB
from remediation.guards import kill_switch_on
from remediation.kube import Kube, KubePermanentError
from remediation.quota_settings import GpuQuotaSettings, WorkloadClass
from remediation.runs import RunStore
from remediation.settings import RemediationSettings

__all__ = ["Change", "class_gpus", "plan_quota", "apply_quota", "usage", "loans", "lend", "GpuQuotaCollector",
           "LOANS_KEY"]

LOANS_KEY = "gpu_quota_loans"


@dataclass(frozen=True, slots=True)
class Change:
    """One object to create or change: ``before`` is None for a new object."""

    kind: str  # PriorityClass | ResourceQuota
    name: str
    namespace: str | None
    before: dict[str, Any] | None
    after: dict[str, Any]

    def describe(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        if self.before is None:
            return f"create {self.kind} {where}{self.name}: {json.dumps(self.after, sort_keys=True)}"
        return (f"change {self.kind} {where}{self.name}: {json.dumps(self.before, sort_keys=True)} -> "
                f"{json.dumps(self.after, sort_keys=True)}")


def loans(db: StateDB) -> dict[str, int]:
    """Current loans, ``{"lender->borrower": gpus}``."""
    raw = db.kv_get(LOANS_KEY)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return {str(k): int(v) for k, v in data.items() if isinstance(v, int) and v > 0}


def _save_loans(db: StateDB, value: Mapping[str, int]) -> None:
    db.kv_put(LOANS_KEY, json.dumps({k: v for k, v in sorted(value.items()) if v > 0}).encode())


def class_gpus(policy: GpuQuotaSettings, current_loans: Mapping[str, int] | None = None) -> dict[str, int]:
    """GPUs of each class: its guaranteed ``floor(share x pool)`` plus borrowed minus lent."""
    out = {c.name: math.floor(c.share * policy.pool_gpus + 1e-9) for c in policy.classes}
    for key, n in (current_loans or {}).items():
        lender, _, borrower = key.partition("->")
        if lender in out and borrower in out:
            out[lender] -= n
            out[borrower] += n
    return out


def _split(total: int, namespaces: list[str]) -> dict[str, int]:
    base, extra = divmod(max(total, 0), len(namespaces))
    return {ns: base + (1 if i < extra else 0) for i, ns in enumerate(namespaces)}


def _desired(policy: GpuQuotaSettings, current_loans: Mapping[str, int]) -> tuple[list[Change], list[Change]]:
    gpus = class_gpus(policy, current_loans)
    pcs = [Change("PriorityClass", f"aiops-gpu-{c.name}", None, None,
                  {"value": c.priority, "description": f"aiops gpu_quota class {c.name} ({c.share:.0%} of the pool)"},
                  )
           for c in policy.classes]
    quotas = [Change("ResourceQuota", policy.quota_name, ns, None, {f"requests.{policy.resource}": str(n)})
              for c in policy.classes for ns, n in _split(gpus[c.name], c.namespaces).items()]
    return pcs, quotas


def plan_quota(policy: GpuQuotaSettings, kube: Kube, db: StateDB) -> list[Change]:
    """What must change on the cluster so that it matches the policy and the current loans."""
    pcs, quotas = _desired(policy, loans(db))
    out: list[Change] = []
    from kubernetes import client

    sched = client.SchedulingV1Api(kube._client())
    for want in pcs:
        try:
            pc = kube.call(f"read priorityclass {want.name}", sched.read_priority_class, want.name)
            before = {"value": int(pc.value or 0), "description": pc.description or ""}
        except KubePermanentError as exc:
            if exc.status != 404:
                raise
            before = None
        if before is None or before["value"] != want.after["value"]:
            out.append(Change(want.kind, want.name, None, before, want.after))
    for want in quotas:
        try:
            q = kube.call(f"read resourcequota {want.namespace}/{want.name}",
                          kube.core.read_namespaced_resource_quota, want.name, want.namespace)
            before = {k: str(v) for k, v in ((q.spec.hard if q.spec else None) or {}).items()}
        except KubePermanentError as exc:
            if exc.status != 404:
                raise
            before = None
        if before is None or any(before.get(k) != v for k, v in want.after.items()):
            out.append(Change(want.kind, want.name, want.namespace, before, {**(before or {}), **want.after}))
    return out


def apply_quota(settings: RemediationSettings, kube: Kube, db: StateDB, actor: str,
                dry_run: bool = False) -> list[Change]:
    """Write the planned changes; refused under the kill switch; audited as ``gpu_quota_applied``.

    Raises:
        RemediationError: the kill switch is on.
    """
    from kubernetes import client

    from aiops.errors import RemediationError

    policy = settings.gpu_quota
    if kill_switch_on(settings, db):
        raise RemediationError("gpu_quota apply refused: the kill switch is on")
    dry_run = dry_run or settings.dry_run
    changes = plan_quota(policy, kube, db)
    store = RunStore(db)
    if dry_run or not changes:
        store.audit(None, "", "gpu_quota_planned", actor, {"dry_run": dry_run,
                                                            "changes": [asdict(c) for c in changes]})
        return changes
    sched = client.SchedulingV1Api(kube._client())
    for c in changes:
        if c.kind == "PriorityClass":
            if c.before is not None:  # value is immutable: replace it (pods keep their resolved priority)
                kube.call(f"delete priorityclass {c.name}", sched.delete_priority_class, c.name)
            body = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": c.name},
                    "value": c.after["value"], "description": c.after["description"], "globalDefault": False}
            kube.call(f"create priorityclass {c.name}", sched.create_priority_class, body)
        elif c.before is None:
            body = {"apiVersion": "v1", "kind": "ResourceQuota",
                    "metadata": {"name": c.name, "namespace": c.namespace,
                                 "labels": {"app.kubernetes.io/managed-by": "aiops"}},
                    "spec": {"hard": c.after}}
            kube.call(f"create resourcequota {c.namespace}/{c.name}", kube.core.create_namespaced_resource_quota,
                      c.namespace, body)
        else:
            kube.call(f"patch resourcequota {c.namespace}/{c.name}", kube.core.patch_namespaced_resource_quota,
                      c.name, c.namespace, {"spec": {"hard": c.after}})
    store.audit(None, "", "gpu_quota_applied", actor, {"changes": [asdict(c) for c in changes]})
    return changes


def usage(policy: GpuQuotaSettings, kube: Kube) -> dict[str, float]:
    """GPUs requested by the running and pending pods of each class."""
    out: dict[str, float] = {}
    for c in policy.classes:
        total = 0.0
        for ns in c.namespaces:
            pods = kube.call(f"list pods {ns}", kube.core.list_namespaced_pod, ns)
            for p in pods.items:
                if p.status is not None and p.status.phase in ("Succeeded", "Failed"):
                    continue
                for ctr in (p.spec.containers if p.spec else None) or []:
                    res = ctr.resources
                    req = ((res.requests if res else None) or {}).get(policy.resource) or \
                        ((res.limits if res else None) or {}).get(policy.resource) or 0
                    total += float(req)
        out[c.name] = total
    return out


def _class(policy: GpuQuotaSettings, name: str) -> WorkloadClass:
    for c in policy.classes:
        if c.name == name:
            return c
    raise KeyError(name)


def lend(policy: GpuQuotaSettings, kube: Kube, db: StateDB, lender: str, borrower: str, gpus: int | None,
         give_back: bool = False) -> dict[str, Any]:
    """New loans after lending (or giving back) ``gpus`` (None: all that may move); nothing is written.

    Lending takes only the lender's idle GPUs (its GPUs minus what its pods request), never below
    its ``min_share``, and never lifts the borrower over its ``max_share``.
    """
    lc, bc = _class(policy, lender), _class(policy, borrower)
    if not give_back and not (lc.lend and bc.borrow):
        raise ValueError(f"gpu_quota: {lender!r} does not lend or {borrower!r} does not borrow")
    key = f"{lender}->{borrower}"
    current = loans(db)
    if give_back:
        moved = current.get(key, 0) if gpus is None else min(gpus, current.get(key, 0))
        new = {**current, key: current.get(key, 0) - moved}
        return {"loans": new, "moved": -moved, "previous": current}
    have = class_gpus(policy, current)
    used = usage(policy, kube)
    idle = max(0, math.floor(have[lender] - used.get(lender, 0.0)))
    floor_keep = math.ceil((lc.min_share or 0.0) * policy.pool_gpus - 1e-9)
    room = (math.floor((bc.max_share or 1.0) * policy.pool_gpus + 1e-9) - have[borrower])
    moved = max(0, min(idle, have[lender] - floor_keep, room, gpus if gpus is not None else idle))
    new = {**current, key: current.get(key, 0) + moved}
    return {"loans": new, "moved": moved, "previous": current, "idle": idle, "used": used}


def save_loans(db: StateDB, value: Mapping[str, int]) -> None:
    """Record the loans every agent and worker reads."""
    _save_loans(db, value)


class GpuQuotaCollector:
    """Use versus share per workload class, as series.

    ``aiops_gpu_quota_gpus{class}`` (what the class may use now, loans included),
    ``aiops_gpu_quota_guaranteed_gpus{class}``, ``aiops_gpu_quota_used_gpus{class}`` (requested by
    its pods) and ``aiops_gpu_quota_used_ratio{class}`` (used over its GPUs).
    """

    name = "gpu_quota"

    def __init__(self, policy: GpuQuotaSettings, kube: Kube, db: StateDB) -> None:
        self.policy, self.kube, self.db = policy, kube, db
        self.target = f"pool/{policy.pool_gpus}"
        self.interval_s = policy.interval_s
        self.timeout_s = 10.0
        self.jitter_s = 0.5

    def collect(self, now_ms: int) -> list[Sample]:
        have = class_gpus(self.policy, loans(self.db))
        base = class_gpus(self.policy)
        used = usage(self.policy, self.kube)
        out = []
        for c in self.policy.classes:
            labels = {"class": c.name}
            out += [Sample(Series.of("aiops_gpu_quota_gpus", labels), now_ms, float(have[c.name])),
                    Sample(Series.of("aiops_gpu_quota_guaranteed_gpus", labels), now_ms, float(base[c.name])),
                    Sample(Series.of("aiops_gpu_quota_used_gpus", labels), now_ms, used[c.name]),
                    Sample(Series.of("aiops_gpu_quota_used_ratio", labels), now_ms,
                           used[c.name] / have[c.name] if have[c.name] > 0 else math.nan)]
        return out

    def close(self) -> None:
        return None
