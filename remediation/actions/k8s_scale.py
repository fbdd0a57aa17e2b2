"""``k8s_scale``: set the replicas of a Deployment or StatefulSet through its scale subresource.

``replicas`` is absolute (``4``), relative (``"+2"``, ``"-1"``) or a factor (``"x2"``,
``"x0.5"``, rounded up), always clamped to ``[min_replicas, max_replicas]``. The plan fixes the
absolute target once, so a redelivered task never scales twice. A 409 conflict (someone
changed the object between our read and our write) is retried at once after a fresh read, then
with backoff.
"""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from aiops.errors import RemediationError
from remediation.actions.base import ActionContext, ActionParams, blast
from remediation.kube import KubeTemporaryError

__all__ = ["K8sScale", "ScaleParams", "target_replicas"]

INT32_MAX = 2**31 - 1  # replicas are int32 in the Kubernetes API
_CONFLICT_REREADS = 3  # a conflict means "read again": cheap, so retry at once before backing off
_REPLICAS = re.compile(r"^(?:([+-])(\d+)|[x*](\d+(?:\.\d+)?)|(\d+))$")


class ScaleParams(ActionParams):
    kind: Literal["Deployment", "StatefulSet"] = Field("Deployment", description="Workload kind.")
    name: str = Field(min_length=1, description="Workload name.")
    namespace: str = Field("default", min_length=1, description="Workload namespace.")
    replicas: str = Field(description="Absolute '4', relative '+2' / '-1' (quoted), or factor 'x2'.")
    min_replicas: int = Field(1, ge=0, le=INT32_MAX, description="Never scale below this.")
    max_replicas: int = Field(20, ge=0, le=INT32_MAX, description="Never scale above this.")

    @field_validator("replicas", mode="before")
    @classmethod
    def _replicas(cls, value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            # YAML's unquoted -3 is the number -3, not the change "-3": say so instead of guessing
            raise ValueError(f"a replica count cannot be negative, got {value} (write '-{-value}' (quoted) "
                             f"to remove {-value})")
        text = str(value).strip().replace(" ", "")
        m = _REPLICAS.match(text)
        if isinstance(value, bool) or not m:
            raise ValueError(f"expected a count '4', a change '+2' / '-1' or a factor 'x2', got {value!r}")
        sign, delta, factor, absolute = m.groups()
        number = float(factor) if factor else int(delta or absolute)
        if number > INT32_MAX:
            raise ValueError(f"{value!r} is beyond what the Kubernetes API accepts (replicas are int32, "
                             f"at most {INT32_MAX})")
        return text

    @model_validator(mode="after")
    def _bounds(self) -> ScaleParams:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        return self


def target_replicas(current: int, spec: str, low: int, high: int) -> int:
    """The absolute replica count ``spec`` asks for from ``current``, clamped to [low, high].

    Examples:
        >>> target_replicas(3, "+2", 1, 10), target_replicas(3, "x2", 1, 5), target_replicas(1, "-3", 1, 9)
        (5, 5, 1)
    """
    m = _REPLICAS.match(spec)
    if m is None:
        raise RemediationError(f"replicas {spec!r}: expected '4', '+2', '-1' or 'x2'")
    sign, delta, factor, absolute = m.groups()
    if sign:
        want = current + int(delta) if sign == "+" else current - int(delta)
    elif factor:
        want = math.ceil(current * float(factor))
    else:
        want = int(absolute)
    return max(low, min(high, want))


class K8sScale:
    name: ClassVar[str] = "k8s_scale"
    Params: ClassVar[type[ActionParams]] = ScaleParams

    @staticmethod
    def _read(p: ScaleParams, ctx: ActionContext) -> Any:
        api = ctx.kube.apps
        fn = api.read_namespaced_deployment_scale if p.kind == "Deployment" else api.read_namespaced_stateful_set_scale
        return ctx.kube.call(f"read {p.kind} {p.namespace}/{p.name} scale", fn, p.name, p.namespace)

    def _set(self, p: ScaleParams, replicas: int, ctx: ActionContext) -> dict[str, Any]:
        api = ctx.kube.apps
        fn = (api.patch_namespaced_deployment_scale if p.kind == "Deployment"
              else api.patch_namespaced_stateful_set_scale)
        for attempt in range(_CONFLICT_REREADS + 1):
            now = int(self._read(p, ctx).spec.replicas or 0)
            if now == replicas:  # already there: a redelivery after the change, or someone else did it
                return {"replicas": replicas, "changed": False}
            # Like `kubectl scale`: an unconditional merge patch of an absolute count. The target was
            # fixed in the plan, so writing it twice is harmless, and the controller's status writes
            # (which move resourceVersion all the time during a rollout) cannot make it fail.
            try:
                ctx.kube.call(f"patch {p.kind} {p.namespace}/{p.name} scale", fn, p.name, p.namespace,
                              {"spec": {"replicas": replicas}})
            except KubeTemporaryError as exc:
                if exc.status != 409 or attempt == _CONFLICT_REREADS:
                    raise
                continue  # 409: someone wrote in between; read again and retry at once
            return {"replicas": replicas, "changed": True, "from": now}
        raise AssertionError("unreachable")  # the loop returns or raises

    def plan(self, params: Any, ctx: ActionContext) -> dict[str, Any]:
        p: ScaleParams = params
        current = int(self._read(p, ctx).spec.replicas or 0)
        target = target_replicas(current, p.replicas, p.min_replicas, p.max_replicas)
        return {
            "previous": {"replicas": current},
            "target": {"replicas": target},
            "blast": blast(replicas=abs(target - current), namespaces=[p.namespace]),
        }

    def apply(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        return self._set(params, int(plan["target"]["replicas"]), ctx)

    def rollback(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        return self._set(params, int(plan["previous"]["replicas"]), ctx)
