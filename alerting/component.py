"""The alerting component of the agent: bus in, notifications and bus out, HTTP routes.

It subscribes to SAMPLES (threshold rules on arriving samples, absent-data bookkeeping) and
ANOMALIES (anomaly rules), publishes each alert that starts firing or resolves on ALERTS
(remediation listens there), registers the alerting HTTP API, pushes alerts to Alertmanager
when ``alerting.alertmanager_urls`` is set, and runs one timer thread that evaluates every
rule each ``evaluation_interval_s`` and flushes group timers in between.

High availability: agents sharing a state DB contend for one lease (``alerting/rules``,
``alerting.ha_lease_s``). The holder evaluates the rules; the others only keep the newest
sample of each watched series, and hand what only the leader may evaluate (anomalies of their
detection shard, alerts posted to their webhook) to the leader through the state DB
(:mod:`alerting.inbox`, read every ``_INBOX_POLL_S``). When the holder dies its lease runs out
and another agent takes over: it restores the recorded pending and firing alerts (same
``startsAt``, hence the same remediation episodes) and evaluates on. See docs/ha.md.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from prometheus_client import Counter, Gauge

from aiops.bus import ALERTS, ANOMALIES, SAMPLES
from aiops.lease import Lease
from aiops.logs import get_logger
from aiops.model import Alert, AlertState
from aiops.notification import NotificationSink
from aiops.protocols import AgentContext
from alerting.alertmanager import AlertmanagerPusher
from alerting.api import IntakeLimits, register_routes
from alerting.config import AlertingConfig
from alerting.engine import AlertEngine
from alerting.history import AlertHistory
from alerting.inbox import Inbox
from alerting.lifecycle import Change
from alerting.rules import summarise
from alerting.silences import SilenceStore

__all__ = ["AlertingComponent"]

log = get_logger("alerting.component")

_TICK_S = 0.1  # group timers are checked this often: group_wait/interval resolution
_INBOX_POLL_S = 0.25  # the leader reads what standby agents handed over this often
RULES_LEASE = "alerting/rules"
"""The lease whose holder evaluates the rules when several agents share a state DB."""


class AlertingComponent:
    """Rule evaluation, alert lifecycle, grouping and silences inside the agent.

    Args:
        config: the checked alerting configuration (:func:`alerting.config.load_alerting`).
        sink: the outbox notifications go to, or a function building it from the agent's context
            (the outbox needs the state DB and the metrics registry). A sink with ``start`` and
            ``stop`` methods is started and stopped with the component.
    """

    name = "alerting"

    def __init__(self, config: AlertingConfig,
                 sink: NotificationSink | Callable[[AgentContext], NotificationSink]) -> None:
        self.config = config
        self._sink_or_factory = sink
        self.sink: NotificationSink | None = None
        self.engine: AlertEngine | None = None
        self.pusher: AlertmanagerPusher | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lease: Lease | None = None
        self._lease_thread: threading.Thread | None = None
        self._renew_at = 0.0

    def start(self, ctx: AgentContext) -> None:
        given = self._sink_or_factory
        sink = self.sink = given if hasattr(given, "enqueue") else given(ctx)
        start = getattr(sink, "start", None)
        if callable(start):
            start()
        changes = Counter("aiops_alert_state_changes_total", "Alert state changes.", ["state"],
                          registry=ctx.registry)
        notified = Gauge("aiops_alert_notifications_enqueued", "Notifications handed to the outbox since start.",
                         registry=ctx.registry)
        active = Gauge("aiops_alerts", "Alerts known now, by state.", ["state"], registry=ctx.registry)
        engine = self.engine = AlertEngine(
            self.config, history=AlertHistory(ctx.state), silences=SilenceStore(ctx.state), sink=sink,
            store=ctx.store, publish=lambda alerts: ctx.bus.publish(ALERTS, alerts),
            external_url=self.config.settings.external_url or ctx.api.url,
        )
        notified.set_function(lambda: engine.notifications_sent)
        def counter(state: AlertState) -> Callable[[], float]:
            return lambda: sum(1 for t in engine.lifecycle.all() if t.state is state)

        for st in AlertState:
            active.labels(st.value).set_function(counter(st))

        def count(cs: list[Change]) -> None:
            for c in cs:
                changes.labels(c.alert.state.value).inc()

        engine.listeners.append(count)
        if self.config.settings.alertmanager_urls:
            pusher = self.pusher = AlertmanagerPusher(self.config.settings.alertmanager_urls, self._firing_own)
            engine.listeners.append(lambda cs: pusher.push(
                [c.alert for c in cs if c.source == "rule" and c.alert.state in (AlertState.FIRING,
                                                                                 AlertState.RESOLVED)]))
            pusher.start()
        me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = Lease(ctx.state, RULES_LEASE, me, self.config.settings.ha_lease_s)
        engine.may_lead = lambda: self.lease is not None and self.lease.held
        engine.inbox = Inbox(ctx.state, sender=me)
        if self.lease.renew():
            engine.restore()
        else:  # another agent evaluates the rules; we take over when its lease runs out
            engine.stand_by()
            log.info("alerting_standby", leader=(self.lease.holder() or ("?", 0))[0])
        engine.seed_from_store()
        ctx.bus.subscribe(SAMPLES, engine.on_samples)
        ctx.bus.subscribe(ANOMALIES, engine.on_anomalies)
        register_routes(ctx.api, engine, IntakeLimits(
            max_alerts_per_request=self.config.settings.max_alerts_per_request,
            max_external_alerts=self.config.settings.max_external_alerts))
        ctx.extra["alerting"] = engine
        self._thread = threading.Thread(target=self._loop, name="alerting-timer", daemon=True)
        self._thread.start()
        # renewals on a thread of their own: a slow evaluation must not let the lease lapse
        self._lease_thread = threading.Thread(target=self._lease_loop, name="alerting-lease", daemon=True)
        self._lease_thread.start()
        log.info("alerting_started", rules=dict(summarise(self.config.rules)),
                 receivers=sorted(self.config.route.receivers()),
                 alertmanagers=len(self.config.settings.alertmanager_urls))

    def _firing_own(self) -> list[Alert]:
        if self.engine is None:
            return []
        return [t.to_alert() for t in self.engine.lifecycle.all()
                if t.source == "rule" and t.state is AlertState.FIRING]

    def _lease_loop(self) -> None:
        assert self.lease is not None
        while not self._stop.wait(min(self.lease.ttl_s / 3, 1.0)):
            try:
                self._lead()
            except Exception as exc:  # a DB error must not end the renewals
                log.exception("alerting_lease_failed", error=str(exc))

    def _lead(self) -> None:
        """Renew or take the rules lease; switch the engine between leading and standing by."""
        assert self.engine is not None and self.lease is not None
        mono = time.monotonic()
        if mono >= self._renew_at or not self.lease.held:
            self._renew_at = mono + self.lease.ttl_s / 3
            self.lease.renew()
        if self.lease.held and not self.engine.leading:
            self.engine.take_over()
        elif not self.lease.held and self.engine.leading:
            log.warning("alerting_lease_lost", owner=self.lease.owner)
            self.engine.stand_by()

    def _loop(self) -> None:
        assert self.engine is not None
        every = self.config.settings.evaluation_interval_s
        next_eval = next_inbox = time.monotonic()
        while not self._stop.is_set():
            try:
                if self.engine.leading and time.monotonic() >= next_inbox:
                    next_inbox = time.monotonic() + _INBOX_POLL_S
                    self.engine.drain_inbox()
                if time.monotonic() >= next_eval:
                    next_eval = time.monotonic() + every
                    self.engine.evaluate()
                self.engine.tick()
            except Exception as exc:  # one bad evaluation must not end alerting
                log.exception("alert_evaluation_failed", error=str(exc))
            self._stop.wait(_TICK_S)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._lease_thread is not None:
            self._lease_thread.join(10)
        if self.pusher is not None:
            self.pusher.stop()
        if self.lease is not None and self.engine is not None and self.engine.leading:
            self.lease.release()  # a restart (or another agent) need not wait the lease out
        stop = getattr(self.sink, "stop", None)
        if callable(stop):
            stop()
