"""Two agents on one PostgreSQL: what reaches a standby reaches the leader's alerting, once.

Only the rules leader evaluates rules, yet two inputs can land on a standby: anomalies its
own detection shard found (``detect.sharding``), and alerts Alertmanager posted to its webhook
(a Service in front of the agents picks either). Before: a standby's shard anomalies raised no
alert at all, and a standby handled posted alerts itself (its own notification, its own expiry
timer: a re-post reaching the other agent could leave a copy to resolve wrongly, and a resolve
posted to one agent left the other's copy firing). Now the standby hands both to the leader
through the state DB (``alerting/inbox.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from aiops.bus import Bus
from aiops.httpapi import HttpApi
from aiops.model import Sample, Series, now_ms
from aiops.protocols import AgentContext
from aiops.state import StateDB
from aiops.store import SqliteSeriesStore
from alerting.component import AlertingComponent
from alerting.config import load_alerting
from alerting.history import AlertHistory
from app.settings import Settings
from app.testing import FakeKubernetes
from detectors.live import DetectionComponent
from detectors.settings import DetectorSpec
from detectors.sharding import slot_of
from remediation import RemediationComponent, RunStore, parse_playbook
from tests.alerting.core_support import RecordingSink
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(120)

SLOTS = 8
SERIES = [Series.of("shard_metric", i=str(i)) for i in range(12)]
SPEC = DetectorSpec(name="z", detector="zscore", selector="shard_metric", params={"window": 20})
RULES = [{"alert": "MetricAnomaly", "type": "anomaly", "expr": "shard_metric", "detector": "z", "score": 0.9,
          "labels": {"severity": "page"}}]
PLAYBOOK = {"name": "scale-on-page", "trigger": {"match": {"alertname": "UpstreamDown"}},
            "steps": [{"action": "k8s_scale", "params": {"namespace": "inference", "name": "llm",
                                                          "replicas": "+1"}}]}


class Agent:
    """One agent's alerting (+ detection sharded, or remediation) on its own bus and pool."""

    def __init__(self, tmp_path: Path, pg_url: str, name: str, *, detect: bool = False,
                 k8s: FakeKubernetes | None = None, resolve_timeout_s: float = 300) -> None:
        remediation: dict[str, Any] = {"retry_backoff_s": 0.05, "sweep_interval_s": 0.2}
        if k8s is not None:
            remediation["kubeconfig"] = k8s.kubeconfig_path
        self.settings = Settings(
            store={"path": tmp_path / f"{name}.db", "state_url": pg_url},
            alerting={"rules": RULES, "route": {"receiver": "chat", "group_by": ["..."], "group_wait": 0,
                                                   "group_interval": "1s"},
                      "evaluation_interval_s": 0.5, "ha_lease_s": 4, "resolve_timeout_s": resolve_timeout_s},
            remediation=remediation)
        self.state = StateDB(pg_url)
        self.state.create_all()
        self.store = SqliteSeriesStore(self.settings.store.path)
        self.bus = Bus()
        self.sink = RecordingSink()
        self.api = HttpApi("127.0.0.1", 0, "t0ken", CollectorRegistry())
        ctx = AgentContext(self.settings, self.store, self.state, self.bus, CollectorRegistry(), self.api, {})
        self.components: list[Any] = []
        if k8s is not None:
            self.components.append(RemediationComponent(self.settings, [parse_playbook(PLAYBOOK, "pb.yaml")]))
        self.alerting = AlertingComponent(load_alerting(self.settings.alerting, "aiops.yaml"), lambda ctx: self.sink)
        self.components.append(self.alerting)
        self.detection: DetectionComponent | None = None
        if detect:
            self.detection = DetectionComponent([SPEC], checkpoint_interval_s=0.5, shard_member=name,
                                                shard_slots=SLOTS, shard_heartbeat_s=0.3, shard_ttl_s=6.0)
            self.components.append(self.detection)
        for comp in self.components:
            comp.start(ctx)
        self.api.start()

    @property
    def leading(self) -> bool:
        return self.alerting.engine is not None and self.alerting.engine.leading

    def feed(self, batch: list[Sample]) -> None:
        """A collection: samples to alerting (bus) and, synchronously, to detection."""
        from aiops.bus import SAMPLES

        self.bus.publish(SAMPLES, batch)
        if self.detection is not None:
            self.detection.on_samples(batch)

    def post(self, status: str, instance: str = "up:1") -> dict[str, Any]:
        alert = {"status": status, "labels": {"alertname": "UpstreamDown", "instance": instance,
                                              "severity": "page"},
                 "annotations": {"summary": "upstream down"}, "startsAt": "2026-12-01T10:00:00Z",
                 "endsAt": "2026-12-01T10:05:00Z" if status == "resolved" else "0001-01-01T00:00:00Z"}
        r = httpx.post(f"{self.api.url}/api/v1/alertmanager/webhook", headers={"Authorization": "Bearer t0ken"},
                       json={"version": "4", "status": status, "alerts": [alert]}, timeout=10)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def stop(self) -> None:
        self.api.stop()
        for comp in reversed(self.components):
            comp.stop()
        self.store.close()
        self.state.dispose()


