"""The alerting core: rules -> lifecycle -> history, bus, grouping -> notifications.

:class:`AlertEngine` is plain logic with an injectable clock. The component
(:mod:`alerting.component`) feeds it samples and anomalies from the bus and calls
:meth:`AlertEngine.evaluate` (every ``evaluation_interval_s``) and :meth:`AlertEngine.tick`
(group timers) from one thread.

Threshold rules are evaluated on every arriving sample, so a sample that breaks a rule with
``for: 0`` and ``group_wait: 0`` reaches the outbox in the same call, and again on the timer
(which also notices series that went stale). Anomaly rules run on arriving anomalies; absent
and forecast rules on the timer (forecasts read their window from the store).

With several agents only the rules leader evaluates; a standby hands its anomalies and the
alerts posted to it to the leader (:mod:`alerting.inbox`), which applies them in
:meth:`AlertEngine.drain_inbox`.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from typing import Any

from aiops.errors import InputError, StoreError
from aiops.logs import get_logger
from aiops.model import Alert, AlertState, Anomaly, Fingerprint, Labels, Sample, Series, now_ms, parse_selector
from aiops.notification import Notification, NotificationSink
from aiops.store import SeriesStore
from alerting.config import AlertingConfig
from alerting.grouping import Dispatcher
from alerting.history import AlertHistory, Event
from alerting.inbox import Inbox
from alerting.inhibit import Inhibitor
from alerting.lifecycle import Change, Lifecycle
from alerting.matchers import fingerprint, format_matcher
from alerting.rules import AbsentRule, AnomalyRule, ForecastRule, Rule, ThresholdRule, time_to_limit_s
from alerting.silences import Silence, SilenceNotFound, SilenceStore
from alerting.windows import AnomalyWindow

__all__ = ["AlertEngine"]

log = get_logger("alerting.engine")

_CACHE_MAX = 200_000  # series whose rule matches are remembered; beyond it the cache restarts


class AlertEngine:
    """Evaluates rules, tracks alert states, records history and hands notifications to the sink.

    Args:
        config: the checked alerting configuration.
        history: where state changes are recorded.
        silences: the silences.
        sink: the outbox (``enqueue(Notification)``).
        store: the time-series store, read by forecast rules and at start; optional.
        publish: called with the alerts that changed to firing or resolved (the bus topic ALERTS).
        clock: current time in UTC ms (tests pass a fake).
        external_url: link back to us in notifications.
    """

    def __init__(self, config: AlertingConfig, *, history: AlertHistory, silences: SilenceStore,
                 sink: NotificationSink, store: SeriesStore | None = None,
                 publish: Callable[[list[Alert]], None] | None = None, clock: Callable[[], int] = now_ms,
                 external_url: str = "") -> None:
        s = config.settings
        self.config = config
        self.history = history
        self.silences = silences
        self.sink = sink
        self.store = store
        self.publish = publish
        self.clock = clock
        self.external_url = external_url or s.external_url
        self.stale_ms = int(s.stale_after_s * 1000)
        self.listeners: list[Callable[[list[Change]], None]] = []
        self._lock = threading.RLock()
        self.lifecycle = Lifecycle(s.resolved_retention_s)
        self.inhibitor = Inhibitor(config.inhibit_rules)
        self.dispatcher = Dispatcher(config.route, self._send, self._muted, s.max_alerts_per_notification,
                                     self.external_url)
        self.threshold = [r for r in config.rules if isinstance(r, ThresholdRule)]
        self.absent = [r for r in config.rules if isinstance(r, AbsentRule)]
        self.anomaly = [r for r in config.rules if isinstance(r, AnomalyRule)]
        self.forecast = [r for r in config.rules if isinstance(r, ForecastRule)]
        self._watch: dict[Series, tuple[tuple[tuple[ThresholdRule, Labels], ...], bool, tuple[int, ...]]] = {}
        self._last: dict[Series, tuple[int, float]] = {}  # newest sample of series threshold/absent rules watch
        self._points: dict[tuple[int, Series], AnomalyWindow] = {}  # anomaly rule windows, by sample time
        self._element_labels: dict[tuple[int, Series], Labels] = {}  # anomaly rule, series -> alert labels
        self._elements: dict[tuple[int, Series], Fingerprint] = {}
        self._started_ms = clock()
        self._silence_ids: set[str] | None = None  # unexpired silences at the last look (None: not yet)
        self._announced: set[tuple[str, str]] = set()  # (silence id, created|expired) already told
        self.notifications_sent = 0
        self.late_points_refused = 0  # anomaly points older than their window keeps (alerting.windows)
        # Several agents on one state DB: only the one holding the rules lease evaluates rules
        # (see alerting/component.py and docs/ha.md); the others keep the newest sample of each
        # series so that a takeover evaluates fresh data at once.
        self.leading = True
        self.may_lead: Callable[[], bool] = lambda: True  # the lease is still ours (checked on every input)
        self._seeded: set[Series] = set()  # series whose newest value was read from the store at start
        # what only the leader may evaluate (anomalies of a standby's detection shard, alerts
        # posted to a standby's webhook) goes through the state DB to the leader; None: dropped
        self.inbox: Inbox | None = None

    # --- inputs ----------------------------------------------------------------------------

    def _watched(self, series: Series) -> tuple[tuple[tuple[ThresholdRule, Labels], ...], bool, tuple[int, ...]]:
        w = self._watch.get(series)
        if w is None:
            if len(self._watch) >= _CACHE_MAX:
                self._watch.clear()
            w = self._watch[series] = (
                tuple((r, r.element_labels(series)) for r in self.threshold if r.selects(series)),
                any(r.selects(series) for r in self.absent),
                tuple(i for i, r in enumerate(self.anomaly) if r.matchers and r.selects(series)),
            )
        return w

    def on_samples(self, samples: Sequence[Sample]) -> None:
        """Evaluate threshold rules on arriving samples; feed absent and anomaly windows."""
        if not (self.threshold or self.absent or self.anomaly):
            return
        if not (self.leading and self.may_lead()):
            self._note_samples(samples)
            return
        with self._lock:
            now = self.clock()
            changes: list[Change] = []
            for s in samples:
                self._seeded.discard(s.series)
                rules, absent, anomaly = self._watched(s.series)
                if rules or absent:
                    prev = self._last.get(s.series)
                    if prev is not None and s.ts_ms < prev[0]:
                        rules = ()  # a late, older sample does not overrule the newer one
                    else:
                        self._last[s.series] = (s.ts_ms, s.value)
                for rule, labels in rules:
                    changes += self.lifecycle.observe(rule, labels, rule.breaks(s.value), s.value, now,
                                                      series=s.series.key)
                for i in anomaly:
                    changes += self._anomaly_point(i, s.series, s.ts_ms, 0.0, now)
            self._apply(changes, now)

    def _note_samples(self, samples: Sequence[Sample]) -> None:
        """A standby's share of :meth:`on_samples`: remember the newest sample of watched series."""
        with self._lock:
            for s in samples:
                self._seeded.discard(s.series)
                rules, absent, _ = self._watched(s.series)
                if rules or absent:
                    prev = self._last.get(s.series)
                    if prev is None or s.ts_ms >= prev[0]:
                        self._last[s.series] = (s.ts_ms, s.value)

    def take_over(self) -> int:
        """Become the agent that evaluates the rules: take back the alerts the last leader
        recorded (same ``startsAt``, so remediation sees the same episodes), then evaluate."""
        with self._lock:
            taken = self.restore()
            self.leading = True
        log.info("alerting_took_over", restored=taken)
        return taken

    def stand_by(self) -> None:
        """Stop evaluating rules (another agent holds the lease): forget our alerts (rule and
        external: the leader owns both, and takes them back from the DB) and their groups."""
        with self._lock:
            self.leading = False
            s = self.config.settings
            self.lifecycle = Lifecycle(s.resolved_retention_s)
            self.inhibitor = Inhibitor(self.config.inhibit_rules)
            self.dispatcher = Dispatcher(self.config.route, self._send, self._muted, s.max_alerts_per_notification,
                                         self.external_url)
            self._points.clear()
            self._elements.clear()
            self._element_labels.clear()
        log.info("alerting_standing_by")

    def on_anomalies(self, anomalies: Sequence[Anomaly]) -> None:
        """Evaluate anomaly rules on arriving anomalies; a standby hands them to the leader."""
        if not self.anomaly or not anomalies:
            return
        if not (self.leading and self.may_lead()):
            wanted = [a for a in anomalies if any(r.wants(a.series, a.detector) for r in self.anomaly)]
            if self.inbox is not None and wanted:
                try:
                    self.inbox.put_anomalies(wanted, self.clock())
                except StoreError as exc:
                    log.error("anomalies_not_handed_over", count=len(wanted), error=str(exc))
            return
        self._apply_anomalies(anomalies)

    def _apply_anomalies(self, anomalies: Sequence[Anomaly]) -> None:
        with self._lock:
            now = self.clock()
            changes: list[Change] = []
            for a in anomalies:
                for i, rule in enumerate(self.anomaly):
                    if rule.wants(a.series, a.detector):
                        changes += self._anomaly_point(i, a.series, a.ts_ms, a.score, now, a.detector)
            self._apply(changes, now)

    def _anomaly_point(self, i: int, series: Series, ts_ms: int, score: float, now: int,
                       detector: str | None = None) -> list[Change]:
        """Place one point in rule ``i``'s window of ``series`` by its sample time; evaluate it.

        A point newer than the others (every point, with one agent) evaluates the window it
        ends, as it always did. One placed behind newer points (an anomaly a standby handed
        over while the leader's own samples moved on) counts in the windows that contain it:
        :meth:`_late_point`. One already there with at least its score (a row delivered
        again) changes nothing.
        """
        rule = self.anomaly[i]
        key = (i, series)
        window = self._points.get(key)
        if window is None:
            window = self._points[key] = AnomalyWindow(rule.points, rule.of, rule.score)
        placed = window.place(ts_ms, score, self.stale_ms)
        if placed is None:  # older than what the window keeps: its windows are gone
            self.late_points_refused += 1
            return []
        at, before = placed
        labels = self._element_labels.get(key)
        if labels is None or (detector and dict(labels).get("detector") != detector):
            name = detector or rule.detector
            labels = rule.element_labels(series, detector=name) if name else rule.element_labels(series)
            self._element_labels[key] = labels
        self._elements[key] = self._fp(labels)
        last = len(window) - 1
        if at == last:
            return self.lifecycle.observe(rule, labels, window.holds(last), window.peak(last), now,
                                          series=series.key)
        if before is not None and before >= score:
            return []
        return self._late_point(rule, window, at, 0.0 if before is None else before, labels, series.key, now)

    def _late_point(self, rule: AnomalyRule, w: AnomalyWindow, at: int, before: float, labels: Labels,
                    series: str, now: int) -> list[Change]:
        """A point placed at index ``at``, behind newer points, that raised its score from ``before``.

        While its alert is pending or firing, the newest window decides, as for any point. Else,
        if it makes windows hold that did not, and the condition did not already hold next to
        them (that episode was evaluated when its points came), the lifecycle is given those
        windows in sample-time order, as it would have been had the point come in time: the
        alert starts at the sample time of the first window that holds and, when the newest
        window does not contain the point, ends at the first window that no longer holds:
        it fires and resolves at once, both told now (Alertmanager does the same with an alert
        posted with ``startsAt`` and ``endsAt`` in the past). An episode the state DB already
        records with that ``startsAt`` (a successor applying a row its predecessor applied
        before it died) is not told again.
        """
        last = len(w) - 1
        span = w.affected(at)
        newest_in = span[-1] == last  # the newest window contains the point

        def newest() -> list[Change]:
            if not newest_in:
                return []
            return self.lifecycle.observe(rule, labels, w.holds(last), w.peak(last), now, series=series)

        fp = self._fp(labels)
        t = self.lifecycle.get(fp)
        if t is not None and t.state in (AlertState.PENDING, AlertState.FIRING):
            return newest()
        held = [e for e in span if w.holds(e)]
        if not held:
            return []
        raised, w.sc[at] = w.sc[at], before
        known = any(w.holds(e) for e in span)
        w.sc[at] = raised
        if known or (at > 0 and w.holds(at - 1)) or (not newest_in and w.holds(span[-1] + 1)):
            return newest()
        try:
            told = self.history.episode(fp)
        except StoreError as exc:  # not known: tell it (at least once)
            log.warning("alert_episode_read_failed", fingerprint=fp, error=str(exc))
            told = None
        if told is not None and told[1] == w.ts[held[0]]:
            return newest()
        changes: list[Change] = []
        for e in range(held[0], span[-1] + 1):
            changes += self.lifecycle.observe(rule, labels, w.holds(e), w.peak(e),
                                              now if e == last else int(w.ts[e]), series=series)
        if not newest_in:
            end = span[-1] + 1
            changes += self.lifecycle.observe(rule, labels, False, w.peak(end), int(w.ts[end]), series=series)
        return changes

    def external_active(self) -> int:
        """How many alerts received from outside are pending or firing now (on a standby: as
        recorded by the leader, plus those waiting in its inbox)."""
        if not self.leading and self.inbox is not None:
            return self.history.count_external_active() + self.inbox.pending_external()
        with self._lock:
            return self.lifecycle.count_external_active()

    def take_in(self, alerts: Sequence[Alert], source: str = "alertmanager") -> int | None:
        """Alerts posted to our webhook: :meth:`receive` them when leading (returns the changes),
        else hand them to the leader through the state DB (returns None), so that they are
        routed, notified and acted on once, by the leader, whichever agent they were posted to.

        Raises:
            StoreError: a standby could not hand them over (the sender should retry).
        """
        if not (self.leading and self.may_lead()) and self.inbox is not None:
            self.inbox.put_external(alerts, source, self.clock())
            return None
        return self.receive(alerts, source)

    def receive(self, alerts: Sequence[Alert], source: str = "alertmanager") -> int:
        """Take alerts from outside (Alertmanager's webhook) into routing and history; returns changes."""
        timeout_ms = int(self.config.settings.resolve_timeout_s * 1000)
        with self._lock:
            now = self.clock()
            changes: list[Change] = []
            refreshed: list[tuple[Fingerprint, int]] = []
            for a in alerts:
                c = self.lifecycle.put_external(a, source, now, timeout_ms)
                if c is not None:
                    changes.append(c)
                else:
                    t = self.lifecycle.get(self._fp(a.labels))
                    if t is not None and t.source != "rule" and t.state is AlertState.FIRING:
                        refreshed.append((t.fingerprint, t.expires_at_ms))
            self._apply(changes, now)
        if refreshed:  # a re-post moves the expiry: keep it in the DB, so a restart knows it
            try:
                self.history.refresh(refreshed, now)
            except StoreError as exc:
                log.warning("alert_refresh_failed", error=str(exc))
        return len(changes)

    def drain_inbox(self) -> int:
        """The leader applies what standby agents handed over (:mod:`alerting.inbox`); returns rows.

        Anomalies are placed by their sample time, so one that comes after newer samples of
        its series still counts in its windows (:meth:`_anomaly_point`). Those older than
        ``stale_after_s``, or than what their window keeps, are skipped and logged: their
        windows were given up.
        """
        if self.inbox is None or not (self.leading and self.may_lead()):
            return 0
        try:
            entries = self.inbox.take(self.clock())
        except StoreError as exc:
            log.warning("alert_inbox_failed", error=str(exc))
            return 0
        applied: list[int] = []
        refused, stale = self.late_points_refused, 0
        for e in entries:
            if not (self.leading and self.may_lead()):
                break  # lost the lease meanwhile: the rest is the next leader's
            if e.anomalies:
                fresh = [a for a in e.anomalies if self.clock() - a.ts_ms <= self.stale_ms]
                stale += len(e.anomalies) - len(fresh)
                if fresh and self.anomaly:
                    self._apply_anomalies(fresh)
            elif e.alerts:
                self.receive(e.alerts, e.source or "alertmanager")
            applied.append(e.id)
        try:  # applied first, removed after: a leader dying in between leaves them to the next
            self.inbox.done(applied)
        except StoreError as exc:
            log.warning("alert_inbox_failed", error=str(exc))
        if stale or self.late_points_refused > refused:
            log.warning("alert_inbox_anomalies_too_late", stale=stale,
                        beyond_window=self.late_points_refused - refused)
        return len(applied)

    # --- timers ------------------------------------------------------------------------------

    def seed_from_store(self) -> int:
        """Read the newest sample of every watched series from the store (at start); returns series.

        Looks back four times the longest of ``stale_after_s`` and the absent rules' ``silent_for``:
        a target that went silent while the agent was down is noticed, one removed long ago is not.
        """
        if self.store is None or not (self.threshold or self.absent):
            return 0
        now = self.clock()
        lookback_ms = int(max([self.stale_ms / 1000] + [r.silent_for_s for r in self.absent]) * 4000)
        found: dict[Series, tuple[int, float]] = {}
        try:
            for rule in [*self.threshold, *self.absent]:
                for series in self.store.select(list(rule.matchers)):
                    if series in found:
                        continue
                    data = self.store.read(series, now - lookback_ms, now)
                    if len(data):  # series silent longer than the look-back are gone, not "went silent"
                        found[series] = (int(data.ts_ms[-1]), float(data.values[-1]))
        except StoreError as exc:
            log.warning("alert_seed_failed", error=str(exc))
        with self._lock:
            for series, last in found.items():
                if series not in self._last:
                    self._last[series] = last
                    self._seeded.add(series)
        return len(found)

    def restore(self, rules: bool = True) -> int:
        """Take back the pending and firing alerts of our rules recorded before a restart.

        A firing alert whose rule still exists stays firing without a new notification (its
        receivers were told) and resolves, notified, when its condition no longer holds. One
        whose rule is gone is recorded as resolved now. Firing alerts posted from outside
        (Alertmanager) are taken back too, with their expiry: the next re-post changes nothing
        and notifies nobody. ``rules=False`` takes back only those. Returns the alerts taken back.
        """
        by_name: dict[str, list[Rule]] = {}
        for r in self.config.rules:
            by_name.setdefault(r.name, []).append(r)
        try:
            current = [r for st in ("firing", "pending") for r in self.history.current(state=st, limit=100_000)]
        except StoreError as exc:
            log.warning("alert_restore_failed", error=str(exc))
            return 0
        rows = [r for r in current if r["source"] == "rule"] if rules else []
        external = [r for r in current if r["source"] != "rule" and r["state"] == "firing"]
        now = self.clock()
        taken = 0
        gone: list[Event] = []
        with self._lock:
            for row in rows:
                alert = self.history.to_alert(row)
                have = set(alert.labels)
                rule = next((r for r in by_name.get(row["rule"], ()) if set(r.labels) <= have), None)
                if rule is None:
                    ended = dataclasses.replace(alert, state=AlertState.RESOLVED, ends_at_ms=now)
                    gone.append(Event(row["rule"], ended, now, note="rule removed from the configuration"))
                    continue
                self.lifecycle.restore(rule, alert, int(row["last_eval_ms"] or now))
                if isinstance(rule, AnomalyRule):
                    self._restore_window(rule, alert, int(row["last_eval_ms"] or now))
                self.inhibitor.update(alert)
                if alert.state is AlertState.FIRING:
                    self.dispatcher.restore(alert, now)
                taken += 1
            for row in external:  # posted by Alertmanager before the restart: kept, not notified again
                if self.lifecycle.get(row["fingerprint"]) is not None:
                    continue
                alert = self.history.to_alert(row)
                self.lifecycle.restore_external(alert, str(row["source"]), int(row["last_eval_ms"] or now))
                self.inhibitor.update(alert)
                self.dispatcher.restore(alert, now)
                taken += 1
        if gone:
            self.history.record(gone)
        if rows or external:
            log.info("alerts_restored", restored=taken, external=len(external), resolved_gone_rules=len(gone))
        return taken

    def _restore_window(self, rule: AnomalyRule, alert: Alert, last_ms: int) -> None:
        """Give a restored anomaly alert the window it fired on: ``points`` hits, the newest at its
        last evaluation. Without one, the next evaluation would sweep it as resolved; with it, the
        alert resolves as it would have, once enough calm points (or staleness) push the hits out."""
        text = dict(alert.annotations).get("series", "")
        try:
            matchers = parse_selector(text) if text else []
        except InputError:
            matchers = []
        name = next((m.value for m in matchers if m.label == "__name__"), "")
        if not name:
            return  # no series recorded: it resolves at the next evaluation, as before
        series = Series.of(name, {m.label: m.value for m in matchers if m.label != "__name__"})
        i = next(j for j, r in enumerate(self.anomaly) if r is rule)
        window = self._points[(i, series)] = AnomalyWindow(rule.points, rule.of, rule.score)
        window.restore(last_ms, max(float(alert.value or 0.0), rule.score))
        self._element_labels[(i, series)] = alert.labels
        self._elements[(i, series)] = self._fp(alert.labels)

    def expire_external(self) -> int:
        """Resolve external alerts not posted again before their expiry; returns how many."""
        with self._lock:
            now = self.clock()
            changes = self.lifecycle.expire_external(now)
            self._apply(changes, now)
            return len(changes)

    def evaluate(self) -> int:
        """One full evaluation of every rule (the timer); returns the state changes."""
        if not (self.leading and self.may_lead()):
            return 0
        expired = self.expire_external()
        forecasts = self._read_forecasts()  # store I/O outside the lock
        with self._lock:
            now = self.clock()
            changes: list[Change] = []
            seen_by: dict[int, set[Fingerprint]] = {id(r): set() for r in self.threshold}
            for series, (ts, value) in self._last.items():
                if now - ts > self.stale_ms:
                    continue  # stale: the sweep below ends what it was holding up
                seeded = series in self._seeded
                for rule, labels in self._watched(series)[0]:
                    if not seeded:
                        changes += self.lifecycle.observe(rule, labels, rule.breaks(value), value, now,
                                                          series=series.key)
                    # a value read from the store at start is older than the restart: it holds
                    # what was restored (neither fires nor resolves) until a live sample comes
                    seen_by[id(rule)].add(self._fp(labels))
            for rule in self.threshold:
                changes += self.lifecycle.sweep(rule, seen_by[id(rule)], now)
            for arule in self.absent:
                seen: set[Fingerprint] = set()
                known = [(s, ts) for s, (ts, _) in self._last.items() if arule.selects(s)]
                elements = [(arule.element_labels(s), now - ts) for s, ts in known] or \
                    [(arule.element_labels(None, **arule.absent_labels()), now - self._started_ms)]
                for labels, silent_ms in elements:
                    changes += self.lifecycle.observe(arule, labels, silent_ms >= arule.silent_for_s * 1000,
                                                      silent_ms / 1000, now)
                    seen.add(self._fp(labels))
                changes += self.lifecycle.sweep(arule, seen, now)
            for key, window in list(self._points.items()):
                if now - window.newest_ms > self.stale_ms:  # a silent series: its window no longer holds
                    del self._points[key]
                    self._elements.pop(key, None)
                    self._element_labels.pop(key, None)
            for i, nrule in enumerate(self.anomaly):
                seen = {fp for (j, _), fp in self._elements.items() if j == i}
                changes += self.lifecycle.sweep(nrule, seen, now)
            for frule, results in forecasts:
                seen = set()
                for labels, ttl in results:
                    active = ttl is not None and ttl <= frule.horizon_s
                    changes += self.lifecycle.observe(frule, labels, active, ttl, now)
                    seen.add(self._fp(labels))
                changes += self.lifecycle.sweep(frule, seen, now)
            self.lifecycle.forget_resolved(now)
            self._apply(changes, now)
            return expired + len(changes)

    def _read_forecasts(self) -> list[tuple[ForecastRule, list[tuple[Labels, float | None]]]]:
        if self.store is None or not self.forecast:
            return []
        now = self.clock()
        out = []
        for rule in self.forecast:
            results: list[tuple[Labels, float | None]] = []
            try:
                for series in self.store.select(list(rule.matchers)):
                    data = self.store.read(series, now - int(rule.window_s * 1000), now)
                    if len(data) >= rule.min_points:
                        results.append((rule.element_labels(series),
                                        time_to_limit_s(data.ts_ms, data.values, rule.limit, now, rule.direction)))
            except StoreError as exc:
                log.warning("forecast_read_failed", rule=rule.name, error=str(exc))
                continue
            out.append((rule, results))
        return out

    def tick(self) -> int:
        """Flush the notification groups whose timers are due; returns notifications sent."""
        with self._lock:
            if self.leading:  # one agent announces silences
                self._watch_silences()
            return self.dispatcher.tick(self.clock())

    def _watch_silences(self) -> None:
        """Announce silences created or expired by others (the CLI on the database) or by their end time."""
        if not self.config.settings.silence_receiver:
            return
        now = self.clock()
        try:
            current = {s.id: s for s in self.silences.unexpired(now)}
            if self._silence_ids is not None:
                for sid in current.keys() - self._silence_ids:
                    self._announce(current[sid], "created", now)
                for sid in self._silence_ids - current.keys():
                    self._announce(self.silences.get(sid), "expired", now)
        except (StoreError, SilenceNotFound) as exc:
            log.warning("silence_watch_failed", error=str(exc))
            return
        self._silence_ids = set(current)

    # --- silences ----------------------------------------------------------------------------

    def add_silence(self, silence_matchers: Sequence[Any], starts_at_ms: int | None, ends_at_ms: int,
                    created_by: str, comment: str = "") -> Silence:
        """Create a silence (and announce it to ``silence_receiver`` when configured)."""
        now = self.clock()
        s = self.silences.add(silence_matchers, starts_at_ms if starts_at_ms is not None else now, ends_at_ms,
                              created_by, comment, now_ms=now)
        log.info("silence_created", silence_id=s.id, created_by=created_by,
                 matchers=[format_matcher(m) for m in s.matchers])
        self._announce(s, "created", now)
        return s

    def expire_silence(self, silence_id: str) -> Silence:
        now = self.clock()
        s = self.silences.expire(silence_id, now)
        log.info("silence_expired", silence_id=s.id)
        self._announce(s, "expired", now)
        return s

    def _announce(self, s: Silence, what: str, now: int) -> None:
        receiver = self.config.settings.silence_receiver
        if not receiver or (s.id, what) in self._announced:
            return
        self._announced.add((s.id, what))
        if len(self._announced) > 10_000:  # old entries are only needed until the next look at the table
            self._announced.clear()
        text = ",".join(format_matcher(m) for m in s.matchers)
        alert = Alert.of(
            {"alertname": f"Silence{what.capitalize()}", "silence_id": s.id},
            {"summary": f"Silence {what} (created by {s.created_by}): {text}", "description": s.comment},
            state=AlertState.FIRING if what == "created" else AlertState.RESOLVED,
            starts_at_ms=s.starts_at_ms, ends_at_ms=s.ends_at_ms if what == "created" else now,
        )
        self._send(Notification(receiver, f"silence/{s.id}", (("silence_id", s.id),), (alert,),
                                self.external_url, extra={"kind": f"silence_{what}", "silence_id": s.id,
                                                          "matchers": text, "created_by": s.created_by,
                                                          "comment": s.comment}))

    # --- outputs -----------------------------------------------------------------------------

    @staticmethod
    def _fp(labels: Labels) -> Fingerprint:
        return fingerprint(labels)

    def _muted(self, alert: Alert) -> bool:
        return self.silences.silencing(alert.labels, self.clock()) is not None or self.inhibitor.inhibited(alert)

    def _send(self, n: Notification) -> None:
        try:
            self.sink.enqueue(n)
            self.notifications_sent += 1
        except Exception as exc:  # the outbox failing must not stop evaluation; it is logged loudly
            log.error("notification_enqueue_failed", receiver=n.receiver, group_key=n.group_key, error=str(exc))

    def _apply(self, changes: list[Change], now: int) -> None:
        if not changes:
            return
        events: list[Event] = []
        announced: list[Alert] = []
        for c in changes:  # all sources first, so a batch's critical mutes the same batch's warnings
            self.inhibitor.update(c.alert)
        for c in changes:
            a = c.alert
            if a.state in (AlertState.FIRING, AlertState.RESOLVED):
                self.dispatcher.insert(a, now)
                announced.append(a)
            events.append(Event(c.rule, a, now, self.silences.silencing(a.labels, now), source=c.source))
        if self.publish is not None and announced:
            try:
                self.publish(announced)
            except Exception as exc:
                log.error("alert_publish_failed", error=str(exc))
        try:
            self.history.record(events)
        except StoreError as exc:
            log.error("alert_history_failed", changes=len(events), error=str(exc))
        for listener in self.listeners:
            try:
                listener(changes)
            except Exception as exc:
                log.error("alert_listener_failed", error=str(exc))
        if len(changes) > 20:  # a storm gets one line, not thousands
            log.info("alert_states_changed", changes=len(changes))
            return
        for c in changes:
            log.info("alert_state_changed", fingerprint=fingerprint(c.alert.labels), alertname=c.alert.name,
                     state=c.alert.state.value, previous=c.previous.value)

    # --- reading -----------------------------------------------------------------------------

    def alerts(self) -> list[dict[str, Any]]:
        """Current alerts (pending, firing, recently resolved), API-shaped, firing first.

        A standby evaluates nothing: it answers with what the leader recorded in the state DB,
        so that either agent behind a Service lists the same alerts.
        """
        now = self.clock()
        out: list[dict[str, Any]] = []
        if not self.leading and self.inbox is not None:
            return self._recorded_alerts(now)
        with self._lock:
            for t in self.lifecycle.all():
                a = t.to_alert()
                silenced = self.silences.silencing(a.labels, now)
                inhibited = self.inhibitor.inhibited(a) if a.state is AlertState.FIRING else False
                out.append({"alert": a, "rule": t.rule, "source": t.source, "silenced_by": silenced,
                            "inhibited": inhibited})
        return _ordered(out)

    def _recorded_alerts(self, now: int) -> list[dict[str, Any]]:
        keep_ms = int(self.config.settings.resolved_retention_s * 1000)
        try:
            rows = self.history.recent(now - keep_ms)
        except StoreError as exc:
            log.warning("alert_read_failed", error=str(exc))
            return []
        out: list[dict[str, Any]] = []
        for row in rows:
            a = self.history.to_alert(row)
            out.append({"alert": a, "rule": row["rule"], "source": row["source"],
                        "silenced_by": self.silences.silencing(a.labels, now), "inhibited": False})
        return _ordered(out)


def _ordered(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Firing first, then pending, then resolved; newest first within each."""
    order = {AlertState.FIRING: 0, AlertState.PENDING: 1, AlertState.RESOLVED: 2, AlertState.INACTIVE: 3}
    alerts.sort(key=lambda d: (order[d["alert"].state], -d["alert"].starts_at_ms))
    return alerts
