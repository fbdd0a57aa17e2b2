"""``k8s_hpa``: adjust a HorizontalPodAutoscaler's minReplicas and/or maxReplicas (autoscaling/v2)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from remediation.actions.base import ActionContext, ActionParams, blast

__all__ = ["K8sHpa", "HpaParams"]


class HpaParams(ActionParams):
    name: str = Field(min_length=1, description="HPA name.")
    namespace: str = Field("default", min_length=1, description="HPA namespace.")
    min_replicas: int | None = Field(None, ge=1, le=2**31 - 1, description="New spec.minReplicas (int32).")
    max_replicas: int | None = Field(None, ge=1, le=2**31 - 1, description="New spec.maxReplicas (int32).")

    @model_validator(mode="after")
    def _some(self) -> HpaParams:
        if self.min_replicas is None and self.max_replicas is None:
            raise ValueError("give min_replicas, max_replicas or both")
        if self.min_replicas is not None and self.max_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        return self


class K8sHpa:
    name: ClassVar[str] = "k8s_hpa"
    Params: ClassVar[type[ActionParams]] = HpaParams

    def _read(self, p: HpaParams, ctx: ActionContext) -> dict[str, int | None]:
        api = ctx.kube.autoscaling
        hpa = ctx.kube.call(f"read hpa {p.namespace}/{p.name}", api.read_namespaced_horizontal_pod_autoscaler,
                            p.name, p.namespace)
        return {"min_replicas": hpa.spec.min_replicas, "max_replicas": hpa.spec.max_replicas}

    def _set(self, p: HpaParams, want: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        spec = {}
        if want.get("min_replicas") is not None:
            spec["minReplicas"] = want["min_replicas"]
        if want.get("max_replicas") is not None:
            spec["maxReplicas"] = want["max_replicas"]
        api = ctx.kube.autoscaling
        ctx.kube.call(f"patch hpa {p.namespace}/{p.name}", api.patch_namespaced_horizontal_pod_autoscaler,
                      p.name, p.namespace, {"spec": spec})
        return {"set": spec}

    def plan(self, params: Any, ctx: ActionContext) -> dict[str, Any]:
        p: HpaParams = params
        prev = self._read(p, ctx)
        target = {
            "min_replicas": p.min_replicas if p.min_replicas is not None else prev["min_replicas"],
            "max_replicas": p.max_replicas if p.max_replicas is not None else prev["max_replicas"],
        }
        # moving minReplicas starts or stops pods at once; lowering maxReplicas removes every pod
        # above it (10 -> 2: up to 8); raising maxReplicas only allows the autoscaler more
        moved = max(abs((target["min_replicas"] or 1) - (prev["min_replicas"] or 1)),
                    max(0, (prev["max_replicas"] or 1) - (target["max_replicas"] or 1)))
        return {"previous": prev, "target": target, "blast": blast(replicas=moved, namespaces=[p.namespace])}

    def apply(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        return self._set(params, plan["target"], ctx)

    def rollback(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        return self._set(params, plan["previous"], ctx)
