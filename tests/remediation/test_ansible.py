"""The ``ansible`` action, for real: ansible-core through ansible-runner against localhost."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from rem_helpers import alert, playbook, wait_status

from aiops.errors import ConfigError
from aiops.model import ActionStatus
from aiops.state import StateDB
from remediation import RunStore

pytestmark = pytest.mark.skipif(shutil.which("ansible-playbook") is None,
                                reason="ansible-core (ansible-playbook) is a test dependency and is not installed")

PLAY = """
- hosts: all
  gather_facts: false
  tasks:
    - name: mark the node as drained
      copy:
        content: "{{ node }}\\n"
        dest: "{{ out }}"
    - name: fail on request
      fail: {msg: "asked to fail"}
      when: fail_now | default(false) | bool
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "ansible"
    root.mkdir()
    (root / "drain.yml").write_text(PLAY)
    (root / "hosts.ini").write_text(
        f"[gpu]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    return root




def _step(project: Path, out: Path, **params: Any) -> dict[str, Any]:
    return {"action": "ansible", "params": {"project_dir": str(project), "playbook": "drain.yml",
                                            "inventory": "hosts.ini", "limit": "localhost",
                                            "extra_vars": {"node": "{{ $labels.node }}", "out": str(out)},
                                            "timeout_s": 120, **params}}


def test_play_runs_with_alert_values_as_vars_and_counts_changes(component: Any, db: StateDB, project: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "drained.txt"
    check = component([playbook([_step(project, out, check=True)], name="check")], allow_commands=True)
    (rid,) = check.on_alerts([alert(starts_at_ms=1, node="gpu-node-7; rm -rf /")])
    run = wait_status(db, rid, ActionStatus.APPLIED, ActionStatus.FAILED, timeout_s=120)
    assert run.status is ActionStatus.APPLIED, run.error
    assert not out.exists()  # --check changed nothing
    comp = component([playbook([_step(project, out)], name="drain")], allow_commands=True)
    (rid,) = comp.on_alerts([alert(starts_at_ms=2, node="gpu-node-7; rm -rf /")])
    run = wait_status(db, rid, ActionStatus.APPLIED, ActionStatus.FAILED, timeout_s=120)
    assert run.status is ActionStatus.APPLIED, run.error
    assert out.read_text() == "gpu-node-7; rm -rf /\n"  # the label is data, never a command
    result = RunStore(db).get(rid).result or {}
    assert result["changed"] == 1 and result["failed"] == 0 and result["status"] == "successful"


def test_failed_play_fails_the_run_with_counts(component: Any, db: StateDB, project: Path, tmp_path: Path) -> None:
    step = _step(project, tmp_path / "x.txt")
    step["params"]["extra_vars"]["fail_now"] = True
    comp = component([playbook([step])], allow_commands=True)
    (rid,) = comp.on_alerts([alert(starts_at_ms=3, node="n1")])
    run = wait_status(db, rid, ActionStatus.FAILED, timeout_s=120)
    assert "1 failed" in (run.error or "")


def test_limit_must_name_inventory_hosts_and_commands_must_be_allowed(component: Any, db: StateDB,
                                                                      project: Path, tmp_path: Path) -> None:
    step = _step(project, tmp_path / "x.txt", limit="{{ $labels.node }}")
    comp = component([playbook([step])], allow_commands=True)
    (rid,) = comp.on_alerts([alert(starts_at_ms=4, node="evil.example.com")])
    run = wait_status(db, rid, ActionStatus.FAILED, ActionStatus.REFUSED, timeout_s=60)
    assert "not in the inventory: evil.example.com" in (run.error or "")
    outside = component([playbook([_step(project, tmp_path / "x.txt", playbook="../drain.yml")], name="out")],
                        allow_commands=True)
    (rid,) = outside.on_alerts([alert(starts_at_ms=6, node="n1")])
    run = wait_status(db, rid, ActionStatus.FAILED, ActionStatus.REFUSED, timeout_s=60)
    assert "outside project_dir" in (run.error or "")
    off = component([playbook([_step(project, tmp_path / "x.txt")], name="off")])
    (rid,) = off.on_alerts([alert(starts_at_ms=5, node="n1")])
    run = wait_status(db, rid, ActionStatus.FAILED, ActionStatus.REFUSED, timeout_s=60)
    assert "allow_commands is false" in (run.error or "")


def test_control_characters_in_vars_are_refused_at_load(project: Path) -> None:
    with pytest.raises(ConfigError, match="control characters"):
        playbook([{"action": "ansible", "params": {"project_dir": str(project), "playbook": "drain.yml",
                                                   "extra_vars": {"x": "a\x1bb"}}}])
