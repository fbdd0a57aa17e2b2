"""``aiops actions``, ``approve``, ``reject``, ``killswitch``, ``playbooks`` and ``worker``: remediation commands."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from aiops.errors import InputError
from aiops.logs import configure_logging
from aiops.state import StateDB
from aiops.timeutil import format_ts_ms, parse_time_ms
from app.cli import ConfigOption, app, handle_errors, open_state_db, settings_from
from app.cli_text import cell, clean
from app.settings import Settings

__all__: list[str] = []


def _db(settings: Settings) -> StateDB:
    return open_state_db(settings)


def _celery_dispatch(settings: Settings) -> Any:
    """A dispatch function when a broker is configured; None leaves approved runs to the agent's sweeper."""
    if settings.remediation.broker_url is None:
        return None
    from remediation import build_dispatch

    dispatch, _ = build_dispatch(settings, _db(settings))
    return dispatch


@app.command()
@handle_errors
def actions(
    status: Annotated[str | None, typer.Option(help="Only runs in these statuses (comma-separated), "
                                               "e.g. pending_approval,failed.")] = None,
    playbook: Annotated[str | None, typer.Option(help="Only runs of this playbook.")] = None,
    since: Annotated[str | None, typer.Option(help="Only runs created after: '-1h', ISO-8601 or epoch.")] = None,
    limit: Annotated[int, typer.Option(help="Most runs shown, newest first.")] = 100,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    config: ConfigOption = None,
) -> None:
    """List action runs from the audit log (planned, refused, pending, applied, rolled back, ...)."""
    from remediation import RunStore

    if fmt not in ("table", "json"):
        raise InputError(f"--format {fmt!r}: expected table or json")
    settings = settings_from(config)
    runs = RunStore(_db(settings)).list(status=(status or "").split(","), playbook=playbook,
                                        since_ms=parse_time_ms(since) if since else 0, limit=limit)
    if fmt == "json":
        typer.echo(json.dumps([r.as_json() for r in runs], default=str, indent=1))
        return
    table = Table(title=f"{len(runs)} action runs", title_justify="left")
    for col in ("id", "created (UTC)", "playbook", "step", "action", "status", "approved by", "took", "detail"):
        table.add_column(col)
    for r in runs:
        took = f"{(r.finished_ms - r.started_ms) / 1000:.2f}s" if r.finished_ms and r.started_ms else ""
        detail = r.error or json.dumps((r.result or {}), default=str)[:60]
        table.add_row(r.id[:12], format_ts_ms(r.created_ms), cell(r.playbook), str(r.step), cell(r.action),
                      r.status.value + (" (dry run)" if r.dry_run and r.status.value != "dry_run" else ""),
                      cell(r.approved_by or ""), took, cell(detail))
    Console(width=200).print(table)


def _full_id(db: StateDB, run_id: str) -> str:
    """The run id that ``run_id`` (a whole id or a unique prefix) names."""
    from remediation.reads import run_ids_by_prefix

    if len(run_id) >= 32:
        return run_id
    matches = run_ids_by_prefix(db, run_id)
    if len(matches) != 1:
        raise InputError(f"action run {run_id!r}: {'no' if not matches else 'several'} runs match")
    return matches[0]


@app.command()
@handle_errors
def approve(
    run_id: Annotated[str, typer.Argument(help="Action run id (or a unique prefix, as 'aiops actions' shows).")],
    by: Annotated[str, typer.Option("--by", help="Who approves (recorded in the audit log).")],
    config: ConfigOption = None,
) -> None:
    """Approve a run pending approval; it then runs (via the broker, or the agent picks it up).

    Example: aiops actions --status pending_approval, then aiops approve 3f2a --by alice
    """
    from remediation import approve as do_approve

    settings = settings_from(config)
    db = _db(settings)
    run = do_approve(db, _full_id(db, run_id), by, _celery_dispatch(settings))
    typer.echo(f"{run.id}: {run.status.value} (approved by {clean(by)})")


@app.command()
@handle_errors
def reject(
    run_id: Annotated[str, typer.Argument(help="Action run id (or a unique prefix).")],
    by: Annotated[str, typer.Option("--by", help="Who rejects (recorded in the audit log).")],
    config: ConfigOption = None,
) -> None:
    """Reject a run pending approval; the playbook's later steps are refused."""
    from remediation import reject as do_reject

    settings = settings_from(config)
    db = _db(settings)
    run = do_reject(db, _full_id(db, run_id), by)
    typer.echo(f"{run.id}: {run.status.value} (rejected by {clean(by)})")


