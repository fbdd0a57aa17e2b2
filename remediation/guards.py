"""Guards: what may run, checked before a run is admitted and again before it changes anything.

At admission (in the agent, from the alert): the kill switch, per-playbook cooldown and run
limit per window, the namespaces the rendered parameters name, and whether commands are
allowed. At execution (in the worker, from the plan read off the live cluster): the kill switch
again (a queued task does nothing once it is on) and the blast radius (replicas and pods one run
may change, namespaces it may touch). A refusal is a recorded, audited run, never a silent drop.

Examples:
    >>> check_blast({"replicas": 6, "pods": 0, "namespaces": ["prod"]}, {"max_replicas_change": 4})
    'blast radius: changes 6 replicas, limit 4'
    >>> check_blast({"replicas": 2, "pods": 0, "namespaces": ["prod"]}, {"namespaces": ["inference"]}) is not None
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiops.model import now_ms
from aiops.state import StateDB
from remediation.playbook import Playbook
from remediation.runs import RunStore
from remediation.settings import RemediationSettings

__all__ = ["KILL_SWITCH_KEY", "kill_switch_on", "set_kill_switch", "admission_refusal", "check_blast",
           "namespaces_of"]

KILL_SWITCH_KEY = "remediation/kill_switch"


def kill_switch_on(settings: RemediationSettings, db: StateDB) -> bool:
    """True when the configured switch or the run-time one (shared by all agents and workers) is on."""
    return settings.kill_switch or db.kv_get(KILL_SWITCH_KEY) == b"1"


def set_kill_switch(db: StateDB, on: bool, actor: str) -> None:
    """Turn the run-time kill switch on or off for every agent and worker on this state DB; audited."""
    db.kv_put(KILL_SWITCH_KEY, b"1" if on else b"0")
    RunStore(db).audit(None, "", "kill_switch_on" if on else "kill_switch_off", actor, {"enabled": on})


def namespaces_of(params: Mapping[str, Any]) -> list[str]:
    """The namespaces rendered parameters name (Kubernetes actions default to ``default``)."""
    ns = params.get("namespace")
    many = params.get("namespaces")  # k8s_drain: every namespace whose pods it may evict
    if isinstance(many, list) and many:
        return [str(n) for n in many]
    return [str(ns)] if ns else []


def admission_refusal(pb: Playbook, step: int, params: Mapping[str, Any], settings: RemediationSettings,
                      runs: RunStore, now: int | None = None) -> str | None:
    """Why step ``step`` of ``pb`` may not run now, or None when it may."""
    now = now_ms() if now is None else now
    g = pb.guards
    action = pb.steps[step].action
    if action == "command" and not settings.allow_commands:
        return "commands are disabled (remediation.allow_commands is false)"
    if g.namespaces is not None and action.startswith("k8s_") and action != "k8s_cordon":
        outside = [ns for ns in namespaces_of(params) or ["default"] if ns not in g.namespaces]
        if outside:
            return f"namespace {outside[0]!r} is outside the playbook's namespaces {g.namespaces}"
    if step == 0 and g.cooldown_s > 0:
        if runs.count_since(pb.name, now - int(g.cooldown_s * 1000)) > 0:
            return f"cooldown: the playbook ran less than {g.cooldown_s:g}s ago"
    if step == 0 and g.max_runs is not None:
        n = runs.count_since(pb.name, now - int(g.window_s * 1000))
        if n >= g.max_runs:
            return f"run limit: {n} runs in the last {g.window_s:g}s, limit {g.max_runs}"
    return None


def check_blast(radius: Mapping[str, Any], guards: Mapping[str, Any]) -> str | None:
    """Why a plan's blast radius exceeds the playbook's limits, or None."""
    limit = guards.get("max_replicas_change")
    if limit is not None and int(radius.get("replicas", 0)) > int(limit):
        return f"blast radius: changes {radius.get('replicas')} replicas, limit {limit}"
    limit = guards.get("max_pods")
    if limit is not None and int(radius.get("pods", 0)) > int(limit):
        return f"blast radius: touches {radius.get('pods')} pods, limit {limit}"
    allowed = guards.get("namespaces")
    if allowed is not None:
        outside = [ns for ns in radius.get("namespaces", []) if ns not in allowed]
        if outside:
            return f"blast radius: namespace {outside[0]!r} is outside {list(allowed)}"
    return None
