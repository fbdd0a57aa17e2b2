"""Remediation: playbooks matched to alerts, guarded, executed as Celery tasks, audited.

Import from here; the modules are one concept each: :mod:`~remediation.playbook` (YAML,
validated at load), :mod:`~remediation.actions` (Kubernetes, HTTP, notify, command),
:mod:`~remediation.guards`, :mod:`~remediation.runs` (action runs + audit),
:mod:`~remediation.planner` (alert -> runs), :mod:`~remediation.executor` (one run),
:mod:`~remediation.celery_app` / :mod:`~remediation.tasks` (workers) and
:mod:`~remediation.component` (the agent's side).
"""

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

__all__ = [
    "ACTIONS", "ActionContext", "get_action", "target_replicas",
    "RemediationComponent", "build_dispatch", "Executor", "backoff_s", "InProcessRunner",
    "KILL_SWITCH_KEY", "check_blast", "kill_switch_on", "set_kill_switch",
    "Kube", "KubePermanentError", "KubeTemporaryError",
    "approve", "reject", "idempotency_key", "start_playbook", "sweep",
    "Guards", "Playbook", "Step", "Trigger", "Verify", "load_playbook_file", "load_playbooks", "parse_playbook",
    "TERMINAL", "Run", "RunStore",
]
