"""The persistent outbox: notifications survive restarts and reach each receiver once.

``enqueue`` writes a row to the ``outbox`` table and returns; it never touches the network.
While the state database cannot be written, rows wait in memory, in order, and are written
as soon as it answers again (up to ``MAX_DEFERRED``; beyond that the oldest is dropped and
counted in ``aiops_notifications_dropped_total``).
One lane (a thread) per receiver leases due rows, renders, sends and records the outcome, so
a slow or dead endpoint delays only its own lane.

- **Leases.** A row is taken with ``UPDATE ... SET status='sending', lease_owner=<me>,
  lease_until_ms=... WHERE id=? AND status='queued'``; the row lock (PostgreSQL) or the single
  writer (SQLite) lets only one agent win. The lease is short (``lease_s``, 6 s) and a
  heartbeat thread renews every lease this agent holds every ``lease_s / 3``, however long
  the attempt takes; a crashed agent stops renewing, so another agent, or the restarted one,
  takes its rows over within ``lease_s + poll_interval_s``. Delivery is exactly-once unless
  an agent dies between the receiver's answer and the ``sent`` update (one SQL statement),
  or its heartbeat cannot reach the database for a whole lease while a send is in flight;
  then the row is sent again (at-least-once).
- **Retries.** Network errors, timeouts, 5xx and 429 retry with exponential backoff and
  jitter up to ``backoff_max_s``, honouring ``Retry-After``. 404 and other 4xx retry the same
  way for the receiver's ``retry_client_errors_for_s`` (10 min), then fail; 401/403 fail at
  once with reason ``auth`` in ``last_error`` and the log (status ``failed``). A row still
  failing ``give_up_after_s`` after it was queued fails.
- **Recovery.** While a lane backs off after network errors it probes the receiver (a TCP
  connect, nothing sent) every ``probe_interval_s``; a probe that connects, or any delivery
  that succeeds, makes every waiting row of the receiver due at once, so a receiver that
  comes back gets its backlog within about a second instead of at the end of the backoff.
- **Rate limits.** A token bucket per receiver, kept in the state DB so agents share it.
  When more rows are due than tokens allow, the newest due row is sent with every other due
  row folded in: those rows get status
  ``held_back`` and ``merged_into`` the sent row, and the message says how many were held
  back and which groups (``Notification.held_back`` and ``extra['held_back_summary']``).

Metrics (on the registry passed in): ``aiops_notifications_sent_total{receiver}``,
``aiops_notifications_failed_total{receiver,reason}`` (every failed attempt),
``aiops_notifications_held_back_total{receiver}``, ``aiops_notification_queue{receiver}``
(rows queued or sending) and ``aiops_notification_delivery_seconds{receiver}`` (enqueue to
sent).
"""

from __future__ import annotations

import dataclasses
import os
import random
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, insert, select, update

from aiops.backoff import backoff_s
from aiops.config import Duration
from aiops.errors import AiopsError, ConfigError, StoreError, trim
from aiops.logs import get_logger
from aiops.model import AlertState
from aiops.notification import Notification, encode_notification, outbox
from aiops.state import StateDB
from aiops.validation import format_validation_error
from alerting.notifiers import Notifier, build_notifier, parse_receivers
from alerting.outbox_lane import ACTIVE, Lane
from alerting.settings import AlertingSettings

__all__ = ["Outbox", "DeliverySettings", "ReceiverPolicy", "build_outbox", "requeue_failed"]

log = get_logger("alerting.outbox")
MAX_DEFERRED = 50_000  # notifications kept in memory while the state DB is down (~2 KB each: ~100 MB)


