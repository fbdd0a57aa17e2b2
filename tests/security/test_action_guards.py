"""Alert content cannot choose where an action goes or what it runs: the attacks of issue 10 on a real agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from aiops.errors import ConfigError
from remediation.playbook import load_playbooks
from tests.security.support import (
    auth,
    capture_server,
    healthy,
    running_agent,
    settings_for,
    wait_for,
    webhook,
)


def _final(agent: Any, playbook: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        runs = httpx.get(f"{agent.api.url}/api/v1/actions", params={"playbook": playbook},
                         headers=auth("viewer")).json()["data"]
        final = [r for r in runs if r["status"] not in ("planned", "queued", "running", "pending_approval")]
        return final[0] if final else None

    run = wait_for(done)
    detail: dict[str, Any] = httpx.get(f"{agent.api.url}/api/v1/actions/{run['id']}",
                                       headers=auth("viewer")).json()["data"]
    return detail


def _fire(agent: Any, labels: dict[str, str]) -> None:
    r = httpx.post(f"{agent.api.url}/api/v1/alertmanager/webhook", headers=auth("intake"), json=webhook([
        {"labels": labels}]))
    assert r.status_code == 200, r.text


def test_ssrf_label_cannot_move_an_http_action(tmp_path: Path) -> None:
    with capture_server() as legit, capture_server() as attacker:
        url = f"http://127.0.0.1:{legit.port}/admin/drain/" + "{{ $labels.instance }}?node={{ $labels.node }}"
        pb = {"name": "drain", "trigger": {"match": {"alertname": "Drain"}},
              "steps": [{"action": "http", "params": {"request": {
                  "url": url,
                  "method": "POST", "headers": {"Authorization": "Bearer drain-secret"}}}}]}
        with running_agent(settings_for(tmp_path, [pb])) as agent:
            _fire(agent, {"alertname": "Drain", "instance": f"127.0.0.1:{attacker.port}/ssrf?stolen=", "node": "n1"})
            run = _final(agent, "drain")
            assert run["status"] == "refused", run
            assert "not one path segment" in run["error"]
            assert any("not one path segment" in str(a["detail"]) for a in run["audit"])  # the reason is audited
            assert attacker.requests == [] and legit.requests == []

            _fire(agent, {"alertname": "Drain", "instance": "gpu-7", "node": "a&b=c#x", "try": "2"})
            wait_for(lambda: legit.requests)
            assert legit.requests[0][1] == "/admin/drain/gpu-7?node=a%26b%3Dc%23x"  # encoded, host fixed
            assert attacker.requests == []
            assert healthy(agent)


def test_shell_and_option_injection_labels_run_nothing(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    echo = {"name": "echo", "trigger": {"match": {"alertname": "Echo"}},
            "steps": [{"action": "command", "params": {"argv": ["/bin/echo", "{{ $labels.x }}"]}}]}
    ls = {"name": "ls", "trigger": {"match": {"alertname": "Ls"}},
          "steps": [{"action": "command", "params": {"argv": ["/bin/ls", "{{ $labels.dir }}"]}}]}
    lsopt = {"name": "lsopt", "trigger": {"match": {"alertname": "LsOpt"}},
             "steps": [{"action": "command", "params": {"argv": ["/bin/ls", "{{ $labels.flag }}", str(tmp_path)],
                                                        "option_args": [1]}}]}
    settings = settings_for(tmp_path, [echo, ls, lsopt], remediation={"allow_commands": True})
    with running_agent(settings) as agent:
        _fire(agent, {"alertname": "Echo", "x": f"v; touch {pwned}"})
        run = _final(agent, "echo")
        assert run["status"] in ("applied", "verified", "succeeded"), run
        assert run["result"]["stdout"].strip() == f"v; touch {pwned}"  # one argument, no shell
        assert not pwned.exists()
        _fire(agent, {"alertname": "Echo", "x": "nul\x00byte", "try": "2"})
        _fire(agent, {"alertname": "Ls", "dir": "--version"})
        run = _final(agent, "ls")
        assert run["status"] == "refused" and "starts with '-'" in run["error"], run
        _fire(agent, {"alertname": "LsOpt", "flag": "-a"})
        assert _final(agent, "lsopt")["status"] in ("applied", "verified", "succeeded")
        assert healthy(agent)


@pytest.mark.parametrize(("params", "field"), [
    ({"action": "http", "params": {"request": {"url": "http://{{ $labels.instance }}/admin/drain"}}},
     "steps[0].params.request.url"),
    ({"action": "http", "params": {"request": {"url": "{{ $annotations.callback }}"}}}, "steps[0].params.request.url"),
    ({"action": "http", "params": {"request": {"url": "http://h.example/x",
                                               "headers": {"X-Node": "{{ $labels.node }}"}}}},
     "steps[0].params.request.headers"),
    ({"action": "command", "params": {"argv": ["/bin/sh", "-c", "echo {{ $labels.x }}"]}}, "steps[0].params.argv"),
    ({"action": "command", "params": {"argv": ["bash", "-c", "{{ $labels.x }}"]}}, "steps[0].params.argv"),
    ({"action": "command", "params": {"argv": ["/bin/echo", "x={{ $labels.x }}"]}}, "steps[0].params.argv[1]"),
    ({"action": "command", "params": {"argv": ["{{ $labels.prog }}"]}}, "steps[0].params.argv[0]"),
])
def test_dangerous_templates_are_refused_at_load_naming_file_and_field(tmp_path: Path, params: dict[str, Any],
                                                                       field: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "trigger": {"match": {"alertname": "X"}}, "steps": [params]}))
    with pytest.raises(ConfigError) as err:
        load_playbooks([path])
    assert str(path) in str(err.value) and field in str(err.value), str(err.value)


def test_http_allow_list_refuses_other_hosts(tmp_path: Path) -> None:
    with capture_server() as cap:
        pb = {"name": "drain", "trigger": {"match": {"alertname": "Drain"}},
              "steps": [{"action": "http", "params": {"request": {"url": f"http://127.0.0.1:{cap.port}/x"}}}]}
        settings = settings_for(tmp_path, [pb], remediation={"http_allowed_hosts": ["inference-*.svc:8080"]})
        with running_agent(settings) as agent:
            _fire(agent, {"alertname": "Drain"})
            run = _final(agent, "drain")
            assert run["status"] in ("failed", "refused") and "http_allowed_hosts" in run["error"], run
            assert cap.requests == []
            assert healthy(agent)

