"""The simulated inference service against the fake Kubernetes API server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from aiops.errors import InputError
from app.sim import InferenceSim, SimParams, SimState, parse_schedule, step
from tests.fakes.k8s import FakeKubernetes, fake_k8s  # noqa: F401  (fixture)


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(url: str, name: str) -> float:
    return scrape(url)[name][0][1]


@pytest.fixture
def sim(fake_k8s: FakeKubernetes) -> Iterator[InferenceSim]:  # noqa: F811
    fake_k8s.add_deployment("prod", "llm", replicas=2)
    fake_k8s.wait_ready("prod", "llm", 2)
    with InferenceSim(fake_k8s.api_client(), "prod", "llm", base_rps=10, params=SimParams(capacity_rps=10),
                      poll_interval_s=0.1, tick_s=0.05) as s:
        yield s


def test_latency_rises_with_load_and_recovers_after_scale_out(fake_k8s: FakeKubernetes,  # noqa: F811
                                                              sim: InferenceSim) -> None:
    fake_k8s.wait_for(lambda: value(sim.url, "inference_ready_replicas") == 2)
    calm = value(sim.url, "inference_latency_p99_seconds")
    assert calm < 0.5
    r = httpx.post(f"{sim.url}/load", json={"rps": 45}, timeout=5)
    assert r.status_code == 200 and r.json()["load_rps"] == 45
    fake_k8s.wait_for(lambda: value(sim.url, "inference_latency_p99_seconds") > 5 * calm
                      and value(sim.url, "inference_queue_depth") > 0)
    assert value(sim.url, "inference_utilization_ratio") == 1.0
    client.AppsV1Api(fake_k8s.api_client()).patch_namespaced_deployment_scale(
        "llm", "prod", {"spec": {"replicas": 8}})
    fake_k8s.wait_for(lambda: value(sim.url, "inference_ready_replicas") == 8, timeout_s=15)
    fake_k8s.wait_for(lambda: value(sim.url, "inference_latency_p99_seconds") < 0.5
                      and value(sim.url, "inference_queue_depth") == 0, timeout_s=15)
    gpu = scrape(sim.url)["inference_gpu_utilization_ratio"]
    assert len(gpu) == 8 and {lbl["pod"] for lbl, _ in gpu} == {p["metadata"]["name"]
                                                                for p in fake_k8s.pods("prod", "app=llm")}
    assert all(0.5 < v < 0.6 for _, v in gpu)  # 45 rps over 80 rps of capacity


def test_per_pod_series_follow_scale_down(fake_k8s: FakeKubernetes, sim: InferenceSim) -> None:  # noqa: F811
    fake_k8s.set_replicas("prod", "llm", 1)
    fake_k8s.wait_for(lambda: len(scrape(sim.url)["inference_gpu_memory_used_bytes"]) == 1)
    assert value(sim.url, "inference_ready_replicas") == 1
    fake_k8s.set_replicas("prod", "llm", 0)
    fake_k8s.wait_for(lambda: value(sim.url, "inference_latency_p99_seconds") == 30.0)
    assert "inference_gpu_memory_used_bytes" not in scrape(sim.url)  # no pods, no per-pod series
    assert value(sim.url, "inference_utilization_ratio") == 1.0  # saturated, not idle


def test_api_failures_keep_last_replicas_and_are_counted(fake_k8s: FakeKubernetes,  # noqa: F811
                                                         sim: InferenceSim) -> None:
    fake_k8s.wait_for(lambda: value(sim.url, "inference_kube_api_up") == 1)
    fake_k8s.fail_next("GET", "/deployments/llm", 500, times=1000)
    fake_k8s.wait_for(lambda: value(sim.url, "inference_kube_api_up") == 0)
    assert value(sim.url, "inference_kube_api_errors_total") >= 1
    assert value(sim.url, "inference_ready_replicas") == 2


def test_bad_load_body_names_the_field(sim: InferenceSim) -> None:
    r = httpx.post(f"{sim.url}/load", json={"rps": -3}, timeout=5)
    assert r.status_code == 400 and "rps" in r.json()["error"]
    assert httpx.post(f"{sim.url}/load", content=b"nope", timeout=5).status_code == 400


def test_zero_replicas_serve_nothing() -> None:
    s = step(SimState(), SimParams(max_latency_s=30), load_rps=5, ready_replicas=0, dt_s=1.0)
    assert (s.served_rps, s.p99_latency_s, s.queue) == (0.0, 30.0, 5.0)
    s = step(s, SimParams(max_queue_s=2), load_rps=5, ready_replicas=0, dt_s=10.0)
    assert s.queue == 10.0 and s.dropped_rps > 0  # backlog capped at 2 s of load, the rest shed


def test_parse_schedule_rejects_garbage() -> None:
    with pytest.raises(InputError, match="'soon'"):
        parse_schedule("0:10,soon")


def test_module_runs_as_a_process(fake_k8s: FakeKubernetes) -> None:  # noqa: F811
    fake_k8s.add_deployment("prod", "llm", replicas=3)
    proc = subprocess.Popen([sys.executable, "-m", "app.sim", "--kubeconfig", str(fake_k8s.kubeconfig_path),
                             "--namespace", "prod", "--deployment", "llm", "--port", "0", "--schedule", "0:5,1:50",
                             "--poll-interval-s", "0.2", "--noise", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        url = json.loads(proc.stdout.readline())["url"]
        fake_k8s.wait_for(lambda: value(url, "inference_offered_load_rps") == 50, timeout_s=20)
        fake_k8s.wait_for(lambda: value(url, "inference_ready_replicas") == 3, timeout_s=20)
        assert fake_k8s.requests_to("GET", "/apis/apps/v1/namespaces/prod/deployments/llm")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
