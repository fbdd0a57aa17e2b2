"""``aiops alerts`` and ``aiops silence add|list|expire``.

They work on the state database directly, or through a running agent's HTTP API when
``--agent-url`` is given (then a silence is also announced to ``alerting.silence_receiver``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from aiops.agentapi import local_token
from aiops.config import parse_duration_s
from aiops.errors import InputError, StoreError, trim
from aiops.model import now_ms
from aiops.state import StateDB
from aiops.timeutil import format_ts_ms, parse_time_ms
from app.cli import ConfigOption, app, handle_errors, open_state_db, settings_from
from app.cli_text import cell
from app.settings import Settings

silence_app = typer.Typer(help="Create, list and expire silences.", no_args_is_help=True)
app.add_typer(silence_app, name="silence")

AgentUrl = Annotated[str | None, typer.Option("--agent-url", help="Talk to a running agent "
                                              "(http://host:9321) instead of the state database.")]
Token = Annotated[str | None, typer.Option("--token", help="Bearer token of the agent's API (default: "
                                           "agent.api_token, or the token file the agent generated).")]
Fmt = Annotated[str, typer.Option("--format", help="table or json.")]


def _fmt(fmt: str) -> str:
    if fmt not in ("table", "json"):
        raise InputError(f"--format {fmt!r}: expected table or json")
    return fmt


def _db(settings: Settings) -> StateDB:
    return open_state_db(settings)


def _call(method: str, url: str, token: str | None, settings: Settings, **kw: Any) -> Any:
    tok = token or local_token(settings)
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    try:
        r = httpx.request(method, url, headers=headers, timeout=30, **kw)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise InputError(f"--agent-url: expected http://host:port, got {url.split('/api/')[0]!r}") from exc
    except (httpx.ConnectError, httpx.TimeoutException) as exc:
        raise StoreError(f"agent {url}: {exc} (is the agent running? start it with 'aiops run', "
                         "or check --agent-url)") from exc
    except httpx.HTTPError as exc:
        raise StoreError(f"agent {url}: {exc}") from exc
    if r.status_code >= 300:
        try:
            msg = r.json().get("error", r.text)
        except ValueError:
            msg = r.text
        hint = " (check --token, or agent.api_token in the config)" if r.status_code in (401, 403) else ""
        if r.status_code == 404 and "no route" in str(msg):
            hint = (" (that agent runs without alerting: it serves alerts and silences once its config has "
                    "alerting.rules, receivers or a route)")
        raise InputError(f"agent answered {r.status_code}: {trim(msg)}{hint}")
    return r.json()


@app.command()
@handle_errors
def alerts(
    state: Annotated[str | None, typer.Option(help="pending, firing, resolved or inactive.")] = None,
    name: Annotated[str | None, typer.Option(help="Alert name (alertname label).")] = None,
    label: Annotated[list[str] | None, typer.Option(help="Label filter key=value; repeatable.")] = None,
    since: Annotated[str, typer.Option(help="Oldest change to show: -24h, ISO-8601, epoch.")] = "-24h",
    limit: Annotated[int, typer.Option(help="Most rows.")] = 200,
    fmt: Fmt = "table",
    agent_url: AgentUrl = None,
    token: Token = None,
    config: ConfigOption = None,
) -> None:
    """Show the alert history: every state change, newest first.

    Example: aiops alerts --state firing --since -2h --label instance=gpu-node-7:9400
    """
    from alerting.api import parse_label_filters
    from alerting.history import AlertHistory

    _fmt(fmt)
    labels = parse_label_filters(label or [])
    since_ms = parse_time_ms(since)
    settings = settings_from(config)
    if agent_url:
        params: list[tuple[str, str]] = [("history", "1"), ("since", str(since_ms)), ("limit", str(limit))]
        params += [(k, v) for k, v in (("state", state), ("name", name)) if v]
        params += [("label", f"{k}={v}") for k, v in labels.items()]
        rows = _call("GET", agent_url.rstrip("/") + "/api/v1/alerts", token, settings, params=params)["data"]
    else:
        db = _db(settings)
        try:
            found = AlertHistory(db).query(state=state, name=name, labels=labels, since_ms=since_ms, limit=limit)
        finally:
            db.dispose()
        rows = [{"time": format_ts_ms(int(r["ts_ms"])), "ts_ms": int(r["ts_ms"]), "fingerprint": r["fingerprint"],
                 "alertname": r["alertname"], "state": r["state"], "labels": r["labels"],
                 "annotations": r["annotations"], "value": r["value"], "silencedBy": r["silenced_by"]}
                for r in found]
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table(title=f"alert history ({len(rows)} changes)", title_justify="left")
    for col in ("time (UTC)", "alertname", "state", "labels", "value", "silenced by"):
        table.add_column(col)
    for r in rows:
        shown = ",".join(f"{k}={v}" for k, v in sorted(r["labels"].items()) if k != "alertname")
        value = "" if r["value"] is None else f"{r['value']:.6g}"
        table.add_row(r["time"], cell(r["alertname"]), cell(r["state"]), cell(shown), value,
                      cell(r.get("silencedBy") or ""))
    Console(width=200).print(table)


@silence_app.command("add")
@handle_errors
def silence_add(
    matcher: Annotated[list[str], typer.Option("--matcher", "-m", help="Label matcher such as "
                                               "'alertname=\"HighCPU\"' (= != =~ !~); repeatable.")],
    duration: Annotated[str, typer.Option(help="How long it lasts: 30m, 2h, 1d.")] = "1h",
    author: Annotated[str, typer.Option(help="Who creates it.")] = "",
    comment: Annotated[str, typer.Option(help="Why.")] = "",
    start: Annotated[str, typer.Option(help="When it starts: now, ISO-8601, epoch.")] = "now",
    agent_url: AgentUrl = None,
    token: Token = None,
    config: ConfigOption = None,
) -> None:
    """Create a silence; prints its id.

    Example: aiops silence add -m 'alertname="HighGpuTemp"' -m 'instance="gpu-node-7:9400"' --duration 2h --author alice
    """
    from alerting.matchers import parse_matcher
    from alerting.silences import SilenceStore

    try:
        length_ms = int(parse_duration_s(duration) * 1000)
    except ValueError as exc:
        raise InputError(f"--duration: {exc}") from exc
    if length_ms <= 0:
        raise InputError(f"--duration: a silence must last longer than 0s, got {duration!r} (e.g. 30m, 2h)")
    matchers = [parse_matcher(m) for m in matcher]
    starts = parse_time_ms(start)
    settings = settings_from(config)
    if not author:
        raise InputError("silence add: --author is required (who creates it, e.g. --author \"$USER\")")
    if agent_url:
        body = {"matchers": matcher, "startsAt": format_ts_ms(starts), "endsAt": format_ts_ms(starts + length_ms),
                "createdBy": author, "comment": comment}
        sid = _call("POST", agent_url.rstrip("/") + "/api/v1/silences", token, settings, json=body)["silenceID"]
    else:
        db = _db(settings)
        try:
            sid = SilenceStore(db).add(matchers, starts, starts + length_ms, author, comment, now_ms=now_ms()).id
        finally:
            db.dispose()
    typer.echo(sid)


@silence_app.command("list")
@handle_errors
def silence_list(
    state: Annotated[str | None, typer.Option(help="pending, active or expired.")] = None,
    fmt: Fmt = "table",
    agent_url: AgentUrl = None,
    token: Token = None,
    config: ConfigOption = None,
) -> None:
    """List silences, newest first."""
    from alerting.silences import SilenceStore

    _fmt(fmt)
    settings = settings_from(config)
    if agent_url:
        params = {"state": state} if state else {}
        rows = _call("GET", agent_url.rstrip("/") + "/api/v1/silences", token, settings, params=params)["data"]
    else:
        db = _db(settings)
        try:
            now = now_ms()
            rows = [s.to_json(now) for s in SilenceStore(db).find(now, state)]
        finally:
            db.dispose()
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"silences ({len(rows)})", title_justify="left")
    for col in ("id", "state", "matchers", "starts", "ends", "author", "comment"):
        table.add_column(col)
    for r in rows:
        table.add_row(cell(r["id"]), cell(r["status"]["state"]), cell(r["matchersText"]), cell(r["startsAt"]),
                      cell(r["endsAt"]), cell(r["createdBy"]), cell(r["comment"]))
    Console(width=200).print(table)


@silence_app.command("expire")
@handle_errors
def silence_expire(
    silence_id: Annotated[str, typer.Argument(help="The silence's id (see 'aiops silence list').")],
    agent_url: AgentUrl = None,
    token: Token = None,
    config: ConfigOption = None,
) -> None:
    """Expire a silence now."""
    from alerting.silences import SilenceStore

    settings = settings_from(config)
    if agent_url:
        _call("DELETE", agent_url.rstrip("/") + f"/api/v1/silences/{silence_id}", token, settings)
    else:
        db = _db(settings)
        try:
            SilenceStore(db).expire(silence_id, now_ms())
        finally:
            db.dispose()
    typer.echo(f"expired {silence_id}")


from app import cli_notify as _cli_notify  # noqa: E402,F401  (aiops notify ...: delivery, by alertnotify)
