"""ResourceQuota admission of GPU requests in the fake cluster, as the API server's quota plugin does.

A namespace's ``ResourceQuota`` objects with ``requests.nvidia.com/gpu`` (or ``nvidia.com/gpu``)
in ``spec.hard`` cap the sum of the GPU requests of its pods: the workload controller's pod
creation is refused past it (the ReplicaSet then reports ``FailedCreate ... exceeded quota``), and
``status.used`` is kept current. Only GPUs are accounted; other resources are not limited here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GPU", "gpu_request", "quota_refusal", "refresh_quota_status"]

GPU = "nvidia.com/gpu"
_KEYS = (f"requests.{GPU}", GPU)
Obj = dict[str, Any]


def gpu_request(pod_spec: Obj) -> float:
    """GPUs a pod spec requests (limits count where requests are absent, as for extended resources)."""
    total = 0.0
    for c in pod_spec.get("containers", []) or []:
        res = c.get("resources") or {}
        value = (res.get("requests") or {}).get(GPU, (res.get("limits") or {}).get(GPU, 0))
        total += float(value or 0)
    return total


def _used(objects: dict[str, Any], ns: str) -> float:
    return sum(gpu_request(p.get("spec") or {}) for (pns, _), p in objects["pods"].items() if pns == ns
               and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))


def quota_refusal(objects: dict[str, Any], ns: str, pod_spec: Obj) -> str | None:
    """Why a new pod with ``pod_spec`` may not be created in ``ns``, or None."""
    want = gpu_request(pod_spec)
    if want <= 0:
        return None
    used = _used(objects, ns)
    for (qns, name), q in objects["resourcequotas"].items():
        if qns != ns:
            continue
        hard = (q.get("spec") or {}).get("hard") or {}
        for key in _KEYS:
            if key in hard and used + want > float(hard[key]):
                return (f'pods is forbidden: exceeded quota: {name}, requested: {key}={want:g}, '
                        f'used: {key}={used:g}, limited: {key}={float(hard[key]):g}')
    return None


def refresh_quota_status(objects: dict[str, Any], bump: Any) -> None:
    """Set ``status.hard`` / ``status.used`` of every quota (bumping only what changed)."""
    for (ns, _), q in objects["resourcequotas"].items():
        hard = dict((q.get("spec") or {}).get("hard") or {})
        used = {k: f"{_used(objects, ns):g}" for k in hard if k in _KEYS}
        status = {"hard": hard, "used": used}
        if q.get("status") != status:
            q["status"] = status
            bump(q)
