"""Least-privilege Kubernetes RBAC derived from the playbooks: exactly what their actions call.

Each Kubernetes action needs a fixed set of API calls (see the table below); a playbook's
steps name the actions and, through their parameters and ``guards.namespaces``, the
namespaces they may touch. :func:`required_permissions` turns playbooks into that set of
(API group, resource, verb, namespace) grants and :func:`render_rbac` writes them as one Role +
RoleBinding per namespace, and a ClusterRole + ClusterRoleBinding only when a playbook cordons
nodes (nodes are cluster-scoped). Nothing else is granted: no ``list`` where a name is known,
no ``patch deployments`` unless ``k8s_restart`` is used (that verb can rewrite a pod template,
image and command included), no HPA verbs without ``k8s_hpa``.

======================  ======================================================================
action                  calls
======================  ======================================================================
``k8s_scale``           get, patch ``deployments/scale`` (``statefulsets/scale`` for StatefulSets)
``k8s_restart``         get, patch ``deployments`` (``statefulsets``)
``k8s_hpa``             get, patch ``horizontalpodautoscalers`` (autoscaling)
``k8s_delete_pod``      get ``pods`` (by name) or list ``pods`` (by selector); create
                        ``pods/eviction`` (``evict: false``: delete ``pods``)
``k8s_cordon``          get, patch ``nodes``; list ``nodes`` (the cordon cap counts unschedulable
                        nodes); cluster-scoped
``k8s_scale_out``       get, patch ``deployments/scale``; list, patch ``horizontalpodautoscalers``;
                        list, patch ``scaledobjects`` (keda.sh, unless ``keda: false``)
``k8s_drain``           get, patch ``nodes``; list ``pods`` (cluster-wide); create ``pods/eviction``
                        in the namespaces it may touch
======================  ======================================================================

A templated namespace (``"{{ $labels.namespace }}"``) is bounded by ``guards.namespaces``; a
playbook that templates it without that guard is an error, since its Role could not be
bounded. A templated ``kind`` grants both Deployments and StatefulSets.

Examples:
    >>> from remediation.playbook import parse_playbook
    >>> pb = parse_playbook({"name": "up", "trigger": {}, "guards": {"namespaces": ["inference"]},
    ...     "steps": [{"action": "k8s_scale", "params": {"namespace": "{{ $labels.namespace }}",
    ...                "name": "llm", "replicas": "+1"}}]}, "up.yaml")
    >>> sorted((p.resource, p.verb, p.namespace) for p in required_permissions([pb]))
    [('deployments/scale', 'get', 'inference'), ('deployments/scale', 'patch', 'inference')]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from aiops.errors import ConfigError
from remediation.playbook import Playbook, Step

__all__ = ["Permission", "required_permissions", "step_permissions", "render_rbac", "underived_steps", "ROLE_NAME",
           "NO_KUBE"]

ROLE_NAME = "aiops-remediator"
_KINDS = {"Deployment": "deployments", "StatefulSet": "statefulsets"}


@dataclass(frozen=True, slots=True, order=True)
class Permission:
    """One grant: ``verb`` on ``resource`` of ``api_group``, in ``namespace`` (None: cluster-scoped)."""

    api_group: str
    resource: str
    verb: str
    namespace: str | None


def _templated(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def _namespaces(pb: Playbook, index: int, step: Step) -> list[str]:
    """The namespaces a step can act in: its static namespace, else the playbook's namespace guard."""
    value = step.params.get("namespace", "default")
    allowed = list(pb.guards.namespaces or [])
    if _templated(value):
        if not allowed:
            raise ConfigError(f"playbook {pb.name!r}: steps[{index}].params.namespace is templated ({value!r}) "
                              "and guards.namespaces is empty: the Role it needs cannot be bounded; list the "
                              "namespaces in guards.namespaces")
        return sorted(allowed)
    ns = str(value)
    # A static namespace outside the guard is refused at run time: it needs no grant.
    return [ns] if not allowed or ns in allowed else []


def _workloads(step: Step) -> list[str]:
    kind = step.params.get("kind", "Deployment")
    if _templated(kind):
        return sorted(_KINDS.values())
    return [_KINDS[str(kind)]]


def step_permissions(pb: Playbook, index: int) -> set[Permission]:
    """What step ``index`` of playbook ``pb`` calls on the Kubernetes API (empty for non-Kubernetes actions).

    Raises:
        ConfigError: a templated namespace without ``guards.namespaces``.
    """
    step = pb.steps[index]
    action = step.action
    if action == "k8s_cordon":
        return {Permission("", "nodes", verb, None) for verb in ("get", "list", "patch")}
    if action == "k8s_drain":
        cluster = {Permission("", "nodes", verb, None) for verb in ("get", "patch")} | {
            Permission("", "pods", "list", None)}
        allowed = sorted(pb.guards.namespaces or [])
        if not allowed:
            raise ConfigError(f"playbook {pb.name!r}: steps[{index}] (k8s_drain) evicts pods of many namespaces: "
                              "list them in guards.namespaces so its Role can be bounded")
        return cluster | {Permission("", "pods/eviction", "create", ns) for ns in allowed}
    if action not in ("k8s_scale", "k8s_scale_out", "k8s_restart", "k8s_hpa", "k8s_delete_pod"):
        return set()  # no Kubernetes calls (NO_KUBE), or not derivable from the playbook (see underived_steps)
    grants: set[tuple[str, str, str]] = set()
    if action == "k8s_scale":
        grants = {("apps", f"{res}/scale", verb) for res in _workloads(step) for verb in ("get", "patch")}
    elif action == "k8s_restart":
        grants = {("apps", res, verb) for res in _workloads(step) for verb in ("get", "patch")}
    elif action == "k8s_scale_out":
        grants = {("apps", f"{res}/scale", verb) for res in _workloads(step) for verb in ("get", "patch")}
        grants |= {("autoscaling", "horizontalpodautoscalers", verb) for verb in ("list", "patch")}
        if step.params.get("keda", True) is not False:
            grants |= {("keda.sh", "scaledobjects", verb) for verb in ("list", "patch")}
    elif action == "k8s_hpa":
        grants = {("autoscaling", "horizontalpodautoscalers", verb) for verb in ("get", "patch")}
    else:  # k8s_delete_pod: read by name or list by selector, then evict (or delete)
        grants.add(("", "pods", "get" if step.params.get("name") is not None else "list"))
        evict = step.params.get("evict", True)
        if _templated(evict) or evict:
            grants.add(("", "pods/eviction", "create"))
        if _templated(evict) or not evict:
            grants.add(("", "pods", "delete"))
    return {Permission(group, res, verb, ns) for ns in _namespaces(pb, index, step) for group, res, verb in grants}


