"""``k8s_cordon``: mark a node unschedulable (or schedulable again with ``uncordon: true``)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from remediation.actions.base import ActionContext, ActionParams, blast

__all__ = ["K8sCordon", "CordonParams"]


class CordonParams(ActionParams):
    node: str = Field(min_length=1, description="Node name.")
    uncordon: bool = Field(False, description="Make the node schedulable instead.")


class K8sCordon:
    name: ClassVar[str] = "k8s_cordon"
    Params: ClassVar[type[ActionParams]] = CordonParams

    def _set(self, p: CordonParams, unschedulable: bool, ctx: ActionContext) -> dict[str, Any]:
        core = ctx.kube.core
        ctx.kube.call(f"patch node {p.node}", core.patch_node, p.node, {"spec": {"unschedulable": unschedulable}})
        return {"unschedulable": unschedulable}

    def plan(self, params: Any, ctx: ActionContext) -> dict[str, Any]:
        p: CordonParams = params
        node = ctx.kube.call(f"read node {p.node}", ctx.kube.core.read_node, p.node)
        was = bool(node.spec.unschedulable)
        radius = blast()
        if not p.uncordon and not was:
            # the guards cap how many nodes may be unschedulable once this one is: count them live
            nodes = ctx.kube.call("list nodes", ctx.kube.core.list_node)
            radius["nodes"] = 1
            radius["cordoned_after"] = 1 + sum(1 for n in nodes.items if n.spec.unschedulable)
        return {"previous": {"unschedulable": was}, "target": {"unschedulable": not p.uncordon}, "blast": radius}

    def apply(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        return self._set(params, bool(plan["target"]["unschedulable"]), ctx)

    def rollback(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        return self._set(params, bool(plan["previous"]["unschedulable"]), ctx)
