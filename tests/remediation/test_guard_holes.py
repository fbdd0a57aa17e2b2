"""Guard gaps of issue 11, each reproduced against the fake Kubernetes API at the wire.

Before: one webhook cordoned 3 of 3 GPU nodes; lowering an HPA's maxReplicas 10 -> 2 counted as
blast 0; with no namespace list, labels picked kube-system/coredns and scaled it to 0; no global
limit on concurrent actions; a run approved after its alert resolved still executed; after a
refusal at execution later steps stayed ``planned`` and ``escalate_to`` heard nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rem_helpers import alert, playbook, wait_status
from sqlalchemy import insert, select

from aiops.errors import RemediationError
from aiops.model import ActionStatus
from aiops.notification import outbox
from aiops.state import StateDB
from alerting.tables import alerts  # the test plays alerting: it records the alert resolved
from app.testing import FakeKubernetes
from remediation import Executor, Kube, RunStore, approve, start_playbook
from remediation.settings import RemediationSettings

NS = "inference"




@pytest.fixture
def run(k8s: FakeKubernetes, db: StateDB) -> Iterator[Any]:
    """run(steps, guards, **labels) -> the runs, executed synchronously in this process."""
    settings = RemediationSettings(kubeconfig=k8s.kubeconfig_path, request_timeout_s=5, max_retries=0)
    kube = Kube(settings.kubeconfig, timeout_s=5)
    ex = Executor(settings, db, None, kube=kube)
    ex.dispatch = lambda rid, _delay: ex.execute(rid)
    n = iter(range(1, 10_000))

    def go(steps: list[dict[str, Any]], guards: dict[str, Any] | None = None, **labels: str) -> list[Any]:
        pb = playbook(steps, name=f"pb{next(n)}", guards=guards)
        made = start_playbook(alert(starts_at_ms=next(n), **labels), pb, settings, db, ex.dispatch)
        return [RunStore(db).get(r.id) for r in made]

    yield go
    kube.close()


def test_cordon_is_capped_by_the_live_count_of_unschedulable_nodes(k8s: FakeKubernetes, run: Any) -> None:
    for i in range(3):
        k8s.add_node(f"gpu-{i}")
    step = {"action": "k8s_cordon", "params": {"node": "{{ $labels.node }}"}}
    first = run([step], node="gpu-0")[0]
    assert first.status is ActionStatus.APPLIED, first.error
    second = run([step], node="gpu-1")[0]
    assert second.status is ActionStatus.REFUSED
    assert second.error == "blast radius: 2 nodes would be unschedulable, limit 1"
    assert [bool(k8s.get_node(f"gpu-{i}")["spec"].get("unschedulable")) for i in range(3)] == [True, False, False]
    allowed = run([step], guards={"max_cordoned_nodes": 5}, node="gpu-2")[0]  # the global cap (1) still wins
    assert allowed.status is ActionStatus.REFUSED and "limit 1" in (allowed.error or "")


def test_lowering_hpa_max_counts_in_the_blast_radius(k8s: FakeKubernetes, run: Any) -> None:
    k8s.add_deployment(NS, "llm", replicas=10)
    k8s.add_hpa(NS, "llm", "llm", min_replicas=2, max_replicas=10)
    r = run([{"action": "k8s_hpa", "params": {"namespace": NS, "name": "llm", "max_replicas": 2}}],
            guards={"max_replicas_change": 4})[0]
    assert r.status is ActionStatus.REFUSED and r.error == "blast radius: changes 8 replicas, limit 4"
    assert k8s.get_hpa(NS, "llm")["spec"]["maxReplicas"] == 10


def test_system_namespaces_are_refused_unless_named(k8s: FakeKubernetes, run: Any) -> None:
    k8s.add_deployment("kube-system", "coredns", replicas=2)
    step = {"action": "k8s_scale", "params": {"namespace": "{{ $labels.namespace }}",
                                              "name": "{{ $labels.deployment }}", "replicas": "0", "min_replicas": 0}}
    r = run([step], namespace="kube-system", deployment="coredns")[0]
    assert r.status is ActionStatus.REFUSED and "'kube-system' is a system namespace" in (r.error or "")
    assert k8s.get_deployment("kube-system", "coredns")["spec"]["replicas"] == 2
    named = run([step], guards={"namespaces": ["kube-system"]}, namespace="kube-system", deployment="coredns")[0]
    assert named.status is ActionStatus.APPLIED
    assert k8s.get_deployment("kube-system", "coredns")["spec"]["replicas"] == 0


def test_global_cap_on_concurrent_runs(k8s: FakeKubernetes, db: StateDB) -> None:
    settings = RemediationSettings(kubeconfig=k8s.kubeconfig_path, max_concurrent_runs=2)
    pb = playbook([{"action": "notify", "params": {"receiver": "ops", "message": "x"}}])
    made = [start_playbook(alert(starts_at_ms=i, pod=f"p{i}"), pb, settings, db, None)[0] for i in range(4)]
    assert [r.status for r in made] == [ActionStatus.QUEUED] * 2 + [ActionStatus.REFUSED] * 2  # none dispatched
    assert "concurrency: 2 runs in progress, limit 2" in (made[2].error or "")


def test_approval_after_the_alert_resolved_is_refused_as_stale(db: StateDB, tmp_path: Path) -> None:
    settings = RemediationSettings()
    pb = playbook([{"action": "notify", "params": {"receiver": "ops", "message": "x"}, "approval": True},
                   {"action": "notify", "params": {"receiver": "ops", "message": "y"}}])
    a = alert(starts_at_ms=5)
    first, second = start_playbook(a, pb, settings, db, None)
    with db.begin() as conn:  # alerting recorded the alert resolved meanwhile
        conn.execute(insert(alerts).values(fingerprint=a.fingerprint, rule="Slow", labels={}, annotations={},
                                           state="resolved", starts_at_ms=5, ends_at_ms=9, last_eval_ms=9))
    with pytest.raises(RemediationError, match="the alert resolved .stale; audited."):
        approve(db, first.id, "alice", None)
    runs = RunStore(db)
    assert runs.get(first.id).status is ActionStatus.REFUSED
    assert runs.get(second.id).status is ActionStatus.SKIPPED
    assert "approval_stale" in [e["event"] for e in runs.audit_trail(first.id)]


def test_refusal_at_execution_skips_later_steps_and_escalates(k8s: FakeKubernetes, run: Any, db: StateDB) -> None:
    k8s.add_deployment(NS, "llm", replicas=2)
    steps = [{"action": "k8s_scale", "params": {"namespace": NS, "name": "llm", "replicas": "+6"},
              "escalate_to": "oncall"},
             {"action": "notify", "params": {"receiver": "ops", "message": "scaled"}}]
    first, second = run(steps, guards={"max_replicas_change": 2})
    assert first.status is ActionStatus.REFUSED and "blast radius" in (first.error or "")
    assert wait_status(db, second.id, ActionStatus.SKIPPED).error == "previous step 0 ended without success"
    with db.begin() as conn:
        rows = conn.execute(select(outbox.c.receiver)).scalars().all()
    assert rows == ["oncall"]
