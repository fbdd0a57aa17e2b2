"""Several agents on one PostgreSQL: rules evaluated by one, actions taken once, admission atomic.

Before: two agents evaluating the same rule both acted (3 episodes -> 6 scale calls; their
``startsAt`` differed by 240 ms, so the idempotency keys did), and cooldown / ``max_runs`` raced
(both admitted in 3 of 8 trials). Each agent here is the real alerting and remediation
component on its own bus and connection pool, executing in-process against the fake
Kubernetes API; the second agent sees every sample 240 ms later than the first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from aiops.bus import SAMPLES, Bus
from aiops.httpapi import HttpApi
from aiops.model import ActionStatus, Sample, Series
from aiops.protocols import AgentContext
from aiops.state import StateDB
from aiops.store import SqliteSeriesStore
from alerting.component import AlertingComponent
from alerting.config import load_alerting
from app.settings import Settings
from app.testing import FakeKubernetes
from remediation import RemediationComponent, RunStore, parse_playbook
from tests.alerting.core_support import RecordingSink
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(120)

NS = "inference"
LOAD = Series.of("queue_depth", {"deployment": "llm", "namespace": NS})


def _settings(tmp_path: Path, pg_url: str, kubeconfig: Path, name: str) -> Settings:
    return Settings(
        store={"path": tmp_path / f"{name}.db", "state_url": pg_url},
        alerting={"rules": [{"alert": "QueueDeep", "expr": "queue_depth", "op": ">", "threshold": 10,
                             "labels": {"severity": "page"}}],
                  "route": {"receiver": "chat", "group_wait": 0, "group_interval": "1s"},
                  "evaluation_interval_s": 0.5, "ha_lease_s": 1.5},
        remediation={"kubeconfig": kubeconfig, "retry_backoff_s": 0.05, "sweep_interval_s": 0.2})


PLAYBOOK = {"name": "scale-llm", "trigger": {"match": {"alertname": "QueueDeep"}},
            "steps": [{"action": "k8s_scale",
                       "params": {"namespace": "{{ $labels.namespace }}", "name": "{{ $labels.deployment }}",
                                  "replicas": "+1"}}]}


class Agent:
    def __init__(self, tmp_path: Path, pg_url: str, k8s: FakeKubernetes, name: str) -> None:
        self.settings = _settings(tmp_path, pg_url, k8s.kubeconfig_path, name)
        self.state = StateDB(pg_url)
        self.state.create_all()
        self.store = SqliteSeriesStore(self.settings.store.path)
        self.bus = Bus()
        self.sink = RecordingSink()
        self.alerting = AlertingComponent(load_alerting(self.settings.alerting, "aiops.yaml"), lambda ctx: self.sink)
        self.remediation = RemediationComponent(self.settings, [parse_playbook(PLAYBOOK, "scale.yaml")])
        api = HttpApi("127.0.0.1", 0, None, CollectorRegistry())
        ctx = AgentContext(self.settings, self.store, self.state, self.bus, CollectorRegistry(), api, {})
        self.remediation.start(ctx)
        self.alerting.start(ctx)

    def feed(self, value: float) -> None:
        self.bus.publish(SAMPLES, [Sample(LOAD, int(time.time() * 1000), value)])

    def crash(self) -> None:
        """Stop without giving the lease back, as a SIGKILL would."""
        assert self.alerting.lease is not None
        self.alerting.lease.release = lambda: None  # type: ignore[method-assign]
        self.stop()

    def stop(self) -> None:
        self.alerting.stop()
        self.remediation.stop()
        self.store.close()
        self.state.dispose()


@pytest.fixture
def k8s() -> Iterator[FakeKubernetes]:
    fake = FakeKubernetes(pod_ready_delay_s=0.05).start()
    fake.add_deployment(NS, "llm", replicas=1)
    yield fake
    fake.stop()


def _episode(agents: list[Agent], lag_s: float = 0.24) -> None:
    """A breach seen by every agent (the second 240 ms later), held a while, then recovery."""
    for value in (50.0, 50.0, 1.0):
        threads = []
        for i, agent in enumerate(agents):
            t = threading.Timer(i * lag_s, agent.feed, args=(value,))
            threads.append(t)
            t.start()
        for t in threads:
            t.join()
        time.sleep(0.4)


def _scales(k8s: FakeKubernetes) -> int:
    return len([r for r in k8s.requests_to("PATCH", "deployments/llm/scale") if r.status == 200])


def test_two_agents_act_once_per_episode_and_take_over(tmp_path: Path, pg_url: str, k8s: FakeKubernetes) -> None:
    a = Agent(tmp_path, pg_url, k8s, "a")
    b = Agent(tmp_path, pg_url, k8s, "b")
    try:
        assert a.alerting.engine is not None and b.alerting.engine is not None
        assert a.alerting.engine.leading and not b.alerting.engine.leading
        for n in range(1, 4):
            _episode([a, b])
            wait_for(lambda n=n: _scales(k8s) >= n, 20, f"scale call {n}")  # one episode after the other
        time.sleep(0.5)
        assert _scales(k8s) == 3  # not 6
        assert len(RunStore(a.state).list()) == 3  # one run per episode, whichever agent saw it first
        assert a.sink.names() and b.sink.names() == []  # only the leader notifies

        a.crash()
        wait_for(lambda: b.alerting.engine is not None and b.alerting.engine.leading, 10, "b to take over")
        _episode([b])
        wait_for(lambda: _scales(k8s) >= 4, 20, "the fourth scale call")
        time.sleep(0.3)
        assert _scales(k8s) == 4 and len(RunStore(b.state).list()) == 4
    finally:
        b.stop()
        if a.alerting.engine is not None and a.alerting._thread is not None and a.alerting._thread.is_alive():
            a.stop()


def test_takeover_keeps_a_firing_episode(tmp_path: Path, pg_url: str, k8s: FakeKubernetes) -> None:
    """The leader dies while an alert fires: the new leader restores it (same startsAt), so the
    episode is neither acted on again nor re-notified; its resolution is notified once."""
    a = Agent(tmp_path, pg_url, k8s, "a")
    b = Agent(tmp_path, pg_url, k8s, "b")
    try:
        for agent in (a, b):
            agent.feed(50.0)
        wait_for(lambda: _scales(k8s) >= 1, 20, "the scale call")
        a.crash()
        wait_for(lambda: b.alerting.engine is not None and b.alerting.engine.leading, 10, "b to take over")
        b.feed(60.0)  # still breaching: the same episode
        time.sleep(1.0)
        b.feed(1.0)
        wait_for(lambda: any(n[1] == "resolved" for n in b.sink.names()), 10, "the resolution")
        time.sleep(0.5)
        assert _scales(k8s) == 1
        assert [n[1] for n in a.sink.names() + b.sink.names()] == ["firing", "resolved"]
        assert len(RunStore(b.state).list()) == 1
    finally:
        b.stop()


@pytest.mark.parametrize("guard", [{"cooldown_s": 60}, {"max_runs": 1, "window_s": 60}])
def test_admission_is_atomic_across_agents(pg_url: str, tmp_path: Path, k8s: FakeKubernetes,
                                           guard: dict[str, Any]) -> None:
    """Two agents, two different alerts at the same instant, a guard allowing one run: one admitted."""
    from tests.remediation.rem_helpers import alert

    settings = _settings(tmp_path, pg_url, k8s.kubeconfig_path, "x")
    pb = parse_playbook({**PLAYBOOK, "trigger": {"match": {"alertname": "Slow"}}, "guards": guard}, "g.yaml")
    dbs = [StateDB(pg_url) for _ in range(2)]
    dbs[0].create_all()
    comps = [RemediationComponent(settings, [pb]) for _ in range(2)]
    for comp, db in zip(comps, dbs, strict=True):
        comp.attach(db)
    try:
        for trial in range(6):
            barrier = threading.Barrier(2)
            created: list[list[str]] = [[], []]

            def see(i: int, trial: int = trial, barrier: threading.Barrier = barrier,
                    created: list[list[str]] = created) -> None:
                barrier.wait()
                created[i] = comps[i].on_alerts([alert(starts_at_ms=trial * 10 + i, pod=f"p{trial}-{i}")])

            threads = [threading.Thread(target=see, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            statuses = [RunStore(dbs[0]).get(r).status for r in created[0] + created[1]]
            assert len(statuses) == 2
            admitted_now = [s for s in statuses if s is not ActionStatus.REFUSED]
            assert len(admitted_now) == (1 if trial == 0 else 0), (trial, statuses)
        admitted = [r for r in RunStore(dbs[0]).list() if r.status is not ActionStatus.REFUSED]
        assert len(admitted) == 1
    finally:
        for comp, db in zip(comps, dbs, strict=True):
            comp.stop()
            db.dispose()
