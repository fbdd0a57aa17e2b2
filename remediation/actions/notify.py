"""``notify``: queue a message for an alerting receiver through the kernel's notification contract.

Remediation never imports alerting, nor writes its tables: it builds a kernel
:class:`~aiops.notification.Notification` (one alert ``AiopsRemediation`` whose ``summary``
annotation is the message, labelled with the playbook, the action and the triggering alert's
name) and queues it with :func:`aiops.notification.queue_notification`, in the one format the
outbox delivers with its retries and rate limits. The group key is ``remediation:<run id>``, so
a redelivered task finds its row and does not queue the message twice.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from aiops.model import Alert, AlertState, now_ms
from aiops.notification import Notification, queue_notification
from remediation.actions.base import ActionContext, ActionParams, blast

__all__ = ["NotifyAction", "NotifyParams", "remediation_notification"]


def remediation_notification(receiver: str, group_key: str, message: str, *, severity: str = "info",
                             labels: dict[str, str] | None = None,
                             extra: dict[str, Any] | None = None) -> Notification:
    """The notification of a remediation message: one synthetic firing alert ``AiopsRemediation``."""
    alert = Alert.of({"alertname": "AiopsRemediation", "severity": severity, **(labels or {})},
                     {"summary": message}, state=AlertState.FIRING, starts_at_ms=now_ms())
    return Notification(receiver, group_key, (("alertname", "AiopsRemediation"),), (alert,),
                        extra={str(k): str(v) for k, v in (extra or {}).items()})


class NotifyParams(ActionParams):
    receiver: str = Field(min_length=1, description="Receiver name, as configured in alerting.receivers.")
    message: str = Field(min_length=1, description="Text of the message.")
    severity: str = Field("info", description="Severity shown with the message.")
    extra: dict[str, str] = Field(default_factory=dict, description="More labels on the message.")


class NotifyAction:
    name: ClassVar[str] = "notify"
    Params: ClassVar[type[ActionParams]] = NotifyParams

    def plan(self, params: Any, ctx: ActionContext) -> dict[str, Any]:
        p: NotifyParams = params
        return {"previous": {}, "target": {"receiver": p.receiver}, "blast": blast()}

    def apply(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        p: NotifyParams = params
        group_key = f"remediation:{ctx.run_id}"
        labels = {"playbook": ctx.playbook, "action": "notify", **{str(k): str(v) for k, v in p.extra.items()}}
        n = remediation_notification(p.receiver, group_key, p.message, severity=p.severity, labels=labels,
                                     extra={"source": "remediation", "action_run_id": ctx.run_id})
        return {"receiver": p.receiver, "queued": queue_notification(ctx.state, n)}

    def rollback(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        return {"rolled_back": False, "reason": "a sent message cannot be unsent"}
