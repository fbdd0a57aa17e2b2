"""The same path over RabbitMQ instead of Redis (once): alert -> worker -> scale applied."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rem_cluster import Worker, write_config
from rem_helpers import alert, playbook, wait_status

from aiops.model import ActionStatus
from aiops.state import StateDB
from app.settings import load_settings
from app.testing import FakeKubernetes
from remediation import RemediationComponent
from tests.conftest import wait_port

pytestmark = pytest.mark.timeout(120)
AMQP = os.environ.get("AIOPS_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")


def test_scale_over_rabbitmq(tmp_path: Path) -> None:
    try:
        wait_port(5672, timeout_s=1)
    except TimeoutError:
        pytest.skip("RabbitMQ not reachable on 127.0.0.1:5672")
    k8s = FakeKubernetes(pod_ready_delay_s=0.1).start()
    config = write_config(tmp_path / "aiops.yaml", tmp=tmp_path, broker_url=AMQP, kubeconfig=k8s.kubeconfig_path)
    settings = load_settings(config)
    db = StateDB(settings.store.state_db_url())
    db.create_all()
    k8s.add_deployment("inference", "llm", replicas=1)
    comp = RemediationComponent(settings, [playbook([{"action": "k8s_scale", "params": {
        "namespace": "inference", "name": "llm", "replicas": "x3"}}])])
    comp.attach(db)
    worker = Worker(config, "amqp", tmp_path)
    try:
        worker.start()
        (rid,) = comp.on_alerts([alert()])
        run = wait_status(db, rid, ActionStatus.APPLIED, ActionStatus.FAILED, timeout_s=60)
        assert run.status is ActionStatus.APPLIED, run.error
        assert k8s.get_deployment("inference", "llm")["spec"]["replicas"] == 3
    finally:
        comp.stop()
        worker.stop()
        from kombu import Connection

        with Connection(AMQP) as conn:  # leave the shared broker as we found it
            conn.default_channel.queue_delete(settings.remediation.queue)
        db.dispose()
        k8s.stop()