class DeliverySettings(BaseModel):
    """``alerting.delivery``: how the outbox retries and leases."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backoff_initial_s: Duration = Field(2.0, gt=0, description="First retry delay.")
    backoff_max_s: Duration = Field(60.0, gt=0, description="Longest retry delay (the backoff ceiling).")
    give_up_after_s: Duration = Field(86400.0, gt=0,
                                      description="Fail a row still undelivered this long after enqueue.")
    lease_s: Duration = Field(6.0, gt=0, description="How long a taken row is ours without a heartbeat; the "
                                                     "heartbeat renews it every lease_s / 3 while the send runs.")
    poll_interval_s: Duration = Field(1.0, gt=0, description="How often idle lanes look for rows due (other agents') "
                                                             "and take over expired leases.")
    probe_interval_s: Duration = Field(1.0, gt=0, description="How often a lane backing off after network errors "
                                                              "checks whether the receiver accepts connections again.")


@dataclasses.dataclass(frozen=True, slots=True)
class ReceiverPolicy:
    """Per-receiver delivery policy: rate limit, whether resolved alerts are sent, how long a
    4xx other than 401/403 is retried."""

    rate_limit_per_min: float = 0.0
    burst: int | None = None
    send_resolved: bool = True
    retry_client_errors_for_s: float = 600.0


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.sent = Counter("aiops_notifications_sent_total", "Notifications delivered.", ["receiver"],
                            registry=registry)
        self.failed = Counter("aiops_notifications_failed_total", "Failed delivery attempts, by reason.",
                              ["receiver", "reason"], registry=registry)
        self.held_back = Counter("aiops_notifications_held_back_total",
                                 "Notifications folded into a summary by the rate limit.", ["receiver"],
                                 registry=registry)
        self.deferred = Gauge("aiops_notifications_deferred", "Notifications buffered in memory while the "
                              "state database is unreachable.", registry=registry)
        self.dropped = Counter("aiops_notifications_dropped_total", "Notifications lost: the state database was "
                               "unreachable and the in-memory buffer full.", ["receiver"], registry=registry)
        self.queue = Gauge("aiops_notification_queue", "Notifications queued or being sent.", ["receiver"],
                           registry=registry)
        self.latency = Histogram("aiops_notification_delivery_seconds", "Seconds from enqueue to delivered.",
                                 ["receiver"], registry=registry,
                                 buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400))


class Outbox:
    """Persistent, leased, rate-limited delivery of notifications; a ``NotificationSink``.

    Args:
        state: the state database (its ``outbox`` table).
        receivers: notifier per receiver name.
        registry: prometheus registry for the metrics (default: a private one).
        clock: wall-clock seconds (rows, leases and backoff are stamped with it).
        settings: retry and lease settings.
        policies: rate limit and ``send_resolved`` per receiver name.
        owner: this instance's lease owner id (default: host:pid:random).
        seed: seeds the backoff jitter.

    Examples:
        >>> from aiops.state import StateDB
        >>> from alerting.notifiers.webhook import WebhookNotifier
        >>> db = StateDB("sqlite://"); db.create_all()
        >>> box = Outbox(db, {"ops": WebhookNotifier("ops", "http://127.0.0.1:9/hook")})
        >>> row_id = box.enqueue(Notification("ops", "g", (), ()))
        >>> box.row(row_id)["status"], box.pending()
        ('queued', 1)
    """

    def __init__(self, state: StateDB, receivers: Mapping[str, Notifier], registry: CollectorRegistry | None = None,
                 clock: Callable[[], float] = time.time, *, settings: DeliverySettings | None = None,
                 policies: Mapping[str, ReceiverPolicy] | None = None, owner: str | None = None,
                 seed: int | None = None) -> None:
        self.state = state
        self.receivers = dict(receivers)
        self.settings = settings or DeliverySettings.model_validate({})
        self.policies = {name: (policies or {}).get(name, ReceiverPolicy()) for name in self.receivers}
        self.clock = clock
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.metrics = _Metrics(registry or CollectorRegistry(auto_describe=True))
        self._rng = random.Random(seed)  # nosec B311 - retry jitter, not a secret
        self._stop = threading.Event()
        self._lanes: dict[str, Lane] = {}
        self._deferred: deque[dict[str, Any]] = deque()
        self._deferred_lock = threading.Lock()
        self._flush_thread: threading.Thread | None = None
        self._heartbeat_thread: threading.Thread | None = None
        self.in_flight: set[int] = set()  # row ids a lane of ours is sending now (the heartbeat renews these)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # --- the sink --------------------------------------------------------------------------

    def enqueue(self, notification: Notification) -> int:
        """Record ``notification`` for delivery and wake its lane; returns the outbox row id.

        If the state database cannot be written, the row is kept in memory (up to
        ``MAX_DEFERRED``, in order) and written as soon as the database answers again; then
        the return value is 0.
        """
        n = notification
        status, error = "queued", None
        policy = self.policies.get(n.receiver)
        if n.receiver not in self.receivers or policy is None:
            status, error = "failed", f"receiver {n.receiver!r} is not configured"
            self.metrics.failed.labels(n.receiver, "unknown_receiver").inc()
        elif not policy.send_resolved:
            firing = tuple(a for a in n.alerts if a.state is AlertState.FIRING)
            if not firing:
                status, error = "skipped", "resolved notification; send_resolved is off"
            else:
                n = dataclasses.replace(n, alerts=firing)
        now = self.now_ms()
        values = {"receiver": n.receiver, "group_key": n.group_key, "payload": encode_notification(n),
                  "status": status, "attempts": 0, "next_attempt_ms": now, "created_ms": now, "last_error": error,
                  "held_back": 0, "updated_ms": now}
        with self._deferred_lock:
            try:
                self._flush_deferred_locked()  # older notifications first: order is kept
                with self.state.begin() as conn:
                    result = conn.execute(insert(outbox).values(**values))
                    row_id = int(result.inserted_primary_key[0])  # type: ignore[index]  # set for one-row inserts
            except StoreError as exc:
                self._defer(values, exc)
                return 0
        if status == "queued":
            self.metrics.queue.labels(n.receiver).inc()
            lane = self._lanes.get(n.receiver)
            if lane is not None:
                lane.wake.set()
        else:
            log.warning("notification_not_queued", receiver=n.receiver, outbox_id=row_id, error=error)
        return int(row_id)

    # --- the database is down: keep notifications in memory until it is back -------------------

    def _defer(self, values: dict[str, Any], exc: Exception) -> None:
        if len(self._deferred) >= MAX_DEFERRED:
            lost = self._deferred.popleft()
            self.metrics.dropped.labels(lost["receiver"]).inc()
            log.error("notification_dropped", receiver=lost["receiver"], group_key=lost["group_key"],
                      error="state database unreachable and the in-memory buffer is full")
        self._deferred.append(values)
        self.metrics.deferred.set(len(self._deferred))
        log.error("outbox_write_deferred", receiver=values["receiver"], deferred=len(self._deferred),
                  error=trim(str(exc), 300))

    def _flush_deferred_locked(self) -> int:
        """Write buffered rows in one transaction (caller holds ``_deferred_lock``); raises StoreError."""
        if not self._deferred:
            return 0
        rows = list(self._deferred)
        with self.state.begin() as conn:
            conn.execute(insert(outbox), rows)
        self._deferred.clear()
        self.metrics.deferred.set(0)
        for receiver in {r["receiver"] for r in rows}:
            lane = self._lanes.get(receiver)
            if lane is not None:
                lane.wake.set()
        log.warning("outbox_deferred_written", rows=len(rows))
        return len(rows)

    def flush_deferred(self) -> int:
        """Try to write notifications buffered while the database was unreachable; returns how many."""
        with self._deferred_lock:
            try:
                return self._flush_deferred_locked()
            except StoreError as exc:
                log.warning("outbox_still_unreachable", deferred=len(self._deferred), error=trim(str(exc), 300))
                return 0

    @property
    def deferred(self) -> int:
        """Notifications waiting in memory for the database."""
        return len(self._deferred)

    def _flusher(self) -> None:
        while not self._stop.wait(self.settings.poll_interval_s):
            if self._deferred:
                self.flush_deferred()

    def renew_leases(self) -> int:
        """Push the lease of every row a lane of ours is sending right now to ``lease_s`` from now.

        Only rows in flight: a row whose outcome could not be recorded (a DB error) is left to
        expire, so another lane takes it again instead of it staying ``sending`` for good.
        Returns how many leases were renewed.
        """
        ids = list(self.in_flight)
        if not ids:
            return 0
        now = self.now_ms()
        with self.state.begin() as conn:
            done = conn.execute(update(outbox).where(outbox.c.id.in_(ids), outbox.c.status == "sending",
                                                     outbox.c.lease_owner == self.owner)
                                .values(lease_until_ms=now + int(self.settings.lease_s * 1000)))
            return int(done.rowcount)

    def _heartbeat(self) -> None:
        # Leases are short so a dead agent's rows come back within seconds; this keeps ours
        # alive while a slow receiver takes its time (up to its timeout_s, which may exceed lease_s).
        while not self._stop.wait(self.settings.lease_s / 3):
            try:
                self.renew_leases()
            except StoreError as exc:
                log.error("outbox_heartbeat_failed", owner=self.owner, error=trim(str(exc), 300))

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start one delivery lane per receiver."""
        if self._lanes:
            return
        self._stop.clear()
        try:
            with self.state.begin() as conn:
                orphans = conn.execute(
                    select(outbox.c.receiver, func.count()).where(outbox.c.status.in_(ACTIVE))
                    .group_by(outbox.c.receiver)).all()
        except StoreError as exc:  # the lanes retry on their own; starting must not fail on a DB blip
            log.error("outbox_start_check_failed", error=trim(str(exc), 300))
            orphans = []
        for receiver, count in orphans:
            if receiver not in self.receivers:
                log.warning("outbox_rows_without_receiver", receiver=receiver, rows=int(count))
        for name, notifier in self.receivers.items():
            lane = Lane(self, name, notifier, self.policies[name])
            self._lanes[name] = lane
            lane.thread.start()
        self._flush_thread = threading.Thread(target=self._flusher, name="outbox-flush", daemon=True)
        self._flush_thread.start()
        self._heartbeat_thread = threading.Thread(target=self._heartbeat, name="outbox-heartbeat", daemon=True)
        self._heartbeat_thread.start()
        log.info("outbox_started", receivers=sorted(self.receivers), owner=self.owner)

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop the lanes; a send in flight finishes and is recorded first."""
        self._stop.set()
        for lane in self._lanes.values():
            lane.wake.set()
        for lane in self._lanes.values():
            limit = timeout_s if timeout_s is not None else getattr(lane.notifier, "timeout_s", 10.0) + 10.0
            lane.thread.join(limit)
            if lane.thread.is_alive():
                log.warning("outbox_lane_stop_timed_out", receiver=lane.name)
        self._lanes.clear()
        for thread in (self._flush_thread, self._heartbeat_thread):
            if thread is not None:
                thread.join(5)
        self._flush_thread = self._heartbeat_thread = None
        if self._deferred and not self.flush_deferred():
            log.error("outbox_stopped_with_unwritten_notifications", deferred=len(self._deferred))
        for notifier in self.receivers.values():
            close = getattr(notifier, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> Outbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- inspection ------------------------------------------------------------------------

    def pending(self, receiver: str | None = None) -> int:
        """Rows still queued or being sent (for one receiver, or all configured ones)."""
        names = [receiver] if receiver else list(self.receivers)
        with self.state.begin() as conn:
            return int(conn.execute(select(func.count()).select_from(outbox).where(
                outbox.c.status.in_(ACTIVE), outbox.c.receiver.in_(names))).scalar_one())

    def drain(self, timeout_s: float = 30.0, poll_s: float = 0.05) -> bool:
        """Wait until nothing is pending; True if that happened within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.pending() == 0:
                return True
            time.sleep(poll_s)
        return self.pending() == 0

    def row(self, row_id: int) -> dict[str, Any]:
        with self.state.begin() as conn:
            found = conn.execute(select(outbox).where(outbox.c.id == row_id)).first()
        if found is None:
            raise KeyError(row_id)
        return dict(found._mapping)

    def counts(self, receiver: str | None = None) -> dict[str, int]:
        """Rows by status (for one receiver or all)."""
        q = select(outbox.c.status, func.count()).group_by(outbox.c.status)
        if receiver:
            q = q.where(outbox.c.receiver == receiver)
        with self.state.begin() as conn:
            return {str(s): int(c) for s, c in conn.execute(q)}

    def backoff_s(self, attempts: int) -> float:
        """The kernel's backoff (:func:`aiops.backoff.backoff_s`) for the ``attempts``-th failure (1-based)."""
        return backoff_s(attempts - 1, initial_s=self.settings.backoff_initial_s, max_s=self.settings.backoff_max_s,
                         rng=self._rng.random)


