"""Remediation: playbooks matched to alerts, guarded, executed as Celery tasks, audited.

Import from here; the modules are one concept each: :mod:`~remediation.playbook` (YAML,
validated at load), :mod:`~remediation.actions` (Kubernetes, HTTP, notify, command),
:mod:`~remediation.guards`, :mod:`~remediation.runs` (action runs + audit),
:mod:`~remediation.planner` (alert -> runs), :mod:`~remediation.executor` (one run),
:mod:`~remediation.celery_app` / :mod:`~remediation.tasks` (workers) and
:mod:`~remediation.component` (the agent's side).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiops.lazy import lazy_exports

# Names load on first use (PEP 562): `import remediation.settings` (every CLI command does) must
# not import the whole package, so that commands that need none of it start fast.
if TYPE_CHECKING:
    from remediation.actions import ACTIONS, ActionContext, get_action, target_replicas
    from remediation.component import RemediationComponent, build_dispatch
    from remediation.executor import Executor, backoff_s
    from remediation.guards import KILL_SWITCH_KEY, check_blast, kill_switch_on, set_kill_switch
    from remediation.inprocess import InProcessRunner
    from remediation.kube import Kube, KubePermanentError, KubeTemporaryError
    from remediation.planner import approve, idempotency_key, reject, start_playbook, sweep
    from remediation.playbook import (
        Guards,
        Playbook,
        Step,
        Trigger,
        Verify,
        load_playbook_file,
        load_playbooks,
        parse_playbook,
    )
    from remediation.runs import TERMINAL, Run, RunStore

_EXPORTS: dict[str, tuple[str, str]] = {
    "ACTIONS": ("remediation.actions", "ACTIONS"),
    "ActionContext": ("remediation.actions", "ActionContext"),
    "get_action": ("remediation.actions", "get_action"),
    "target_replicas": ("remediation.actions", "target_replicas"),
    "RemediationComponent": ("remediation.component", "RemediationComponent"),
    "build_dispatch": ("remediation.component", "build_dispatch"),
    "Executor": ("remediation.executor", "Executor"),
    "backoff_s": ("remediation.executor", "backoff_s"),
    "KILL_SWITCH_KEY": ("remediation.guards", "KILL_SWITCH_KEY"),
    "check_blast": ("remediation.guards", "check_blast"),
    "kill_switch_on": ("remediation.guards", "kill_switch_on"),
    "set_kill_switch": ("remediation.guards", "set_kill_switch"),
    "InProcessRunner": ("remediation.inprocess", "InProcessRunner"),
    "Kube": ("remediation.kube", "Kube"),
    "KubePermanentError": ("remediation.kube", "KubePermanentError"),
    "KubeTemporaryError": ("remediation.kube", "KubeTemporaryError"),
    "approve": ("remediation.planner", "approve"),
    "idempotency_key": ("remediation.planner", "idempotency_key"),
    "reject": ("remediation.planner", "reject"),
    "start_playbook": ("remediation.planner", "start_playbook"),
    "sweep": ("remediation.planner", "sweep"),
    "Guards": ("remediation.playbook", "Guards"),
    "Playbook": ("remediation.playbook", "Playbook"),
    "Step": ("remediation.playbook", "Step"),
    "Trigger": ("remediation.playbook", "Trigger"),
    "Verify": ("remediation.playbook", "Verify"),
    "load_playbook_file": ("remediation.playbook", "load_playbook_file"),
    "load_playbooks": ("remediation.playbook", "load_playbooks"),
    "parse_playbook": ("remediation.playbook", "parse_playbook"),
    "TERMINAL": ("remediation.runs", "TERMINAL"),
    "Run": ("remediation.runs", "Run"),
    "RunStore": ("remediation.runs", "RunStore"),
}

__all__ = [
    "ACTIONS", "ActionContext", "get_action", "target_replicas",
    "RemediationComponent", "build_dispatch", "Executor", "backoff_s", "InProcessRunner",
    "KILL_SWITCH_KEY", "check_blast", "kill_switch_on", "set_kill_switch",
    "Kube", "KubePermanentError", "KubeTemporaryError",
    "approve", "reject", "idempotency_key", "start_playbook", "sweep",
    "Guards", "Playbook", "Step", "Trigger", "Verify", "load_playbook_file", "load_playbooks", "parse_playbook",
    "TERMINAL", "Run", "RunStore",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)
