"""Fault tests with real parts: a private redis-server, real ``aiops worker`` processes, the fake
Kubernetes API server (the real ``kubernetes`` client talks to it over HTTP).

Shown here: the happy path; a worker SIGKILLed mid-action (the task is redelivered to a new
worker and the change is applied once); 5xx / 409 / timeouts retried, then recorded failed when
persistent; 403 failing at once; the blast radius refusing a run; the kill switch; dry run;
approval through the HTTP API, and expiry; verification passing, and failing into a rollback.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from rem_cluster import RedisServer, Worker, write_config
from rem_helpers import alert, playbook, wait_for, wait_status

from aiops.bus import Bus
from aiops.httpapi import HttpApi
from aiops.httpauth import Authenticator, Principal, Role
from aiops.model import ActionStatus, Sample, Series, now_ms
from aiops.protocols import AgentContext
from aiops.state import StateDB
from aiops.store import SqliteSeriesStore
from app.settings import load_settings
from app.testing import FakeKubernetes
from remediation import RemediationComponent, RunStore

pytestmark = pytest.mark.timeout(180)

NS = "inference"


def scale_step(name: str, replicas: str = "+2", **extra: Any) -> dict[str, Any]:
    return {"action": "k8s_scale", "params": {"namespace": "{{ $labels.namespace }}", "name": name,
                                              "replicas": replicas, "max_replicas": 10}, **extra}


class Cluster:
    """The module's parts: redis, fake API server, config, one live worker, the state DB."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.redis = RedisServer(tmp / "redis").start()
        self.k8s = FakeKubernetes(pod_ready_delay_s=0.1).start()
        self.config = write_config(tmp / "aiops.yaml", tmp=tmp, broker_url=self.redis.url,
                                   kubeconfig=self.k8s.kubeconfig_path, approval_timeout_s=60)
        self.settings = load_settings(self.config)
        self.db = StateDB(self.settings.store.state_db_url())
        self.db.create_all()
        self.workers: list[Worker] = []
        self.components: list[RemediationComponent] = []

    def worker(self) -> Worker:
        """The live worker, started if none is."""
        live = [w for w in self.workers if w.proc is not None and w.proc.poll() is None]
        if live:
            return live[0]
        w = Worker(self.config, f"w{len(self.workers)}", self.tmp).start()
        self.workers.append(w)
        return w

    def component(self, pbs: list[Any], api: HttpApi | None = None, **overrides: Any) -> RemediationComponent:
        settings = self.settings
        if overrides:
            settings = settings.model_copy(update={"remediation": settings.remediation.model_copy(update=overrides)})
        comp = RemediationComponent(settings, pbs)
        if api is not None:
            comp.start(AgentContext(settings, None, self.db, Bus(), CollectorRegistry(), api, {}))  # type: ignore[arg-type]
        else:
            comp.attach(self.db)
        self.components.append(comp)
        return comp

    def close(self) -> None:
        for c in self.components:
            c.stop()
        for w in self.workers:
            w.stop()
        self.k8s.stop()
        self.redis.stop()
        self.db.dispose()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("remediation-cluster"))
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(autouse=True)
def _calm(cluster: Cluster) -> Iterator[None]:
    yield
    cluster.k8s.slow_down(0)


def replicas(cluster: Cluster, name: str) -> int:
    return int(cluster.k8s.get_deployment(NS, name)["spec"]["replicas"])


def starts_by(worker: Worker, starts: list[dict[str, Any]]) -> str:
    """The actor id (host:pid) of ``worker`` among ``starts``."""
    assert worker.proc is not None
    return next(s["actor"] for s in starts if s["actor"].endswith(f":{worker.proc.pid}"))


def scale_patches(cluster: Cluster, name: str) -> list[Any]:
    return [r for r in cluster.k8s.requests_to("PATCH", f"deployments/{name}/scale") if r.status == 200]


def test_firing_alert_scales_through_redis_and_a_worker(cluster: Cluster) -> None:
    cluster.worker()
    cluster.k8s.add_deployment(NS, "happy", replicas=2)
    comp = cluster.component([playbook([scale_step("happy")], name="happy")])
    (rid,) = comp.on_alerts([alert(starts_at_ms=1)])
    run = wait_status(cluster.db, rid, ActionStatus.APPLIED, ActionStatus.FAILED)
    assert run.status is ActionStatus.APPLIED, run.error
    assert replicas(cluster, "happy") == 4
    cluster.k8s.wait_ready(NS, "happy", 4)
    assert run.result["previous"] == {"replicas": 2} and run.extra["plan"]["target"] == {"replicas": 4}
    events = [a["event"] for a in RunStore(cluster.db).audit_trail(rid)]
    assert events == ["queued", "started", "plan_recorded", "applied"]


