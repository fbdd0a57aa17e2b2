"""``ansible``: run an Ansible playbook through ``ansible-runner`` (no shell anywhere).

The playbook, the project directory and the inventory are fixed in the playbook YAML: alert
content can never choose what runs. Alert values reach Ansible only as ``extra_vars`` (data,
never command lines) and as ``limit``, which must name hosts of the configured inventory.
Extra vars with control characters, or longer than 1,024 characters, are refused.

``check: true`` runs ``ansible-playbook --check`` (Ansible's dry run); the result records the
status, the exit code and the ``changed`` / ``failed`` / ``unreachable`` host counts, which the
executor writes to the audit log. A failed play fails the run; a timeout is retried. Like
``command``, the action runs only when ``remediation.allow_commands`` is true.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from aiops.errors import PermanentError, RemediationError, TemporaryError, trim
from remediation.actions.base import ActionContext, ActionParams, blast

__all__ = ["AnsibleAction", "AnsibleParams"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_HOST = re.compile(r"^[A-Za-z0-9_.:\-\[\]]+$")


class AnsibleParams(ActionParams):
    project_dir: str = Field(min_length=1, description="Directory holding the playbooks (and roles).")
    playbook: str = Field(min_length=1, description="Playbook file, relative to project_dir.")
    inventory: str | None = Field(None, description="Inventory file, relative to project_dir.")
    hosts: list[str] = Field(default_factory=list, description="Inline inventory: host names (instead of a file).")
    connection: Literal["ssh", "local"] = Field("ssh", description="ansible_connection of inline hosts.")
    limit: str | None = Field(None, description="Restrict the play to these hosts (comma-separated); they must "
                              "be inventory hosts.")
    extra_vars: dict[str, str | int | float | bool] = Field(default_factory=dict,
                                                            description="Variables passed to the play.")
    check: bool = Field(False, description="Dry run: ansible-playbook --check.")
    timeout_s: float = Field(600.0, gt=0, le=86_400, description="Stop the play after this many seconds.")

    @field_validator("extra_vars")
    @classmethod
    def _plain_values(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key, value in v.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"extra_vars key {key!r} is not a valid Ansible variable name")
            if isinstance(value, str) and (_CONTROL.search(value) or len(value) > 1024):
                raise ValueError(f"extra_vars.{key}: control characters or over 1,024 characters are refused")
        return v

    @field_validator("hosts")
    @classmethod
    def _host_names(cls, v: list[str]) -> list[str]:
        for h in v:
            if not _HOST.match(h):
                raise ValueError(f"hosts: {h!r} is not a host name")
        return v


class _PlayFailed(PermanentError, RemediationError):
    pass


class _PlayTimeout(TemporaryError, RemediationError):
    pass


def _inside(root: Path, rel: str, what: str) -> Path:
    path = (root / rel).resolve()
    if root != path and root not in path.parents:
        raise _PlayFailed(f"ansible: {what} {rel!r} is outside project_dir")
    if not path.is_file():
        raise _PlayFailed(f"ansible: {what} {rel!r} not found in project_dir")
    return path


def _inventory_hosts(p: AnsibleParams, inventory: Path | None) -> set[str]:
    if inventory is None:
        return set(p.hosts)
    hosts: set[str] = set()
    for line in inventory.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            hosts.add(line.split()[0])
    return hosts


class AnsibleAction:
    name: ClassVar[str] = "ansible"
    Params: ClassVar[type[ActionParams]] = AnsibleParams

    def plan(self, params: Any, ctx: ActionContext) -> dict[str, Any]:
        p: AnsibleParams = params
        root = Path(p.project_dir).resolve()
        _inside(root, p.playbook, "playbook")
        inventory = _inside(root, p.inventory, "inventory") if p.inventory else None
        known = _inventory_hosts(p, inventory)
        limit = [h.strip() for h in (p.limit or "").split(",") if h.strip()]
        unknown = sorted(set(limit) - known)
        if unknown:
            raise _PlayFailed(f"ansible: limit names hosts not in the inventory: {', '.join(unknown)}")
        targets = limit or sorted(known)
        return {"previous": {}, "target": {"playbook": p.playbook, "hosts": targets, "check": p.check,
                                           "extra_vars": dict(p.extra_vars)},
                "blast": {**blast(), "hosts": len(targets)}}

    def apply(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        p: AnsibleParams = params
        if not ctx.settings.allow_commands:
            raise _PlayFailed("ansible: refused: remediation.allow_commands is false")
        import ansible_runner  # imported when used: a heavy dependency of this one action

        root = Path(p.project_dir).resolve()
        playbook = _inside(root, p.playbook, "playbook")
        if p.inventory:
            inventory: str = str(_inside(root, p.inventory, "inventory"))
        else:
            inventory = "\n".join(f"{h} ansible_connection={p.connection}" for h in p.hosts) + "\n"
        with tempfile.TemporaryDirectory(prefix="aiops-ansible-") as private:
            runner = ansible_runner.run(
                private_data_dir=private, project_dir=str(root), playbook=str(playbook), inventory=inventory,
                extravars=dict(p.extra_vars), limit=",".join(plan["target"]["hosts"]) or None,
                cmdline="--check" if p.check else None, timeout=int(max(1, p.timeout_s)), quiet=True,
                envvars={"ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
                settings={"suppress_ansible_output": True})
            stats = runner.stats or {}
            output = runner.stdout.read() if runner.stdout else ""
        result = {
            "status": runner.status, "rc": runner.rc, "check": p.check,
            "changed": len(stats.get("changed", {})), "failed": len(stats.get("failures", {})),
            "unreachable": len(stats.get("dark", {})), "ok": len(stats.get("ok", {})),
            "output": trim(output, 2000),
        }
        if runner.status == "timeout":
            raise _PlayTimeout(f"ansible {p.playbook}: timed out after {p.timeout_s:g}s")
        if runner.status != "successful":
            raise _PlayFailed(f"ansible {p.playbook}: {runner.status} (rc {runner.rc}): {result['failed']} failed, "
                              f"{result['unreachable']} unreachable host(s): {trim(output, 300)}")
        return result

    def rollback(self, params: Any, plan: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
        return {"rolled_back": False, "reason": "an Ansible play has no generic undo; write a playbook for it"}
