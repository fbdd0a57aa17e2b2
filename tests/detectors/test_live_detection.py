"""Live detection: anomalies recorded and published, score gauges, state restored after a restart."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from aiops.bus import ANOMALIES, Bus
from aiops.errors import ConfigError
from aiops.model import Anomaly, Sample, Series
from aiops.protocols import AgentContext
from aiops.state import StateDB
from app.settings import load_settings
from detectors import create
from detectors.live import DetectionComponent, state_key
from detectors.settings import DetectorSpec

CPU = Series.of("cpu_ratio", host="a")
OTHER = Series.of("mem_bytes", host="a")
SPEC = DetectorSpec(name="cpu-z", detector="zscore", selector='cpu_ratio{host="a"}', params={"window": 30})


def _values(n: int, seed: int = 0) -> np.ndarray:
    x = 0.5 + np.random.default_rng(seed).normal(0, 0.01, n)
    if n > 150:
        x[150] = 0.95
    return x


class Harness:
    """A component started on a real bus, state database and metrics registry."""

    def __init__(self, db: StateDB, specs: list[DetectorSpec] = [SPEC]) -> None:  # noqa: B006
        self.bus = Bus()
        self.registry = CollectorRegistry()
        self.published: list[Anomaly] = []
        self.bus.subscribe(ANOMALIES, self.published.extend)
        self.comp = DetectionComponent(specs, checkpoint_interval_s=3600)
        ctx = AgentContext(load_settings(None), None, db, self.bus, self.registry, None, {})  # type: ignore[arg-type]
        self.comp.start(ctx)

    def feed(self, values: np.ndarray, start: int = 0, series: Series = CPU) -> None:
        for i, v in enumerate(values):
            self.bus.publish("samples", [Sample(series, (start + i) * 60_000, float(v))])

    def gauge(self, series: Series = CPU, detector: str = "cpu-z") -> Any:
        return self.registry.get_sample_value("aiops_anomaly_score", {"series": series.key, "detector": detector})


def test_anomalies_recorded_published_and_exported(state_db: StateDB) -> None:
    h = Harness(state_db)
    x = _values(200)
    h.feed(x)
    h.feed(x[:50], series=OTHER)  # not selected: no detector, no gauge
    h.comp.stop()
    expected = create("zscore", window=30).score(x)
    flagged = np.flatnonzero(expected >= 0.999)
    assert 150 in flagged
    assert [a.ts_ms // 60_000 for a in h.published] == flagged.tolist()
    a = next(a for a in h.published if a.ts_ms == 150 * 60_000)
    assert (a.series, a.detector, a.value, a.threshold) == (CPU, "cpu-z", pytest.approx(0.95), 0.999)
    assert a.score == pytest.approx(expected[150])
    rows = state_db.list_anomalies(series=CPU.key)
    assert sorted(r["ts_ms"] // 60_000 for r in rows) == flagged.tolist()
    assert h.gauge() == pytest.approx(expected[-1])
    assert h.gauge(OTHER) is None


def test_restart_restores_state_instead_of_relearning(state_db: StateDB) -> None:
    x = _values(300, seed=1)
    uninterrupted = create("zscore", window=30).score(x)

    first = Harness(state_db)
    first.feed(x[:100])
    first.comp.stop()  # checkpoints on stop
    assert state_db.kv_get(state_key("cpu-z", CPU)) is not None

    second = Harness(state_db)
    second.feed(x[:100])  # a replayed batch after the restart is not learned twice
    second.feed(x[100:], start=100)
    second.comp.stop()
    got = {a.ts_ms // 60_000: a.score for a in second.published}
    want = {i: s for i, s in enumerate(uninterrupted) if i >= 100 and s >= 0.999}
    assert got.keys() == want.keys() and 150 in got
    assert second.gauge() == pytest.approx(uninterrupted[-1])
    # without the checkpoint the detector would be warming up again: no score for its first 30 points
    fresh = create("zscore", window=30).score(x[100:])
    assert (fresh[:30] == 0).all() and uninterrupted[100:130].any()


def test_changed_configuration_discards_old_state(state_db: StateDB) -> None:
    first = Harness(state_db)
    first.feed(_values(100))
    first.comp.stop()
    changed = DetectorSpec(name="cpu-z", detector="zscore", selector='cpu_ratio{host="a"}', params={"window": 40})
    second = Harness(state_db, [changed])
    second.feed(np.full(10, 5.0), start=100)  # would be wildly anomalous to the restored detector
    second.comp.stop()
    assert second.published == []  # a fresh detector still warming up


def test_bad_specs_fail_at_start() -> None:
    with pytest.raises(ConfigError, match=r"detect.detectors\[0\] \(x\)"):
        DetectionComponent([DetectorSpec(name="x", detector="nope", selector="cpu")])
    with pytest.raises(ConfigError, match="window"):
        DetectionComponent([DetectorSpec(name="x", detector="zscore", selector="cpu", params={"window": -1})])
    with pytest.raises(ConfigError, match="unique"):
        DetectionComponent([SPEC, SPEC])


def test_wiring_builds_the_component(tmp_path: Any) -> None:
    from app.wiring import build_components

    settings = load_settings(None, store={"path": str(tmp_path / "s.db")},
                             detect={"detectors": [SPEC.model_dump()]})
    comps = build_components(settings)
    assert [c.name for c in comps if isinstance(c, DetectionComponent)] == ["detect"]


def test_in_the_real_agent(tmp_path: Any) -> None:
    """Samples ingested by the agent reach the detector; anomalies, /metrics and state persist."""
    import time

    import httpx

    from app.agent import Agent
    from app.wiring import build_components

    settings = load_settings(None, store={"path": str(tmp_path / "s.db")}, agent={"listen_port": 0},
                             detect={"detectors": [SPEC.model_dump()]})
    agent = Agent(settings, [], build_components(settings))
    agent.start()
    try:
        x = _values(200)
        agent.ingest([Sample(CPU, 1_700_000_000_000 + i * 60_000, float(v)) for i, v in enumerate(x)])
        deadline = time.monotonic() + 30
        while not agent.state.list_anomalies(series=CPU.key) and time.monotonic() < deadline:
            time.sleep(0.05)
        rows = agent.state.list_anomalies(series=CPU.key)
        assert any(r["ts_ms"] == 1_700_000_000_000 + 150 * 60_000 and r["detector"] == "cpu-z" for r in rows)
        body = httpx.get(f"{agent.api.url}/metrics", timeout=10).text
        assert 'aiops_anomaly_score{detector="cpu-z",series="cpu_ratio{host=\\"a\\"}"}' in body
    finally:
        agent.stop()
    db = StateDB(settings.store.state_db_url())
    assert db.kv_get(state_key("cpu-z", CPU)) is not None
    db.dispose()


def test_new_detector_fits_stored_history_and_writes_scores_and_bands(state_db: StateDB, tmp_path: Any) -> None:
    from aiops.store import SqliteSeriesStore

    store = SqliteSeriesStore(tmp_path / "s.db")
    try:
        hist = 0.5 + np.random.default_rng(3).normal(0, 0.01, 500)
        store.append([Sample(CPU, i * 60_000, float(v)) for i, v in enumerate(hist)])
        spec = DetectorSpec(name="cpu-p", selector='cpu_ratio{host="a"}', params={"halflife": "1d"})
        assert spec.detector == "profile"  # the fleet-scale default
        bus = Bus()
        published: list[Anomaly] = []
        bus.subscribe(ANOMALIES, published.extend)
        comp = DetectionComponent([spec], checkpoint_interval_s=3600, fit_history_s=86400.0, write_scores=True)
        comp.start(AgentContext(load_settings(None), store, state_db, bus, CollectorRegistry(), None, {}))  # type: ignore[arg-type]
        live = 0.5 + np.random.default_rng(4).normal(0, 0.01, 40)
        live[10:30] += 0.1  # a sustained shift right after start: no warm-up needed
        for i, v in enumerate(live):
            bus.publish("samples", [Sample(CPU, (500 + i) * 60_000, float(v))])
        comp.stop()
        flagged = sorted(a.ts_ms // 60_000 - 500 for a in published)
        assert flagged and flagged[0] == 10 and set(range(10, 30)) <= set(flagged)  # the whole shift
        labels = {"host": "a", "metric": "cpu_ratio", "detector": "cpu-p"}
        scores = store.read(Series.of("aiops_anomaly_score", labels), 0, 10**13)
        lower = store.read(Series.of("aiops_expected_lower", labels), 0, 10**13)
        upper = store.read(Series.of("aiops_expected_upper", labels), 0, 10**13)
        assert len(scores) == 40 and len(lower) == 40 and len(upper) == 40
        assert (scores.values[10:30] >= 0.999).all() and (scores.values[:10] < 0.999).all()
        assert (lower.values[:10] < live[:10]).all() and (live[:10] < upper.values[:10]).all()
        assert (live[10:30] > upper.values[10:30]).all()
    finally:
        store.close()