@pytest.fixture
def agents(tmp_path: Path, pg_url: str) -> Iterator[list[Agent]]:
    started: list[Agent] = []
    yield started
    for agent in started:
        agent.stop()


def _firing_resolved(sinks: list[RecordingSink], alertname: str) -> list[tuple[str, str]]:
    """(instance-or-series, state) of every alert in every notification, in order."""
    return [(a.label_dict.get("instance") or a.label_dict.get("i", ""), a.state.value)
            for s in sinks for n in s.got for a in n.alerts if a.name == alertname]


def test_anomalies_of_a_standby_shard_alert_once_through_the_leader(tmp_path: Path, pg_url: str,
                                                                      agents: list[Agent]) -> None:
    a = Agent(tmp_path, pg_url, "a", detect=True)
    agents.append(a)
    b = Agent(tmp_path, pg_url, "b", detect=True)
    agents.append(b)
    assert a.leading and not b.leading
    assert a.detection is not None and b.detection is not None
    base = now_ms() - 60_000  # samples of the last minute: inside stale_after_s

    def batch(k: int, spike: set[Series] = frozenset()) -> list[Sample]:  # type: ignore[assignment]
        return [Sample(s, base + k * 1000, 100.0 if s in spike else 1.0 + 0.01 * ((k + i) % 7))
                for i, s in enumerate(SERIES)]

    k = calm = 0
    deadline = time.monotonic() + 40
    owned: tuple[frozenset[int], frozenset[int]] | None = None
    while calm < 25:  # until each agent scored its own half, and no more, for 25 collections in a row:
        k += 1        # every detector is then warm (window 20) on the agent that owns it for good
        before = a.detection.scored + b.detection.scored
        for agent in (a, b):
            agent.feed(batch(k))
        now_owned = (a.detection._scoring, b.detection._scoring)
        settled = all(x.detection._scoring == x.detection.desired for x in (a, b)) \
            and (now_owned[0] | now_owned[1]) == frozenset(range(SLOTS)) and not now_owned[0] & now_owned[1] \
            and a.detection.scored + b.detection.scored - before == len(SERIES)
        calm = calm + 1 if settled and now_owned == owned else 0
        owned = now_owned
        assert time.monotonic() < deadline, "the shard group did not settle"
        time.sleep(0.02)
    on_b = next(s for s in SERIES if slot_of(s, SLOTS) in b.detection._scoring)
    on_a = next(s for s in SERIES if slot_of(s, SLOTS) in a.detection._scoring)
    assert _firing_resolved([a.sink, b.sink], "MetricAnomaly") == []

    k += 1
    for agent in (a, b):
        agent.feed(batch(k, {on_a, on_b}))
    want = sorted([(on_a.get("i"), "firing"), (on_b.get("i"), "firing")])
    wait_for(lambda: sorted(_firing_resolved([a.sink, b.sink], "MetricAnomaly")) == want, 10, "both anomaly alerts")
    time.sleep(0.6)  # a late duplicate would show now
    for agent in (a, b):  # the next normal point resolves both
        agent.feed(batch(k + 1))
    wait_for(lambda: len(_firing_resolved([a.sink, b.sink], "MetricAnomaly")) == 4, 10, "both resolutions")
    time.sleep(0.6)
    got = _firing_resolved([a.sink, b.sink], "MetricAnomaly")
    assert sorted(got) == sorted(want + [(on_a.get("i"), "resolved"), (on_b.get("i"), "resolved")]), got
    assert a.leading and b.sink.got == []  # the standby notifies nobody
    fired = [e for e in AlertHistory(a.state).query(name="MetricAnomaly") if e["state"] == "firing"]
    assert sorted(e["labels"]["i"] for e in fired) == sorted([on_a.get("i"), on_b.get("i")])  # once each


