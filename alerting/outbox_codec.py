"""Notifications to and from JSON, for the outbox's ``payload`` column.

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
from typing import Any

from aiops.errors import InputError
from aiops.model import Alert, AlertState
from alerting.notification import Notification

__all__ = ["encode_notification", "decode_notification"]

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
