"""Redis restarted with tasks queued (appendonly yes): none is lost. Redis down at dispatch: the
run stays queued, flagged, and the agent's sweeper sends it once Redis is back. Redis restarted
WITHOUT persistence (the queued tasks are gone): the sweeper sends the runs again once they sat
``requeue_after_s`` without a worker taking them (before: queued forever, 0 applied)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rem_cluster import RedisServer, Worker, write_config
from rem_helpers import alert, playbook, wait_for, wait_status

from aiops.model import ActionStatus
from aiops.state import StateDB
from app.settings import load_settings
from app.testing import FakeKubernetes
from remediation import RemediationComponent, RunStore

pytestmark = pytest.mark.timeout(180)
NS = "inference"


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[RedisServer, FakeKubernetes, Path]]:
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    k8s = FakeKubernetes(pod_ready_delay_s=0.1).start()
    try:
        yield server, k8s, write_config(tmp_path / "aiops.yaml", tmp=tmp_path, broker_url=server.url,
                                        kubeconfig=k8s.kubeconfig_path)
    finally:
        k8s.stop()
        server.stop()


def test_tasks_queued_across_a_redis_restart_are_all_applied(
        parts: tuple[RedisServer, FakeKubernetes, Path], tmp_path: Path) -> None:
    server, k8s, config = parts
    settings = load_settings(config)
    db = StateDB(settings.store.state_db_url())
    db.create_all()
    names = [f"r{i}" for i in range(5)]
    for n in names:
        k8s.add_deployment(NS, n, replicas=1)
    pbs = [playbook([{"action": "k8s_scale", "params": {"namespace": NS, "name": n, "replicas": "+1"}}],
                    name=n, match={"alertname": "Slow", "deployment": n}) for n in names]
    comp = RemediationComponent(settings, pbs)
    comp.attach(db)
    worker = Worker(config, "after-restart", tmp_path)
    try:
        ids = comp.on_alerts([alert(deployment=n) for n in names])  # no worker yet: they wait in Redis
        assert len(ids) == 5
        client = redis.Redis.from_url(server.url)
        wait_for(lambda: client.llen(settings.remediation.queue) == 5, 10, "5 tasks in Redis")  # published by a thread
        client.close()
        server.restart()  # SIGTERM, then the same port and AOF
        client = redis.Redis.from_url(server.url)
        assert client.llen(settings.remediation.queue) == 5
        client.close()
        worker.start()
        for rid in ids:
            run = wait_status(db, rid, ActionStatus.APPLIED, ActionStatus.FAILED, timeout_s=60)
            assert run.status is ActionStatus.APPLIED, run.error
        assert [k8s.get_deployment(NS, n)["spec"]["replicas"] for n in names] == [2] * 5

        # Redis down when the alert arrives: recorded, flagged, sent again by the sweeper
        server.stop()
        k8s.add_deployment(NS, "late", replicas=1)
        late_pb = playbook([{"action": "k8s_scale", "params": {"namespace": NS, "name": "late", "replicas": "3"}}],
                           name="late", match={"alertname": "Late"})
        comp.playbooks.append(late_pb)
        started = time.monotonic()
        (rid,) = comp.on_alerts([alert(alertname="Late")])
        assert time.monotonic() - started < 0.5  # the publish happens on its own thread, never in the caller's
        wait_for(lambda: "dispatch_failed" in [a["event"] for a in RunStore(db).audit_trail(rid)], 30,
                 "the failed publish to be recorded")
        trail = [a["event"] for a in RunStore(db).audit_trail(rid)]
        # the sweeper may already have tried again (and failed again: Redis is still down)
        assert trail[:2] == ["queued", "dispatch_failed"]
        assert set(trail[2:]) <= {"dispatch_retried", "dispatch_failed"}, trail
        server.start()
        run = wait_status(db, rid, ActionStatus.APPLIED, ActionStatus.FAILED, timeout_s=90)
        assert run.status is ActionStatus.APPLIED and k8s.get_deployment(NS, "late")["spec"]["replicas"] == 3
        assert "dispatch_retried" in [a["event"] for a in RunStore(db).audit_trail(rid)]
    finally:
        comp.stop()
        worker.stop()
        db.dispose()


def test_runs_lost_with_a_redis_without_persistence_are_sent_again(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", appendonly=False).start()
    k8s = FakeKubernetes(pod_ready_delay_s=0.1).start()
    config = write_config(tmp_path / "aiops.yaml", tmp=tmp_path, broker_url=server.url,
                          kubeconfig=k8s.kubeconfig_path, requeue_after_s=1.5)
    settings = load_settings(config)
    db = StateDB(settings.store.state_db_url())
    db.create_all()
    names = [f"v{i}" for i in range(3)]
    for n in names:
        k8s.add_deployment(NS, n, replicas=1)
    pbs = [playbook([{"action": "k8s_scale", "params": {"namespace": NS, "name": n, "replicas": "+1"}}],
                    name=n, match={"alertname": "Slow", "deployment": n}) for n in names]
    comp = RemediationComponent(settings, pbs)
    comp.attach(db)
    worker = Worker(config, "after-volatile-restart", tmp_path)
    try:
        ids = comp.on_alerts([alert(deployment=n) for n in names])
        client = redis.Redis.from_url(server.url)
        wait_for(lambda: client.llen(settings.remediation.queue) == 3, 10, "3 tasks in Redis")
        client.close()
        server.restart()  # no AOF, no RDB: the three tasks are gone
        client = redis.Redis.from_url(server.url)
        assert client.llen(settings.remediation.queue) == 0
        client.close()
        worker.start()
        for rid in ids:
            run = wait_status(db, rid, ActionStatus.APPLIED, ActionStatus.FAILED, timeout_s=60)
            assert run.status is ActionStatus.APPLIED, run.error
            assert "redispatched" in [a["event"] for a in RunStore(db).audit_trail(rid)]
        assert [k8s.get_deployment(NS, n)["spec"]["replicas"] for n in names] == [2] * 3  # once each
    finally:
        comp.stop()
        worker.stop()
        db.dispose()
        k8s.stop()
        server.stop()
