"""The Kubernetes state collector against the fake API server at the wire (list + watch, 410, OOM)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from aiops.model import Sample
from app.testing import FakeKubernetes
from collectors.kubernetes import KubernetesStateCollector
from collectors.kubesettings import KubernetesStateSettings
from collectors.scrape import is_stale


@pytest.fixture
def fake() -> Iterator[FakeKubernetes]:
    with FakeKubernetes(pod_ready_delay_s=0.1) as f:
        yield f


@pytest.fixture
def collector(fake: FakeKubernetes) -> Iterator[KubernetesStateCollector]:
    c = KubernetesStateCollector(KubernetesStateSettings(enabled=True, kubeconfig=fake.kubeconfig_path,
                                                         watch_timeout_s=5), api_client=fake.api_client())
    assert c.wait_synced(10)
    yield c
    c.close()


def _value(samples: list[Sample], metric: str, **labels: str) -> float | None:
    for s in samples:
        if s.series.name == metric and all(s.series.get(k) == v for k, v in labels.items()) and not is_stale(s.value):
            return s.value
    return None


def _eventually(c: KubernetesStateCollector, check: Callable[[list[Sample]], bool],
                timeout_s: float = 10) -> list[Sample]:
    deadline = time.monotonic() + timeout_s
    while True:
        got = c.collect(int(time.time() * 1000))
        if check(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_pod_lifecycle_start_running_oomkilled_restart(fake: FakeKubernetes,
                                                      collector: KubernetesStateCollector) -> None:
    fake.add_deployment("inference", "llm", replicas=1)
    got = _eventually(collector, lambda s: _value(s, "kube_pod_status_phase", phase="Running") == 1)
    (pod,) = {s.series.get("pod") for s in got if s.series.name == "kube_pod_info"}
    assert _value(got, "kube_pod_status_ready", pod=pod, condition="true") == 1
    assert _value(got, "kube_deployment_status_replicas_available", deployment="llm") == 1
    assert _value(got, "kube_pod_container_status_restarts_total", pod=pod) == 0
    assert _value(got, "kube_pod_info", pod=pod, created_by_kind="ReplicaSet") == 1

    fake.oom_kill("inference", pod)  # streamed by the watch, no re-list needed
    relists = sum(i.relists for i in collector.informers)
    got = _eventually(collector, lambda s: _value(s, "kube_pod_container_status_restarts_total", pod=pod) == 1
                      and _value(s, "aiops_kube_warning_events_total", reason="BackOff") == 1)
    assert _value(got, "kube_pod_container_status_last_terminated_reason", pod=pod, reason="OOMKilled") == 1
    assert _value(got, "kube_pod_container_status_waiting_reason", pod=pod, reason="CrashLoopBackOff") == 1
    assert _value(got, "kube_pod_status_ready", pod=pod, condition="false") == 1
    assert _value(got, "aiops_kube_warning_events_total", reason="BackOff", name=pod) == 1
    assert sum(i.relists for i in collector.informers) == relists

    fake.container_running("inference", pod)
    got = _eventually(collector, lambda s: _value(s, "kube_pod_status_ready", pod=pod, condition="true") == 1)
    assert _value(got, "kube_pod_container_status_waiting_reason", pod=pod, reason="CrashLoopBackOff") is None
    assert _value(got, "kube_pod_container_status_restarts_total", pod=pod) == 1


def test_expired_watch_relists_and_deleted_objects_go_stale(fake: FakeKubernetes,
                                                           collector: KubernetesStateCollector) -> None:
    fake.add_deployment("inference", "llm", replicas=2)
    _eventually(collector, lambda s: _value(s, "kube_deployment_status_replicas_available", deployment="llm") == 2)
    pods_informer = next(i for i in collector.informers if i.name.startswith("pods"))
    before = pods_informer.relists
    fake.expire_watches()
    fake.set_replicas("inference", "llm", 1)  # the next watch read gets 410: a re-list must pick this up
    got = _eventually(collector, lambda s: _value(s, "kube_deployment_spec_replicas", deployment="llm") == 1
                      and len({x.series.get("pod") for x in s if x.series.name == "kube_pod_info"
                               and not is_stale(x.value)}) == 1)
    assert _value(got, "kube_deployment_spec_replicas", deployment="llm") == 1
    assert pods_informer.expired >= 1 and pods_informer.relists > before
    stale = {s.series.get("pod") for s in got if s.series.name == "kube_pod_info" and is_stale(s.value)}
    assert len(stale) <= 1


def test_nodes_conditions_and_gpu_requests(fake: FakeKubernetes, collector: KubernetesStateCollector) -> None:
    fake.add_node("gpu-node-1", gpus=8)
    got = _eventually(collector, lambda s: _value(s, "kube_node_spec_unschedulable", node="gpu-node-1") is not None)
    assert _value(got, "kube_node_spec_unschedulable", node="gpu-node-1") == 0
