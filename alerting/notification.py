"""What the alerting core hands to delivery: one notification for one group of alerts.

The rule engine and grouping (``alerting/engine.py``, ``alerting/grouping.py``) produce
:class:`Notification` objects; the outbox (``alerting/outbox.py``) persists them and the
notifiers (``alerting/notifiers/<name>.py``) render and send them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from aiops.model import Alert, AlertState, Labels

__all__ = ["Notification", "NotificationSink"]


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
