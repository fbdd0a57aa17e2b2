"""PodDisruptionBudgets: pod removal and drains go through the Eviction API and respect them.

The fake API server answers an eviction that would break a budget as the real one does (429
TooManyRequests, the budget named in a ``DisruptionBudget`` cause). ``k8s_delete_pod`` and
``k8s_drain`` treat it as temporary: the run retries with backoff, evicts as the budget allows
(a replacement pod becoming Ready frees one disruption), and gives up after ``max_retries``
with the refusal in its error, having removed nothing the budget protects.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from rem_helpers import alert, playbook, wait_status

from aiops.model import ActionStatus
from aiops.state import StateDB
from app.testing import FakeKubernetes

NS = "inference"
REFUSAL = "Cannot evict pod as it would violate the pod's disruption budget."


def _evict(k8s: FakeKubernetes, pod: str) -> httpx.Response:
    return httpx.post(f"{k8s.url}/api/v1/namespaces/{NS}/pods/{pod}/eviction",
                      headers={"Authorization": f"Bearer {k8s.token}"},
                      json={"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": NS}})


def _names(k8s: FakeKubernetes) -> list[str]:
    return sorted(p["metadata"]["name"] for p in k8s.pods(NS, "app=llm"))


def _ready(k8s: FakeKubernetes) -> int:
    return sum(1 for p in k8s.pods(NS, "app=llm")
               if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", [])))


def test_the_fake_refuses_an_eviction_that_breaks_a_budget_as_kubernetes_does(k8s: FakeKubernetes) -> None:
    k8s.add_deployment(NS, "llm", replicas=2)
    k8s.wait_ready(NS, "llm", 2)
    k8s.add_pdb(NS, "llm-pdb", {"app": "llm"}, min_available=2)
    pod = _names(k8s)[0]
    r = _evict(k8s, pod)
    assert r.status_code == 429
    cause = {"reason": "DisruptionBudget",
             "message": "The disruption budget llm-pdb needs 2 healthy pods and has 2 currently"}
    assert r.json() == {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                        "message": REFUSAL, "reason": "TooManyRequests", "code": 429,
                        "details": {"causes": [cause]}}
    assert pod in _names(k8s)
    budget = httpx.get(f"{k8s.url}/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/llm-pdb",
                       headers={"Authorization": f"Bearer {k8s.token}"}).json()
    assert budget["status"]["disruptionsAllowed"] == 0 and budget["status"]["currentHealthy"] == 2
    k8s.add_pdb(NS, "llm-pct", {"app": "llm"}, max_unavailable="50%")  # two budgets on one pod: 500
    assert _evict(k8s, pod).status_code == 500


def test_max_unavailable_lets_one_pod_go_at_a_time() -> None:
    with FakeKubernetes(pod_ready_delay_s=0.6) as k8s:  # replacements take a while to be Ready
        k8s.add_deployment(NS, "llm", replicas=3)
        k8s.wait_ready(NS, "llm", 3)
        k8s.add_pdb(NS, "llm-pdb", {"app": "llm"}, max_unavailable=1)
        first, second, _ = _names(k8s)
        assert _evict(k8s, first).status_code == 201
        r = _evict(k8s, second)  # the ReplicaSet wants 3: the evicted pod counts as unavailable
        assert r.status_code == 429 and "needs 2 healthy pods and has 2 currently" in r.text
        k8s.wait_for(lambda: first not in _names(k8s) and _ready(k8s) == 3, 10)  # the replacement is Ready
        assert _evict(k8s, second).status_code == 201
        _check_invalid_budget(k8s)


def _check_invalid_budget(k8s: FakeKubernetes) -> None:
    bad = httpx.post(f"{k8s.url}/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets",
                     headers={"Authorization": f"Bearer {k8s.token}"},
                     json={"metadata": {"name": "both"}, "spec": {"minAvailable": 1, "maxUnavailable": 1,
                                                                  "selector": {"matchLabels": {"app": "llm"}}}})
    assert bad.status_code == 422 and "cannot be both set" in bad.json()["message"]


@pytest.fixture
def runner(component: Any, k8s: FakeKubernetes, db: StateDB) -> Any:
    """runner(step) -> the run id, executed by the in-process runner with quick retries (2 by default)."""
    def go(step: dict[str, Any], n: int = 1, retries: int = 2) -> str:
        comp = component([playbook([step], name=f"pdb{n}", guards={"namespaces": [NS], "max_pods": 10})],
                         kubeconfig=k8s.kubeconfig_path, max_retries=retries, retry_backoff_s=0.05,
                         retry_backoff_max_s=0.1, request_timeout_s=5)
        return str(comp.on_alerts([alert(starts_at_ms=n * 1000)])[0])
    return go


def test_delete_pod_refused_by_a_budget_retries_then_fails_naming_it(k8s: FakeKubernetes, db: StateDB,
                                                                    runner: Any) -> None:
    k8s.add_deployment(NS, "llm", replicas=2)
    k8s.wait_ready(NS, "llm", 2)
    k8s.add_pdb(NS, "llm-pdb", {"app": "llm"}, min_available=2)
    before = _names(k8s)
    rid = runner({"action": "k8s_delete_pod", "params": {"namespace": NS, "name": before[0]}})
    run = wait_status(db, rid, ActionStatus.FAILED, timeout_s=20)
    assert "gave up after 3 attempts" in (run.error or "")
    assert "The disruption budget llm-pdb needs 2 healthy pods and has 2 currently" in (run.error or "")
    assert "HTTP 429" in (run.error or "")
    evictions = k8s.requests_to("POST", "/eviction")
    assert [e.status for e in evictions] == [429, 429, 429]
    assert k8s.requests_to("DELETE", "/pods/") == [] and _names(k8s) == before  # nothing removed


def test_delete_pods_by_selector_evicts_as_the_budget_allows(k8s: FakeKubernetes, db: StateDB,
                                                            runner: Any) -> None:
    k8s.add_deployment(NS, "llm", replicas=2)
    k8s.wait_ready(NS, "llm", 2)
    k8s.add_pdb(NS, "llm-pdb", {"app": "llm"}, max_unavailable=1)
    before = _names(k8s)
    rid = runner({"action": "k8s_delete_pod", "params": {"namespace": NS, "label_selector": "app=llm"}},
                 retries=30)  # up to ~3 s of 0.1 s retries: the replacement pod is Ready within 0.1 s
    run = wait_status(db, rid, ActionStatus.APPLIED, ActionStatus.FAILED, timeout_s=20)
    assert run.status is ActionStatus.APPLIED, run.error
    statuses = [e.status for e in k8s.requests_to("POST", "/eviction")]
    assert statuses.count(201) == 2 and 429 in statuses, statuses  # one, a wait for the budget, the other
    assert sorted(run.result["deleted"] + run.result["already_gone"]) == before
    assert k8s.requests_to("DELETE", "/pods/") == []


def test_drain_refused_by_a_budget_leaves_the_pods_and_says_why(k8s: FakeKubernetes, db: StateDB,
                                                               runner: Any) -> None:
    k8s.add_node("gpu-node-1", gpus=8)
    k8s.add_deployment(NS, "llm", replicas=2)
    k8s.wait_ready(NS, "llm", 2)
    k8s.add_pdb(NS, "llm-pdb", {"app": "llm"}, min_available="100%")
    before = _names(k8s)
    rid = runner({"action": "k8s_drain", "params": {"node": "gpu-node-1", "namespaces": [NS]}}, n=2)
    run = wait_status(db, rid, ActionStatus.FAILED, timeout_s=20)
    assert "gave up after 3 attempts" in (run.error or "") and REFUSAL in (run.error or "")
    assert "The disruption budget llm-pdb needs 2 healthy pods and has 2 currently" in (run.error or "")
    assert {e.status for e in k8s.requests_to("POST", "/eviction")} == {429}
    assert _names(k8s) == before  # no pod removed; the node stays cordoned, as kubectl drain leaves it
    assert k8s.get_node("gpu-node-1")["spec"]["unschedulable"] is True
