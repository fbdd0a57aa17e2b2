"""An in-process publish/subscribe bus: how the agent's parts hand each other data.

Collectors' samples, detectors' anomalies and alert state changes travel as kernel types on
named topics, so detectors, alerting and remediation never import each other. A subscriber
that raises is logged and skipped; it never stops the publisher or the other subscribers.

A slow subscriber (live detection) subscribes with :meth:`Bus.subscribe_queued`: the publisher
only appends the payload to a bounded queue, and the subscriber's own thread handles it. When
the queue is full the payload is dropped and counted, never waited for: ingest does not slow
down because a model does.

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
from collections import defaultdict, deque
from collections.abc import Callable, Sized
from typing import Any

from aiops.logs import get_logger

__all__ = ["Bus", "QueuedSubscriber", "SAMPLES", "ANOMALIES", "ALERTS", "ACTIONS"]

SAMPLES = "samples"  # payload: Sequence[Sample], after they were stored
ANOMALIES = "anomalies"  # payload: Sequence[Anomaly]
ALERTS = "alerts"  # payload: Sequence[Alert], each a state change (firing or resolved)
ACTIONS = "actions"  # payload: Sequence[ActionRun], each a status change

log = get_logger("aiops.bus")


class Bus:
    """Synchronous topic bus; subscribers run in the publisher's thread, in subscription order."""

    def __init__(self) -> None:
        self._subs: dict[str, list[Callable[[Any], object]]] = defaultdict(list)
        self._lock = threading.Lock()

    def subscribe(self, topic: str, handler: Callable[[Any], object]) -> None:
        with self._lock:
            self._subs[topic].append(handler)

    def subscribe_queued(self, topic: str, handler: Callable[[Any], None], *, name: str,
                         max_items: int = 1_000_000,
                         on_drop: Callable[[int], None] | None = None) -> QueuedSubscriber:
        """Subscribe ``handler`` behind a bounded queue and its own thread (see the module doc).

        Args:
            topic: the topic.
            handler: called on the subscriber's thread, one payload at a time, in order.
            name: the thread's and the log lines' name.
            max_items: queue bound, counted in payload items (``len(payload)``; 1 if unsized).
            on_drop: called with the number of items of each dropped payload (a metric).

        Returns:
            The running subscriber; :meth:`QueuedSubscriber.stop` drains and joins it.
        """
        sub = QueuedSubscriber(handler, name=name, max_items=max_items, on_drop=on_drop)
        self.subscribe(topic, sub.offer)
        return sub

    def publish(self, topic: str, payload: Any) -> None:
        with self._lock:
            handlers = list(self._subs.get(topic, ()))
        for handler in handlers:
            try:
                handler(payload)
            except Exception as exc:  # a broken subscriber must not take the agent down
                log.exception("subscriber_failed", topic=topic, handler=getattr(handler, "__qualname__", repr(handler)),
                              error=str(exc))


class QueuedSubscriber:
    """A subscriber with its own thread behind a bounded queue; the publisher never waits.

    Examples:
        >>> got = []
        >>> sub = QueuedSubscriber(got.extend, name="example", max_items=1000)
        >>> sub.offer([1, 2]), sub.offer([3])
        (True, True)
        >>> sub.stop(); got, sub.dropped_items
        ([1, 2, 3], 0)
    """

    def __init__(self, handler: Callable[[Any], None], *, name: str, max_items: int = 1_000_000,
                 on_drop: Callable[[int], None] | None = None) -> None:
        self.handler = handler
        self.name = name
        self.max_items = int(max_items)
        self.on_drop = on_drop
        self.dropped_items = 0
        self.queued_items = 0
        self._queue: deque[tuple[Any, int]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name=f"bus-{name}", daemon=True)
        self._thread.start()

    def offer(self, payload: Any) -> bool:
        """Queue ``payload`` unless that passes the bound; True if queued. Never blocks long."""
        size = len(payload) if isinstance(payload, Sized) else 1
        with self._cond:
            if self._stopping or (self.queued_items + size > self.max_items and self.queued_items > 0):
                self.dropped_items += size
                dropped = True
            else:
                self._queue.append((payload, size))
                self.queued_items += size
                self._cond.notify()
                dropped = False
        if dropped:
            if self.on_drop is not None:
                self.on_drop(size)
            log.warning("bus_payload_dropped", subscriber=self.name, items=size, dropped_total=self.dropped_items)
        return not dropped

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued so far was handled; False on timeout (tests, shutdown)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Handle what is queued, then end the thread; later offers are dropped."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return
                payload, size = self._queue.popleft()
                self.queued_items -= size
                self._busy = True
            try:
                self.handler(payload)
            except Exception as exc:  # a broken subscriber must not end its thread
                log.exception("subscriber_failed", subscriber=self.name, error=str(exc))
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
