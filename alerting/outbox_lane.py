"""One delivery lane of the outbox: the thread that sends one receiver's rows in order.

See :mod:`alerting.outbox` for the guarantees; this module is the loop that keeps them:
reclaim expired leases, pick the oldest due row (or fold a backlog the rate limit cannot
carry into the newest one), lease it, render, send, record.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update

from aiops.errors import PermanentError, TemporaryError, trim
from aiops.logs import get_logger
from aiops.notification import decode_notification, outbox
from alerting.notifiers import DeliveryClientError, Notifier
from alerting.shared_bucket import SharedTokenBucket
from alerting.token_bucket import TokenBucket

if TYPE_CHECKING:
    from alerting.outbox import Outbox, ReceiverPolicy

__all__ = ["Lane", "ACTIVE", "alerts_view_url", "held_back_summary"]

log = get_logger("alerting.outbox")
ACTIVE = ("queued", "sending")
SUMMARY_GROUPS = 5  # groups named in a held-back summary; the rest is a count
SUMMARY_NAMES = 10  # alertname x severity lines in a held-back summary; the rest is a count
PROBED = frozenset({"network", "timeout"})  # failures a TCP probe can tell are over
MAX_WAIT_S = 5.0  # idle lanes still refresh their queue gauge this often


def _t() -> Any:
    return outbox


def alerts_view_url(base_url: str, **query: Any) -> str:
    """The dashboard's filtered alert view: ``<base_url>/?page=alerts&<query>``.

    Examples:
        >>> alerts_view_url("http://dash:8501/", since_ms=1, alertname="Hot GPU")
        'http://dash:8501/?page=alerts&since_ms=1&alertname=Hot+GPU'
    """
    from urllib.parse import urlencode

    return f"{base_url.rstrip('/')}/?{urlencode({'page': 'alerts', **query})}"


def held_back_summary(rows: list[dict[str, Any]], link: str = "") -> tuple[str, dict[str, Any]]:
    """The summary line of outbox rows a rate limit folded: alerts by name and severity, the groups.

    Groups are named by their group labels (``instance=gpu-node-7``), not by the internal
    group key, since that is what the person reading the message knows them by.

    Args:
        rows: outbox rows with ``group_key`` and ``payload`` (an encoded notification).
        link: where all of them are listed (the dashboard's alert view), or "".

    Returns:
        The text, and the same figures for the webhook (``held_back_counts``, ``held_back_url``).

    Examples:
        >>> held_back_summary([{"group_key": "{}:{}", "payload": {"group_labels": [["alertname", "Hot"]],
        ...     "alerts": [{"labels": [["alertname", "Hot"], ["severity", "page"]], "state": "firing"}]}}])[0]
        'Hot (page): 1 firing (groups: alertname=Hot ×1)'
    """
    by_name: dict[tuple[str, str], list[int]] = {}
    groups: dict[str, list[Any]] = {}  # group key -> [what people call it, rows]
    for r in rows:
        payload = r["payload"] if isinstance(r["payload"], dict) else {}
        named = ", ".join(f"{k}={v}" for k, v in payload.get("group_labels") or ())
        groups.setdefault(r["group_key"] or "", [named or "(no group labels)", 0])[1] += 1
        for a in payload.get("alerts") or ():
            labels = {str(k): str(v) for k, v in a.get("labels") or ()}
            key = (labels.get("alertname", "?"), labels.get("severity", ""))
            counts = by_name.setdefault(key, [0, 0])
            counts[0 if a.get("state") != "resolved" else 1] += 1
    ranked = sorted(by_name.items(), key=lambda kv: (-sum(kv[1]), kv[0]))
    parts = []
    for (name, severity), (firing, resolved) in ranked[:SUMMARY_NAMES]:
        what = ", ".join(x for x in (f"{firing} firing" if firing else "",
                                     f"{resolved} resolved" if resolved else "") if x)
        parts.append(f"{trim(name, 80)}{f' ({trim(severity, 20)})' if severity else ''}: {what}")
    if len(ranked) > SUMMARY_NAMES:
        rest = sum(sum(c) for _, c in ranked[SUMMARY_NAMES:])
        parts.append(f"{len(ranked) - SUMMARY_NAMES} more alert names: {rest} alerts")
    top = sorted(groups.values(), key=lambda nc: (-nc[1], nc[0]))
    group_text = ", ".join(f"{trim(g, 80)} ×{c}" for g, c in top[:SUMMARY_GROUPS])
    if len(top) > SUMMARY_GROUPS:
        group_text += f" and {len(top) - SUMMARY_GROUPS} other groups"
    text = "; ".join(parts) or group_text
    if parts and group_text:
        text += f" (groups: {group_text})"
    if link:
        text += f"; all of them: {link}"
    extra = {"held_back_counts": [{"alertname": n, "severity": sev, "firing": f, "resolved": r}
                                  for (n, sev), (f, r) in ranked],
             "held_back_url": link}
    return text, extra


class Lane:
    """The delivery thread of one receiver."""

    def __init__(self, box: Outbox, name: str, notifier: Notifier, policy: ReceiverPolicy) -> None:
        self.box = box
        self.name = name
        self.notifier = notifier
        # a rate limit lives in the state DB, so agents sharing it share the limit
        self.bucket: TokenBucket | SharedTokenBucket = (
            SharedTokenBucket(box.state, name, policy.rate_limit_per_min, policy.burst, clock=box.clock)
            if policy.rate_limit_per_min > 0 else TokenBucket(0.0))
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"outbox-{name}", daemon=True)
        self._gauge_at = 0.0
        self._reclaimed_ms = 0
        self.policy = policy
        # set by a failed attempt, cleared by a success or a probe that connects: while set, a
        # success makes every waiting row due at once (the receiver is back)
        self._backing_off: str | None = None
        self._probed_at = 0.0

    # --- loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        stop = self.box._stop
        while not stop.is_set():
            try:
                wait_s, wakeable = self.step()
            except Exception as exc:  # a database hiccup must not kill the lane; rows stay recorded
                log.error("outbox_lane_failed", receiver=self.name, error=trim(str(exc), 500))
                wait_s, wakeable = self.box.settings.poll_interval_s, False
            if wait_s > 0 and not stop.is_set():
                (self.wake if wakeable else stop).wait(min(wait_s, MAX_WAIT_S))
            self.wake.clear()

    def step(self) -> tuple[float, bool]:
        """Do one unit of work; returns how long to wait and whether an enqueue may cut it short."""
        t = _t()
        box, now = self.box, self.box.now_ms()
        self._refresh_gauge()
        due_where = (t.c.receiver == self.name, t.c.status == "queued", t.c.next_attempt_ms <= now)
        with box.state.begin() as conn:
            if now - self._reclaimed_ms >= box.settings.poll_interval_s * 1000:
                # a dead agent's leases; checked once per poll interval, not per message
                self._reclaimed_ms = now
                conn.execute(update(t).where(t.c.receiver == self.name, t.c.status == "sending",
                                             t.c.lease_until_ms < now)
                             .values(status="queued", lease_owner=None, lease_until_ms=None, updated_ms=now))
            due = list(conn.execute(select(t.c.id).where(*due_where).order_by(t.c.id).limit(2)).scalars())
            if not due:
                nxt = conn.execute(select(func.min(t.c.next_attempt_ms)).where(
                    t.c.receiver == self.name, t.c.status == "queued")).scalar()
        if not due:
            wait = box.settings.poll_interval_s
            if nxt is not None:
                if self._probe_ok():
                    self._reset_backoff("probe")
                    return 0.0, True
                wait = min(wait, max(0.01, (int(nxt) - now) / 1000))
            return wait, True
        tokens = self.bucket.available()
        if tokens < 1.0:
            return self.bucket.wait_s(), False
        merge = len(due) >= 2 and tokens < 2.0
        if not self.bucket.take():
            return self.bucket.wait_s(), False  # another agent spent the token first
        row = self._claim_merged(now) if merge else self._claim(int(due[0]), now)
        if row is None:
            self.bucket.give_back()
            return 0.0, True
        box.in_flight.add(int(row["id"]))
        try:
            self._deliver(row)
        finally:  # recorded or not (a DB error), the heartbeat stops renewing it: the lease then ends
            box.in_flight.discard(int(row["id"]))
        return 0.0, True

    # --- recovery ------------------------------------------------------------------------

    def _probe_ok(self) -> bool:
        """While backing off after network errors: does the receiver accept connections again?"""
        probe = getattr(self.notifier, "probe", None)
        if self._backing_off not in PROBED or not callable(probe):
            return False
        mono = time.monotonic()
        if mono - self._probed_at < self.box.settings.probe_interval_s:
            return False
        self._probed_at = mono
        return bool(probe(min(1.0, self.box.settings.probe_interval_s)))

    def _reset_backoff(self, why: str) -> None:
        """The receiver answers again: every row of it waiting for a retry is due now."""
        self._backing_off = None
        t, now = _t(), self.box.now_ms()
        with self.box.state.begin() as conn:
            n = conn.execute(update(t).where(t.c.receiver == self.name, t.c.status == "queued",
                                             t.c.next_attempt_ms > now)
                             .values(next_attempt_ms=now, updated_ms=now)).rowcount
        if n:
            log.info("outbox_backoff_reset", receiver=self.name, rows=int(n), reason=why)

    # --- claiming --------------------------------------------------------------------------

    def _lease_values(self, now: int) -> dict[str, Any]:
        t = _t()
        return {"status": "sending", "lease_owner": self.box.owner, "updated_ms": now,
                "lease_until_ms": now + int(self.box.settings.lease_s * 1000), "attempts": t.c.attempts + 1}

    def _claim(self, row_id: int, now: int) -> dict[str, Any] | None:
        t = _t()
        with self.box.state.begin() as conn:
            won = conn.execute(update(t).where(t.c.id == row_id, t.c.status == "queued")
                               .values(**self._lease_values(now))).rowcount
            if not won:
                return None  # another agent took it between our select and update
            return dict(conn.execute(select(t).where(t.c.id == row_id)).one()._mapping)

    def _claim_merged(self, now: int) -> dict[str, Any] | None:
        """Lease the newest due row and fold every other due row of this receiver into it."""
        t = _t()
        due = (t.c.receiver == self.name, t.c.status == "queued", t.c.next_attempt_ms <= now)
        with self.box.state.begin() as conn:
            main = conn.execute(select(func.max(t.c.id)).where(*due)).scalar()
            if main is None:
                return None
            if not conn.execute(update(t).where(t.c.id == main, t.c.status == "queued")
                                .values(**self._lease_values(now))).rowcount:
                return None
            folded = conn.execute(update(t).where(*due, t.c.id < main).values(
                status="held_back", merged_into=main, lease_owner=self.box.owner, lease_until_ms=None,
                updated_ms=now)).rowcount
            count, inner = conn.execute(select(func.count(), func.coalesce(func.sum(t.c.held_back), 0))
                                        .where(t.c.merged_into == main)).one()
            conn.execute(update(t).where(t.c.id == main).values(held_back=int(count) + int(inner)))
            row = dict(conn.execute(select(t).where(t.c.id == main)).one()._mapping)
        self.box.metrics.held_back.labels(self.name).inc(folded)
        log.info("notifications_held_back", receiver=self.name, outbox_id=main, held_back=row["held_back"])
        return row

    def _folded(self, main: int) -> list[dict[str, Any]]:
        """Rows folded into ``main``, also those folded into a row that was folded later (bounded)."""
        t = _t()
        out: list[dict[str, Any]] = []
        frontier = [main]
        with self.box.state.begin() as conn:
            while frontier and len(out) < 100_000:
                rows = [dict(r._mapping) for r in conn.execute(
                    select(t.c.id, t.c.group_key, t.c.payload, t.c.created_ms, t.c.held_back)
                    .where(t.c.merged_into.in_(frontier[:500])))]
                frontier = frontier[500:] + [int(r["id"]) for r in rows if r["held_back"]]
                out += rows
        return out

    def _summary(self, main: int, base_url: str) -> tuple[str, dict[str, Any]]:
        """What a folded storm held (:func:`held_back_summary`), with a link to all of it.

        The link is the dashboard's alert view filtered to the time the folded rows were
        queued: ``<base_url>/?page=alerts&since_ms=<ms>&until_ms=<ms>``.
        """
        rows = self._folded(main)
        since = min((int(r["created_ms"]) for r in rows), default=self.box.now_ms())
        link = alerts_view_url(base_url, since_ms=since, until_ms=self.box.now_ms()) if base_url else ""
        return held_back_summary(rows, link)

        # --- sending ---------------------------------------------------------------------------

    def _deliver(self, row: dict[str, Any]) -> None:
        try:
            n = decode_notification(row["payload"])
            if row["held_back"]:
                base = str(getattr(self.notifier, "base_url", "") or n.external_url)
                text, extra = self._summary(row["id"], base)
                n = dataclasses.replace(n, held_back=n.held_back + int(row["held_back"]),
                                        extra={**n.extra, **extra, "held_back_summary": text})
            payload = self.notifier.render(n)
        except Exception as exc:  # a payload we cannot render will not render on retry either
            self._fail(row, "render", f"cannot render: {exc.__class__.__name__}: {trim(str(exc))}")
            return
        try:
            self.notifier.send(payload)
        except TemporaryError as exc:
            self._retry(row, getattr(exc, "reason", "temporary"), str(exc), exc.delay_s)
        except DeliveryClientError as exc:  # a 404 while a webhook is re-created: retried for a while
            limit_s = self.policy.retry_client_errors_for_s
            if (self.box.now_ms() - int(row["created_ms"])) / 1000 < limit_s:
                self._retry(row, exc.reason, str(exc), None, limit_s=limit_s)
            else:
                self._fail(row, exc.reason, f"still refused after {limit_s:g}s: {exc}" if limit_s else str(exc))
        except PermanentError as exc:
            self._fail(row, getattr(exc, "reason", "permanent"), str(exc))
        except Exception as exc:  # a notifier bug: retry (bounded by give_up_after_s) rather than lose it
            self._retry(row, "error", f"{exc.__class__.__name__}: {trim(str(exc))}", None)
        else:
            self._sent(row)

    def _finish(self, row: dict[str, Any], **values: Any) -> bool:
        t = _t()
        with self.box.state.begin() as conn:
            done = conn.execute(update(t).where(t.c.id == row["id"], t.c.status == "sending",
                                                t.c.lease_owner == self.box.owner)
                                .values(lease_until_ms=None, updated_ms=self.box.now_ms(), **values)).rowcount
        if not done:
            log.warning("outbox_lease_lost", receiver=self.name, outbox_id=row["id"])
        return bool(done)

    def _sent(self, row: dict[str, Any]) -> None:
        now = self.box.now_ms()
        self._finish(row, status="sent", sent_ms=now, last_error=None)
        if self._backing_off is not None:
            self._reset_backoff("delivered")
        m = self.box.metrics
        m.sent.labels(self.name).inc()
        m.latency.labels(self.name).observe(max(0.0, (now - int(row["created_ms"])) / 1000))
        log.info("notification_sent", receiver=self.name, target=self.notifier.target, outbox_id=row["id"],
                 attempt=row["attempts"], held_back=row["held_back"])

    def _retry(self, row: dict[str, Any], reason: str, error: str, delay_s: float | None,
               limit_s: float | None = None) -> None:
        box, now = self.box, self.box.now_ms()
        box.metrics.failed.labels(self.name, reason).inc()
        self._backing_off = reason
        attempts = int(row["attempts"])
        if delay_s is not None:  # the service said when (Retry-After): never earlier, a little jitter later
            delay = delay_s * (1.0 + 0.1 * box._rng.random())
        else:
            delay = box.backoff_s(attempts)
        age_s = (now - int(row["created_ms"])) / 1000 + delay
        if limit_s is not None and age_s > limit_s:  # the last try of a bounded retry happens at the limit
            delay = max(0.0, limit_s - (now - int(row["created_ms"])) / 1000)
        elif age_s > box.settings.give_up_after_s:
            self._fail(row, "gave_up", f"gave up after {attempts} attempts: {error}", count=False)
            return
        self._finish(row, status="queued", lease_owner=None, next_attempt_ms=now + int(delay * 1000),
                     last_error=trim(error, 1000))
        log.warning("notification_send_failed", receiver=self.name, target=self.notifier.target,
                    outbox_id=row["id"], attempt=attempts, reason=reason, retry_in_s=round(delay, 3), error=error)

    def _fail(self, row: dict[str, Any], reason: str, error: str, count: bool = True) -> None:
        if count:
            self.box.metrics.failed.labels(self.name, reason).inc()
        self._finish(row, status="failed", last_error=trim(error, 1000))
        self._refresh_gauge(force=True)
        log.error("notification_failed", receiver=self.name, target=self.notifier.target, outbox_id=row["id"],
                  attempt=row["attempts"], reason=reason, error=error)

    def _refresh_gauge(self, force: bool = False) -> None:
        mono = time.monotonic()
        if not force and mono - self._gauge_at < 1.0:
            return
        self._gauge_at = mono
        t = _t()
        with self.box.state.begin() as conn:
            n = conn.execute(select(func.count()).select_from(t).where(
                t.c.receiver == self.name, t.c.status.in_(ACTIVE))).scalar_one()
        self.box.metrics.queue.labels(self.name).set(int(n))
