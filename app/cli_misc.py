"""Miscellaneous commands: ``aiops demo``, ``aiops hash-password``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from aiops.errors import InputError
from app.cli import app, handle_errors

__all__ = ["demo", "hash_password_cmd"]


@app.command()
@handle_errors
def demo(
    fast: Annotated[bool, typer.Option(help="Short intervals and cooldowns (about 15 s instead of a minute).")] = False,
    workdir: Annotated[Path | None, typer.Option(help="Where the store, config, playbooks and logs go "
                                                 "(default: a temporary folder, removed afterwards).")] = None,
    overlay: Annotated[Path | None, typer.Option(help="A YAML file merged over the generated configuration "
                                                 "(extra receivers, tokens, ...).")] = None,
) -> None:
    """Run the closed loop locally: load spike -> alert -> scale-out -> recovery -> scale-in.

    Everything runs on 127.0.0.1: a fake Kubernetes API server with a Deployment, a simulated
    GPU inference service, and the agent with a p99-latency alert rule and scaling playbooks.
    Prints a timeline; exits 1 if the loop did not close within its time limit.
    """
    from app.cli_demo import FAST, NORMAL, run_demo

    timings = FAST if fast else NORMAL
    extra = _overlay(overlay)
    if workdir is not None:
        result = run_demo(workdir, timings, typer.echo, overlay=extra)
    else:
        with tempfile.TemporaryDirectory(prefix="aiops-demo-") as tmp:
            result = run_demo(Path(tmp), timings, typer.echo, overlay=extra)
    if not result.complete:
        raise typer.Exit(1)
    typer.echo(f"closed loop complete in {max(result.reached.values()):.1f}s")


def _overlay(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"--overlay {path}: {exc.__class__.__name__}") from None
    if not isinstance(data, dict):
        raise InputError(f"--overlay {path}: expected a mapping of sections")
    return data


@app.command("hash-password")
@handle_errors
def hash_password_cmd(
    # a default (never used: the prompt asks) so that --help does not call the option "required"
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, show_default=False,
                                          help="At least 8 characters. Leave it out to be asked twice "
                                               "(never echoed, and kept out of the shell's history).")] = "",
) -> None:
    """Print an argon2id hash for dashboard.users[].password_hash.

    Example: aiops hash-password, then paste the line it prints into dashboard.users[].password_hash
    """
    from aiops.httpauth import hash_password

    if len(password) < 8:
        raise InputError("password: shorter than 8 characters")
    typer.echo(hash_password(password))
