"""Talking to Prometheus Alertmanager: its webhook payloads in, our alerts out.

In: Alertmanager's webhook (``version: "4"``) posts groups of alerts to
``POST /api/v1/alertmanager/webhook``; :func:`parse_webhook` turns them into kernel alerts so
they join our routing, history and remediation. Out: :class:`AlertmanagerPusher` posts our
firing and resolved alerts to ``/api/v2/alerts`` of each configured Alertmanager, as Prometheus
does: on every change, and every ``resend_s`` for alerts still firing (with ``endsAt`` a few
resends ahead, so Alertmanager resolves them itself if we go away).

Examples:
    >>> alerts = parse_webhook({"version": "4", "status": "firing", "alerts": [
    ...     {"status": "firing", "labels": {"alertname": "Up"}, "annotations": {},
    ...      "startsAt": "2024-01-01T00:00:00.123456789Z", "endsAt": "0001-01-01T00:00:00Z"}]})
    >>> alerts[0].name, alerts[0].state.value, alerts[0].starts_at_ms
    ('Up', 'firing', 1704067200123)
"""

from __future__ import annotations

import datetime as dt
import queue
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from aiops.annotations import extra_annotations
from aiops.errors import InputError, trim
from aiops.logs import get_logger, url_host
from aiops.model import Alert, AlertState, now_ms
from aiops.timeutil import format_ts_ms
from aiops.validation import format_validation_error

__all__ = ["WebhookBody", "WebhookAlert", "parse_webhook", "webhook_alerts",
           "parse_rfc3339_ms", "to_alertmanager", "AlertmanagerPusher"]

log = get_logger("alerting.alertmanager")

_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def parse_rfc3339_ms(text: str) -> int:
    """UTC ms of an RFC 3339 time (nanoseconds allowed); Go's zero time ``0001-01-01...`` is 0."""
    if not text or text.startswith("0001-01-01"):
        return 0
    try:
        t = dt.datetime.fromisoformat(_FRACTION.sub(r"\1", text.replace("Z", "+00:00"), count=1))
    except ValueError as exc:
        raise InputError(f"time {text!r}: expected RFC 3339") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(round(t.timestamp() * 1000))


_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_Value = Annotated[str, Field(max_length=16_384)]


def _label_names(v: dict[str, str]) -> dict[str, str]:
    for name in v:
        if not _LABEL_NAME.fullmatch(name):
            raise ValueError(f"label name {name[:64]!r} is not [a-zA-Z_][a-zA-Z0-9_]*")
    return v


class WebhookAlert(BaseModel):
    """One alert of Alertmanager's webhook: labels need ``alertname`` and Prometheus' label names."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"] = "firing"
    labels: Annotated[dict[str, _Value], AfterValidator(_label_names)] = Field(max_length=256)
    annotations: dict[str, _Value] = Field(default_factory=dict, max_length=256)
    startsAt: str = Field("", max_length=64)  # noqa: N815 - Alertmanager's names
    endsAt: str = Field("", max_length=64)  # noqa: N815
    generatorURL: str = Field("", max_length=4096)  # noqa: N815

    @field_validator("labels")
    @classmethod
    def _alertname(cls, v: dict[str, str]) -> dict[str, str]:
        if not v.get("alertname"):
            raise ValueError("needs a non-empty alertname label")
        return v


class WebhookBody(BaseModel):
    """Alertmanager's webhook body, version 4."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"] = "4"
    status: str = Field("firing", max_length=32)
    receiver: str = Field("", max_length=1024)
    groupKey: str = Field("", max_length=16_384)  # noqa: N815
    alerts: list[WebhookAlert] = Field(max_length=1_000_000)


def parse_webhook(body: Any) -> list[Alert]:
    """Kernel alerts from an Alertmanager webhook body (version 4).

    Raises:
        InputError: naming the field that is wrong.
    """
    try:
        msg = WebhookBody.model_validate(body)
    except ValidationError as exc:
        raise InputError(format_validation_error(exc, prefix="body", first_only=True, show_input=False)) from None
    return webhook_alerts(msg)


