"""The alerting package: rules, alert lifecycle, grouping, routing, inhibition, silences, history.

Delivery (the outbox and the chat notifiers) lives in ``alerting.outbox`` and
``alerting.notifiers``; the two halves meet in the kernel's :mod:`aiops.notification` contract.
"""

from aiops.notification import Notification, NotificationSink
from alerting.component import AlertingComponent
from alerting.config import AlertingConfig, InhibitRule, load_alerting
from alerting.engine import AlertEngine
from alerting.history import AlertHistory
from alerting.routing import Route
from alerting.silences import Silence, SilenceStore
from alerting.templates import Template

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
