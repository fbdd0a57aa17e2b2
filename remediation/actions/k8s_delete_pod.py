"""``k8s_delete_pod``: remove one named pod, or the pods matching a label selector.

By default through the Eviction API (``create pods/eviction``), as ``kubectl drain`` does: the
API server refuses an eviction that would break the pod's PodDisruptionBudget with 429, which
is a ``TemporaryError`` retried with backoff, so remediation never takes a service below what
its owners allowed. ``evict: false`` deletes instead (``delete pods``; ignores budgets).
Its controller recreates the pod; a pod already gone counts as removed (idempotent on
redelivery). The number of pods is the blast radius the guards check. Not reversible.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from remediation.actions.base import ActionContext, ActionParams, blast
from remediation.kube import KubePermanentError

__all__ = ["K8sDeletePod", "DeletePodParams"]


class DeletePodParams(ActionParams):
    namespace: str = Field("default", min_length=1, description="Pod namespace.")
    name: str | None = Field(None, min_length=1, description="One pod by name.")
    label_selector: str | None = Field(None, min_length=1, description="Or every pod matching this selector.")
    grace_period_s: int | None = Field(None, ge=0, description="Termination grace period.")
    evict: bool = Field(True, description="Evict (respects PodDisruptionBudgets); false: delete.")

    @model_validator(mode="after")
    def _one(self) -> DeletePodParams:
        if (self.name is None) == (self.label_selector is None):
            raise ValueError("give exactly one of name or label_selector")
        return self


class K8sDeletePod:
    name: ClassVar[str] = "k8s_delete_pod"
    Params: ClassVar[type[ActionParams]] = DeletePodParams

    def plan(self, params: Any, ctx: ActionContext) -> dict[str, Any]:
        p: DeletePodParams = params
        core = ctx.kube.core
        if p.name is not None:
            ctx.kube.call(f"read pod {p.namespace}/{p.name}", core.read_namespaced_pod, p.name, p.namespace)
            names = [p.name]
        else:
            pods = ctx.kube.call(f"list pods {p.namespace} {p.label_selector}", core.list_namespaced_pod,
                                 p.namespace, label_selector=p.label_selector)
            names = sorted(pod.metadata.name for pod in pods.items)
        return {"previous": {"pods": names}, "target": {"deleted": names},
                "blast": blast(pods=len(names), namespaces=[p.namespace])}

    def apply(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        p: DeletePodParams = params
        core = ctx.kube.core
        deleted, gone = [], []
        for name in plan["target"]["deleted"]:
            kwargs = {} if p.grace_period_s is None else {"grace_period_seconds": p.grace_period_s}
            try:
                if p.evict:
                    from kubernetes import client  # imported on use, like remediation.kube

                    options = (None if p.grace_period_s is None
                               else client.V1DeleteOptions(grace_period_seconds=p.grace_period_s))
                    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=p.namespace),
                                             delete_options=options)
                    ctx.kube.call(f"evict pod {p.namespace}/{name}", core.create_namespaced_pod_eviction, name,
                                  p.namespace, body)
                else:
                    ctx.kube.call(f"delete pod {p.namespace}/{name}", core.delete_namespaced_pod, name,
                                  p.namespace, **kwargs)
                deleted.append(name)
            except KubePermanentError as exc:
                if exc.status != 404:
                    raise
                gone.append(name)  # deleted already: by our earlier delivery or by someone else
        return {"deleted": deleted, "already_gone": gone}

    def rollback(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        return {"rolled_back": False, "reason": "deleted pods are recreated by their controller, not restored"}