@app.command()
@handle_errors
def killswitch(
    state: Annotated[str, typer.Argument(help="on, off or status.")] = "status",
    by: Annotated[str, typer.Option("--by", help="Who flips it (audited).")] = "cli",
    config: ConfigOption = None,
) -> None:
    """Turn the global remediation kill switch on or off for every agent and worker."""
    from remediation import kill_switch_on, set_kill_switch

    if state not in ("on", "off", "status"):
        raise InputError(f"state {state!r}: expected on, off or status")
    settings = settings_from(config)
    db = _db(settings)
    if state != "status":
        set_kill_switch(db, state == "on", by)
    typer.echo(f"kill switch: {'on' if kill_switch_on(settings.remediation, db) else 'off'}")


@app.command()
@handle_errors
def playbooks(
    paths: Annotated[list[Path] | None, typer.Argument(help="Playbook files or folders "
                                                        "(default: remediation.playbooks).")] = None,
    config: ConfigOption = None,
) -> None:
    """Validate playbooks and list them; a bad one gets an error naming the file and the field."""
    from remediation import load_playbooks

    settings = settings_from(config)
    receivers = [str(r.get("name")) for r in settings.alerting.receivers if isinstance(r, dict)]
    # receivers are checked against a configuration's alerting.receivers; a bare folder of
    # playbooks validated without one is checked for everything else
    found = load_playbooks(list(paths) if paths else settings.remediation.playbooks,
                           receivers=receivers if (config is not None or receivers) else None)
    for pb in found:
        steps = ", ".join(s.action for s in pb.steps)
        typer.echo(f"{pb.name}: on {pb.trigger.state} {pb.trigger.match or pb.trigger.match_re}: {steps} ({pb.source})")


@app.command()
@handle_errors
def rbac(
    playbook_paths: Annotated[list[Path] | None, typer.Option(
        "--playbooks", help="Playbook files or folders (repeatable; default: remediation.playbooks).")] = None,
    service_account: Annotated[str, typer.Option(
        help="NAMESPACE/NAME of the ServiceAccount the workers (or an in-process agent) run as.")]
        = "aiops/aiops-remediator",
    config: ConfigOption = None,
) -> None:
    """Print the least-privilege Kubernetes RBAC (Roles, bindings) that the playbooks' actions need.

    Only the calls the configured actions make, only in the namespaces the playbooks name
    (a templated namespace needs guards.namespaces); a ClusterRole only when a playbook cordons.
    """
    from remediation import load_playbooks
    from remediation.rbac import render_rbac, required_permissions, underived_steps

    ns, sep, name = service_account.partition("/")
    if not sep or not ns or not name:
        raise InputError(f"--service-account {service_account!r}: expected NAMESPACE/NAME")
    paths = list(playbook_paths) if playbook_paths else settings_from(config).remediation.playbooks
    found = load_playbooks(paths)
    perms = required_permissions(found)
    gaps = underived_steps(found)
    for gap in gaps:
        typer.secho(f"warning: {gap}: permissions not derivable from the playbook, not granted", err=True,
                    fg="yellow")
    source = " ".join(str(p) for p in paths)
    typer.echo(render_rbac(perms, sa_namespace=ns, sa_name=name, source=source, underived=gaps), nl=False)


@app.command()
@handle_errors
def worker(
    config: ConfigOption = None,
    concurrency: Annotated[int, typer.Option(help="Parallel actions in this worker.")] = 2,
    pool: Annotated[str, typer.Option(help="Celery pool: prefork, threads or solo.")] = "prefork",
    hostname: Annotated[str | None, typer.Option(help="Worker name (default: aiops@HOST-PID).")] = None,
) -> None:
    """Run a Celery worker that executes remediation actions from remediation.broker_url."""
    from app.wiring import provide_contracts
    from remediation.celery_app import make_celery
    from remediation.executor import Executor
    from remediation.tasks import celery_dispatch, set_executor_factory

    provide_contracts()

    if pool not in ("prefork", "threads", "solo"):
        raise InputError(f"--pool {pool!r}: expected prefork, threads or solo")
    settings = settings_from(config)
    configure_logging(settings.agent.log_level)
    rs = settings.remediation
    capp = make_celery(rs)
    _db(settings).dispose()  # create the tables once, before any child process needs them

    def factory() -> Executor:
        return Executor(rs, StateDB(settings.store.state_db_url()), settings.store,
                        dispatch=celery_dispatch(capp, rs.queue))

    set_executor_factory(capp, factory)
    name = hostname or f"aiops@{socket.gethostname()}-{os.getpid()}"
    capp.worker_main(["worker", f"--loglevel={settings.agent.log_level}", "-Q", rs.queue, "--pool", pool,
                      "--concurrency", str(concurrency), "-n", name, "--without-gossip", "--without-mingle",
                      "--without-heartbeat"])
