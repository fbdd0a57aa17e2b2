"""``k8s_scale_out``: add capacity to a workload through whatever owns its replica count.

Scaling a Deployment that a HorizontalPodAutoscaler (or a KEDA ScaledObject) manages is a fight
the action loses: the autoscaler writes the replicas back within seconds. This action looks for
an owner first and acts through it:

- an ``autoscaling/v2`` HPA whose ``scaleTargetRef`` names the workload: its ``minReplicas`` (the
  floor) is raised to the target, so the HPA itself scales out and cannot scale back below it;
- a KEDA ``ScaledObject`` (``keda.sh/v1alpha1``) targeting it: its ``minReplicaCount`` is raised;
- neither: the ``scale`` subresource is set, as ``k8s_scale`` does.

The target is computed from the workload's current replicas (``"+2"``, ``"x2"`` or ``"6"``),
clamped to ``[min_replicas, max_replicas]`` and to the autoscaler's own maximum. The plan records
which path was taken and the previous floor or count, so a rollback (or the scale-in playbook)
restores exactly that.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from remediation.actions.base import ActionContext, ActionParams, blast
from remediation.actions.k8s_scale import ScaleParams, target_replicas

__all__ = ["K8sScaleOut", "ScaleOutParams"]

KEDA = ("keda.sh", "v1alpha1", "scaledobjects")


class ScaleOutParams(ActionParams):
    kind: Literal["Deployment", "StatefulSet"] = Field("Deployment", description="Workload kind.")
    name: str = Field(min_length=1, description="Workload name.")
    namespace: str = Field("default", min_length=1, description="Workload namespace.")
    replicas: str = Field(description="Absolute '6', relative '+2' or factor 'x2' of the current replicas.")
    min_replicas: int = Field(1, ge=0, le=2**31 - 1, description="Never below this.")
    max_replicas: int = Field(20, ge=0, le=2**31 - 1, description="Never above this.")
    keda: bool = Field(True, description="Also look for a KEDA ScaledObject (needs the keda.sh CRD).")

    _replicas = field_validator("replicas", mode="before")(ScaleParams._replicas.__func__)  # type: ignore[attr-defined]

    @model_validator(mode="after")
    def _bounds(self) -> ScaleOutParams:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        return self


class K8sScaleOut:
    name: ClassVar[str] = "k8s_scale_out"
    Params: ClassVar[type[ActionParams]] = ScaleOutParams

    @staticmethod
    def _hpa(p: ScaleOutParams, ctx: ActionContext) -> Any:
        api = ctx.kube.autoscaling
        hpas = ctx.kube.call(f"list hpa {p.namespace}", api.list_namespaced_horizontal_pod_autoscaler, p.namespace)
        return next((h for h in hpas.items if h.spec.scale_target_ref.name == p.name
                     and h.spec.scale_target_ref.kind == p.kind), None)

    @staticmethod
    def _scaled_object(p: ScaleOutParams, ctx: ActionContext) -> dict[str, Any] | None:
        from remediation.kube import KubePermanentError

        api = ctx.kube.custom
        try:
            got = ctx.kube.call(f"list scaledobjects {p.namespace}", api.list_namespaced_custom_object,
                                *KEDA[:2], p.namespace, KEDA[2])
        except KubePermanentError as exc:
            if exc.status == 404:  # KEDA is not installed: no CRD, no owner
                return None
            raise
        for so in got.get("items", []):
            ref = (so.get("spec") or {}).get("scaleTargetRef") or {}
            if ref.get("name") == p.name and ref.get("kind", "Deployment") == p.kind:
                return dict(so)
        return None

    @staticmethod
    def _replicas(p: ScaleOutParams, ctx: ActionContext) -> int:
        api = ctx.kube.apps
        fn = api.read_namespaced_deployment_scale if p.kind == "Deployment" else api.read_namespaced_stateful_set_scale
        return int(ctx.kube.call(f"read {p.kind} {p.namespace}/{p.name} scale", fn, p.name, p.namespace).spec.replicas
                   or 0)

    def plan(self, params: Any, ctx: ActionContext) -> dict[str, Any]:
        p: ScaleOutParams = params
        current = self._replicas(p, ctx)
        hpa = self._hpa(p, ctx)
        if hpa is not None:
            ceiling = min(p.max_replicas, int(hpa.spec.max_replicas))
            floor = int(hpa.spec.min_replicas or 1)
            want = max(floor, target_replicas(current, p.replicas, p.min_replicas, ceiling))
            return {"via": "hpa", "owner": hpa.metadata.name, "previous": {"min_replicas": floor},
                    "target": {"min_replicas": want}, "current_replicas": current,
                    "blast": blast(replicas=max(0, want - current), namespaces=[p.namespace])}
        so = self._scaled_object(p, ctx) if p.keda else None
        if so is not None:
            spec = so.get("spec") or {}
            ceiling = min(p.max_replicas, int(spec.get("maxReplicaCount", 100)))
            floor = int(spec.get("minReplicaCount", 0))
            want = max(floor, target_replicas(current, p.replicas, p.min_replicas, ceiling))
            return {"via": "keda", "owner": so["metadata"]["name"], "previous": {"min_replicas": floor},
                    "target": {"min_replicas": want}, "current_replicas": current,
                    "blast": blast(replicas=max(0, want - current), namespaces=[p.namespace])}
        want = target_replicas(current, p.replicas, p.min_replicas, p.max_replicas)
        return {"via": "scale", "owner": None, "previous": {"replicas": current}, "target": {"replicas": want},
                "current_replicas": current, "blast": blast(replicas=abs(want - current), namespaces=[p.namespace])}

    def _write(self, p: ScaleOutParams, plan: dict[str, Any], state: dict[str, Any],
               ctx: ActionContext) -> dict[str, Any]:
        via, owner = plan["via"], plan.get("owner")
        if via == "hpa":
            api = ctx.kube.autoscaling
            ctx.kube.call(f"patch hpa {p.namespace}/{owner}", api.patch_namespaced_horizontal_pod_autoscaler,
                          owner, p.namespace, {"spec": {"minReplicas": int(state["min_replicas"])}})
            return {"via": "hpa", "hpa": owner, "min_replicas": int(state["min_replicas"])}
        if via == "keda":
            api = ctx.kube.custom
            ctx.kube.call(f"patch scaledobject {p.namespace}/{owner}", api.patch_namespaced_custom_object,
                          *KEDA[:2], p.namespace, KEDA[2], owner,
                          {"spec": {"minReplicaCount": int(state["min_replicas"])}})
            return {"via": "keda", "scaledobject": owner, "min_replica_count": int(state["min_replicas"])}
        api = ctx.kube.apps
        fn = (api.patch_namespaced_deployment_scale if p.kind == "Deployment"
              else api.patch_namespaced_stateful_set_scale)
        ctx.kube.call(f"patch {p.kind} {p.namespace}/{p.name} scale", fn, p.name, p.namespace,
                      {"spec": {"replicas": int(state["replicas"])}})
        return {"via": "scale", "replicas": int(state["replicas"])}

    def apply(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        return self._write(params, plan, plan["target"], ctx)

    def rollback(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        return self._write(params, plan, plan["previous"], ctx)
