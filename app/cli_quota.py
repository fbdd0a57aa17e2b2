"""``aiops quota plan|apply``: GPU priority quotas (remediation.gpu_quota) on the cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from aiops.errors import InputError
from aiops.state import StateDB
from app.cli import ConfigOption, app, handle_errors, open_state_db, settings_from
from app.cli_text import clean

if TYPE_CHECKING:
    from remediation.kube import Kube
    from remediation.settings import RemediationSettings

quota_app = typer.Typer(help="GPU shares per workload class as PriorityClasses and ResourceQuotas.",
                        no_args_is_help=True)
app.add_typer(quota_app, name="quota")


def _context(config: ConfigOption) -> tuple[RemediationSettings, Kube, StateDB]:
    from remediation.kube import Kube

    settings = settings_from(config)
    rs = settings.remediation
    if not rs.gpu_quota.enabled or not rs.gpu_quota.classes:
        raise InputError("remediation.gpu_quota: not enabled or no classes configured (see docs/quotas.md)")
    db = open_state_db(settings)
    return rs, Kube(rs.kubeconfig, rs.kube_context, rs.request_timeout_s), db


@quota_app.command("plan")
@handle_errors
def plan(config: ConfigOption = None) -> None:
    """Print what `aiops quota apply` would create or change (nothing is written)."""
    from remediation.quota import class_gpus, loans, plan_quota

    rs, kube, db = _context(config)
    try:
        policy = rs.gpu_quota
        have = class_gpus(policy, loans(db))
        for c in policy.classes:
            typer.echo(f"class {clean(c.name)}: {have[c.name]} of {policy.pool_gpus} GPUs "
                       f"(share {c.share:.0%}, priority {c.priority})")
        changes = plan_quota(policy, kube, db)
        for ch in changes:
            typer.echo(clean(ch.describe()))
        typer.echo(f"{len(changes)} change(s)" if changes else "the cluster matches the policy")
    finally:
        db.dispose()


@quota_app.command("apply")
@handle_errors
def apply(config: ConfigOption = None,
          by: Annotated[str, typer.Option(help="Who applies it, for the audit log.")] = "cli",
          dry_run: Annotated[bool, typer.Option("--dry-run", help="Audit the plan, change nothing.")] = False) -> None:
    """Create or change the PriorityClasses and ResourceQuotas the policy needs (audited; kill switch honoured)."""
    from remediation.quota import apply_quota

    rs, kube, db = _context(config)
    try:
        changes = apply_quota(rs, kube, db, f"cli:{by}", dry_run=dry_run)
        for ch in changes:
            typer.echo(("would " if dry_run else "") + clean(ch.describe()))
        typer.echo(f"{len(changes)} change(s) {'planned' if dry_run else 'applied'}" if changes
                   else "the cluster matches the policy")
    finally:
        db.dispose()