@pytest.fixture
def k8s() -> Iterator[FakeKubernetes]:
    fake = FakeKubernetes(pod_ready_delay_s=0.05).start()
    fake.add_deployment("inference", "llm", replicas=1)
    yield fake
    fake.stop()


def test_alerts_posted_to_a_standby_reach_the_leader_once(tmp_path: Path, pg_url: str, k8s: FakeKubernetes,
                                                          agents: list[Agent]) -> None:
    a = Agent(tmp_path, pg_url, "a", k8s=k8s, resolve_timeout_s=1.5)
    agents.append(a)
    b = Agent(tmp_path, pg_url, "b", k8s=k8s, resolve_timeout_s=1.5)
    agents.append(b)
    assert a.leading and not b.leading

    assert b.post("firing")["forwarded"] is True
    scales = lambda: len([r for r in k8s.requests_to("PATCH", "deployments/llm/scale") if r.status == 200])  # noqa: E731
    # Alertmanager re-posts a firing alert while we wait; without that, a slow machine would
    # (rightly) let it expire after resolve_timeout (1.5 s) before the page or the action
    deadline = time.monotonic() + 20
    while not (_firing_resolved([a.sink], "UpstreamDown") == [("up:1", "firing")] and scales() == 1):
        assert time.monotonic() < deadline, (_firing_resolved([a.sink], "UpstreamDown"), scales())
        time.sleep(0.4)
        b.post("firing")
    # Alertmanager re-posts every so often, to either agent; only the standby gets them for
    # longer than resolve_timeout (1.5 s): the leader must keep the alert firing
    for i in range(8):
        (b if i % 4 else a).post("firing")
        time.sleep(0.4)
    assert _firing_resolved([a.sink, b.sink], "UpstreamDown") == [("up:1", "firing")]
    assert a.alerting.engine is not None and a.alerting.engine.external_active() == 1
    assert b.alerting.engine is not None and b.alerting.engine.external_active() == 1  # the leader's, from the DB
    for agent in (a, b):  # either agent behind a Service lists it: the standby from the leader's records
        listed = httpx.get(f"{agent.api.url}/api/v1/alerts", headers={"Authorization": "Bearer t0ken"}).json()
        assert [(x["labels"]["instance"], x["state"]) for x in listed["data"]] == [("up:1", "firing")]

    b.post("resolved")
    wait_for(lambda: len(_firing_resolved([a.sink], "UpstreamDown")) == 2, 10, "the resolution")
    time.sleep(2.0)  # past resolve_timeout: no second "resolved" from a stale copy anywhere
    assert _firing_resolved([a.sink, b.sink], "UpstreamDown") == [("up:1", "firing"), ("up:1", "resolved")]
    assert b.sink.got == []
    assert scales() == 1 and len(RunStore(a.state).list()) == 1