def webhook_alerts(msg: WebhookBody) -> list[Alert]:
    """Kernel alerts of a validated webhook body."""
    out = []
    for a in msg.alerts:
        out.append(Alert.of(a.labels, a.annotations, state=AlertState(a.status),
                            starts_at_ms=parse_rfc3339_ms(a.startsAt), ends_at_ms=parse_rfc3339_ms(a.endsAt),
                            generator_url=a.generatorURL))
    return out


def to_alertmanager(alert: Alert, valid_until_ms: int, extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The JSON Alertmanager's ``POST /api/v2/alerts`` takes for one alert.

    ``extra`` annotations (the likely root causes: ``rca``, ``rca_top_component``, ...) are added
    under the alert's own, which win.
    """
    ends = alert.ends_at_ms if alert.state is AlertState.RESOLVED else valid_until_ms
    body: dict[str, Any] = {"labels": dict(alert.labels), "annotations": {**(extra or {}), **alert.annotation_dict},
                            "startsAt": format_ts_ms(alert.starts_at_ms or now_ms())}
    if ends:
        body["endsAt"] = format_ts_ms(ends)
    if alert.generator_url:
        body["generatorURL"] = alert.generator_url
    return body


class AlertmanagerPusher:
    """Posts alerts to Alertmanagers from a background thread; never blocks the engine.

    Args:
        urls: Alertmanager base URLs (``http://am:9093``).
        firing: returns the alerts firing now (re-sent every ``resend_s``).
        resend_s: seconds between re-sends of firing alerts.
        timeout_s: per request.
    """

    def __init__(self, urls: Sequence[str], firing: Callable[[], list[Alert]], resend_s: float = 60.0,
                 timeout_s: float = 10.0) -> None:
        self.urls = [u.rstrip("/") for u in urls]
        self.firing = firing
        self.resend_s = resend_s
        self._queue: queue.Queue[list[Alert] | None] = queue.Queue(maxsize=10_000)
        self._client = httpx.Client(timeout=timeout_s)
        self._thread: threading.Thread | None = None
        self.sent = 0

    def push(self, alerts: Sequence[Alert]) -> None:
        """Queue ``alerts`` (firing or resolved) for the next post; drops them if the queue is full."""
        try:
            self._queue.put_nowait(list(alerts))
        except queue.Full:
            log.warning("alertmanager_push_dropped", alerts=len(alerts))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="alertmanager-push", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(5)
        self._client.close()

    def _loop(self) -> None:
        next_resend = now_ms() + int(self.resend_s * 1000)
        while True:
            try:
                batch = self._queue.get(timeout=max(0.05, (next_resend - now_ms()) / 1000))
            except queue.Empty:
                batch = []
            if batch is None:
                return
            while len(batch) < 5_000:  # coalesce what else is waiting
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._post(batch)
                    return
                batch += more
            if now_ms() >= next_resend:
                batch += self.firing()
                next_resend = now_ms() + int(self.resend_s * 1000)
            if batch:
                self._post(batch)

    def _post(self, alerts: list[Alert]) -> None:
        valid_until = now_ms() + int(4 * self.resend_s * 1000)
        # firing alerts carry what annotators know (root causes), as in the chat message; computed on
        # this thread, so a slow annotator delays only the push, never the engine
        body = [to_alertmanager(a, valid_until, extra_annotations(a) if a.state is AlertState.FIRING else None)
                for a in alerts]
        for url in self.urls:
            try:
                r = self._client.post(f"{url}/api/v2/alerts", json=body)
                if r.status_code >= 300:
                    log.warning("alertmanager_push_failed", target=url_host(url), status=r.status_code,
                                error=trim(r.text))
                    continue
                self.sent += len(body)
            except httpx.HTTPError as exc:
                log.warning("alertmanager_push_failed", target=url_host(url), error=trim(exc))
