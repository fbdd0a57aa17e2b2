"""The alerting HTTP API on the agent's server.

``GET /api/v1/alerts`` (current alerts; ``?history=1`` for recorded state changes),
``GET /api/v1/silences``, ``POST /api/v1/silences``, ``DELETE /api/v1/silences/{id}``, and
``POST /api/v1/alertmanager/webhook`` (Alertmanager's webhook, version 4). Reads need the role
``viewer``, silences ``operator``, the webhook ``intake``; the intake is bounded per request
(413) and in active external alerts (429). Answers are ``{"status": "success", "data": ...}``,
as Prometheus' API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aiops.config import parse_duration_s
from aiops.errors import InputError, StoreError
from aiops.httpapi import HttpApi, Request, Response
from aiops.httpauth import Role
from aiops.logs import get_logger
from aiops.model import Alert
from aiops.timeutil import format_ts_ms, parse_time_ms
from alerting.alertmanager import WebhookBody, parse_rfc3339_ms, webhook_alerts
from alerting.matchers import matcher_from_json, parse_matcher
from alerting.silences import SilenceNotFound

if TYPE_CHECKING:
    from alerting.engine import AlertEngine

__all__ = ["register_routes", "alert_json", "parse_label_filters", "IntakeLimits", "SilenceBody", "AlertsQuery",
           "SilencesQuery"]

log = get_logger("alerting.api")


def alert_json(a: Alert, **extra: Any) -> dict[str, Any]:
    """An alert as the API shows it (Alertmanager's field names)."""
    return {
        "fingerprint": a.fingerprint, "labels": dict(a.labels), "annotations": dict(a.annotations),
        "state": a.state.value, "startsAt": format_ts_ms(a.starts_at_ms) if a.starts_at_ms else None,
        "endsAt": format_ts_ms(a.ends_at_ms) if a.ends_at_ms else None, "value": a.value,
        "generatorURL": a.generator_url, **extra,
    }


def parse_label_filters(items: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` to a dict.

    Raises:
        InputError: naming the item without ``=``.
    """
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise InputError(f"label filter {item!r}: expected key=value")
        out[k.strip()] = v.strip().strip('"')
    return out


LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
_MAX_SILENCE_S = 366 * 86400  # a year and a day: longer is a mistake, and overflows no clock


class SilenceBody(BaseModel):
    """A new silence (Alertmanager's ``postableSilence``; ``createdBy`` is the caller, not free text)."""

    model_config = ConfigDict(extra="ignore")

    matchers: list[Annotated[str, Field(max_length=1024)] | dict[str, Any]] = Field(min_length=1, max_length=64)
    startsAt: str | None = Field(None, max_length=64)  # noqa: N815 - Alertmanager's names
    endsAt: str | None = Field(None, max_length=64)  # noqa: N815
    duration: str | None = Field(None, max_length=32, description="e.g. 2h (instead of endsAt)")
    createdBy: str = Field("", max_length=256, description="ignored: the authenticated principal is recorded")  # noqa: N815
    comment: str = Field("", max_length=4096)


class AlertsQuery(BaseModel):
    """Filters of ``GET /api/v1/alerts``."""

    model_config = ConfigDict(extra="ignore")

    state: Literal["pending", "firing", "resolved", "inactive"] | None = None
    name: str | None = Field(None, max_length=256)
    label: list[str] = Field(default_factory=list, max_length=32, description="key=value, repeatable")
    history: Literal["0", "1", "true", "false"] = "0"
    since: str = Field("0", max_length=64)
    limit: int = Field(1000, ge=1, le=100_000)


class SilencesQuery(BaseModel):
    """Filters of ``GET /api/v1/silences``."""

    model_config = ConfigDict(extra="ignore")

    state: Literal["pending", "active", "expired"] | None = None


class IntakeLimits(BaseModel):
    """Bounds of the webhook intake (``alerting.max_alerts_per_request`` / ``max_external_alerts``)."""

    max_alerts_per_request: int = 10_000
    max_external_alerts: int = 50_000


def _time(text: str, where: str, parse: Callable[[str], int] = parse_time_ms) -> int:
    try:
        ms = parse(text)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    if not 0 <= ms <= _MAX_MS:
        raise InputError(f"{where}: {text[:40]!r} out of range (1970 to 9999)")
    return ms


_MAX_MS = 253_402_300_799_999


def register_routes(api: HttpApi, engine: AlertEngine, limits: IntakeLimits | None = None) -> None:
    """Add the alerting routes to ``api``."""
    limits = limits or IntakeLimits()

    def get_alerts(req: Request) -> Response:
        """Current alerts, or recorded state changes with history=1."""
        q: AlertsQuery = req.args
        labels = parse_label_filters(q.label)
        if q.history in ("1", "true"):
            since_ms = _time(q.since, "query.since")
            rows = engine.history.query(state=q.state, name=q.name, labels=labels, since_ms=since_ms, limit=q.limit)
            return Response.json({"status": "success", "data": [_event_json(r) for r in rows]})
        data = []
        for d in engine.alerts():
            a: Alert = d["alert"]
            if (q.state and a.state.value != q.state) or (q.name and a.name != q.name) or \
                    any(a.label_dict.get(k) != v for k, v in labels.items()):
                continue
            data.append(alert_json(a, rule=d["rule"], source=d["source"],
                                   status={"silencedBy": [d["silenced_by"]] if d["silenced_by"] else [],
                                           "inhibited": d["inhibited"]}))
        return Response.json({"status": "success", "data": data})

    def get_silences(req: Request) -> Response:
        """Silences, newest first."""
        now = engine.clock()
        return Response.json({"status": "success",
                              "data": [s.to_json(now) for s in engine.silences.find(now, req.args.state)]})

    def post_silence(req: Request) -> Response:
        """Create a silence; it records the authenticated caller as createdBy."""
        body: SilenceBody = req.data
        matchers = []
        for i, m in enumerate(body.matchers):
            try:
                matchers.append(parse_matcher(m) if isinstance(m, str) else matcher_from_json(m))
            except InputError as exc:
                raise InputError(f"body.matchers[{i}]: {exc}") from None
        now = engine.clock()
        starts = _time(body.startsAt, "body.startsAt", parse_rfc3339_ms) if body.startsAt else now
        if body.endsAt:
            ends = _time(body.endsAt, "body.endsAt", parse_rfc3339_ms)
        elif body.duration:
            try:
                duration_s = parse_duration_s(body.duration)
            except ValueError as exc:
                raise InputError(f"body.duration: {exc}") from None
            if duration_s > _MAX_SILENCE_S:
                raise InputError(f"body.duration: longer than {_MAX_SILENCE_S // 86400} days")
            ends = starts + int(duration_s * 1000)
        else:
            raise InputError("body: give endsAt or duration")
        if ends - starts > _MAX_SILENCE_S * 1000:
            raise InputError(f"body.endsAt: more than {_MAX_SILENCE_S // 86400} days after startsAt")
        s = engine.add_silence(matchers, starts, ends, req.who, body.comment)
        return Response.json({"status": "success", "silenceID": s.id, "data": s.to_json(now)})

    def delete_silence(req: Request) -> Response:
        """Expire a silence now."""
        try:
            s = engine.expire_silence(req.params["id"])
        except SilenceNotFound as exc:
            return Response.error(404, str(exc))
        return Response.json({"status": "success", "data": s.to_json(engine.clock())})

    def webhook(req: Request) -> Response:
        """Alertmanager's webhook (version 4): alerts from outside join routing and remediation."""
        body: WebhookBody = req.data
        if len(body.alerts) > limits.max_alerts_per_request:
            return Response.error(413, f"body.alerts: {len(body.alerts)} alerts in one request, "
                                       f"at most {limits.max_alerts_per_request}", "body.alerts")
        alerts = webhook_alerts(body)
        firing = sum(1 for a in alerts if a.state.value == "firing")
        try:
            if firing and engine.external_active() + firing > limits.max_external_alerts:
                return Response.error(429, f"more than {limits.max_external_alerts} active external alerts; "
                                           "resolve some or raise alerting.max_external_alerts")
            changed = engine.take_in(alerts, source="alertmanager")  # a standby hands them to the leader
        except StoreError as exc:  # a 5xx: Alertmanager retries it; the error is logged, not echoed
            log.warning("alert_intake_failed", alerts=len(alerts), error=str(exc))
            return Response.error(503, "cannot hand the alerts to the rules leader (state database); retry")
        return Response.json({"status": "success", "received": len(alerts), "changed": changed or 0,
                              "forwarded": changed is None})

    api.route("GET", "/api/v1/alerts", get_alerts, role=Role.VIEWER, query=AlertsQuery)
    api.route("GET", "/api/v1/silences", get_silences, role=Role.VIEWER, query=SilencesQuery)
    api.route("POST", "/api/v1/silences", post_silence, role=Role.OPERATOR, body=SilenceBody)
    api.route("DELETE", "/api/v1/silences/{id}", delete_silence, role=Role.OPERATOR)
    api.route("POST", "/api/v1/alertmanager/webhook", webhook, role=Role.INTAKE, body=WebhookBody,
              responses={413: "Too many alerts in one request", 429: "Too many active external alerts",
                         503: "A standby agent could not hand the alerts to the rules leader"})


def _event_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"fingerprint": row["fingerprint"], "rule": row["rule"], "alertname": row["alertname"],
            "state": row["state"], "time": format_ts_ms(int(row["ts_ms"])), "ts_ms": int(row["ts_ms"]),
            "labels": row["labels"], "annotations": row["annotations"], "value": row["value"],
            "silencedBy": row["silenced_by"]}


