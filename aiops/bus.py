"""An in-process publish/subscribe bus: how the agent's parts hand each other data.

Collectors' samples, detectors' anomalies and alert state changes travel as kernel types on
named topics, so detectors, alerting and remediation never import each other. A subscriber
that raises is logged and skipped; it never stops the publisher or the other subscribers.

Examples:
    >>> bus = Bus()
    >>> got = []
    >>> bus.subscribe(SAMPLES, got.extend)
    >>> bus.publish(SAMPLES, [1, 2])
    >>> got
    [1, 2]
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from aiops.logs import get_logger

__all__ = ["Bus", "SAMPLES", "ANOMALIES", "ALERTS", "ACTIONS"]

SAMPLES = "samples"  # payload: Sequence[Sample], after they were stored
ANOMALIES = "anomalies"  # payload: Sequence[Anomaly]
ALERTS = "alerts"  # payload: Sequence[Alert], each a state change (firing or resolved)
ACTIONS = "actions"  # payload: Sequence[ActionRun], each a status change

log = get_logger("aiops.bus")


class Bus:
    """Synchronous topic bus; subscribers run in the publisher's thread, in subscription order."""

    def __init__(self) -> None:
        self._subs: dict[str, list[Callable[[Any], None]]] = defaultdict(list)
        self._lock = threading.Lock()

    def subscribe(self, topic: str, handler: Callable[[Any], None]) -> None:
        with self._lock:
            self._subs[topic].append(handler)

    def publish(self, topic: str, payload: Any) -> None:
        with self._lock:
            handlers = list(self._subs.get(topic, ()))
        for handler in handlers:
            try:
                handler(payload)
            except Exception as exc:  # a broken subscriber must not take the agent down
                log.exception("subscriber_failed", topic=topic, handler=getattr(handler, "__qualname__", repr(handler)),
                              error=str(exc))
