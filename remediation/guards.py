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

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection

from aiops.model import now_ms
from aiops.state import StateDB
from remediation.playbook import Playbook
from remediation.runs import IN_FLIGHT, RunStore
from remediation.settings import RemediationSettings

__all__ = ["KILL_SWITCH_KEY", "kill_switch_on", "set_kill_switch", "admission_refusal", "check_blast",
           "namespaces_of", "outside_namespaces"]

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


def outside_namespaces(namespaces: Iterable[str], allowed: Iterable[str] | None,
                       system: Iterable[str]) -> list[str]:
    """The namespaces a playbook may not touch: outside its list, or system ones when it has none.

    Examples:
        >>> outside_namespaces(["kube-system", "inference"], None, ["kube-*"])
        ['kube-system']
        >>> outside_namespaces(["kube-system"], ["kube-system"], ["kube-*"])
        []
    """
    if allowed is not None:
        keep = set(allowed)
        return [ns for ns in namespaces if ns not in keep]
    patterns = list(system)
    return [ns for ns in namespaces if any(fnmatch.fnmatchcase(ns, p) for p in patterns)]


def admission_refusal(pb: Playbook, step: int, params: Mapping[str, Any], settings: RemediationSettings,
                      runs: RunStore, now: int | None = None, conn: Connection | None = None) -> str | None:
    """Why step ``step`` of ``pb`` may not run now, or None when it may.

    Call it on ``conn`` inside :meth:`~aiops.state.StateDB.locked` and record the runs on the same
    connection: then counting and inserting are one step for every agent on the database.
    """
    now = now_ms() if now is None else now
    g = pb.guards
    action = pb.steps[step].action
    if action == "command" and not settings.allow_commands:
        return "commands are disabled (remediation.allow_commands is false)"
    if action.startswith("k8s_") and action != "k8s_cordon":
        outside = outside_namespaces(namespaces_of(params) or ["default"], g.namespaces, settings.system_namespaces)
        if outside:
            if g.namespaces is not None:
                return f"namespace {outside[0]!r} is outside the playbook's namespaces {g.namespaces}"
            return (f"namespace {outside[0]!r} is a system namespace (remediation.system_namespaces); "
                    f"name it in the playbook's guards.namespaces to allow it")
    if step > 0:
        return None
    if g.cooldown_s > 0:
        if runs.count_since(pb.name, now - int(g.cooldown_s * 1000), conn=conn) > 0:
            return f"cooldown: the playbook ran less than {g.cooldown_s:g}s ago"
    if g.max_runs is not None:
        n = runs.count_since(pb.name, now - int(g.window_s * 1000), conn=conn)
        if n >= g.max_runs:
            return f"run limit: {n} runs in the last {g.window_s:g}s, limit {g.max_runs}"
    in_flight = runs.count_since(None, 0, IN_FLIGHT, step=None, conn=conn)
    if in_flight >= settings.max_concurrent_runs:
        return f"concurrency: {in_flight} runs in progress, limit {settings.max_concurrent_runs} " \
               f"(remediation.max_concurrent_runs)"
    if g.max_concurrent is not None:
        mine = runs.count_since(pb.name, 0, IN_FLIGHT, step=None, conn=conn)
        if mine >= g.max_concurrent:
            return f"concurrency: {mine} runs of this playbook in progress, limit {g.max_concurrent}"
    if any(s.action == "k8s_cordon" for s in pb.steps):
        # cordons run one at a time: each checks the live count of unschedulable nodes before it acts
        cordoning = runs.count_since(None, 0, IN_FLIGHT, step=None, conn=conn, action="k8s_cordon")
        if cordoning:
            return "cordon limit: another k8s_cordon run is in progress"
    return None


def check_blast(radius: Mapping[str, Any], guards: Mapping[str, Any],
                settings: RemediationSettings | None = None) -> str | None:
    """Why a plan's blast radius exceeds the playbook's (and the global) limits, or None."""
    limit = guards.get("max_replicas_change")
    if limit is not None and int(radius.get("replicas", 0)) > int(limit):
        return f"blast radius: changes {radius.get('replicas')} replicas, limit {limit}"
    limit = guards.get("max_pods")
    if limit is not None and int(radius.get("pods", 0)) > int(limit):
        return f"blast radius: touches {radius.get('pods')} pods, limit {limit}"
    allowed = guards.get("namespaces")
    system = settings.system_namespaces if settings is not None else []
    outside = outside_namespaces(radius.get("namespaces", []), allowed, system)
    if outside:
        where = list(allowed) if allowed is not None else "the allowed namespaces (system namespaces excluded)"
        return f"blast radius: namespace {outside[0]!r} is outside {where}"
    if "cordoned_after" in radius:
        caps = [c for c in (guards.get("max_cordoned_nodes"),
                            settings.max_cordoned_nodes if settings is not None else None) if c is not None]
        cap = min(caps) if caps else None
        if cap is not None and int(radius["cordoned_after"]) > int(cap):
            return f"blast radius: {radius['cordoned_after']} nodes would be unschedulable, limit {cap}"
    return None