def test_worker_killed_mid_action_is_redelivered_and_applied_once(cluster: Cluster) -> None:
    first = cluster.worker()
    cluster.k8s.add_deployment(NS, "crash", replicas=2)
    comp = cluster.component([playbook([scale_step("crash")], name="crash")])
    cluster.k8s.slow_down(1.5, "deployments/crash/scale")  # read 1.5 s, re-read 1.5 s, patch held 1.5 s
    (rid,) = comp.on_alerts([alert(starts_at_ms=1)])
    runs = RunStore(cluster.db)
    wait_for(lambda: runs.get(rid).extra.get("plan"), 30, "the plan to be recorded")
    time.sleep(2.2)  # inside the apply: the PATCH is held by the API server
    first.kill()
    cluster.k8s.slow_down(0)
    assert runs.get(rid).status is ActionStatus.RUNNING
    second = cluster.worker()  # a new worker: the unacknowledged task comes back after visibility_timeout
    assert second is not first
    run = wait_status(cluster.db, rid, ActionStatus.APPLIED, ActionStatus.FAILED, timeout_s=60)
    assert run.status is ActionStatus.APPLIED, run.error
    assert replicas(cluster, "crash") == 4  # +2 once, not +2 twice
    assert len(scale_patches(cluster, "crash")) == 1
    starts = [a for a in runs.audit_trail(rid) if a["event"] == "started"]
    trail = [(a["event"], a["actor"], a["detail"]) for a in runs.audit_trail(rid)]
    assert len({s["actor"] for s in starts}) == 2 and starts[-1]["actor"] == starts_by(second, starts), trail


@pytest.mark.parametrize("fault", ["500", "409", "timeout"])
def test_transient_api_errors_are_retried_then_applied(cluster: Cluster, fault: str) -> None:
    cluster.worker()
    name = f"flaky{fault}"
    cluster.k8s.add_deployment(NS, name, replicas=2)
    comp = cluster.component([playbook([scale_step(name)], name=name)])
    path = f"deployments/{name}/scale"
    if fault == "500":
        cluster.k8s.fail_next("PATCH", path, 500, times=2)
    elif fault == "409":
        cluster.k8s.conflict_next("PATCH", path, times=2)
    else:
        cluster.k8s.slow_down(2.5, path, for_s=3.0)  # over request_timeout_s=2, for the first call or two
    (rid,) = comp.on_alerts([alert(starts_at_ms=1)])
    run = wait_status(cluster.db, rid, ActionStatus.APPLIED, ActionStatus.FAILED, timeout_s=60)
    assert run.status is ActionStatus.APPLIED, run.error
    assert replicas(cluster, name) == 4
    events = [a["event"] for a in RunStore(cluster.db).audit_trail(rid)]
    if fault != "409":
        assert events.count("retry_scheduled") >= 1
    else:  # each conflict was followed by a fresh read before the next write
        reqs = [(r.method, r.status) for r in cluster.k8s.requests if path in r.path]
        assert reqs.count(("PATCH", 409)) == 2 and reqs[-2:] == [("GET", 200), ("PATCH", 200)]


@pytest.mark.parametrize("fault,retried", [("500", True), ("timeout", True), ("403", False)])
def test_persistent_errors_are_recorded_failed(cluster: Cluster, fault: str, retried: bool) -> None:
    cluster.worker()
    name = f"broken{fault}"
    cluster.k8s.add_deployment(NS, name, replicas=2)
    comp = cluster.component([playbook([scale_step(name, escalate_to="oncall")], name=name)])
    path = f"deployments/{name}/scale"
    if fault == "500":
        cluster.k8s.fail_next("*", path, 500, times=1000)
    elif fault == "timeout":
        cluster.k8s.slow_down(2.5, path)
    else:
        cluster.k8s.forbid("patch", "deployments/scale")
    try:
        (rid,) = comp.on_alerts([alert(starts_at_ms=1)])
        run = wait_status(cluster.db, rid, ActionStatus.FAILED, ActionStatus.APPLIED, timeout_s=90)
    finally:
        cluster.k8s.allow("patch", "deployments/scale")
    assert run.status is ActionStatus.FAILED
    assert replicas(cluster, name) == 2
    retries = [a for a in RunStore(cluster.db).audit_trail(rid) if a["event"] == "retry_scheduled"]
    if retried:
        assert len(retries) == 4 and "gave up after 4 attempts" in (run.error or "")  # max_retries=3
    else:
        assert retries == [] and "HTTP 403" in (run.error or "")
    assert run.extra.get("escalate_to") == "oncall"


