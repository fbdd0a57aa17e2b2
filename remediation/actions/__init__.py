"""The actions a playbook step can take, by registry name.

Examples:
    >>> names = sorted(ACTIONS)
    >>> print(" ".join(names[:6])); print(" ".join(names[6:]))
    ansible command gpu_quota_lend http k8s_cordon k8s_delete_pod
    k8s_drain k8s_hpa k8s_restart k8s_scale k8s_scale_out notify
"""

from __future__ import annotations

from remediation.actions.ansible import AnsibleAction
from remediation.actions.base import Action, ActionContext, ActionParams, blast
from remediation.actions.command import CommandAction
from remediation.actions.gpu_quota import GpuQuotaLend
from remediation.actions.http import HttpAction
from remediation.actions.k8s_cordon import K8sCordon
from remediation.actions.k8s_delete_pod import K8sDeletePod
from remediation.actions.k8s_drain import K8sDrain
from remediation.actions.k8s_hpa import K8sHpa
from remediation.actions.k8s_restart import RESTARTED_AT, K8sRestart
from remediation.actions.k8s_scale import K8sScale, target_replicas
from remediation.actions.k8s_scale_out import K8sScaleOut
from remediation.actions.notify import NotifyAction, remediation_notification

__all__ = ["ACTIONS", "Action", "ActionContext", "ActionParams", "blast", "get_action", "target_replicas",
           "remediation_notification", "RESTARTED_AT"]

ACTIONS: dict[str, type[Action]] = {
    cls.name: cls
    for cls in (K8sScale, K8sHpa, K8sRestart, K8sDeletePod, K8sCordon, HttpAction, NotifyAction, CommandAction,
                AnsibleAction, K8sScaleOut, K8sDrain, GpuQuotaLend)
}


def get_action(name: str) -> Action:
    """A fresh instance of the action registered as ``name`` (KeyError if unknown)."""
    return ACTIONS[name]()
