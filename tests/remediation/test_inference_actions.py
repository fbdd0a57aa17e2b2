"""Autoscaler-aware scale-out and node drain against the fake API server, through the real client."""

from __future__ import annotations

from typing import Any

from rem_helpers import playbook

from aiops.model import ActionStatus
from app.testing import FakeKubernetes
from remediation import get_action
from remediation.actions import ActionContext
from remediation.rbac import step_permissions

NS = "inference"






def _rollback(run_: Any, ctx: ActionContext) -> dict[str, Any]:
    action = get_action(run_.action)
    return action.rollback(action.Params.model_validate(run_.params), run_.extra["plan"], ctx)


SCALE_OUT = {"action": "k8s_scale_out", "params": {"namespace": NS, "name": "llm", "replicas": "+2",
                                                   "max_replicas": 8}}


def test_scale_out_raises_the_hpa_floor_instead_of_fighting_it(k8s: FakeKubernetes, run: Any) -> None:
    k8s.add_deployment(NS, "llm", replicas=3)
    k8s.add_hpa(NS, "llm-hpa", "llm", min_replicas=2, max_replicas=6)
    r = run(SCALE_OUT)
    assert r.status is ActionStatus.APPLIED, r.error
    assert r.extra["plan"]["via"] == "hpa" and r.extra["plan"]["target"] == {"min_replicas": 5}
    assert k8s.get_hpa(NS, "llm-hpa")["spec"]["minReplicas"] == 5
    assert k8s.get_deployment(NS, "llm")["spec"]["replicas"] == 3  # the HPA scales; we did not touch it
    _rollback(r, run.ctx)
    assert k8s.get_hpa(NS, "llm-hpa")["spec"]["minReplicas"] == 2


def test_scale_out_through_a_keda_scaled_object(k8s: FakeKubernetes, run: Any) -> None:
    k8s.add_deployment(NS, "llm", replicas=1)
    k8s._put("scaledobjects", {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                               "metadata": {"name": "llm-queue", "namespace": NS, "uid": "so-1", "labels": {}},
                               "spec": {"scaleTargetRef": {"name": "llm"}, "minReplicaCount": 1,
                                        "maxReplicaCount": 10}})
    r = run(SCALE_OUT)
    assert r.status is ActionStatus.APPLIED, r.error
    assert r.extra["plan"]["via"] == "keda"
    assert k8s._read("scaledobjects", NS, "llm-queue")["spec"]["minReplicaCount"] == 3


def test_scale_out_without_an_autoscaler_sets_the_replicas(k8s: FakeKubernetes, run: Any) -> None:
    k8s.add_deployment(NS, "llm", replicas=2)
    r = run(SCALE_OUT)
    assert r.status is ActionStatus.APPLIED and r.extra["plan"]["via"] == "scale"
    assert k8s.get_deployment(NS, "llm")["spec"]["replicas"] == 4


def test_drain_cordons_and_evicts_only_allowed_namespaces(k8s: FakeKubernetes, run: Any) -> None:
    k8s.add_node("gpu-node-1", gpus=8)
    k8s.add_deployment(NS, "llm", replicas=2)
    k8s.add_deployment("kube-system", "dns", replicas=1)
    k8s.wait_for(lambda: len(k8s.pods(NS)) == 2 and len(k8s.pods("kube-system")) == 1)
    on_node = [p["metadata"]["name"] for p in k8s.pods(NS) if p["spec"].get("nodeName") == "gpu-node-1"]
    step = {"action": "k8s_drain", "params": {"node": "gpu-node-1", "namespaces": [NS]}}
    r = run(step, guards={"namespaces": [NS]})
    assert r.status is ActionStatus.APPLIED, r.error
    assert k8s.get_node("gpu-node-1")["spec"]["unschedulable"] is True
    assert sorted(x.split("/")[1] for x in r.result["evicted"]) == sorted(on_node)
    assert all("kube-system" not in x for x in r.result["evicted"])
    evictions = k8s.requests_to("POST", "/eviction")
    assert len(evictions) == len(on_node)
    pb = playbook([step], guards={"namespaces": [NS]})
    perms = {(p.resource, p.verb, p.namespace) for p in step_permissions(pb, 0)}
    assert ("pods/eviction", "create", NS) in perms and ("nodes", "patch", None) in perms
