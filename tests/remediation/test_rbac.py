"""The RBAC generator: least privilege from the playbooks, and the committed manifests are its output."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rem_helpers import playbook

from aiops.errors import ConfigError
from remediation import load_playbooks
from remediation.rbac import Permission, render_rbac, required_permissions, underived_steps

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "deploy" / "k8s" / "base" / "rbac.yaml"


def test_committed_rbac_is_the_generators_output() -> None:
    found = load_playbooks([REPO / "deploy" / "playbooks"])
    generated = render_rbac(required_permissions(found), underived=underived_steps(found))
    assert COMMITTED.read_text() == generated, "regenerate: aiops rbac --playbooks deploy/playbooks"


def test_example_playbooks_need_exactly_these_grants() -> None:
    perms = required_permissions(load_playbooks([REPO / "deploy" / "playbooks"]))
    # scale-on-latency / scale-down: both namespaces of their guard; restart and HPA: only `inference`;
    # cordon: nodes, cluster-wide; vllm-scale-on-queue: the HPA / KEDA floor in both namespaces;
    # cordon-drain: pods listed cluster-wide, evicted (never deleted) in both namespaces.
    want = {Permission("apps", "deployments/scale", v, ns) for v in ("get", "patch")
            for ns in ("inference", "inference-staging")}
    want |= {Permission("apps", "deployments", v, "inference") for v in ("get", "patch")}
    want |= {Permission("autoscaling", "horizontalpodautoscalers", v, "inference") for v in ("get", "patch")}
    want |= {Permission("", "nodes", v, None) for v in ("get", "list", "patch")}
    want |= {Permission(group, res, v, ns) for group, res in (("autoscaling", "horizontalpodautoscalers"),
                                                              ("keda.sh", "scaledobjects"))
             for v in ("list", "patch") for ns in ("inference", "inference-staging")}
    want |= {Permission("", "pods", "list", None)}
    want |= {Permission("", "pods/eviction", "create", ns) for ns in ("inference", "inference-staging")}
    assert perms == want
    docs = list(yaml.safe_load_all(COMMITTED.read_text()))
    roles = {(d["kind"], d["metadata"].get("namespace")) for d in docs}
    assert roles == {("Role", "inference"), ("RoleBinding", "inference"), ("Role", "inference-staging"),
                     ("RoleBinding", "inference-staging"), ("ClusterRole", None), ("ClusterRoleBinding", None)}


def test_only_what_is_used_is_granted() -> None:
    scale = playbook([{"action": "k8s_scale", "params": {"namespace": "a", "name": "x", "replicas": "2"}}])
    perms = required_permissions([scale])
    assert {p.resource for p in perms} == {"deployments/scale"} and {p.namespace for p in perms} == {"a"}
    text = render_rbac(perms)
    assert "ClusterRole" not in text and "nodes" not in text and "horizontalpodautoscalers" not in text
    assert "- deployments\n" not in text  # patch on the workload itself only for k8s_restart
    notify = playbook([{"action": "notify", "params": {"receiver": "oncall", "message": "hi"}}])
    assert required_permissions([notify]) == set()
    assert "nothing to grant" in render_rbac(set())


def test_templated_namespace_needs_a_namespace_guard() -> None:
    step = {"action": "k8s_hpa", "params": {"namespace": "{{ $labels.namespace }}", "name": "h", "min_replicas": 2}}
    with pytest.raises(ConfigError, match=r"playbook 'pb': steps\[0\]\.params\.namespace is templated"):
        required_permissions([playbook([step])])
    perms = required_permissions([playbook([step], guards={"namespaces": ["b", "a"]})])
    assert {p.namespace for p in perms} == {"a", "b"}


def test_static_namespace_outside_the_guard_gets_nothing() -> None:
    step = {"action": "k8s_restart", "params": {"namespace": "prod", "name": "x"}}
    assert required_permissions([playbook([step], guards={"namespaces": ["staging"]})]) == set()


def test_templated_kind_grants_both_workload_kinds() -> None:
    step = {"action": "k8s_scale", "params": {"kind": "{{ $labels.kind }}", "namespace": "a", "name": "x",
                                              "replicas": "+1"}}
    perms = required_permissions([playbook([step])])
    assert {p.resource for p in perms} == {"deployments/scale", "statefulsets/scale"}


def _cli_module() -> str:
    """``python -m app`` once the application package exists, ``python -m aiops`` before."""
    return "app" if importlib.util.find_spec("app") is not None else "aiops"


def test_cli_prints_the_committed_manifest() -> None:
    out = subprocess.run([sys.executable, "-m", _cli_module(), "rbac", "--playbooks", "deploy/playbooks"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == COMMITTED.read_text()


def test_cli_refuses_a_bad_service_account() -> None:
    from typer.testing import CliRunner

    from app.cli import app

    bad = CliRunner().invoke(app, ["rbac", "--playbooks", str(REPO / "deploy" / "playbooks"),
                                   "--service-account", "nons"])
    assert bad.exit_code == 1 and "expected NAMESPACE/NAME" in bad.output


def test_actions_whose_needs_are_not_in_the_playbook_are_named_not_guessed() -> None:
    lend = playbook([{"action": "gpu_quota_lend", "params": {"lender": "a", "borrower": "b"}}])
    assert required_permissions([lend]) == set()
    gaps = underived_steps([lend])
    assert gaps == ["pb steps[0] (gpu_quota_lend)"]
    text = render_rbac(set(), underived=gaps)
    assert "NOT GRANTED" in text and "resourcequotas" in text and "gpu_quota_lend" in text
    notify = playbook([{"action": "notify", "params": {"receiver": "oncall", "message": "hi"}}])
    assert underived_steps([notify]) == []
