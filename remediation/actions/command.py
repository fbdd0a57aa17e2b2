"""``command``: run a local command (no shell), only when ``remediation.allow_commands`` is true.

Exit status 0 is success; another status fails the run (its stderr, trimmed, is the error);
a timeout is retried.
"""

from __future__ import annotations

import subprocess  # nosec B404 - argv lists only, never a shell (see guards)
from typing import Any, ClassVar

from pydantic import Field

from aiops.errors import PermanentError, RemediationError, TemporaryError, trim
from remediation.actions.base import ActionContext, ActionParams, blast

__all__ = ["CommandAction", "CommandParams"]


class CommandParams(ActionParams):
    argv: list[str] = Field(min_length=1, description="Program and arguments; no shell is involved.")
    timeout_s: float = Field(60.0, gt=0, description="Kill the command after this many seconds.")
    rollback_argv: list[str] | None = Field(None, description="Command that undoes this one.")
    option_args: list[int] = Field(default_factory=list, description="Indexes of argv entries whose value from "
                                   "the alert may start with '-' (an option); elsewhere such values are refused.")


class _CommandFailed(PermanentError, RemediationError):
    pass


class _CommandTimeout(TemporaryError, RemediationError):
    pass


def _run(argv: list[str], timeout_s: float, ctx: ActionContext) -> dict[str, Any]:
    if not ctx.settings.allow_commands:
        raise _CommandFailed(f"command {argv[0]!r}: refused: remediation.allow_commands is false")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)  # nosec B603 - argv from the playbook, checked at load; no shell
    except subprocess.TimeoutExpired as exc:
        raise _CommandTimeout(f"command {argv[0]!r}: timed out after {timeout_s}s") from exc
    except OSError as exc:
        raise _CommandFailed(f"command {argv[0]!r}: cannot start: {exc}") from exc
    if done.returncode != 0:
        raise _CommandFailed(f"command {argv[0]!r}: exit status {done.returncode}: {trim(done.stderr)}")
    return {"exit_status": 0, "stdout": trim(done.stdout)}


class CommandAction:
    name: ClassVar[str] = "command"
    Params: ClassVar[type[ActionParams]] = CommandParams

    def plan(self, params: Any, ctx: ActionContext) -> dict[str, Any]:
        p: CommandParams = params
        return {"previous": {}, "target": {"argv": p.argv}, "blast": blast()}

    def apply(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        p: CommandParams = params
        return _run(p.argv, p.timeout_s, ctx)

    def rollback(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        p: CommandParams = params
        if p.rollback_argv is None:
            return {"rolled_back": False, "reason": "no rollback_argv configured"}
        return _run(p.rollback_argv, p.timeout_s, ctx)
