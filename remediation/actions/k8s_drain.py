"""``k8s_drain``: cordon a node and evict its pods, as ``kubectl drain`` does.

For a GPU that fell off the bus (XID 79) or reports double-bit ECC errors: no new pod may land on
the node, and the pods there move elsewhere. Pods go through the Eviction API, so a
PodDisruptionBudget that would break answers 429 and the run retries later, never forcing.
DaemonSet pods (they would come straight back) and mirror pods are left, as ``kubectl drain
--ignore-daemonsets`` does; so are pods in namespaces outside ``namespaces`` (reported in the
result). The plan lists the pods; a redelivered task evicts the same ones (already gone: fine).
Rollback uncordons the node; evicted pods are recreated by their controllers, not restored.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from remediation.actions.base import ActionContext, ActionParams, blast
from remediation.kube import KubePermanentError

__all__ = ["K8sDrain", "DrainParams"]


class DrainParams(ActionParams):
    node: str = Field(min_length=1, description="Node name.")
    namespaces: list[str] = Field(min_length=1, description="Evict pods of these namespaces only.")
    grace_period_s: int | None = Field(None, ge=0, le=86_400, description="Termination grace period.")


def _skipped(pod: Any) -> str | None:
    owners = pod.metadata.owner_references or []
    if any(o.kind == "DaemonSet" for o in owners):
        return "daemonset"
    if "kubernetes.io/config.mirror" in (pod.metadata.annotations or {}):
        return "mirror"
    return None


class K8sDrain:
    name: ClassVar[str] = "k8s_drain"
    Params: ClassVar[type[ActionParams]] = DrainParams

    def plan(self, params: Any, ctx: ActionContext) -> dict[str, Any]:
        p: DrainParams = params
        core = ctx.kube.core
        node = ctx.kube.call(f"read node {p.node}", core.read_node, p.node)
        pods = ctx.kube.call(f"list pods on {p.node}", core.list_pod_for_all_namespaces,
                             field_selector=f"spec.nodeName={p.node}")
        evict: list[dict[str, str]] = []
        left: list[dict[str, str]] = []
        for pod in pods.items:
            ns, name = pod.metadata.namespace, pod.metadata.name
            why = _skipped(pod) or (None if ns in p.namespaces else "namespace not allowed")
            (left if why else evict).append({"namespace": ns, "name": name, **({"why": why} if why else {})})
        return {"previous": {"unschedulable": bool(node.spec.unschedulable)},
                "target": {"unschedulable": True, "evict": evict}, "left": left,
                "blast": {**blast(pods=len(evict), namespaces=sorted({e["namespace"] for e in evict})), "nodes": 1}}

    def apply(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        from kubernetes import client  # imported on use, like remediation.kube

        p: DrainParams = params
        core = ctx.kube.core
        ctx.kube.call(f"patch node {p.node}", core.patch_node, p.node, {"spec": {"unschedulable": True}})
        evicted, gone = [], []
        options = None if p.grace_period_s is None else client.V1DeleteOptions(grace_period_seconds=p.grace_period_s)
        for pod in plan["target"]["evict"]:
            ns, name = pod["namespace"], pod["name"]
            body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=ns), delete_options=options)
            try:  # a PDB that would break answers 429: a temporary error, the run retries
                ctx.kube.call(f"evict pod {ns}/{name}", core.create_namespaced_pod_eviction, name, ns, body)
                evicted.append(f"{ns}/{name}")
            except KubePermanentError as exc:
                if exc.status != 404:
                    raise
                gone.append(f"{ns}/{name}")
        return {"cordoned": p.node, "evicted": evicted, "already_gone": gone,
                "left": [f"{x['namespace']}/{x['name']} ({x['why']})" for x in plan.get("left", [])]}

    def rollback(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        p: DrainParams = params
        ctx.kube.call(f"patch node {p.node}", ctx.kube.core.patch_node, p.node,
                      {"spec": {"unschedulable": bool(plan["previous"]["unschedulable"])}})
        return {"uncordoned": not plan["previous"]["unschedulable"],
                "note": "evicted pods are recreated by their controllers, not restored"}
