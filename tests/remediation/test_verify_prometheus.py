"""A worker in a pod of its own (the ``ha`` overlay) verifies through Prometheus.

The worker has no agent's store file; with ``store.read.prometheus_url`` its ``verify:`` steps
read the values the agent remote-wrote to a real ``prometheus --web.enable-remote-write-receiver``
(through :class:`~aiops.promstore.PrometheusSeriesStore`): a recovered deployment is verified, one
that did not recover is rolled back with the value Prometheus holds in the error.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from rem_cluster import RedisServer, Worker, write_config
from rem_helpers import alert, playbook, wait_for, wait_status

from aiops.model import ActionStatus, Sample, Series, now_ms
from aiops.remotewrite import RemoteWriter
from aiops.state import StateDB
from app.settings import load_settings
from app.testing import FakeKubernetes
from remediation import RemediationComponent
from tests.prometheus_server import PrometheusServer

NS = "inference"


@pytest.mark.integration
def test_a_worker_without_the_store_file_verifies_through_prometheus(tmp_path: Path) -> None:
    prom = PrometheusServer(tmp_path)
    prom.start()
    redis = RedisServer(tmp_path / "redis").start()
    k8s = FakeKubernetes(pod_ready_delay_s=0.1).start()
    writer = RemoteWriter(f"{prom.url}/api/v1/write", tmp_path / "queue", flush_interval_s=0.1, backoff_s=0.2,
                          backoff_max_s=1.0, timeout_s=5.0, registry=CollectorRegistry())
    writer.start()  # the agent's remote-write, the only way the values reach the worker
    config = write_config(tmp_path / "aiops.yaml", tmp=tmp_path, broker_url=redis.url,
                          kubeconfig=k8s.kubeconfig_path, store_extra={"read": {"prometheus_url": prom.url}})
    settings = load_settings(config)
    assert not settings.store.path.exists()  # no store file anywhere: only Prometheus can answer
    db = StateDB(settings.store.state_db_url())
    db.create_all()
    worker = Worker(config, "w0", tmp_path).start()
    comp: RemediationComponent | None = None
    latency = {"recovers": 2.0, "stays": 2.0}
    stop = threading.Event()

    def collect() -> None:  # the agent's collection, every 0.3 s, remote-written
        while not stop.wait(0.3):
            writer.add([Sample(Series.of("inference_latency_p99_seconds", deployment=name), now_ms(), value)
                        for name, value in latency.items()])

    collector = threading.Thread(target=collect, daemon=True)
    collector.start()
    try:
        runs = {}
        for name in latency:
            k8s.add_deployment(NS, name, replicas=2)
        verify = {"below": 0.5, "within_s": 6, "poll_s": 0.3}
        steps = [{"action": "k8s_scale", "params": {"namespace": "{{ $labels.namespace }}", "name": name,
                                                     "replicas": "+2", "max_replicas": 10},
                  "verify": {**verify, "query": f'inference_latency_p99_seconds{{deployment="{name}"}}'}}
                 for name in ("recovers", "stays")]
        comp = RemediationComponent(settings, [playbook([steps[0]], name="recovers"),
                                               playbook([steps[1]], name="stays", match={"alertname": "Other"})])
        comp.attach(db)
        (runs["recovers"],) = comp.on_alerts([alert(starts_at_ms=1)])
        (runs["stays"],) = comp.on_alerts([alert(alertname="Other", starts_at_ms=1)])
        for name, after in (("recovers", 0.2), ("stays", 1.5)):  # one worker: one run after the other
            wait_for(lambda n=name: int(k8s.get_deployment(NS, n)["spec"]["replicas"]) == 4, 30, f"{name} scaled")
            latency[name] = after
        done = (ActionStatus.VERIFIED, ActionStatus.ROLLED_BACK, ActionStatus.FAILED)
        ok = wait_status(db, runs["recovers"], *done, timeout_s=60)
        bad = wait_status(db, runs["stays"], *done, timeout_s=60)
        assert ok.status is ActionStatus.VERIFIED, (ok.error, worker.output()[-2000:])
        assert bad.status is ActionStatus.ROLLED_BACK and "= 1.5 (want < 0.5)" in (bad.error or ""), bad.error
        assert int(k8s.get_deployment(NS, "stays")["spec"]["replicas"]) == 2
    finally:
        stop.set()
        collector.join(5)
        if comp is not None:
            comp.stop()
        worker.stop()
        writer.stop()
        k8s.stop()
        redis.stop()
        prom.stop()
        db.dispose()
