"""Each Kubernetes action against the fake API server, through the real client: apply, the
stored plan, rollback, idempotent re-application; and the RBAC that remediation.rbac generates
for a step grants exactly the calls its action makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rem_helpers import playbook

from aiops.model import ActionStatus
from app.testing import FakeKubernetes
from remediation import get_action
from remediation.actions import RESTARTED_AT, ActionContext
from remediation.rbac import step_permissions

REPO = Path(__file__).resolve().parents[2]
NS = "inference"






def rollback(run_: Any, ctx: ActionContext) -> dict[str, Any]:
    action = get_action(run_.action)
    return action.rollback(action.Params.model_validate(run_.params), run_.extra["plan"], ctx)


def test_scale_statefulset_by_factor_and_roll_back(k8s: FakeKubernetes, run: Any) -> None:
    k8s.add_statefulset(NS, "kv", replicas=3)
    r = run({"action": "k8s_scale", "params": {"kind": "StatefulSet", "namespace": NS, "name": "kv",
                                               "replicas": "x2", "max_replicas": 5}})
    assert r.status is ActionStatus.APPLIED and r.extra["plan"]["target"] == {"replicas": 5}  # clamped
    assert k8s.get_statefulset(NS, "kv")["spec"]["replicas"] == 5
    assert rollback(r, run.ctx) == {"replicas": 3, "changed": True, "from": 5}
    assert k8s.get_statefulset(NS, "kv")["spec"]["replicas"] == 3


def test_hpa_bounds_and_roll_back(k8s: FakeKubernetes, run: Any) -> None:
    k8s.add_deployment(NS, "llm", replicas=2)
    k8s.add_hpa(NS, "llm", "llm", min_replicas=2, max_replicas=6)
    r = run({"action": "k8s_hpa", "params": {"namespace": NS, "name": "llm", "min_replicas": 4,
                                             "max_replicas": 12}})
    assert r.status is ActionStatus.APPLIED, r.error
    spec = k8s.get_hpa(NS, "llm")["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (4, 12)
    assert r.extra["plan"]["blast"]["replicas"] == 2
    rollback(r, run.ctx)
    spec = k8s.get_hpa(NS, "llm")["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 6)


def test_restart_like_kubectl_and_reapplying_is_a_no_op(k8s: FakeKubernetes, run: Any) -> None:
    k8s.add_deployment(NS, "llm", replicas=2)
    k8s.wait_ready(NS, "llm", 2)
    before = {p["metadata"]["name"] for p in k8s.pods(NS, "app=llm")}
    r = run({"action": "k8s_restart", "params": {"namespace": NS, "name": "{{ $labels.deployment }}"}})
    assert r.status is ActionStatus.APPLIED, r.error
    stamp = k8s.get_deployment(NS, "llm")["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT]
    assert stamp == r.extra["plan"]["target"]["restartedAt"] and stamp.endswith("Z")
    k8s.wait_for(lambda: before.isdisjoint(p["metadata"]["name"] for p in k8s.pods(NS, "app=llm")), 15)
    generation = k8s.get_deployment(NS, "llm")["metadata"]["generation"]
    action = get_action("k8s_restart")
    action.apply(action.Params.model_validate(r.params), r.extra["plan"], run.ctx)  # a redelivery
    assert k8s.get_deployment(NS, "llm")["metadata"]["generation"] == generation  # no second rollout
    assert rollback(r, run.ctx)["rolled_back"] is False


def test_delete_pods_by_selector_within_max_pods(k8s: FakeKubernetes, run: Any) -> None:
    k8s.add_deployment(NS, "llm", replicas=3)
    k8s.wait_ready(NS, "llm", 3)
    step = {"action": "k8s_delete_pod", "params": {"namespace": NS, "label_selector": "app=llm"}}
    refused = run(step, guards={"max_pods": 2})
    assert refused.status is ActionStatus.REFUSED and refused.error == "blast radius: touches 3 pods, limit 2"
    assert len(k8s.requests_to("POST", "/eviction")) == 0
    r = run(step, guards={"max_pods": 3})
    assert r.status is ActionStatus.APPLIED
    assert sorted(r.result["deleted"]) == sorted(r.extra["plan"]["target"]["deleted"])
    assert len(k8s.requests_to("POST", "/eviction")) == 3  # evicted (PDBs respected), not deleted
    assert len(k8s.requests_to("DELETE", "/pods/")) == 0
    gone = run({"action": "k8s_delete_pod", "params": {"namespace": NS, "name": "no-such-pod"}})
    assert gone.status is ActionStatus.FAILED and "HTTP 404" in (gone.error or "")


def test_cordon_and_roll_back(k8s: FakeKubernetes, run: Any) -> None:
    k8s.add_node("gpu-1")
    r = run({"action": "k8s_cordon", "params": {"node": "{{ $labels.node }}"}}, node="gpu-1")
    assert r.status is ActionStatus.APPLIED, r.error
    assert k8s.get_node("gpu-1")["spec"]["unschedulable"] is True
    rollback(r, run.ctx)
    assert not k8s.get_node("gpu-1")["spec"].get("unschedulable")


def test_forbidden_is_permanent_and_not_retried(k8s: FakeKubernetes, run: Any) -> None:
    k8s.add_deployment(NS, "llm", replicas=1)
    k8s.forbid("patch", "deployments/scale")
    r = run({"action": "k8s_scale", "params": {"namespace": NS, "name": "llm", "replicas": "3"}})
    assert r.status is ActionStatus.FAILED and "HTTP 403" in (r.error or "") and r.attempts == 1


def _needed(path: str, method: str) -> tuple[str, str, str]:
    parts = path.strip("/").split("/")
    group = "" if parts[0] == "api" else parts[1]
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    if rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    verb = {"GET": "get" if len(rest) > 1 else "list", "PATCH": "patch", "DELETE": "delete",
            "POST": "create"}[method]
    return group, resource, verb


@pytest.mark.parametrize("step", [
    {"action": "k8s_scale", "params": {"namespace": NS, "name": "llm", "replicas": "+1"}},
    {"action": "k8s_scale", "params": {"kind": "StatefulSet", "namespace": NS, "name": "kv", "replicas": "2"}},
    {"action": "k8s_restart", "params": {"namespace": NS, "name": "llm"}},
    {"action": "k8s_restart", "params": {"kind": "StatefulSet", "namespace": NS, "name": "kv"}},
    {"action": "k8s_hpa", "params": {"namespace": NS, "name": "llm", "min_replicas": 2}},
    {"action": "k8s_delete_pod", "params": {"namespace": NS, "label_selector": "app=llm"}},
    {"action": "k8s_delete_pod", "params": {"namespace": NS, "label_selector": "app=llm", "evict": False}},
    {"action": "k8s_delete_pod", "params": {"namespace": "{{ $labels.namespace }}", "name": "{{ $labels.pod }}"}},
    {"action": "k8s_cordon", "params": {"node": "gpu-1"}},
], ids=lambda s: f"{s['action']}-{'-'.join(str(v) for v in s['params'].values())}")
def test_generated_rbac_is_exactly_what_each_action_calls(k8s: FakeKubernetes, run: Any,
                                                          step: dict[str, Any]) -> None:
    """remediation.rbac grants a step precisely the API calls its action makes: none missing, none extra."""
    k8s.add_deployment(NS, "llm", replicas=2)
    k8s.add_statefulset(NS, "kv", replicas=1)
    k8s.add_hpa(NS, "llm", "llm")
    k8s.add_node("gpu-1")
    k8s.wait_ready(NS, "llm", 2)
    pod = k8s.pods(NS)[0]["metadata"]["name"]
    before = len(k8s.requests)
    guards = {"namespaces": [NS]}
    r = run(step, guards=guards, pod=pod)
    assert r.status is ActionStatus.APPLIED, r.error
    calls = {_needed(q.path, q.method) for q in k8s.requests[before:] if q.path.startswith(("/api/", "/apis/"))}
    granted = step_permissions(playbook([step], guards=guards), 0)
    assert {(p.api_group, p.resource, p.verb) for p in granted} == calls
    assert {p.namespace for p in granted} == ({None} if step["action"] == "k8s_cordon" else {NS})