def test_blast_radius_refuses_and_audits(cluster: Cluster) -> None:
    cluster.worker()
    cluster.k8s.add_deployment(NS, "wide", replicas=2)
    cluster.k8s.add_deployment("payments", "other", replicas=1)
    comp = cluster.component([
        playbook([scale_step("wide", replicas="x4")], name="wide", guards={"max_replicas_change": 3}),
        playbook([scale_step("other")], name="elsewhere", guards={"namespaces": [NS]},
                 match={"alertname": "Elsewhere"}),
    ])
    (rid,) = comp.on_alerts([alert(starts_at_ms=1)])
    run = wait_status(cluster.db, rid, ActionStatus.REFUSED, ActionStatus.APPLIED, ActionStatus.FAILED)
    assert run.status is ActionStatus.REFUSED
    assert run.error == "blast radius: changes 6 replicas, limit 3"  # 2 -> 8 wanted
    assert replicas(cluster, "wide") == 2 and scale_patches(cluster, "wide") == []
    trail = RunStore(cluster.db).audit_trail(rid)
    assert trail[-1]["event"] == "refused" and trail[-1]["detail"]["plan"]["target"] == {"replicas": 8}
    # a namespace outside the playbook's list is refused before anything is sent to a worker
    (rid2,) = comp.on_alerts([alert(starts_at_ms=1, alertname="Elsewhere", namespace="payments")])
    run2 = RunStore(cluster.db).get(rid2)
    assert run2.status is ActionStatus.REFUSED and "namespace 'payments' is outside" in (run2.error or "")
    assert RunStore(cluster.db).audit_trail(rid2)[0]["event"] == "refused"


def test_kill_switch_on_means_nothing_runs(cluster: Cluster) -> None:
    from remediation import set_kill_switch

    cluster.worker()
    cluster.k8s.add_deployment(NS, "killed", replicas=2)
    comp = cluster.component([playbook([scale_step("killed", delay_s=1.0)], name="killed")])
    (queued,) = comp.on_alerts([alert(starts_at_ms=1)])  # queued with a 1 s countdown...
    set_kill_switch(cluster.db, True, "sre")  # ...then the switch goes on
    try:
        (refused,) = comp.on_alerts([alert(starts_at_ms=2)])
        assert RunStore(cluster.db).get(refused).status is ActionStatus.REFUSED
        run = wait_status(cluster.db, queued, ActionStatus.REFUSED, ActionStatus.APPLIED)
        assert run.status is ActionStatus.REFUSED and run.error == "kill switch is on"
    finally:
        set_kill_switch(cluster.db, False, "sre")
    assert replicas(cluster, "killed") == 2 and scale_patches(cluster, "killed") == []


def test_dry_run_records_the_plan_and_changes_nothing(cluster: Cluster) -> None:
    cluster.worker()
    cluster.k8s.add_deployment(NS, "dry", replicas=3)
    comp = cluster.component([playbook([scale_step("dry", replicas="x2")], name="dry", guards={"dry_run": True})])
    (rid,) = comp.on_alerts([alert(starts_at_ms=1)])
    run = wait_status(cluster.db, rid, ActionStatus.DRY_RUN, ActionStatus.APPLIED, ActionStatus.FAILED)
    assert run.status is ActionStatus.DRY_RUN and run.dry_run
    assert run.result["plan"]["previous"] == {"replicas": 3} and run.result["plan"]["target"] == {"replicas": 6}
    assert replicas(cluster, "dry") == 3
    assert cluster.k8s.requests_to("PATCH", "deployments/dry") == []