def build_outbox(settings: AlertingSettings, state: StateDB, registry: CollectorRegistry | None = None, *,
                 base_url: str = "", clock: Callable[[], float] = time.time) -> Outbox:
    """The outbox for ``settings.receivers`` and ``settings.delivery`` (not started).

    Args:
        settings: the ``alerting`` section.
        state: the state database (tables created by the caller).
        registry: prometheus registry for the delivery metrics.
        base_url: the dashboard's public URL, for links when a notification has no ``external_url``.
        clock: wall-clock seconds.

    Raises:
        ConfigError: naming ``alerting.receivers[i].field`` or ``alerting.delivery.field``.
    """
    configs = parse_receivers(settings.receivers)
    raw = getattr(settings, "delivery", None) or (settings.model_extra or {}).get("delivery") or {}
    try:
        delivery = DeliverySettings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, prefix="alerting.delivery", first_only=True)) from None
    notifiers: dict[str, Notifier] = {}
    policies: dict[str, ReceiverPolicy] = {}
    if delivery.lease_s < 3 * delivery.poll_interval_s:
        raise ConfigError(f"alerting.delivery.lease_s: {delivery.lease_s:g}s must be at least three times "
                          f"alerting.delivery.poll_interval_s ({delivery.poll_interval_s:g}s)")
    for i, cfg in enumerate(configs):
        try:
            notifiers[cfg.name] = build_notifier(cfg, base_url=base_url)
        except AiopsError as exc:
            raise ConfigError(f"alerting.receivers[{i}]: {exc}") from None
        policies[cfg.name] = ReceiverPolicy(cfg.rate_limit_per_min, cfg.burst, cfg.send_resolved,
                                            cfg.retry_client_errors_for_s)
    return Outbox(state, notifiers, registry, clock, settings=delivery, policies=policies)



def requeue_failed(state: StateDB, ids: list[int] | None = None, receiver: str | None = None) -> int:
    """Put ``failed`` rows (these ids, or all, or one receiver's) back in the queue; returns how many.

    ``created_ms`` restarts, so ``give_up_after_s`` counts from the retry; ``attempts`` and
    ``last_error`` stay until the next attempt updates them.
    """
    from sqlalchemy import update

    from aiops.model import now_ms

    q = update(outbox).where(outbox.c.status == "failed")
    if ids:
        q = q.where(outbox.c.id.in_(ids))
    if receiver:
        q = q.where(outbox.c.receiver == receiver)
    now = now_ms()
    with state.begin() as conn:
        done = conn.execute(q.values(status="queued", next_attempt_ms=now, created_ms=now, lease_owner=None,
                                     lease_until_ms=None, updated_ms=now)).rowcount
    log.info("outbox_requeued", rows=int(done), receiver=receiver)
    return int(done)
