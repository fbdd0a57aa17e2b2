"""Notifiers: one module per chat service, rendering a Notification natively and sending it.

``Notifier`` is the protocol; :func:`parse_receivers` validates ``alerting.receivers`` and
:func:`build_notifier` makes the notifier for one receiver. Service modules are imported
lazily by :func:`build_notifier`; import a class from its module
(``alerting.notifiers.slack.SlackNotifier``).
"""

from alerting.notifiers.base import (
    DeliveryClientError,
    DeliveryPermanentError,
    DeliveryTemporaryError,
    HttpNotifier,
    Notifier,
    parse_retry_after_s,
)
from alerting.notifiers.receivers import RECEIVER_TYPES, ReceiverConfig, build_notifier, parse_receivers
from alerting.notifiers.view import MessageView, view_of

__all__ = [
    "Notifier",
    "HttpNotifier",
    "DeliveryTemporaryError",
    "DeliveryPermanentError",
    "DeliveryClientError",
    "parse_retry_after_s",
    "parse_receivers",
    "build_notifier",
    "ReceiverConfig",
    "RECEIVER_TYPES",
    "MessageView",
    "view_of",
]
