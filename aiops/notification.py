"""The notification contract: what any package hands to delivery, and its one JSON codec.

A :class:`Notification` is a group of alerts for one receiver, shaped like Alertmanager's
webhook message. Whoever produces one (the alerting core's grouping, a remediation ``notify``
step) hands it to a :class:`NotificationSink`; alerting's persistent outbox
(``alerting/outbox.py``) is the sink that delivers. Rows wait in the state DB's ``outbox``
table (the mailbox, declared here) in the one format :func:`encode_notification` writes, so a
producer that has no outbox object at hand (a Celery worker) queues through
:func:`queue_notification` and never writes the format by hand.

The outbox stores the notification, not a rendered payload: the message is rendered at
send time, so a rate limit can fold held-back notifications into it and a signature
(Feishu, DingTalk) carries the time it is sent. NaN and ±Inf values survive as strings,
since JSON (and PostgreSQL's JSON type) have no NaN.

Examples:
    >>> from aiops.model import Alert
    >>> n = Notification("ops", "{}:{alertname=\\"X\\"}", (("alertname", "X"),),
    ...                  (Alert.of({"alertname": "X"}, value=float("nan")),))
    >>> back = decode_notification(encode_notification(n))
    >>> back.group_key == n.group_key and back.alerts[0].labels == n.alerts[0].labels
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, String, Table, Text, insert, select

from aiops.errors import InputError
from aiops.model import Alert, AlertState, Labels, now_ms
from aiops.state import json_safe, metadata

if TYPE_CHECKING:
    from aiops.state import StateDB

__all__ = ["Notification", "NotificationSink", "encode_notification", "decode_notification", "outbox",
           "queue_notification", "FORMAT"]

outbox = Table(  # notifications waiting for delivery; survives restarts
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("receiver", String(256), nullable=False),
    Column("group_key", Text, nullable=False, default=""),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False, default="queued"),  # queued, sending, sent, failed, held_back, skipped
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_ms", BigInteger, nullable=False, default=0),
    Column("created_ms", BigInteger, nullable=False),
    Column("sent_ms", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_until_ms", BigInteger, nullable=True),
    # held_back: notifications a rate limit folded into this one; merged_into: the row that
    # summarised this one (status held_back). Nothing is deleted: every row stays recorded.
    Column("held_back", Integer, nullable=False, default=0),
    Column("merged_into", Integer, nullable=True),
    Column("updated_ms", BigInteger, nullable=True),
    Index("outbox_due", "status", "next_attempt_ms"),
    Index("outbox_lane", "receiver", "status", "next_attempt_ms"),
    Index("outbox_merged", "merged_into"),
)


@dataclass(frozen=True, slots=True)
class Notification:
    """A group of alerts for one receiver, shaped like Alertmanager's webhook message.

    ``status`` is ``firing`` while any alert of the group fires, else ``resolved``.
    ``truncated_alerts`` counts alerts left out of ``alerts`` (a storm); ``held_back`` counts
    notifications a rate limit suppressed since the last one sent to this receiver.
    """

    receiver: str
    group_key: str
    group_labels: Labels
    alerts: tuple[Alert, ...]
    external_url: str = ""
    truncated_alerts: int = 0
    held_back: int = 0
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "firing" if any(a.state is AlertState.FIRING for a in self.alerts) else "resolved"

    def common_labels(self) -> dict[str, str]:
        return _common([a.labels for a in self.alerts])

    def common_annotations(self) -> dict[str, str]:
        return _common([a.annotations for a in self.alerts])


def _common(sets: list[Labels]) -> dict[str, str]:
    if not sets:
        return {}
    common = dict(sets[0])
    for s in sets[1:]:
        d = dict(s)
        common = {k: v for k, v in common.items() if d.get(k) == v}
    return common


class NotificationSink(Protocol):
    """Where the alerting core puts notifications: the persistent outbox."""

    def enqueue(self, notification: Notification) -> int:
        """Persist ``notification`` for delivery; returns its outbox id. Must not block on the network."""
        ...


FORMAT = 1


def _num(value: float | None) -> float | str | None:
    if value is None:
        return None
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return float(value)


def _unnum(value: Any) -> float | None:
    if value is None:
        return None
    return float(value)  # float("NaN"), float("+Inf") parse


def encode_notification(n: Notification) -> dict[str, Any]:
    """A JSON-able dict of ``n``."""
    return {
        "format": FORMAT,
        "receiver": n.receiver,
        "group_key": n.group_key,
        "group_labels": [list(p) for p in n.group_labels],
        "external_url": n.external_url,
        "truncated_alerts": n.truncated_alerts,
        "held_back": n.held_back,
        "extra": dict(n.extra),
        "alerts": [
            {
                "labels": [list(p) for p in a.labels],
                "annotations": [list(p) for p in a.annotations],
                "state": a.state.value,
                "starts_at_ms": a.starts_at_ms,
                "ends_at_ms": a.ends_at_ms,
                "value": _num(a.value),
                "generator_url": a.generator_url,
            }
            for a in n.alerts
        ],
    }


def _pairs(items: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in items)


def decode_notification(data: dict[str, Any]) -> Notification:
    """The notification ``encode_notification`` wrote.

    Raises:
        InputError: the payload is not an encoded notification.
    """
    try:
        alerts = tuple(
            Alert(
                labels=_pairs(a["labels"]),
                annotations=_pairs(a.get("annotations", ())),
                state=AlertState(a.get("state", "firing")),
                starts_at_ms=int(a.get("starts_at_ms", 0)),
                ends_at_ms=int(a.get("ends_at_ms", 0)),
                value=_unnum(a.get("value")),
                generator_url=str(a.get("generator_url", "")),
            )
            for a in data["alerts"]
        )
        return Notification(
            receiver=str(data["receiver"]),
            group_key=str(data.get("group_key", "")),
            group_labels=_pairs(data.get("group_labels", ())),
            alerts=alerts,
            external_url=str(data.get("external_url", "")),
            truncated_alerts=int(data.get("truncated_alerts", 0)),
            held_back=int(data.get("held_back", 0)),
            extra={str(k): str(v) for k, v in dict(data.get("extra", {})).items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"outbox payload: not an encoded notification: {exc}") from exc


def queue_notification(db: StateDB, notification: Notification) -> bool:
    """Queue ``notification`` in the outbox unless a row for its receiver and group key exists.

    For producers without an outbox object (a Celery worker running a ``notify`` step): the
    agent's outbox picks the row up and delivers it with its retries and rate limits. A group
    key that names the producer's run (``remediation:<run id>``) makes a redelivered task find
    its row instead of queueing the message twice.

    Returns:
        True if a row was inserted.
    """
    n = notification
    with db.begin() as conn:
        found = conn.execute(select(outbox.c.id).where(outbox.c.receiver == n.receiver,
                                                       outbox.c.group_key == n.group_key)).first()
        if found is not None:
            return False
        now = now_ms()
        conn.execute(insert(outbox).values(receiver=n.receiver, group_key=n.group_key,
                                           payload=json_safe(encode_notification(n)), status="queued", attempts=0,
                                           next_attempt_ms=0, created_ms=now, held_back=0, updated_ms=now))
    return True