def test_approval_through_the_http_api_then_applied_and_expiry(cluster: Cluster) -> None:
    cluster.worker()
    cluster.k8s.add_deployment(NS, "gated", replicas=2)
    api = HttpApi("127.0.0.1", 0, auth=Authenticator([("s3cret", Principal("alice", Role.OPERATOR)),
                                                      ("viewer-token", Principal("mallory", Role.VIEWER))]))
    comp = cluster.component([playbook([{**scale_step("gated"), "approval": True}], name="gated")], api=api)
    api.start()
    try:
        (rid,) = comp.on_alerts([alert(starts_at_ms=1)])
        listed = httpx.get(f"{api.url}/api/v1/actions", params={"status": "pending_approval"},
                           headers={"Authorization": "Bearer viewer-token"}).json()["data"]
        assert [r["id"] for r in listed if r["playbook"] == "gated"] == [rid]
        time.sleep(0.5)
        assert replicas(cluster, "gated") == 2  # nothing happens while pending
        url = f"{api.url}/api/v1/actions/{rid}/approve"
        assert httpx.post(url, json={"by": "mallory"}).status_code == 401  # needs the token
        viewer = httpx.post(url, json={"by": "alice"}, headers={"Authorization": "Bearer viewer-token"})
        assert viewer.status_code == 403 and "mallory" in viewer.json()["error"]  # a viewer may not approve
        resp = httpx.post(url, json={"by": "someone else"}, headers={"Authorization": "Bearer s3cret"})
        assert resp.status_code == 200, resp.text
        run = wait_status(cluster.db, rid, ActionStatus.APPLIED, ActionStatus.FAILED)
        assert run.status is ActionStatus.APPLIED and run.approved_by == "alice"  # the principal, not "by"
        assert replicas(cluster, "gated") == 4
        again = httpx.post(url, json={"by": "alice"}, headers={"Authorization": "Bearer s3cret"})
        assert again.status_code == 409 and "not pending approval" in again.json()["error"]
        detail = httpx.get(f"{api.url}/api/v1/actions/{rid}", headers={"Authorization": "Bearer s3cret"}).json()["data"]
        assert [a["event"] for a in detail["audit"]][:2] == ["pending_approval", "approved"]

        # expiry: nobody decides within approval_timeout_s
        short = cluster.component([playbook([{**scale_step("gated"), "approval": True}], name="gated-short")],
                                  approval_timeout_s=0.5)
        (late,) = short.on_alerts([alert(starts_at_ms=2)])
        assert wait_status(cluster.db, late, ActionStatus.EXPIRED).error == "approval timed out"
        resp = httpx.post(f"{api.url}/api/v1/actions/{late}/approve", json={"by": "alice"},
                          headers={"Authorization": "Bearer s3cret"})
        assert resp.status_code == 409
        assert replicas(cluster, "gated") == 4
    finally:
        api.stop()


def _write_latency(cluster: Cluster, value: float, name: str) -> None:
    store = SqliteSeriesStore(cluster.settings.store.path)
    try:
        store.append([Sample(Series.of("inference_latency_p99_seconds", deployment=name), now_ms(), value)])
    finally:
        store.close()


@pytest.mark.parametrize("recovers", [True, False])
def test_verification_passes_or_rolls_back_and_escalates(cluster: Cluster, recovers: bool) -> None:
    cluster.worker()
    name = f"verify{int(recovers)}"
    cluster.k8s.add_deployment(NS, name, replicas=2)
    verify = {"query": f'inference_latency_p99_seconds{{deployment="{name}"}}', "below": 0.5,
              "within_s": 3, "poll_s": 0.2}
    comp = cluster.component([playbook([scale_step(name, verify=verify, escalate_to="oncall")], name=name)])
    _write_latency(cluster, 2.0, name)
    (rid,) = comp.on_alerts([alert(starts_at_ms=1)])
    wait_for(lambda: replicas(cluster, name) == 4, 30, "the scale-up")
    _write_latency(cluster, 0.2 if recovers else 1.5, name)
    done = (ActionStatus.VERIFIED, ActionStatus.ROLLED_BACK, ActionStatus.FAILED)
    run = wait_status(cluster.db, rid, *done, timeout_s=60)
    if recovers:
        assert run.status is ActionStatus.VERIFIED and replicas(cluster, name) == 4
    else:
        assert run.status is ActionStatus.ROLLED_BACK and replicas(cluster, name) == 2
        assert "verification failed after 3s" in (run.error or "") and "= 1.5" in (run.error or "")
        trail = RunStore(cluster.db).audit_trail
        wait_for(lambda: [a["event"] for a in trail(rid)][-2:] == ["rolled_back", "escalated"], 10,
                 "the escalation after the rollback")


def test_worker_killed_during_verification_is_resumed_by_another(cluster: Cluster) -> None:
    first = cluster.worker()
    name = "verifykill"
    cluster.k8s.add_deployment(NS, name, replicas=2)
    verify = {"query": f'inference_latency_p99_seconds{{deployment="{name}"}}', "below": 0.5,
              "within_s": 6, "poll_s": 0.2}
    comp = cluster.component([playbook([scale_step(name, verify=verify)], name=name)])
    (rid,) = comp.on_alerts([alert(starts_at_ms=1)])
    runs = RunStore(cluster.db)
    wait_status(cluster.db, rid, ActionStatus.APPLIED)  # applied, now verifying (latency has no data yet)
    first.kill()
    second = cluster.worker()
    deadline = time.monotonic() + 90
    while runs.get(rid).status not in (ActionStatus.VERIFIED, ActionStatus.ROLLED_BACK, ActionStatus.FAILED):
        assert time.monotonic() < deadline, runs.audit_trail(rid)
        _write_latency(cluster, 0.1, name)  # the service is healthy from now on
        time.sleep(0.3)
    run = runs.get(rid)
    assert run.status is ActionStatus.VERIFIED, run.error
    assert replicas(cluster, name) == 4 and len(scale_patches(cluster, name)) == 1
    starts = [a for a in runs.audit_trail(rid) if a["event"] == "started"]
    assert starts[-1]["actor"] == starts_by(second, starts) and run.result["changed"] is False
