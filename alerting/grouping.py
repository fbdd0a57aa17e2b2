"""Grouping, Alertmanager's: aggregation groups with group_wait, group_interval, repeat_interval.

Each alert goes to the routes the tree picks; on each route it joins the group of alerts that
share its ``group_by`` labels. A new group waits ``group_wait`` (to gather what fires together)
before its first notification; after that it is looked at every ``group_interval`` and notifies
only when something changed (a new firing alert, or a resolved one the receiver was told was
firing) or when ``repeat_interval`` has passed with alerts still firing: that is the dedup.
Muted alerts (silenced or inhibited) stay in their group but are left out of notifications.

Time comes from the caller (``now_ms``), never from a clock read here, so tests drive the
timers without sleeping. A notification lists at most ``max_alerts`` alerts (firing first) and
counts the rest in ``truncated_alerts``: a 10,000-alert storm costs one bounded message.

Examples:
    >>> from aiops.model import Alert
    >>> from alerting.routing import Route
    >>> sent = []
    >>> d = Dispatcher(Route(receiver="chat", group_by=("alertname",), group_wait_s=30).finalise(), sent.append)
    >>> d.insert(Alert.of({"alertname": "A", "instance": "1"}), now_ms=0)
    >>> d.tick(now_ms=29_000), len(sent)
    (0, 0)
    >>> d.tick(now_ms=30_000), sent[0].receiver, len(sent[0].alerts)
    (1, 'chat', 1)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiops.model import Alert, AlertState, Fingerprint, Labels
from aiops.notification import Notification
from alerting.matchers import fingerprint
from alerting.routing import Route

__all__ = ["Dispatcher", "Group"]


@dataclass(slots=True)
class Group:
    """One aggregation group: alerts of one route sharing the route's ``group_by`` labels."""

    key: str
    route: Route
    labels: Labels
    created_ms: int
    next_flush_ms: int
    alerts: dict[Fingerprint, Alert] = field(default_factory=dict)
    flushed: bool = False
    last_sent_ms: int = 0
    sent_firing: frozenset[Fingerprint] = frozenset()


def _group_key(route: Route, labels: Labels) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels)
    return f"{route.path}:{{{inner}}}"


class Dispatcher:
    """Routes alerts into groups and flushes groups into notifications.

    Not thread-safe: the engine calls it under its lock.

    Args:
        route: the finalised routing tree.
        send: called with each notification (the engine hands it to the outbox).
        is_muted: True for an alert that must not be notified now (silence, inhibition).
        max_alerts: alerts listed in one notification; the rest are counted.
        external_url: link back to us, copied into every notification.
    """

    def __init__(self, route: Route, send: Callable[[Notification], object],
                 is_muted: Callable[[Alert], bool] = lambda a: False, max_alerts: int = 100,
                 external_url: str = "") -> None:
        self.route = route
        self.send = send
        self.is_muted = is_muted
        self.max_alerts = max_alerts
        self.external_url = external_url
        self.groups: dict[str, Group] = {}

    def insert(self, alert: Alert, now_ms: int) -> None:
        """Add or update ``alert`` in its groups; a group already due flushes now (``group_wait: 0``)."""
        for route in self.route.match(alert.labels):
            labels = route.group_labels(alert.labels)
            key = _group_key(route, labels)
            g = self.groups.get(key)
            if g is None:
                if alert.state is not AlertState.FIRING:
                    continue  # a resolved alert nobody was told about opens no group
                wait_ms = int((route.group_wait_s or 0) * 1000)
                g = self.groups[key] = Group(key, route, labels, now_ms, now_ms + wait_ms)
            g.alerts[fingerprint(alert.labels)] = alert
            if not g.flushed and g.next_flush_ms <= now_ms:
                self._flush(g, now_ms)

    def restore(self, alert: Alert, now_ms: int) -> None:
        """Put back a firing alert the receivers were told about before a restart (no new message)."""
        fp = fingerprint(alert.labels)
        for route in self.route.match(alert.labels):
            labels = route.group_labels(alert.labels)
            key = _group_key(route, labels)
            g = self.groups.get(key)
            if g is None:
                g = self.groups[key] = Group(key, route, labels, now_ms,
                                             now_ms + int((route.group_interval_s or 0) * 1000), flushed=True,
                                             last_sent_ms=now_ms)
            g.alerts[fp] = alert
            g.sent_firing = g.sent_firing | {fp}

    def tick(self, now_ms: int) -> int:
        """Flush every group whose timer is due; returns the notifications sent."""
        sent = 0
        for g in [g for g in self.groups.values() if g.next_flush_ms <= now_ms]:
            sent += self._flush(g, now_ms)
        return sent

    def next_due_ms(self) -> int | None:
        """When the next group timer is due (for a scheduler), or None without groups."""
        return min((g.next_flush_ms for g in self.groups.values()), default=None)

    def _flush(self, g: Group, now_ms: int) -> int:
        g.next_flush_ms = now_ms + int((g.route.group_interval_s or 0) * 1000)
        g.flushed = True
        firing: list[Alert] = []
        resolved: list[Alert] = []
        gone: list[Fingerprint] = []
        for fp, a in g.alerts.items():
            if a.state is not AlertState.FIRING:
                gone.append(fp)
            if self.is_muted(a):
                continue
            (firing if a.state is AlertState.FIRING else resolved).append(a)
        firing_fps = frozenset(fingerprint(a.labels) for a in firing)
        told_resolved = [a for a in resolved if fingerprint(a.labels) in g.sent_firing]
        repeat_ms = int((g.route.repeat_interval_s or 0) * 1000)
        changed = not firing_fps <= g.sent_firing or bool(told_resolved)
        repeat = bool(firing) and g.last_sent_ms > 0 and now_ms - g.last_sent_ms >= repeat_ms
        sent = 0
        if changed or repeat:
            listed = firing + told_resolved
            shown = tuple(listed[: self.max_alerts])
            self.send(Notification(
                receiver=g.route.receiver or "", group_key=g.key, group_labels=g.labels, alerts=shown,
                external_url=self.external_url, truncated_alerts=len(listed) - len(shown),
            ))
            g.sent_firing = firing_fps
            g.last_sent_ms = now_ms
            sent = 1
        # resolved alerts leave the group after a flush, as in Alertmanager: the receiver was told
        # (or had never been told they fired, or they are muted and it must not be told)
        for fp in gone:
            del g.alerts[fp]
        if not g.alerts:
            del self.groups[g.key]
        return sent
