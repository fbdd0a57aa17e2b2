"""Edges learned from the data (rca.learn): found when one series drives another, absent otherwise,
and used by live localisation and `aiops topology --learn` where no source knows the edge."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aiops.model import Alert, AlertState, Sample, Series
from aiops.store import SqliteSeriesStore
from rca.learn import granger_p, learn_relations
from rca.live import RcaService
from rca.settings import LearnSettings, RcaSettings, TopologySettings

T0 = 1_700_000_000_000
STEP = 15_000
N, FAULT = 240, 200


def test_a_driver_is_found_in_its_direction_only() -> None:
    others = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        a = rng.normal(size=N).cumsum()
        b = 0.8 * np.roll(a, 1) + rng.normal(scale=0.5, size=N)
        c = rng.normal(size=N).cumsum()
        found = [(r.src, r.dst, r.kind, r.source) for r in learn_relations({"svc/a": {"x": a}, "svc/b": {"x": b},
                                                                            "svc/c": {"x": c}})]
        assert ("svc/a", "svc/b", "learned", "learned") in found and ("svc/b", "svc/a", "learned", "learned") \
            not in found
        others += [f for f in found if f[:2] != ("svc/a", "svc/b")]
    assert len(others) <= 2, others  # family-wise alpha 0.01 per trial: a rare false edge, not a habit


def test_independent_series_learn_nothing() -> None:
    false_edges = 0
    for seed in range(30):
        rng = np.random.default_rng(100 + seed)
        metrics = {f"svc/{k}": {"x": rng.normal(size=N).cumsum(), "y": rng.normal(size=N)} for k in "abcd"}
        false_edges += len(learn_relations(metrics))
    assert false_edges <= 1  # alpha 0.01 family-wise over 30 trials: at most a rare one


@pytest.mark.parametrize("values", [np.zeros(N), np.full(N, np.nan), np.arange(5.0)])
def test_untestable_series_give_p_one(values: np.ndarray) -> None:
    assert granger_p(values, np.random.default_rng(0).normal(size=len(values)).cumsum()) == 1.0


def _fill(store: SqliteSeriesStore, seed: int = 0, t0: int = T0) -> dict[str, Series]:
    """feature-store latency jumps at FAULT; api latency follows one step later. No label links them."""
    rng = np.random.default_rng(seed)
    s = {"fs": Series.of("http_latency_seconds", job="feature-store", instance="fs:80"),
         "api": Series.of("http_latency_seconds", job="api", instance="api:80"),
         "db": Series.of("pg_connections", job="postgres", instance="db:5432")}
    fs = 0.05 + 0.01 * rng.normal(size=N).cumsum() / 10 + rng.normal(0, 0.002, N)
    fs[FAULT:] += 0.4
    api = 0.1 + 1.5 * np.roll(fs, 1) + rng.normal(0, 0.004, N)
    api[0] = api[1]
    db = 20 + rng.normal(0, 1, N)
    store.append([Sample(s[k], t0 + i * STEP, float(v[i])) for k, v in (("fs", fs), ("api", api), ("db", db))
                  for i in range(N)])
    return s


def test_live_localisation_uses_learned_edges(tmp_path: Path) -> None:
    store = SqliteSeriesStore(tmp_path / "s.db")
    s = _fill(store)
    alert = Alert.of({"alertname": "ApiSlow", "job": "api", "instance": "api:80"}, {"series": s["api"].key},
                     state=AlertState.FIRING, starts_at_ms=T0 + (FAULT + 2) * STEP)
    clock = (T0 + (N - 1) * STEP) / 1000
    rca = RcaSettings(lookback_s=3600, max_hops=3)
    plain = RcaService(rca, TopologySettings(), store, clock=lambda: clock)
    assert not [r for r in plain.topology().relations if r.learned]
    learning = RcaService(rca, TopologySettings(learn=LearnSettings(enabled=True)), store, clock=lambda: clock)
    result, topo = learning.localize_series(learning.symptom_of(alert), alert.starts_at_ms)
    learned = [(r.src, r.dst) for r in topo.relations if r.learned]
    fs_comp, api_comp = "instance/feature-store/fs_80", "instance/api/api_80"  # components from the labels
    assert (fs_comp, api_comp) in learned
    assert not [r for r in learning.topology().relations if r.learned]  # the cached topology is left alone
    assert result.causes[0].name.startswith(fs_comp + ":")
    store.close()


def test_cli_topology_learn_marks_learned_edges(tmp_path: Path) -> None:
    from app.cli import app

    with SqliteSeriesStore(tmp_path / "aiops.db") as store:
        _fill(store, seed=3, t0=int(time.time() * 1000) - N * STEP)
    cfg = tmp_path / "aiops.yaml"
    cfg.write_text(json.dumps({"store": {"path": str(tmp_path / "aiops.db")}}))
    res = CliRunner().invoke(app, ["topology", "--config", str(cfg), "--learn", "--lookback", "2h",
                                   "--format", "json"])
    assert res.exit_code == 0, res.output
    learned = [(e["from"], e["to"]) for e in json.loads(res.stdout)["relations"] if e["learned"]]
    assert ("instance/feature-store/fs_80", "instance/api/api_80") in learned, learned
    bad = CliRunner().invoke(app, ["topology", "--config", str(cfg), "--learn", "--lookback", "soon"])
    assert bad.exit_code == 1 and "--lookback 'soon'" in bad.stderr
