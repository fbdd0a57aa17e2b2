"""A store and state database filled like an agent's, with the awkward label values the pages must survive.

Used by the AppTest and browser tests (together with a real agent run) and kept small.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, Table, insert

from aiops.model import Sample, Series, fingerprint_of, now_ms
from aiops.notification import outbox
from aiops.state import StateDB, anomalies
from aiops.store import SqliteSeriesStore
from alerting.tables import alert_events, alerts, silences
from rca.tables import save_alert_rca
from remediation.tables import action_runs

AWKWARD = {"instance": "127.0.0.1:46635", "path": '/v1/"chat".completions[0]', "zone": "zürich-αβ ✓"}
LATENCY = Series.of("inference_latency_p99_seconds", namespace="inference", deployment="llm")
AWKWARD_SERIES = Series.of("http_request_duration_seconds", AWKWARD)
PENDING_RUNS = ("run-approve-1", "run-reject-1")
SYMPTOM = "deployment/inference/llm:inference_latency_p99_seconds"
# what the rca component stores for the latency alert (the demo's shape): the saturated pod of the
# deployment first, a node two hops up, and a metric of the symptom's own component without an edge
RCA_CAUSES = [
    {"component": "pod/inference/llm-0", "metric": "inference_gpu_utilization_ratio", "score": 23.3, "z": 23.3,
     "marginal_z": 23.3, "path": ["pod/inference/llm-0:inference_gpu_utilization_ratio", SYMPTOM],
     "workload": "deployment/inference/llm"},
    {"component": "node/gpu-node-1", "metric": "node_load1", "score": 7.8, "z": 7.8, "marginal_z": 9.1,
     "path": ["node/gpu-node-1:node_load1", "pod/inference/llm-0:inference_queue_depth", SYMPTOM],
     "workload": None},
    {"component": "deployment/inference/llm", "metric": "inference_offered_load_rps", "score": 3.0, "z": 3.0,
     "marginal_z": 2.0, "path": [], "workload": "deployment/inference/llm"},
]


def write_config(tmp: Path, store_path: Path, agent_port: int, token: str = "tok-secret-123") -> Path:
    cfg = tmp / "aiops.yaml"
    cfg.write_text(yaml.safe_dump({"store": {"path": str(store_path)},
                                   "agent": {"api_token": token, "listen_port": agent_port}}))
    return cfg


def fill(store_path: Path, minutes: int = 60, step_s: int = 15, latency: Series = LATENCY,
         own_alerts: bool = True) -> None:
    """Series (latency, awkward labels, GPUs, collector health, detector companions) and state rows.

    Args:
        latency: the series that gets detector companions, anomalies and (with ``own_alerts``) an alert.
        own_alerts: add a firing latency alert with three action runs (two pending approval); off
            where a real agent run provides them.
    """
    t_end = now_ms()
    n = minutes * 60 // step_s
    t0 = t_end - n * step_s * 1000
    samples: list[Sample] = []
    gpu = {"instance": "gpu-node-1", "gpu": "0", "name": "H100", "uuid": "GPU-1"}
    for i in range(n):
        t = t0 + i * step_s * 1000
        spike = 4.0 if n * 0.6 < i < n * 0.7 else 0.0
        lat = 0.3 + 0.05 * math.sin(i / 9) + spike
        samples += [
            *([Sample(latency, t, lat)] if own_alerts or t < t_end - 120_000 else []),  # history before a real run
            Sample(AWKWARD_SERIES, t, 0.1 + 0.01 * (i % 5)),
            Sample(Series.of("inference_queue_depth", namespace="inference", deployment="llm"), t, 3 + spike * 10),
            Sample(Series.of("inference_ready_replicas", namespace="inference", deployment="llm"), t,
                   2.0 if i < n * 0.65 else 8.0),
            Sample(Series.of("aiops_gpu_utilisation_ratio", gpu), t, 0.55 + 0.3 * (spike > 0)),
            Sample(Series.of("aiops_gpu_memory_used_bytes", gpu), t, 40e9 + 1e9 * (i % 7)),
            Sample(Series.of("aiops_gpu_memory_total_bytes", gpu), t, 80e9),
            Sample(Series.of("aiops_gpu_temperature_celsius", gpu), t, 61 + (i % 4)),
            Sample(Series.of("aiops_gpu_power_watts", gpu), t, 350 + 10 * (i % 3)),
            Sample(Series.of("aiops_gpu_xid_errors_total", gpu), t, 0.0),
            Sample(Series.of("aiops_anomaly_score", {**dict(latency.labels), "detector": "lat-z"}), t,
                   0.999 if spike else 0.2),
            Sample(Series.of("aiops_expected_lower", {**dict(latency.labels), "detector": "lat-z"}), t, 0.2),
            Sample(Series.of("aiops_expected_upper", {**dict(latency.labels), "detector": "lat-z"}), t, 0.45),
        ]
        for target, up in (("http://127.0.0.1:9100/metrics", 1.0), ("http://127.0.0.1:9999/metrics",
                                                                      1.0 if i < n - 8 else 0.0)):
            labels = {"collector": "scrape", "target": target, "instance": "agent-1"}
            samples += [Sample(Series.of("aiops_collector_up", labels), t, up),
                        Sample(Series.of("aiops_collector_samples", labels), t, 40.0)]
    with SqliteSeriesStore(store_path) as st:
        st.append(samples)
    db = StateDB(f"sqlite:///{store_path.with_name(store_path.stem + '-state.db')}")
    db.create_all()
    spike_ms = t0 + int(n * 0.6 + 1) * step_s * 1000
    _state(db, t_end, spike_ms, latency, own_alerts)
    db.dispose()


def _rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    for row in rows:  # one statement per row: the rows set different columns
        conn.execute(insert(table).values(**row))


def _alert(name: str, severity: str, labels: dict[str, str]) -> tuple[str, dict[str, str]]:
    full = {"alertname": name, "severity": severity, **labels}
    return fingerprint_of(full), full


def _state(db: StateDB, now: int, spike_ms: int, latency: Series, own_alerts: bool) -> None:
    fp_lat, lat = _alert("InferenceLatencyHigh", "page", dict(latency.labels))
    fp_awk, awk = _alert("SlowPath", "warning", AWKWARD)
    fp_res, res = _alert("TargetDown", "critical", {"instance": "127.0.0.1:9999"})
    with db.begin() as c:
        _rows(c, alerts, [
            *([{"fingerprint": fp_lat, "rule": "InferenceLatencyHigh", "labels": lat, "state": "firing",
             "annotations": {"summary": "p99 latency 4.3s above the 1s SLO", "series": latency.key},
             "starts_at_ms": spike_ms, "ends_at_ms": 0, "last_eval_ms": now, "value": 4.3, "source": "rule",
             "extra": {}}] if own_alerts else []),
            {"fingerprint": fp_awk, "rule": "SlowPath", "labels": awk, "state": "pending",
             "annotations": {"summary": "slow path"}, "starts_at_ms": now - 60_000, "ends_at_ms": 0,
             "last_eval_ms": now, "value": 0.14, "source": "rule", "extra": {}},
            {"fingerprint": fp_res, "rule": "TargetDown", "labels": res, "state": "resolved",
             "annotations": {"summary": "target down"}, "starts_at_ms": now - 900_000, "ends_at_ms": now - 300_000,
             "last_eval_ms": now, "value": 0.0, "source": "rule", "extra": {}},
        ])
        _rows(c, alert_events, [
            *([{"fingerprint": fp_lat, "rule": "InferenceLatencyHigh", "alertname": "InferenceLatencyHigh",
                "severity": "page", "labels": lat, "annotations": {"series": latency.key}, "state": "firing",
                "ts_ms": spike_ms, "value": 4.3}] if own_alerts else []),
            {"fingerprint": fp_res, "rule": "TargetDown", "alertname": "TargetDown", "severity": "critical",
             "labels": res, "annotations": {}, "state": "firing", "ts_ms": now - 900_000, "value": 0.0},
            {"fingerprint": fp_res, "rule": "TargetDown", "alertname": "TargetDown", "severity": "critical",
             "labels": res, "annotations": {}, "state": "resolved", "ts_ms": now - 300_000, "value": 1.0},
        ])
        _rows(c, anomalies, [
            {"series": latency.key, "ts_ms": spike_ms + k * 15_000, "value": 4.3, "score": 0.9995,
             "detector": "lat-z", "threshold": 0.999} for k in range(3)])
        _rows(c, silences, [
            {"id": "sil-old", "matchers": [{"name": "alertname", "value": "TargetDown", "isRegex": False,
                                            "isEqual": True}],  # Alertmanager's JSON, as the agent stores it
             "starts_at_ms": now - 7_200_000,
             "ends_at_ms": now - 3_600_000, "created_by": "bob", "comment": "maintenance",
             "created_ms": now - 7_200_000}])
        payload = {"format": 1, "receiver": "ops-slack", "group_key": "g", "group_labels": [],
                   "alerts": [{"labels": [list(p) for p in sorted(lat.items())], "state": "firing"}]}
        _rows(c, outbox, [
            {"receiver": "ops-slack", "group_key": "g", "payload": payload, "status": "sent", "attempts": 1,
             "created_ms": spike_ms + 1000, "sent_ms": spike_ms + 1500},
            {"receiver": "pager", "group_key": "g", "payload": payload, "status": "failed", "attempts": 3,
             "created_ms": spike_ms + 1000, "last_error": "HTTP 503 from pager.example"}])
        if not own_alerts:
            return
        base = {"playbook": "scale-out-inference", "action": "k8s_scale", "alert_fingerprint": fp_lat,
                "params": {"replicas": 8, "name": "llm"}, "dry_run": 0}
        _rows(c, action_runs, [
            {**base, "id": "run-done-1", "step": 0, "idempotency_key": f"{fp_lat}:s:0:a", "status": "verified",
             "created_ms": spike_ms + 2000, "started_ms": spike_ms + 2500, "finished_ms": spike_ms + 60_000,
             "result": {"from": 2, "replicas": 8}, "extra": {"plan": {"previous": 2, "target": 8}}},
            {**base, "id": PENDING_RUNS[0], "step": 0, "playbook": "restart-llm", "action": "k8s_restart",
             "idempotency_key": f"{fp_lat}:r:0:a", "status": "pending_approval", "created_ms": now - 30_000,
             "expires_ms": now + 3_600_000, "extra": {}},
            {**base, "id": PENDING_RUNS[1], "step": 0, "playbook": "drain-node", "action": "k8s_cordon",
             "idempotency_key": f"{fp_lat}:d:0:a", "status": "pending_approval", "created_ms": now - 20_000,
             "expires_ms": now + 3_600_000, "extra": {}},
        ])
    save_alert_rca(db, fp_lat, spike_ms, spike_ms + 800, SYMPTOM,  # own_alerts: a real agent run ranks its own
                   [{**c, "onset_ms": spike_ms - 15_000} for c in RCA_CAUSES], spike_ms - 15_000, 0.021)
