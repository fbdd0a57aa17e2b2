"""``notify``: queue a message for an alerting receiver through the state DB's ``outbox``.

Remediation never imports alerting: it writes an outbox row (receiver name + payload) that the
alerting deliverer sends with its retries and rate limits. The payload is the outbox's
notification format 1 (``alerting/outbox_codec.py``: receiver, group key, alerts as
label/annotation pairs, extra): one alert ``AiopsRemediation`` whose ``summary`` annotation is
the message, labelled with the playbook, the action and the triggering alert's name. The row's
``group_key`` is ``remediation:<run id>``, so a redelivered task finds its row and does not queue
the message twice.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field
from sqlalchemy import insert, select

from aiops.model import now_ms
from aiops.state import json_safe, outbox
from remediation.actions.base import ActionContext, ActionParams, blast

__all__ = ["NotifyAction", "NotifyParams", "queue_notification", "notification_payload"]

OUTBOX_FORMAT = 1  # alerting/outbox_codec.py FORMAT


def notification_payload(receiver: str, group_key: str, message: str, *, severity: str = "info",
                         labels: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """An outbox payload in the notification format alerting delivers (one synthetic alert)."""
    alert_labels = {"alertname": "AiopsRemediation", "severity": severity, **(labels or {})}
    return {
        "format": OUTBOX_FORMAT, "receiver": receiver, "group_key": group_key,
        "group_labels": [["alertname", "AiopsRemediation"]], "external_url": "", "truncated_alerts": 0,
        "held_back": 0, "extra": {str(k): str(v) for k, v in (extra or {}).items()},
        "alerts": [{
            "labels": sorted([k, str(v)] for k, v in alert_labels.items()),
            "annotations": [["summary", message]], "state": "firing", "starts_at_ms": now_ms(),
            "ends_at_ms": 0, "value": None, "generator_url": "",
        }],
    }


class NotifyParams(ActionParams):
    receiver: str = Field(min_length=1, description="Receiver name, as configured in alerting.receivers.")
    message: str = Field(min_length=1, description="Text of the message.")
    severity: str = Field("info", description="Severity shown with the message.")
    extra: dict[str, str] = Field(default_factory=dict, description="More labels on the message.")


def queue_notification(ctx: ActionContext, receiver: str, group_key: str, payload: dict[str, Any]) -> bool:
    """Insert one outbox row unless one with ``group_key`` exists; True if inserted."""
    with ctx.state.begin() as conn:
        found = conn.execute(select(outbox.c.id).where(outbox.c.receiver == receiver,
                                                       outbox.c.group_key == group_key)).first()
        if found is not None:
            return False
        conn.execute(insert(outbox).values(receiver=receiver, group_key=group_key, payload=json_safe(payload),
                                           status="queued", attempts=0, next_attempt_ms=0, created_ms=now_ms()))
    return True


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
        payload = notification_payload(p.receiver, group_key, p.message, severity=p.severity, labels=labels,
                                       extra={"source": "remediation", "action_run_id": ctx.run_id})
        return {"receiver": p.receiver, "queued": queue_notification(ctx, p.receiver, group_key, payload)}

    def rollback(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        return {"rolled_back": False, "reason": "a sent message cannot be unsent"}
