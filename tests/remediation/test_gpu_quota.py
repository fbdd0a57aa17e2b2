"""GPU priority quotas against the fake API server: plan/apply, enforcement under a burst, lending."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rem_helpers import alert, playbook
from sqlalchemy import select

from aiops.state import StateDB, audit
from app.testing import FakeKubernetes
from remediation import Executor, Kube, RunStore, start_playbook
from remediation.quota import GpuQuotaCollector, apply_quota, class_gpus, loans, plan_quota
from remediation.settings import RemediationSettings

POLICY = {"enabled": True, "pool_gpus": 40, "classes": [
    {"name": "inference", "namespaces": ["inference"], "share": 0.6, "priority": 1_000_000, "borrow": True,
     "max_share": 0.9},
    {"name": "finetune", "namespaces": ["training"], "share": 0.3, "priority": 1000, "lend": True, "min_share": 0.1},
    {"name": "preprocess", "namespaces": ["batch"], "share": 0.1, "priority": 100},
]}


@pytest.fixture
def k8s() -> Iterator[FakeKubernetes]:
    with FakeKubernetes(pod_ready_delay_s=0.02) as fake:
        yield fake


@pytest.fixture
def env(k8s: FakeKubernetes, db: StateDB) -> Iterator[tuple[RemediationSettings, Kube]]:
    settings = RemediationSettings(kubeconfig=k8s.kubeconfig_path, request_timeout_s=5, max_retries=0,
                                   gpu_quota=POLICY)
    kube = Kube(settings.kubeconfig, timeout_s=5)
    yield settings, kube
    kube.close()


def _gpu_deployment(k8s: FakeKubernetes, ns: str, name: str, replicas: int) -> None:
    k8s.add_deployment(ns, name, replicas=0)
    with k8s._lock:
        dep = k8s._objects["deployments"][(ns, name)]
        dep["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"nvidia.com/gpu": "1"},
                                                                         "limits": {"nvidia.com/gpu": "1"}}
        k8s._bump(dep, spec_changed=True)
    k8s.set_replicas(ns, name, replicas)


def _pods(k8s: FakeKubernetes, ns: str) -> int:
    return len(k8s.pods(ns))


def test_plan_then_apply_creates_priority_classes_and_quotas(k8s: FakeKubernetes, db: StateDB,
                                                              env: tuple[RemediationSettings, Kube]) -> None:
    settings, kube = env
    changes = plan_quota(settings.gpu_quota, kube, db)
    assert sorted(c.describe().split(":")[0] for c in changes) == [
        "create PriorityClass aiops-gpu-finetune", "create PriorityClass aiops-gpu-inference",
        "create PriorityClass aiops-gpu-preprocess", "create ResourceQuota batch/aiops-gpu-quota",
        "create ResourceQuota inference/aiops-gpu-quota", "create ResourceQuota training/aiops-gpu-quota"]
    assert apply_quota(settings, kube, db, "cli:test", dry_run=True) and plan_quota(settings.gpu_quota, kube, db)
    apply_quota(settings, kube, db, "cli:test")
    assert plan_quota(settings.gpu_quota, kube, db) == []
    quota = k8s._read("resourcequotas", "inference", "aiops-gpu-quota")
    assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": "24"}
    assert k8s._read("priorityclasses", None, "aiops-gpu-inference")["value"] == 1_000_000
    with db.begin() as conn:
        rows = conn.execute(select(audit.c.event, audit.c.actor).order_by(audit.c.id)).all()
    assert [(r.event, r.actor) for r in rows] == [("gpu_quota_planned", "cli:test"), ("gpu_quota_applied", "cli:test")]


def test_inference_keeps_its_share_under_a_finetuning_burst(k8s: FakeKubernetes, db: StateDB,
                                                            env: tuple[RemediationSettings, Kube]) -> None:
    settings, kube = env
    apply_quota(settings, kube, db, "cli:test")
    _gpu_deployment(k8s, "inference", "llm", 24)
    _gpu_deployment(k8s, "training", "sft", 40)  # a burst asking for the whole pool
    k8s.wait_for(lambda: _pods(k8s, "inference") == 24 and _pods(k8s, "training") == 12, timeout_s=20)
    assert _pods(k8s, "training") == 12  # capped at its 30 % share: the rest is refused, not queued on GPUs
    assert any("exceeded quota" in e["message"] for e in k8s.events("training"))
    collector = GpuQuotaCollector(settings.gpu_quota, kube, db)
    got = {(s.series.name, s.series.get("class")): s.value for s in collector.collect(1_000)}
    assert got[("aiops_gpu_quota_used_gpus", "inference")] == 24 and got[("aiops_gpu_quota_gpus", "inference")] == 24
    assert got[("aiops_gpu_quota_used_gpus", "finetune")] == 12 and got[("aiops_gpu_quota_used_ratio", "finetune")] == 1


def test_idle_finetuning_share_is_lent_to_inference_and_given_back(k8s: FakeKubernetes, db: StateDB,
                                                                   env: tuple[RemediationSettings, Kube]) -> None:
    settings, kube = env
    apply_quota(settings, kube, db, "cli:test")
    _gpu_deployment(k8s, "training", "sft", 4)  # fine-tuning uses 4 of its 12
    _gpu_deployment(k8s, "inference", "llm", 24)
    k8s.wait_for(lambda: _pods(k8s, "inference") == 24 and _pods(k8s, "training") == 4, timeout_s=20)
    ex = Executor(settings, db, None, kube=kube)
    ex.dispatch = lambda rid, _delay: ex.execute(rid)
    lend_pb = playbook([{"action": "gpu_quota_lend", "params": {"lender": "finetune", "borrower": "inference"}}],
                       name="lend")
    (run,) = start_playbook(alert(starts_at_ms=1), lend_pb, settings, db, ex.dispatch)
    done = RunStore(db).get(run.id)
    assert done.status.value == "applied", done.error
    # 8 idle, but fine-tuning keeps its 10 % floor (4 GPUs): 8 move; inference may now hold 32
    assert loans(db) == {"finetune->inference": 8} and class_gpus(settings.gpu_quota, loans(db))["inference"] == 32
    hard = k8s._read("resourcequotas", "inference", "aiops-gpu-quota")["spec"]["hard"]
    assert hard["requests.nvidia.com/gpu"] == "32"
    k8s.set_replicas("inference", "llm", 32)
    k8s.wait_for(lambda: _pods(k8s, "inference") == 32, timeout_s=20)
    back = playbook([{"action": "gpu_quota_lend", "params": {"lender": "finetune", "borrower": "inference",
                                                             "give_back": True}}], name="back")
    (run,) = start_playbook(alert(starts_at_ms=2), back, settings, db, ex.dispatch)
    assert RunStore(db).get(run.id).status.value == "applied"
    assert loans(db) == {} and plan_quota(settings.gpu_quota, kube, db) == []
    hard = k8s._read("resourcequotas", "training", "aiops-gpu-quota")["spec"]["hard"]
    assert hard["requests.nvidia.com/gpu"] == "12"


def test_policy_errors_name_the_field() -> None:
    from pydantic import ValidationError

    bad: dict[str, Any] = {**POLICY, "classes": [*POLICY["classes"], {"name": "x", "namespaces": ["inference"],
                                                                       "share": 0.05}]}
    with pytest.raises(ValidationError, match="namespace 'inference' is in both"):
        RemediationSettings(gpu_quota=bad)
    with pytest.raises(ValidationError, match="more than the whole pool"):
        RemediationSettings(gpu_quota={**POLICY, "classes": [{"name": "a", "namespaces": ["a"], "share": 0.7},
                                                              {"name": "b", "namespaces": ["b"], "share": 0.4}]})
