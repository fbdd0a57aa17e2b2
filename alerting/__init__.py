"""The alerting package: rules, alert lifecycle, grouping, routing, inhibition, silences, history.

Delivery (the outbox and the chat notifiers) lives in ``alerting.outbox`` and
``alerting.notifiers``; the two halves meet in the kernel's :mod:`aiops.notification` contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiops.lazy import lazy_exports

# Names load on first use (PEP 562): `import alerting.settings` (every CLI command does) must
# not import the whole package, so that commands that need none of it start fast.
if TYPE_CHECKING:
    from aiops.notification import Notification, NotificationSink
    from alerting.component import AlertingComponent
    from alerting.config import AlertingConfig, InhibitRule, load_alerting
    from alerting.engine import AlertEngine
    from alerting.history import AlertHistory
    from alerting.routing import Route
    from alerting.silences import Silence, SilenceStore
    from alerting.templates import Template

_EXPORTS: dict[str, tuple[str, str]] = {
    "Notification": ("aiops.notification", "Notification"),
    "NotificationSink": ("aiops.notification", "NotificationSink"),
    "AlertingComponent": ("alerting.component", "AlertingComponent"),
    "AlertingConfig": ("alerting.config", "AlertingConfig"),
    "InhibitRule": ("alerting.config", "InhibitRule"),
    "load_alerting": ("alerting.config", "load_alerting"),
    "AlertEngine": ("alerting.engine", "AlertEngine"),
    "AlertHistory": ("alerting.history", "AlertHistory"),
    "Route": ("alerting.routing", "Route"),
    "Silence": ("alerting.silences", "Silence"),
    "SilenceStore": ("alerting.silences", "SilenceStore"),
    "Template": ("alerting.templates", "Template"),
}

__all__ = [
    "AlertEngine",
    "AlertHistory",
    "AlertingComponent",
    "AlertingConfig",
    "InhibitRule",
    "Notification",
    "NotificationSink",
    "Route",
    "Silence",
    "SilenceStore",
    "Template",
    "load_alerting",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)
