"""The alerting HTTP API on the agent's server.

``GET /api/v1/alerts`` (current alerts; ``?history=1`` for recorded state changes),
``GET /api/v1/silences``, ``POST /api/v1/silences``, ``DELETE /api/v1/silences/{id}``, and
``POST /api/v1/alertmanager/webhook`` (Alertmanager's webhook, version 4). Writes need the
agent's bearer token. Answers are ``{"status": "success", "data": ...}``, as Prometheus' API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aiops.config import parse_duration_s
from aiops.errors import InputError
from aiops.httpapi import HttpApi, Request, Response
from aiops.model import Alert
from aiops.timeutil import format_ts_ms, parse_time_ms
from alerting.alertmanager import parse_rfc3339_ms, parse_webhook
from alerting.matchers import matcher_from_json, parse_matcher
from alerting.silences import SilenceNotFound

if TYPE_CHECKING:
    from alerting.engine import AlertEngine

__all__ = ["register_routes", "alert_json", "parse_label_filters"]


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


class _SilenceBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    matchers: list[str | dict[str, Any]] = Field(min_length=1)
    startsAt: str | None = None  # noqa: N815 - Alertmanager's names
    endsAt: str | None = None  # noqa: N815
    duration: str | None = None
    createdBy: str = Field(min_length=1)  # noqa: N815
    comment: str = ""


def register_routes(api: HttpApi, engine: AlertEngine) -> None:
    """Add the alerting routes to ``api``."""

    def get_alerts(req: Request) -> Response:
        state, name = req.arg("state"), req.arg("name")
        labels = parse_label_filters(req.query.get("label", []))
        if req.arg("history") in ("1", "true"):
            since = parse_time_ms(req.arg("since") or "0")
            limit_text = req.arg("limit") or "1000"
            if not limit_text.isdigit():
                raise InputError(f"limit {limit_text!r}: expected a whole number")
            rows = engine.history.query(state=state, name=name, labels=labels, since_ms=since,
                                        limit=int(limit_text))
            return Response.json({"status": "success", "data": [_event_json(r) for r in rows]})
        data = []
        for d in engine.alerts():
            a: Alert = d["alert"]
            if (state and a.state.value != state) or (name and a.name != name) or \
                    any(a.label_dict.get(k) != v for k, v in labels.items()):
                continue
            data.append(alert_json(a, rule=d["rule"], source=d["source"],
                                   status={"silencedBy": [d["silenced_by"]] if d["silenced_by"] else [],
                                           "inhibited": d["inhibited"]}))
        return Response.json({"status": "success", "data": data})

    def get_silences(req: Request) -> Response:
        now = engine.clock()
        return Response.json({"status": "success",
                              "data": [s.to_json(now) for s in engine.silences.find(now, req.arg("state"))]})

    def post_silence(req: Request) -> Response:
        try:
            body = _SilenceBody.model_validate(req.json())
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InputError(f"silence: {'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg')}") \
                from exc
        matchers = [parse_matcher(m) if isinstance(m, str) else matcher_from_json(m) for m in body.matchers]
        now = engine.clock()
        starts = parse_rfc3339_ms(body.startsAt) if body.startsAt else now
        if body.endsAt:
            ends = parse_rfc3339_ms(body.endsAt)
        elif body.duration:
            try:
                ends = starts + int(parse_duration_s(body.duration) * 1000)
            except ValueError as exc:
                raise InputError(f"silence: duration: {exc}") from exc
        else:
            raise InputError("silence: give endsAt or duration")
        s = engine.add_silence(matchers, starts, ends, body.createdBy, body.comment)
        return Response.json({"status": "success", "silenceID": s.id, "data": s.to_json(now)})

    def delete_silence(req: Request) -> Response:
        try:
            s = engine.expire_silence(req.params["id"])
        except SilenceNotFound as exc:
            return Response.error(404, str(exc))
        return Response.json({"status": "success", "data": s.to_json(engine.clock())})

    def webhook(req: Request) -> Response:
        alerts = parse_webhook(req.json())
        changed = engine.receive(alerts, source="alertmanager")
        return Response.json({"status": "success", "received": len(alerts), "changed": changed})

    api.route("GET", "/api/v1/alerts", get_alerts)
    api.route("GET", "/api/v1/silences", get_silences)
    api.route("POST", "/api/v1/silences", post_silence, auth=True)
    api.route("DELETE", "/api/v1/silences/{id}", delete_silence, auth=True)
    api.route("POST", "/api/v1/alertmanager/webhook", webhook, auth=True)


def _event_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"fingerprint": row["fingerprint"], "rule": row["rule"], "alertname": row["alertname"],
            "state": row["state"], "time": format_ts_ms(int(row["ts_ms"])), "ts_ms": int(row["ts_ms"]),
            "labels": row["labels"], "annotations": row["annotations"], "value": row["value"],
            "silencedBy": row["silenced_by"]}


