"""Topology from the Kubernetes API (fake at the wire), stored series' labels and declared edges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aiops.errors import ConfigError
from aiops.model import Sample, Series
from aiops.store import SqliteSeriesStore
from app.testing import FakeKubernetes
from rca.settings import TopologySettings
from rca.topology_sources import assemble, from_kubernetes, from_series, metric_of


def _cluster(fake: FakeKubernetes) -> None:
    fake.add_node("gpu-node-1")
    fake.add_deployment("inference", "llm", replicas=2, labels={"app": "llm"})
    fake.add_statefulset("inference", "feature-db", replicas=1, labels={"app": "feature-db"})
    fake.add_service("inference", "llm-svc", {"app": "llm"})
    fake.wait_ready("inference", "llm", 2)


def test_kubernetes_owner_refs_selectors_and_nodes(fake_k8s: FakeKubernetes) -> None:
    _cluster(fake_k8s)
    topo = from_kubernetes(fake_k8s.api_client())
    kinds = {c.id: c.kind for c in topo.components.values()}
    pods = sorted(c for c, k in kinds.items() if k == "pod" and "llm-" in c)
    assert len(pods) == 2
    rs = [c for c, k in kinds.items() if k == "replicaset"]
    assert len(rs) == 1 and rs[0].startswith("replicaset/inference/llm-")
    rel = {(r.src, r.kind, r.dst) for r in topo.relations}
    assert ("deployment/inference/llm", "owns", rs[0]) in rel
    for p in pods:
        assert (rs[0], "owns", p) in rel
        assert (p, "runs_on", "node/gpu-node-1") in rel
        assert ("service/inference/llm-svc", "selects", p) in rel
        # the causal direction: node -> pod -> replicaset -> deployment; pod -> service
        edges = set(topo.causal_edges())
        assert ("node/gpu-node-1", p) in edges and (p, rs[0]) in edges and (p, "service/inference/llm-svc") in edges
    assert ("statefulset/inference/feature-db", "owns", "pod/inference/feature-db-0") in rel
    assert topo.owner_workload(pods[0]) == "deployment/inference/llm"
    # read through the official client over HTTP: the fake saw the list calls
    assert fake_k8s.requests_to("GET", "/apis/apps/v1/replicasets")
    assert fake_k8s.requests_to("GET", "/api/v1/services")


def test_a_denied_list_is_a_config_error_naming_it(fake_k8s: FakeKubernetes) -> None:
    fake_k8s.forbid("list", "services")
    with pytest.raises(ConfigError, match="list services: 403"):
        from_kubernetes(fake_k8s.api_client())


def _store(path: Path) -> list[Series]:
    series = [
        Series.of("inference_latency_p99_seconds", job="inference", instance="127.0.0.1:9000",
                  namespace="inference", deployment="llm"),
        Series.of("inference_gpu_utilization_ratio", job="inference", namespace="inference", deployment="llm",
                  pod="llm-abc-1"),
        Series.of("node_cpu_seconds_total", job="node", instance="10.0.0.5:9100", node="gpu-node-1", mode="idle"),
        Series.of("DCGM_FI_DEV_GPU_UTIL", gpu="0", UUID="GPU-1", Hostname="gpu-node-1", pod="llm-abc-1",
                  namespace="inference"),
        Series.of("up", job="feature-store", instance="fs:8080"),
    ]
    with SqliteSeriesStore(path) as st:
        st.append([Sample(s, 1_700_000_000_000, 1.0) for s in series])
    return series


def test_labels_of_stored_series_place_metrics_and_imply_relations(tmp_path: Path) -> None:
    _store(tmp_path / "s.db")
    with SqliteSeriesStore(tmp_path / "s.db", read_only=True) as st:
        topo = from_series(st.select([]))
    m = topo.metrics
    assert set(m["deployment/inference/llm"]) == {"inference_latency_p99_seconds"}
    assert set(m["pod/inference/llm-abc-1"]) == {"inference_gpu_utilization_ratio"}
    assert set(m["node/gpu-node-1"]) == {'node_cpu_seconds_total{mode="idle"}'}
    assert set(m["instance/feature-store/fs_8080"]) == {"up"}
    gpu = "gpu/gpu-node-1/0"
    assert set(m[gpu]) == {"DCGM_FI_DEV_GPU_UTIL"}
    rel = {(r.src, r.kind, r.dst) for r in topo.relations}
    assert ("deployment/inference/llm", "owns", "pod/inference/llm-abc-1") in rel
    assert ("pod/inference/llm-abc-1", "uses_gpu", gpu) in rel
    assert (gpu, "runs_on", "node/gpu-node-1") in rel
    assert all(":" not in c for c in topo.components)


def test_declared_edges_resolve_bare_names_and_flow_against_calls(tmp_path: Path) -> None:
    series = _store(tmp_path / "s.db")
    settings = TopologySettings.model_validate(
        {"edges": [{"from": "llm", "to": "feature-store"}, {"from": "feature-store", "to": "postgres"}]})
    topo = assemble(settings, series)
    rel = {(r.src, r.kind, r.dst, r.source) for r in topo.relations}
    assert ("deployment/inference/llm", "calls", "feature-store", "config") in rel
    # callee's trouble shows in the caller: cause -> effect is postgres -> feature-store -> llm
    edges = topo.causal_edges()
    assert ("feature-store", "deployment/inference/llm") in edges
    assert ("postgres", "feature-store") in edges
    with pytest.raises(ConfigError, match=r"topology.edges\[0\].kind"):
        assemble(TopologySettings.model_validate({"edges": [{"from": "a", "to": "b", "kind": "likes"}]}), [])


def test_metric_names_keep_the_labels_that_do_not_place_them() -> None:
    assert metric_of(Series.of("x", pod="p", mode="user", cpu="1")) == 'x{cpu="1",mode="user"}'


def test_aiops_topology_prints_text_json_and_dot(tmp_path: Path, fake_k8s: FakeKubernetes) -> None:
    from app.cli import app

    _cluster(fake_k8s)
    _store(tmp_path / "s.db")
    cfg = tmp_path / "aiops.yaml"
    cfg.write_text(json.dumps({
        "store": {"path": str(tmp_path / "s.db")},
        "topology": {"kubernetes": True, "kubeconfig": str(fake_k8s.kubeconfig_path),
                     "edges": [{"from": "llm", "to": "feature-store"}]},
    }))
    runner = CliRunner()
    text = runner.invoke(app, ["topology", "--config", str(cfg)])
    assert text.exit_code == 0, text.output
    assert "deployment/inference/llm  [deployment]" in text.stdout
    assert "--selects--> pod/inference/llm-" in text.stdout
    doc = json.loads(runner.invoke(app, ["topology", "--config", str(cfg), "--format", "json"]).stdout)
    ids = {c["id"] for c in doc["components"]}
    assert {"service/inference/llm-svc", "node/gpu-node-1", "deployment/inference/llm"} <= ids
    assert ["feature-store", "deployment/inference/llm"] in doc["causal_edges"]
    dot = runner.invoke(app, ["topology", "--config", str(cfg), "--format", "dot"]).stdout
    assert dot.startswith("digraph topology {")
    assert '"deployment/inference/llm" -> "feature-store" [label="calls"];' in dot
    bad = runner.invoke(app, ["topology", "--config", str(cfg), "--format", "svg"])
    assert bad.exit_code == 1 and "--format" in bad.stderr
