"""``notify``: queue a message for an alerting receiver through the state DB's ``outbox``.

Remediation never imports alerting: it writes an outbox row (receiver name + payload) that the
alerting deliverer sends with its retries. The row's ``group_key`` is ``remediation:<run id>``,
so a redelivered task finds its row and does not queue the message twice.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field
from sqlalchemy import insert, select

from aiops.model import now_ms
from aiops.state import json_safe, outbox
from remediation.actions.base import ActionContext, ActionParams, blast

__all__ = ["NotifyAction", "NotifyParams", "queue_notification"]


class NotifyParams(ActionParams):
    receiver: str = Field(min_length=1, description="Receiver name, as configured in alerting.receivers.")
    message: str = Field(min_length=1, description="Text of the message.")
    severity: str = Field("info", description="Severity shown with the message.")
    extra: dict[str, Any] = Field(default_factory=dict, description="More fields for the payload.")


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
        payload = {"kind": "remediation", "source": "remediation", "playbook": ctx.playbook,
                   "action_run_id": ctx.run_id, "message": p.message, "severity": p.severity, **p.extra}
        queued = queue_notification(ctx, p.receiver, f"remediation:{ctx.run_id}", payload)
        return {"receiver": p.receiver, "queued": queued}

    def rollback(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        return {"rolled_back": False, "reason": "a sent message cannot be unsent"}
