"""Playbooks load with every field checked; bad ones are rejected naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiops.errors import ConfigError
from aiops.model import Alert, AlertState
from remediation import load_playbook_file, load_playbooks, target_replicas
from remediation.template import render_tree

REPO = Path(__file__).resolve().parents[2]

GOOD = """
name: scale
trigger: {match: {alertname: Slow}}
steps:
  - action: k8s_scale
    params: {name: "{{ $labels.deployment }}", namespace: inference, replicas: "+2"}
  - action: notify
    params: {receiver: oncall, message: "scaled {{ $labels.deployment }}"}
"""


def write(tmp_path: Path, text: str, name: str = "pb.yaml") -> Path:
    path = tmp_path / "playbooks" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_example_playbooks_in_deploy_are_valid() -> None:
    found = load_playbooks([REPO / "deploy" / "playbooks"])
    names = {p.name for p in found}
    assert {"inference-scale-up", "inference-scale-down", "inference-restart-on-gpu-xid"} <= names
    restart = next(p for p in found if p.name == "inference-restart-on-gpu-xid")
    assert restart.needs_approval(1) and not restart.needs_approval(0)
    down = next(p for p in found if p.name == "inference-scale-down")
    assert down.trigger.state == "resolved" and down.steps[0].delay_s == 900


def test_good_playbook_renders_from_the_alert(tmp_path: Path) -> None:
    (pb,) = load_playbook_file(write(tmp_path, GOOD))
    a = Alert.of({"alertname": "Slow", "deployment": "llm"})
    assert pb.trigger.matches(a)
    assert not pb.trigger.matches(Alert.of({"alertname": "Slow"}, state=AlertState.RESOLVED))
    assert render_tree(pb.steps[0].params, a)["name"] == "llm"


@pytest.mark.parametrize(("body", "expected"), [
    # unknown action
    ("name: x\ntrigger: {}\nsteps:\n  - action: k8s_scale\n    params: {name: a, replicas: 2}\n"
     "  - action: reboot_cluster\n",
     "pb.yaml: steps[1].action: unknown action 'reboot_cluster'"),
    # bad template: unknown variable
    ("name: x\ntrigger: {}\nsteps:\n  - action: k8s_scale\n    params: {name: '{{ label.deployment }}', replicas: 2}\n",
     "pb.yaml: steps[0].params.name: template '{{ label.deployment }}': unknown variable 'label.deployment'"),
    # the spelling before playbooks shared the rules' syntax: the message shows the new one
    ("name: x\ntrigger: {}\nsteps:\n  - action: k8s_scale\n"
     "    params: {name: '{{ labels.deployment }}', replicas: 2}\n",
     "pb.yaml: steps[0].params.name: template '{{ labels.deployment }}': write '{{ $labels.deployment }}'"),
    # bad template: unbalanced braces
    ("name: x\ntrigger: {}\nsteps:\n  - action: notify\n    params: {receiver: a, message: 'up {{ value'}\n",
     "pb.yaml: steps[0].params.message: template 'up {{ value': unbalanced"),
    # missing field of the action
    ("name: x\ntrigger: {}\nsteps:\n  - action: k8s_scale\n    params: {name: a}\n",
     "pb.yaml: steps[0].params.replicas: missing (required by k8s_scale)"),
    # missing field of the playbook
    ("trigger: {}\nsteps:\n  - action: notify\n    params: {receiver: a, message: b}\n", "pb.yaml: name: missing"),
    # bad static value
    ("name: x\ntrigger: {}\nsteps:\n  - action: k8s_scale\n    params: {name: a, replicas: '++2'}\n",
     "pb.yaml: steps[0].params.replicas: expected a count"),
    # unknown parameter
    ("name: x\ntrigger: {}\nsteps:\n  - action: k8s_scale\n    params: {name: a, replicas: 2, force: true}\n",
     "pb.yaml: steps[0].params.force: unknown parameter of k8s_scale"),
    # unknown key in the playbook
    ("name: x\ntrigger: {}\nsteps: [{action: notify, params: {receiver: a, message: b}}]\nguard: {}\n",
     "pb.yaml: guard: unknown key"),
    # bad guard value
    ("name: x\ntrigger: {}\nsteps: [{action: notify, params: {receiver: a, message: b}}]\nguards: {cooldown_s: soon}\n",
     "pb.yaml: guards.cooldown_s: expected a duration"),
    # cross-field check on static params
    ("name: x\ntrigger: {}\nsteps:\n  - action: k8s_scale\n"
     "    params: {name: a, replicas: 2, min_replicas: 5, max_replicas: 3}\n",
     "pb.yaml: steps[0].params: min_replicas 5 > max_replicas 3"),
    # verification needs one threshold
    ("name: x\ntrigger: {}\nsteps:\n  - action: k8s_scale\n    params: {name: a, replicas: 2}\n"
     "    verify: {query: up}\n",
     "pb.yaml: steps[0].verify: give exactly one of below or above"),
    # not YAML
    ("name: x\n  steps: [\n", "pb.yaml line"),
])
def test_bad_playbooks_are_rejected_naming_file_and_field(tmp_path: Path, body: str, expected: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load_playbook_file(path)
    assert str(path) in str(err.value)
    assert expected.replace("pb.yaml", str(path)) in str(err.value), str(err.value)


def test_duplicate_names_across_files_are_rejected(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD, "b.yaml")
    with pytest.raises(ConfigError, match=r"b\.yaml: name: playbook 'scale' is also defined in .*a\.yaml"):
        load_playbooks([tmp_path / "playbooks"])


def test_cli_validates_playbooks(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    bad = write(tmp_path, "name: x\ntrigger: {}\nsteps: [{action: nope}]\n")
    done = run_cli("playbooks", str(bad))
    assert done.returncode == 1
    assert f"{bad}: steps[0].action: unknown action 'nope'" in done.stderr.replace("\n", "")
    ok = run_cli("playbooks", str(REPO / "deploy" / "playbooks"))
    assert ok.returncode == 0 and "inference-scale-up" in ok.stdout


@given(current=st.integers(0, 1000), low=st.integers(0, 50), span=st.integers(0, 50),
       spec=st.sampled_from(["+2", "-1", "x2", "x0.5", "7", "0", "+100"]))
def test_scale_target_is_always_clamped(current: int, low: int, span: int, spec: str) -> None:
    got = target_replicas(current, spec, low, low + span)
    assert low <= got <= low + span
