"""Live localisation: stored series around an alert, ranked, stored, shown in the notification."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aiops.annotations import extra_annotations, register_annotator, unregister_annotator
from aiops.model import Alert, AlertState, Sample, Series
from aiops.notification import Notification
from aiops.state import StateDB
from aiops.store import SqliteSeriesStore
from alerting.notifiers.view import view_of
from rca.live import RcaService, annotations_of
from rca.settings import RcaSettings, TopologySettings
from rca.tables import latest_alert_rca, read_alert_rca

T0 = 1_700_000_000_000
STEP = 15_000
N, FAULT = 160, 120
DEP = {"namespace": "inference", "deployment": "llm", "job": "inference", "instance": "127.0.0.1:9000"}


def _series() -> dict[str, Series]:
    return {
        "load": Series.of("inference_offered_load_rps", DEP),
        "latency": Series.of("inference_latency_p99_seconds", DEP),
        "queue": Series.of("inference_queue_depth", DEP),
        "served": Series.of("inference_requests_total", DEP),
        "gpu0": Series.of("inference_gpu_utilization_ratio", DEP, pod="llm-abc-0"),
        "gpu1": Series.of("inference_gpu_utilization_ratio", DEP, pod="llm-abc-1"),
        "db": Series.of("pg_up_connections", job="postgres", instance="db:5432"),
    }


def _fill(store: SqliteSeriesStore, seed: int = 0) -> dict[str, Series]:
    """Load jumps at FAULT; the GPUs saturate, the queue builds, latency follows."""
    rng = np.random.default_rng(seed)
    s = _series()
    load = 40 + rng.normal(0, 1.5, N)
    load[FAULT:] += 45
    rho = np.minimum(load / 100, 1.0)
    cols = {
        "load": load,
        "gpu0": np.minimum(rho + rng.normal(0, 0.01, N), 1.0),
        "gpu1": np.minimum(rho + rng.normal(0, 0.01, N), 1.0),
        "queue": np.maximum(0, (load - 60) * 0.8) + rng.normal(0, 0.3, N),
        "db": 20 + rng.normal(0, 1, N),
        "served": np.cumsum(load * 15),  # a counter: its increases are the rate
    }
    cols["latency"] = 0.3 + 0.02 * cols["queue"] + rng.normal(0, 0.01, N)
    samples = [Sample(s[k], T0 + i * STEP, float(v[i])) for k, v in cols.items() for i in range(N)]
    store.append(samples)
    return s


def _alert(s: dict[str, Series]) -> Alert:
    labels = {**DEP, "alertname": "InferenceLatencyHigh", "severity": "page"}
    return Alert.of(labels, {"summary": "p99 above SLO", "series": s["latency"].key}, state=AlertState.FIRING,
                    starts_at_ms=T0 + (FAULT + 3) * STEP, value=1.4)


@pytest.fixture
def env(tmp_path: Path) -> tuple[RcaService, dict[str, Series], StateDB]:
    store = SqliteSeriesStore(tmp_path / "s.db")
    s = _fill(store)
    state = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    state.create_all()
    svc = RcaService(RcaSettings(lookback_s=3600), TopologySettings(), store, state,
                     clock=lambda: (T0 + (N - 1) * STEP) / 1000)
    return svc, s, state


def test_latency_alert_names_the_saturated_deployment_first(env: tuple[RcaService, dict[str, Series], StateDB]) -> None:
    svc, s, state = env
    alert = _alert(s)
    rec = svc.analyze(alert)
    assert rec["error"] is None
    top = rec["causes"][0]
    assert (top["workload"] or top["component"]) == "deployment/inference/llm"
    assert rec["symptom"] == "deployment/inference/llm:inference_latency_p99_seconds"
    # the unrelated database is outside the alert's neighbourhood: not a candidate at all
    assert not any(c["component"].startswith("instance/postgres") for c in rec["causes"])
    # a counter is scored by its increases, not by its ever-growing level
    assert any(c["metric"] == "inference_requests_total" for c in rec["causes"])
    assert top["path"] and top["path"][-1] == rec["symptom"]
    # stored with the alert, read back by the dashboard's read function
    stored = read_alert_rca(state, str(alert.fingerprint))
    assert stored is not None and stored["causes"][0] == top
    assert latest_alert_rca(state)[0]["fingerprint"] == str(alert.fingerprint)


def test_notification_carries_the_top_three_causes(env: tuple[RcaService, dict[str, Series], StateDB]) -> None:
    svc, s, _ = env
    alert = _alert(s)
    register_annotator(svc.annotations)
    try:
        extra = extra_annotations(alert)
        assert extra["rca_top_workload"] == "deployment/inference/llm"
        view = view_of(Notification("chat", "{}:{}", (), (alert,)))
        desc = view.lines[0].description
        assert desc.startswith("Likely causes: 1. deployment/inference/llm")
        assert desc.count("; ") == 2  # three causes
        resolved = view_of(Notification("chat", "{}:{}", (), (Alert.of(dict(alert.labels),
                                                                         state=AlertState.RESOLVED),)))
        assert "Likely causes" not in resolved.lines[0].description
    finally:
        unregister_annotator(svc.annotations)
    assert "Likely causes" not in view_of(Notification("chat", "{}:{}", (), (alert,))).lines[0].description


def test_playbook_templates_get_guarded_root_cause_values(env: tuple[RcaService, dict[str, Series], StateDB]) -> None:
    from aiops.errors import RemediationError
    from remediation.template import check, render

    svc, s, _ = env
    alert = _alert(s)
    check("{{ $rca.top.name }}")
    with pytest.raises(RemediationError, match="no root-cause ranking"):
        render("{{ $rca.top.name }}", alert)  # no annotator registered: nothing to act on
    register_annotator(svc.annotations)
    try:
        assert render("{{ $rca.top.kind }}/{{ $rca.top.namespace }}/{{ $rca.top.name }}", alert) == \
            "deployment/inference/llm"
        assert isinstance(render("{{ $rca.top.score }}", alert), float)
    finally:
        unregister_annotator(svc.annotations)

    def hostile(_a: Alert) -> dict[str, str]:
        return {"rca_top_name": "llm; kubectl delete ns prod"}

    register_annotator(hostile)
    try:
        with pytest.raises(RemediationError, match="not a plain name"):
            render("{{ $rca.top.name }}", alert)
    finally:
        unregister_annotator(hostile)


def test_annotations_of_nothing_is_empty() -> None:
    assert annotations_of([]) == {}


def test_unknown_series_is_stored_as_an_error(env: tuple[RcaService, dict[str, Series], StateDB]) -> None:
    svc, _, state = env
    alert = Alert.of({"alertname": "X", "job": "nothing-here"}, state=AlertState.FIRING, starts_at_ms=T0)
    rec = svc.analyze(alert)
    assert rec["causes"] == [] and "no stored series" in rec["error"]
    row = read_alert_rca(state, str(alert.fingerprint))
    assert row is not None and row["error"]


def test_cli_at_and_series_over_the_store(tmp_path: Path) -> None:
    from app.cli import app

    with SqliteSeriesStore(tmp_path / "aiops.db") as store:
        _fill(store, seed=1)
    cfg = tmp_path / "aiops.yaml"
    cfg.write_text(json.dumps({"store": {"path": str(tmp_path / "aiops.db")}}))
    at = str((T0 + (FAULT + 3) * STEP) // 1000)
    res = CliRunner().invoke(app, ["rca", "--config", str(cfg), "--at", at,
                                   "--series", 'inference_latency_p99_seconds{deployment="llm"}'])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["symptom"] == "deployment/inference/llm:inference_latency_p99_seconds"
    top = doc["causes"][0]
    assert (top["workload"] or top["component"]) == "deployment/inference/llm"
    bad = CliRunner().invoke(app, ["rca", "--config", str(cfg), "--at", at])
    assert bad.exit_code == 1 and "--at and --series go together" in bad.stderr


def test_cli_alert_by_fingerprint_prefix(tmp_path: Path) -> None:
    from alerting.history import AlertHistory, Event
    from app.cli import app

    with SqliteSeriesStore(tmp_path / "aiops.db") as store:
        s = _fill(store, seed=2)
    cfg = tmp_path / "aiops.yaml"
    cfg.write_text(json.dumps({"store": {"path": str(tmp_path / "aiops.db"),
                                         "state_url": f"sqlite:///{tmp_path / 'state.db'}"}}))
    state = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    state.create_all()
    alert = _alert(s)
    AlertHistory(state).record([Event(rule="InferenceLatencyHigh", alert=alert, ts_ms=alert.starts_at_ms)])
    state.dispose()
    res = CliRunner().invoke(app, ["rca", "--config", str(cfg), "--alert", str(alert.fingerprint)[:6]])
    assert res.exit_code == 0, res.output
    top = json.loads(res.stdout)["causes"][0]
    assert (top["workload"] or top["component"]) == "deployment/inference/llm"
    missing = CliRunner().invoke(app, ["rca", "--config", str(cfg), "--alert", "zz_"])
    assert missing.exit_code == 1 and "no stored alerts match" in missing.stderr
