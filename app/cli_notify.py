"""``aiops notify test|outbox|retry``: check a receiver, inspect and re-queue the outbox.

``test`` renders the example notification and sends it to one receiver right away (not
through the outbox), so a wrong webhook URL or secret shows up before an alert needs it.
``outbox`` lists rows of the state database's outbox; ``retry`` puts failed rows back in the
queue (a running agent picks them up within ``alerting.delivery.poll_interval_s``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from aiops.errors import ConfigError, InputError
from aiops.state import StateDB
from aiops.timeutil import format_ts_ms
from app.cli import ConfigOption, app, handle_errors, settings_from
from app.cli_text import cell

notify_app = typer.Typer(help="Test receivers; list and re-queue outbox rows.", no_args_is_help=True)
app.add_typer(notify_app, name="notify")


def _db(url: str) -> StateDB:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    db = StateDB(url)
    db.create_all()
    return db


@notify_app.command("test")
@handle_errors
def notify_test(
    receiver: Annotated[str, typer.Argument(help="Name of a receiver in alerting.receivers.")],
    config: ConfigOption = None,
    resolved: Annotated[bool, typer.Option("--resolved", help="Send the resolved version of the example.")] = False,
) -> None:
    """Send the example notification to RECEIVER now and say whether it arrived.

    Example: aiops notify test ops-slack, then aiops notify test ops-slack --resolved
    """
    import dataclasses

    from alerting.notifiers import build_notifier, parse_receivers
    from alerting.notifiers.samples import example_notification

    settings = settings_from(config)
    configs = {c.name: c for c in parse_receivers(settings.alerting.receivers)}
    if receiver not in configs:
        known = ", ".join(sorted(configs)) or "none configured"
        raise ConfigError(f"receiver {receiver!r} is not in alerting.receivers (known: {known})")
    notifier = build_notifier(configs[receiver], base_url=settings.dashboard.base_url)
    n = dataclasses.replace(example_notification(resolved=resolved), receiver=receiver, external_url="")
    notifier.send(notifier.render(n))
    typer.echo(f"sent the example notification to {receiver} ({notifier.target})")


@notify_app.command("outbox")
@handle_errors
def notify_outbox(
    config: ConfigOption = None,
    status: Annotated[str | None, typer.Option(help="Only rows with this status: queued, sending, sent, "
                                               "failed, held_back, skipped.")] = None,
    receiver: Annotated[str | None, typer.Option(help="Only rows for this receiver.")] = None,
    limit: Annotated[int, typer.Option(help="Newest rows shown.")] = 50,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """List outbox rows, newest first, with status, attempts and the last error."""
    from sqlalchemy import select

    from aiops.notification import outbox

    if fmt not in ("table", "json"):
        raise InputError(f"--format {fmt!r}: expected table or json")
    settings = settings_from(config)
    db = _db(settings.store.state_db_url())
    q = select(outbox.c.id, outbox.c.receiver, outbox.c.group_key, outbox.c.status, outbox.c.attempts,
               outbox.c.created_ms, outbox.c.sent_ms, outbox.c.held_back, outbox.c.merged_into, outbox.c.last_error)
    if status:
        q = q.where(outbox.c.status == status)
    if receiver:
        q = q.where(outbox.c.receiver == receiver)
    with db.begin() as conn:
        rows = [dict(r._mapping) for r in conn.execute(q.order_by(outbox.c.id.desc()).limit(limit))]
    db.dispose()
    if fmt == "json":
        typer.echo(json.dumps(rows))
        return
    table = Table("id", "receiver", "status", "attempts", "created", "sent", "held back", "group / last error")
    for r in rows:
        table.add_row(str(r["id"]), cell(r["receiver"]), cell(r["status"]), str(r["attempts"]),
                      format_ts_ms(r["created_ms"]), format_ts_ms(r["sent_ms"]) if r["sent_ms"] else "",
                      str(r["held_back"] or "") + (f"→{r['merged_into']}" if r["merged_into"] else ""),
                      cell(r["last_error"] or r["group_key"]))
    Console(width=200).print(table)


@notify_app.command("retry")
@handle_errors
def notify_retry(
    ids: Annotated[list[int] | None, typer.Argument(help="Outbox row ids (default: every failed row).")] = None,
    config: ConfigOption = None,
    receiver: Annotated[str | None, typer.Option(help="Only failed rows of this receiver.")] = None,
) -> None:
    """Put failed outbox rows back in the queue."""
    from alerting.outbox import requeue_failed

    settings = settings_from(config)
    db = _db(settings.store.state_db_url())
    count = requeue_failed(db, ids=ids or None, receiver=receiver)
    db.dispose()
    typer.echo(f"re-queued {count} failed notification{'s' if count != 1 else ''}")
