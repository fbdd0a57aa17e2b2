"""A generic JSON webhook whose body is exactly Alertmanager's webhook message (version 4).

Anything that consumes Alertmanager webhooks (PagerDuty bridges, custom handlers, Alertmanager
webhook receivers) consumes ours. Keys: ``version``, ``groupKey``, ``truncatedAlerts``,
``status``, ``receiver``, ``groupLabels``, ``commonLabels``, ``commonAnnotations``,
``externalURL``, ``alerts`` (``status``, ``labels``, ``annotations``, ``startsAt``,
``endsAt``, ``generatorURL``, ``fingerprint``).

One addition, present only when a rate limit held notifications back: ``heldBack`` (a count)
and ``heldBackSummary`` (text). Alertmanager consumers ignore unknown keys.
``endsAt`` of an open alert is ``0001-01-01T00:00:00Z``, as Alertmanager writes it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from aiops.model import Alert, AlertState
from aiops.notification import Notification
from alerting.notifiers.base import HttpNotifier
from alerting.notifiers.view import series_link

__all__ = ["WebhookNotifier", "alertmanager_message"]

ZERO_TIME = "0001-01-01T00:00:00Z"


def _rfc3339(ts_ms: int) -> str:
    if ts_ms <= 0:
        return ZERO_TIME
    t = dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _alert(a: Alert, base_url: str) -> dict[str, Any]:
    return {
        "status": "firing" if a.state is AlertState.FIRING else "resolved",
        "labels": dict(a.labels),
        "annotations": dict(a.annotations),
        "startsAt": _rfc3339(a.starts_at_ms),
        "endsAt": _rfc3339(a.ends_at_ms),
        "generatorURL": series_link(a, base_url),
        "fingerprint": a.fingerprint,
    }


def alertmanager_message(n: Notification, base_url: str = "", max_alerts: int = 0) -> dict[str, Any]:
    """The Alertmanager webhook body for ``n``; ``max_alerts`` > 0 truncates like Alertmanager."""
    alerts = list(n.alerts)
    truncated = n.truncated_alerts
    if max_alerts > 0 and len(alerts) > max_alerts:
        truncated += len(alerts) - max_alerts
        alerts = alerts[:max_alerts]
    url = n.external_url or base_url  # externalURL: the sender, as Alertmanager means it
    msg: dict[str, Any] = {
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": truncated,
        "status": n.status,
        "receiver": n.receiver,
        "groupLabels": dict(n.group_labels),
        "commonLabels": n.common_labels(),
        "commonAnnotations": n.common_annotations(),
        "externalURL": url,
        "alerts": [_alert(a, base_url or url) for a in alerts],  # generatorURL: the dashboard's series view
    }
    if n.held_back:
        msg["heldBack"] = n.held_back
        msg["heldBackSummary"] = str(n.extra.get("held_back_summary", ""))
    return msg


class WebhookNotifier(HttpNotifier):
    """POSTs Alertmanager-format JSON to any URL.

    Args:
        name: receiver name.
        url: the endpoint (secret: it may carry a token).
        headers: extra headers such as ``Authorization`` (values are secrets).
        max_alerts: truncate ``alerts`` to this many (0: all), counting the rest in ``truncatedAlerts``.
        base_url: dashboard URL, used as ``externalURL`` when the notification has none.
        timeout_s: seconds per attempt.
    """

    kind = "webhook"

    def __init__(self, name: str, url: str, *, headers: Mapping[str, str] | None = None, max_alerts: int = 0,
                 base_url: str = "", timeout_s: float = 10.0) -> None:
        super().__init__(name, url, timeout_s, headers=headers)
        self.max_alerts = max_alerts
        self.base_url = base_url

    def render(self, n: Notification) -> dict[str, Any]:
        return alertmanager_message(n, self.base_url, self.max_alerts)
