"""``k8s_restart``: a rollout restart, exactly as ``kubectl rollout restart`` does it.

kubectl patches ``spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]`` with
the current time; the changed pod template makes the controller roll every pod. The timestamp
is fixed in the plan, so a redelivered task writes the same value and triggers no second rollout.
A restart cannot be undone: ``rollback`` says so and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, Literal

from pydantic import Field

from remediation.actions.base import ActionContext, ActionParams, blast

__all__ = ["K8sRestart", "RestartParams", "RESTARTED_AT"]

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


class RestartParams(ActionParams):
    kind: Literal["Deployment", "StatefulSet"] = Field("Deployment", description="Workload kind.")
    name: str = Field(min_length=1, description="Workload name.")
    namespace: str = Field("default", min_length=1, description="Workload namespace.")


class K8sRestart:
    name: ClassVar[str] = "k8s_restart"
    Params: ClassVar[type[ActionParams]] = RestartParams

    def plan(self, params: Any, ctx: ActionContext) -> dict[str, Any]:
        p: RestartParams = params
        api = ctx.kube.apps
        fn = api.read_namespaced_deployment if p.kind == "Deployment" else api.read_namespaced_stateful_set
        obj = ctx.kube.call(f"read {p.kind} {p.namespace}/{p.name}", fn, p.name, p.namespace)
        meta = obj.spec.template.metadata
        annotations = (meta.annotations if meta is not None else None) or {}
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "previous": {"restartedAt": annotations.get(RESTARTED_AT)},
            "target": {"restartedAt": stamp},
            "blast": blast(pods=int(obj.spec.replicas or 0), namespaces=[p.namespace]),
        }

    def apply(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        p: RestartParams = params
        api = ctx.kube.apps
        fn = api.patch_namespaced_deployment if p.kind == "Deployment" else api.patch_namespaced_stateful_set
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: plan["target"]["restartedAt"]}}}}}
        ctx.kube.call(f"patch {p.kind} {p.namespace}/{p.name} (rollout restart)", fn, p.name, p.namespace, body)
        return {"restartedAt": plan["target"]["restartedAt"]}

    def rollback(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        return {"rolled_back": False, "reason": "a rollout restart cannot be undone"}
