"""Playbook loading that catches mistakes (before: duplicate keys last-wins, only the first bad
file reported, ``replicas: 1e12`` and ``-3`` accepted, unknown receivers accepted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiops.errors import ConfigError
from remediation import load_playbooks

GOOD = """\
name: {name}
trigger: {{match: {{alertname: Slow}}}}
steps:
  - action: k8s_scale
    params: {{namespace: inference, name: llm, replicas: {replicas}}}
    escalate_to: {escalate}
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "pb", "dup", GOOD.format(name="dup", replicas='"+1"', escalate="ops")
                 + "    approval: true\n    approval: false\n")
    with pytest.raises(ConfigError, match=r"dup.yaml line 8: not valid YAML: duplicate key 'approval' "
                                          r"\(first on line 7\)"):
        load_playbooks([path])


def test_every_error_of_every_file_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "pb"
    write(folder, "a", GOOD.format(name="a", replicas="-3", escalate="ops"))
    write(folder, "b", GOOD.format(name="b", replicas="1000000000000", escalate="ops"))
    write(folder, "d", GOOD.format(name="d", replicas='"+1"', escalate="nobody"))
    write(folder, "c", GOOD.format(name="c", replicas='"+1"', escalate="ops").replace("k8s_scale", "reboot"))
    write(folder, "ok", GOOD.format(name="ok", replicas='"+1"', escalate="ops"))
    with pytest.raises(ConfigError) as exc:
        load_playbooks([folder], receivers=["ops"])
    lines = str(exc.value).splitlines()
    assert any(line.startswith(f"{folder / 'a.yaml'}: steps[0].params.replicas: a replica count cannot be negative")
               for line in lines), lines
    assert any(f"{folder / 'b.yaml'}: steps[0].params.replicas: " in line and "int32" in line for line in lines)
    assert any(f"{folder / 'd.yaml'}: steps[0].escalate_to: unknown receiver 'nobody'" in line for line in lines)
    assert any(f"{folder / 'c.yaml'}: steps[0].action: unknown action 'reboot'" in line for line in lines)
    assert not any("ok.yaml" in line for line in lines)


def test_unknown_notify_receiver_and_approval_action(tmp_path: Path) -> None:
    path = write(tmp_path / "pb", "n", """\
name: n
trigger: {}
guards: {require_approval: [k8s_reboot]}
steps:
  - action: notify
    params: {receiver: team-chat, message: hi}
""")
    with pytest.raises(ConfigError) as exc:
        load_playbooks([path], receivers=["ops"])
    text = str(exc.value)
    assert "steps[0].params.receiver: unknown receiver 'team-chat' (alerting.receivers: ops)" in text
    assert "guards.require_approval[0]: unknown action 'k8s_reboot'" in text
    assert load_playbooks([write(tmp_path / "pb", "n", path.read_text().replace("k8s_reboot", "notify")
                                 .replace("team-chat", "ops"))], receivers=["ops"])[0].name == "n"