# Actions that make no Kubernetes API calls with the remediator's ServiceAccount.
NO_KUBE = frozenset({"http", "notify", "command"})
_DERIVED = frozenset({"k8s_scale", "k8s_scale_out", "k8s_restart", "k8s_hpa", "k8s_delete_pod", "k8s_cordon",
                      "k8s_drain"})


def underived_steps(playbooks: Iterable[Playbook]) -> list[str]:
    """Steps whose Kubernetes permissions the playbook alone does not tell, one line each.

    ``gpu_quota_lend`` acts in the namespaces of ``remediation.gpu_quota``'s classes (configuration,
    not the playbook); ``ansible`` runs whatever its playbook says. Their grants are never guessed:
    the generated file names them, so nobody believes it complete.
    """
    out = []
    for pb in playbooks:
        for index, step in enumerate(pb.steps):
            if step.action not in NO_KUBE and step.action not in _DERIVED:
                out.append(f"{pb.name} steps[{index}] ({step.action})")
    return out


def required_permissions(playbooks: Iterable[Playbook]) -> set[Permission]:
    """Every grant the playbooks' actions need, and nothing more."""
    out: set[Permission] = set()
    for pb in playbooks:
        for index in range(len(pb.steps)):
            out |= step_permissions(pb, index)
    return out


def _rules(perms: Iterable[Permission]) -> list[dict[str, Any]]:
    """Rules grouped as people write them: one per (group, resource), verbs sorted."""
    verbs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for p in perms:
        verbs[(p.api_group, p.resource)].add(p.verb)
    return [{"apiGroups": [group], "resources": [res], "verbs": sorted(v)}
            for (group, res), v in sorted(verbs.items())]


def render_rbac(perms: set[Permission], *, sa_namespace: str = "aiops", sa_name: str = ROLE_NAME,
                source: str = "deploy/playbooks", underived: Iterable[str] = ()) -> str:
    """The Roles, RoleBindings and (for nodes) ClusterRole + binding granting ``perms`` to one ServiceAccount.

    Args:
        perms: from :func:`required_permissions`.
        sa_namespace: namespace of the ServiceAccount the workers (and an in-process agent) run as.
        sa_name: its name; also the name of every Role and binding.
        source: named in the header, so a reader knows how to regenerate the file.

    Returns:
        A multi-document YAML text, deterministic for the same input.
    """
    subject = [{"kind": "ServiceAccount", "name": sa_name, "namespace": sa_namespace}]
    by_ns: dict[str, list[Permission]] = defaultdict(list)
    cluster: list[Permission] = []
    for p in perms:
        (cluster if p.namespace is None else by_ns[p.namespace]).append(p)
    docs: list[dict[str, Any]] = []
    for ns in sorted(by_ns):
        meta = {"name": sa_name, "namespace": ns}
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
                     "rules": _rules(by_ns[ns])})
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": dict(meta),
                     "subjects": subject,
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa_name}})
    if cluster:
        name = f"{sa_name}-nodes"
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                     "metadata": {"name": name}, "rules": _rules(cluster)})
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                     "metadata": {"name": name}, "subjects": subject,
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}})
    header = (f"# Generated by `aiops rbac --playbooks {source}`: do not edit, regenerate.\n"
              f"# Least privilege for ServiceAccount {sa_namespace}/{sa_name}: only the calls the playbooks'\n"
              "# actions make, only in the namespaces they name (docs/deploy.md, remediation/rbac.py).\n")
    gaps = list(underived)
    if gaps:
        header += ("# NOT GRANTED here (their needs are not in the playbooks; grant them by hand if you use them):\n"
                   + "".join(f"#   {g}\n" for g in gaps)
                   + "#   gpu_quota_lend: get/create/patch resourcequotas in the gpu_quota classes' namespaces,\n"
                   "#   list pods there, get/create/delete priorityclasses (scheduling.k8s.io, cluster-wide).\n"
                   "#   ansible: whatever its playbook's Kubernetes tasks call, run as this ServiceAccount.\n")
    body = "---\n".join(yaml.safe_dump(d, sort_keys=False, default_flow_style=False) for d in docs)
    return header + (body or "# (no Kubernetes actions in these playbooks: nothing to grant)\n")
