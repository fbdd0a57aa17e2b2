"""The agent with ``store.remote_write``: every collected sample (collector health included) reaches a
real Prometheus remote-write receiver, and the embedded store still gets them too."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from aiops.model import Sample, Series, parse_selector
from aiops.promapi import PrometheusClient
from app.agent import Agent
from app.settings import load_settings
from app.wiring import build_components
from tests.aiops.test_remotewrite import _Prometheus


class Counting:
    name, target, interval_s, timeout_s, jitter_s = "test", "rw", 0.1, 1.0, 0.0

    def __init__(self) -> None:
        self.calls = 0

    def collect(self, now_ms: int) -> Sequence[Sample]:
        self.calls += 1
        return [Sample(Series.of("rw_agent_metric", gpu=str(i)), now_ms, float(self.calls)) for i in range(3)]

    def close(self) -> None:
        pass


@pytest.mark.integration
def test_agent_remote_writes_every_sample(tmp_path: Path) -> None:
    (tmp_path / "prom").mkdir()
    prom = _Prometheus(tmp_path / "prom")
    prom.start()
    try:
        settings = load_settings(store={"path": tmp_path / "ts.db", "remote_write": {
            "url": f"{prom.url}/api/v1/write", "flush_interval_s": 0.2, "external_labels": {"node": "n7"}}},
            agent={"listen_port": 0, "instance": "rw-agent"})
        collector = Counting()
        agent = Agent(settings, [collector], build_components(settings))
        agent.start()
        deadline = time.monotonic() + 10
        while collector.calls < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        local = agent.store.select(parse_selector("rw_agent_metric"))
        agent.stop()  # flushes and drains the queue
        assert len(local) == 3  # alongside the embedded store, not instead
        with PrometheusClient(prom.url) as client:
            got = client.query_matrix('rw_agent_metric{node="n7"}[5m]', int(time.time() * 1000))
            health = client.query_matrix('aiops_collector_up{instance="rw-agent",node="n7"}[5m]',
                                         int(time.time() * 1000))
        assert len({s.series for s in got}) == 3
        assert sorted({s.value for s in got}) == [float(k) for k in range(1, collector.calls + 1)]
        assert health and all(s.value == 1.0 for s in health)
    finally:
        prom.stop()
