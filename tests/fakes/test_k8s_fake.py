"""The fake Kubernetes API server, exercised through the real ``kubernetes`` client."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.fakes.k8s import FakeKubernetes, fake_k8s  # noqa: F401  (fixture)


@pytest.fixture
def apps(fake_k8s: FakeKubernetes) -> client.AppsV1Api:  # noqa: F811
    return client.AppsV1Api(fake_k8s.api_client())


@pytest.fixture
def core(fake_k8s: FakeKubernetes) -> client.CoreV1Api:  # noqa: F811
    return client.CoreV1Api(fake_k8s.api_client())


@pytest.fixture
def web(fake_k8s: FakeKubernetes) -> Iterator[str]:  # noqa: F811
    fake_k8s.add_deployment("prod", "web", replicas=2, labels={"app": "web", "tier": "gpu"})
    fake_k8s.wait_ready("prod", "web", 2)
    yield "web"


def test_load_kube_config_from_generated_file(fake_k8s: FakeKubernetes, web: str) -> None:  # noqa: F811
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(fake_k8s.kubeconfig_path), client_configuration=cfg)
    assert cfg.host == fake_k8s.url
    dep = client.AppsV1Api(client.ApiClient(cfg)).read_namespaced_deployment("web", "prod")
    assert dep.metadata.namespace == "prod" and dep.spec.replicas == 2
    assert dep.metadata.uid and int(dep.metadata.resource_version) > 0 and dep.metadata.generation == 1
    assert fake_k8s.requests_to("GET", "/deployments/web")[-1].status == 200


def test_wrong_token_is_unauthorized(fake_k8s: FakeKubernetes, web: str) -> None:  # noqa: F811
    cfg = client.Configuration(host=fake_k8s.url, api_key={"authorization": "Bearer nope"})
    with pytest.raises(ApiException) as exc:
        client.AppsV1Api(client.ApiClient(cfg)).read_namespaced_deployment("web", "prod")
    assert exc.value.status == 401


def test_scale_read_and_patch_moves_pods(fake_k8s: FakeKubernetes, apps: client.AppsV1Api,  # noqa: F811
                                         core: client.CoreV1Api, web: str) -> None:
    scale = apps.read_namespaced_deployment_scale("web", "prod")
    assert (scale.kind, scale.api_version, scale.spec.replicas) == ("Scale", "autoscaling/v1", 2)
    assert scale.status.selector == "app=web,tier=gpu"
    out = apps.patch_namespaced_deployment_scale("web", "prod", {"spec": {"replicas": 5}})
    assert out.spec.replicas == 5
    assert fake_k8s.requests_to("PATCH", "/scale")[-1].content_type == "application/strategic-merge-patch+json"
    fake_k8s.wait_ready("prod", "web", 5)
    pods = core.list_namespaced_pod("prod", label_selector="app=web").items
    assert len(pods) == 5 and all(p.status.phase == "Running" for p in pods)
    assert all(p.metadata.name.startswith("web-") and p.metadata.labels["tier"] == "gpu" for p in pods)
    dep = apps.read_namespaced_deployment("web", "prod")
    assert (dep.status.ready_replicas, dep.status.available_replicas, dep.metadata.generation) == (5, 5, 2)
    # Scale down removes pods and reports it in events, like the deployment controller.
    apps.patch_namespaced_deployment_scale("web", "prod", {"spec": {"replicas": 1}})
    fake_k8s.wait_ready("prod", "web", 1)
    assert len(core.list_namespaced_pod("prod", label_selector="app=web").items) == 1
    messages = [e.message for e in core.list_namespaced_event("prod").items if e.reason == "ScalingReplicaSet"]
    assert any("from 2 to 5" in m for m in messages) and any("from 5 to 1" in m for m in messages)


def test_scale_to_zero_omits_ready_counts(fake_k8s: FakeKubernetes, apps: client.AppsV1Api,  # noqa: F811
                                          web: str) -> None:
    apps.replace_namespaced_deployment_scale("web", "prod", {"spec": {"replicas": 0}, "metadata": {"name": "web"}})
    fake_k8s.wait_for(lambda: fake_k8s.get_deployment("prod", "web")["status"]["replicas"] == 0)
    assert apps.read_namespaced_deployment("web", "prod").status.ready_replicas is None  # omitempty, as real


def test_replace_with_stale_resource_version_conflicts(fake_k8s: FakeKubernetes,  # noqa: F811
                                                       apps: client.AppsV1Api, web: str) -> None:
    dep = apps.read_namespaced_deployment("web", "prod")
    fake_k8s.set_replicas("prod", "web", 3)  # another writer gets there first
    dep.spec.replicas = 4
    with pytest.raises(ApiException) as exc:
        apps.replace_namespaced_deployment("web", "prod", dep)
    assert exc.value.status == 409
    assert '"reason": "Conflict"' in exc.value.body or '"reason":"Conflict"' in exc.value.body
    fresh = apps.read_namespaced_deployment("web", "prod")
    fresh.spec.replicas = 4
    assert apps.replace_namespaced_deployment("web", "prod", fresh).spec.replicas == 4
    scale = apps.read_namespaced_deployment_scale("web", "prod")
    fake_k8s.set_replicas("prod", "web", 6)
    scale.spec.replicas = 2
    with pytest.raises(ApiException) as exc:
        apps.replace_namespaced_deployment_scale("web", "prod", scale)
    assert exc.value.status == 409


def test_missing_object_is_404_status(apps: client.AppsV1Api) -> None:
    with pytest.raises(ApiException) as exc:
        apps.read_namespaced_deployment_scale("ghost", "prod")
    assert exc.value.status == 404 and 'deployments.apps \\"ghost\\" not found' in exc.value.body


def test_forbidden_verb_on_subresource(fake_k8s: FakeKubernetes, apps: client.AppsV1Api,  # noqa: F811
                                       web: str) -> None:
    fake_k8s.forbid("patch", "deployments/scale")
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment_scale("web", "prod", {"spec": {"replicas": 3}})
    assert exc.value.status == 403
    assert 'cannot patch resource \\"deployments/scale\\" in API group \\"apps\\"' in exc.value.body
    assert apps.read_namespaced_deployment_scale("web", "prod").spec.replicas == 2  # get still allowed
    fake_k8s.allow("patch", "deployments/scale")
    assert apps.patch_namespaced_deployment_scale("web", "prod", {"spec": {"replicas": 3}}).spec.replicas == 3


def test_invalid_replicas_is_422(apps: client.AppsV1Api, web: str) -> None:
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment_scale("web", "prod", {"spec": {"replicas": -1}})
    assert exc.value.status == 422


def test_rollout_restart_replaces_pods(fake_k8s: FakeKubernetes, apps: client.AppsV1Api,  # noqa: F811
                                       core: client.CoreV1Api, web: str) -> None:
    before = {p.metadata.name for p in core.list_namespaced_pod("prod", label_selector="app=web").items}
    body = {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}}}}
    dep = apps.patch_namespaced_deployment("web", "prod", body)
    assert dep.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"] == "2026-01-01T00:00:00Z"
    assert dep.metadata.generation == 2 and dep.spec.template.spec.containers[0].name == "web"

    def rolled() -> bool:
        names = {p["metadata"]["name"] for p in fake_k8s.pods("prod", "app=web")}
        return len(names) == 2 and not names & before
    fake_k8s.wait_for(rolled)
    fake_k8s.wait_ready("prod", "web", 2)
    assert apps.read_namespaced_deployment("web", "prod").status.updated_replicas == 2


def test_merge_and_json_patch(apps: client.AppsV1Api, web: str) -> None:
    dep = apps.patch_namespaced_deployment(
        "web", "prod", [{"op": "replace", "path": "/spec/replicas", "value": 3},
                        {"op": "add", "path": "/metadata/annotations/aiops~1paused", "value": "true"}])
    assert dep.spec.replicas == 3 and dep.metadata.annotations["aiops/paused"] == "true"
    dep = apps.patch_namespaced_deployment("web", "prod", {"metadata": {"annotations": {"aiops/paused": None}}},
                                           _content_type="application/merge-patch+json")
    assert "aiops/paused" not in (dep.metadata.annotations or {})
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment("web", "prod", [{"op": "test", "path": "/spec/replicas", "value": 9}])
    assert exc.value.status == 422


def test_patch_with_stale_resource_version_conflicts(fake_k8s: FakeKubernetes,  # noqa: F811
                                                     apps: client.AppsV1Api, web: str) -> None:
    rv = apps.read_namespaced_deployment("web", "prod").metadata.resource_version
    fake_k8s.set_replicas("prod", "web", 3)
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment("web", "prod", {"metadata": {"resourceVersion": rv},
                                                         "spec": {"replicas": 4}})
    assert exc.value.status == 409


def test_cordon_node_and_evict_moves_pods(fake_k8s: FakeKubernetes, core: client.CoreV1Api) -> None:  # noqa: F811
    fake_k8s.add_node("gpu-1")
    fake_k8s.add_node("gpu-2")
    fake_k8s.add_deployment("prod", "llm", replicas=2)
    fake_k8s.wait_ready("prod", "llm", 2)
    node = core.patch_node("gpu-1", {"spec": {"unschedulable": True}})
    assert node.spec.unschedulable is True and fake_k8s.get_node("gpu-1")["spec"]["unschedulable"] is True
    on_gpu1 = core.list_namespaced_pod("prod", field_selector="spec.nodeName=gpu-1").items
    for p in on_gpu1:
        core.create_namespaced_pod_eviction(p.metadata.name, "prod",
                                            {"metadata": {"name": p.metadata.name, "namespace": "prod"}})
    fake_k8s.wait_ready("prod", "llm", 2)
    assert {p["spec"]["nodeName"] for p in fake_k8s.pods("prod", "app=llm")} == {"gpu-2"}


def test_delete_pod_is_recreated(fake_k8s: FakeKubernetes, core: client.CoreV1Api, web: str) -> None:  # noqa: F811
    victim = fake_k8s.pods("prod", "app=web")[0]["metadata"]["name"]
    assert core.delete_namespaced_pod(victim, "prod").metadata.name == victim
    fake_k8s.wait_for(lambda: victim not in {p["metadata"]["name"] for p in fake_k8s.pods("prod", "app=web")}
                      and len(fake_k8s.pods("prod", "app=web")) == 2)
    fake_k8s.wait_ready("prod", "web", 2)


def test_statefulset_scale(fake_k8s: FakeKubernetes, apps: client.AppsV1Api) -> None:  # noqa: F811
    fake_k8s.add_statefulset("prod", "kv", replicas=1)
    apps.patch_namespaced_stateful_set_scale("kv", "prod", {"spec": {"replicas": 3}})
    fake_k8s.wait_ready("prod", "kv", 3, kind="statefulsets")
    assert [p["metadata"]["name"] for p in fake_k8s.pods("prod", "app=kv")] == ["kv-0", "kv-1", "kv-2"]
    assert apps.read_namespaced_stateful_set("kv", "prod").status.ready_replicas == 3


def test_hpa_get_patch_replace(fake_k8s: FakeKubernetes, web: str) -> None:  # noqa: F811
    fake_k8s.add_hpa("prod", "web", target="web", min_replicas=2, max_replicas=4)
    api = client.AutoscalingV2Api(fake_k8s.api_client())
    hpa = api.read_namespaced_horizontal_pod_autoscaler("web", "prod")
    assert hpa.spec.scale_target_ref.name == "web" and hpa.spec.max_replicas == 4
    out = api.patch_namespaced_horizontal_pod_autoscaler("web", "prod", {"spec": {"maxReplicas": 8}})
    assert out.spec.max_replicas == 8 and fake_k8s.get_hpa("prod", "web")["spec"]["maxReplicas"] == 8
    out.spec.min_replicas = 3
    assert api.replace_namespaced_horizontal_pod_autoscaler("web", "prod", out).spec.min_replicas == 3
    assert [h.metadata.name for h in api.list_namespaced_horizontal_pod_autoscaler("prod").items] == ["web"]


def test_injected_500_then_success_and_429_retry_after(fake_k8s: FakeKubernetes,  # noqa: F811
                                                       apps: client.AppsV1Api, web: str) -> None:
    fake_k8s.fail_next("PATCH", "/deployments/web/scale", 500)
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment_scale("web", "prod", {"spec": {"replicas": 3}})
    assert exc.value.status == 500
    assert apps.patch_namespaced_deployment_scale("web", "prod", {"spec": {"replicas": 3}}).spec.replicas == 3
    fake_k8s.fail_next("*", "/deployments/web", 429)
    with pytest.raises(ApiException) as exc:
        apps.read_namespaced_deployment("web", "prod")
    assert exc.value.status == 429
    # With Retry-After, urllib3 (under the kubernetes client) itself retries a GET once the delay passed.
    fake_k8s.fail_next("GET", "/deployments/web", 429, retry_after=1)
    assert apps.read_namespaced_deployment("web", "prod").spec.replicas == 3
    assert [r.status for r in fake_k8s.requests_to("GET", "/deployments/web")][-2:] == [429, 200]
    fake_k8s.fail_next("PATCH", "/deployments/web", 429, retry_after=1)
    with pytest.raises(ApiException) as exc:  # a PATCH is not retried: the caller decides
        apps.patch_namespaced_deployment_scale("web", "prod", {"spec": {"replicas": 4}})
    assert exc.value.status == 429 and exc.value.headers["Retry-After"] == "1"
    fake_k8s.conflict_next()  # any write; the read before it passes
    assert apps.read_namespaced_deployment_scale("web", "prod").spec.replicas == 3
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment_scale("web", "prod", {"spec": {"replicas": 4}})
    assert exc.value.status == 409
    assert [r.status for r in fake_k8s.requests_to("PATCH", "/scale")] == [500, 200, 429, 409]


def test_slow_down_times_out_client(fake_k8s: FakeKubernetes, apps: client.AppsV1Api, web: str) -> None:  # noqa: F811
    fake_k8s.slow_down(3.0, path_contains="/scale")
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.HTTPError):
        apps.read_namespaced_deployment_scale("web", "prod", _request_timeout=0.3)
    assert time.monotonic() - started < 2.5
    assert apps.read_namespaced_deployment("web", "prod").spec.replicas == 2  # other paths unaffected
    fake_k8s.slow_down(0)
    assert apps.read_namespaced_deployment_scale("web", "prod").spec.replicas == 2


def test_create_and_list_events_and_pods_all_namespaces(fake_k8s: FakeKubernetes,  # noqa: F811
                                                        core: client.CoreV1Api, web: str) -> None:
    body = {"metadata": {"generateName": "aiops-"}, "reason": "AiopsScaled", "message": "scaled web to 3",
            "type": "Normal", "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "prod"}}
    ev = core.create_namespaced_event("prod", body)
    assert ev.metadata.name.startswith("aiops-") and ev.metadata.resource_version
    listed = core.list_namespaced_event("prod", field_selector="involvedObject.name=web").items
    assert "AiopsScaled" in [e.reason for e in listed]
    assert len(core.list_pod_for_all_namespaces(label_selector="app=web,tier in (gpu)").items) == 2
    assert core.list_pod_for_all_namespaces(label_selector="app=web,tier notin (gpu)").items == []


def test_bare_pod_runs_and_deleted_deployment_takes_its_pods(fake_k8s: FakeKubernetes,  # noqa: F811
                                                             apps: client.AppsV1Api, core: client.CoreV1Api,
                                                             web: str) -> None:
    core.create_namespaced_pod("prod", {"metadata": {"name": "debug", "labels": {"app": "debug"}},
                                        "spec": {"containers": [{"name": "sh", "image": "busybox"}]}})
    fake_k8s.wait_for(lambda: fake_k8s.pods("prod", "app=debug")[0]["status"]["phase"] == "Running")
    apps.delete_namespaced_deployment("web", "prod")
    fake_k8s.wait_for(lambda: fake_k8s.pods("prod", "app=web") == [])
    with pytest.raises(ApiException) as exc:
        apps.read_namespaced_deployment("web", "prod")
    assert exc.value.status == 404
    assert [p["metadata"]["name"] for p in fake_k8s.pods("prod")] == ["debug"]
