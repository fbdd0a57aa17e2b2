"""``aiops actions / approve / reject / killswitch`` on the audit log, and ``aiops run`` wiring the
remediation component (HTTP routes) from the config, refusing to start on a bad playbook."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml
from rem_helpers import alert, playbook

from aiops.model import ActionStatus
from aiops.state import StateDB
from app.settings import load_settings
from remediation import RunStore, start_playbook
from tests.conftest import REPO, free_port, run_cli, wait_port

NOTIFY = {"action": "notify", "params": {"receiver": "oncall", "message": "hi"}}


def config(tmp: Path, **extra: Any) -> Path:
    cfg = {"store": {"path": str(tmp / "ts.db")},
           "collect": {"host": {"enabled": False}, "gpu": {"enabled": False}}, **extra}
    path = tmp / "aiops.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_actions_list_filter_approve_reject_killswitch(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    settings = load_settings(cfg)
    db = StateDB(settings.store.state_db_url())
    db.create_all()
    gated = playbook([{**NOTIFY, "approval": True}], name="gated")
    a = start_playbook(alert(starts_at_ms=1), gated, settings.remediation, db, None)[0]
    b = start_playbook(alert(starts_at_ms=2), gated, settings.remediation, db, None)[0]
    plain = start_playbook(alert(starts_at_ms=3), playbook([NOTIFY], name="plain"), settings.remediation, db, None)[0]

    out = run_cli("actions", "--config", str(cfg), "--format", "json")
    assert out.returncode == 0, out.stderr
    assert {r["id"] for r in json.loads(out.stdout)} == {a.id, b.id, plain.id}
    out = run_cli("actions", "--config", str(cfg), "--format", "json", "--status", "pending_approval",
                  "--playbook", "gated", "--since", "-1h")
    assert {r["id"] for r in json.loads(out.stdout)} == {a.id, b.id}
    table = run_cli("actions", "--config", str(cfg))
    assert table.returncode == 0 and "pending_approval" in table.stdout and a.id[:12] in table.stdout

    ok = run_cli("approve", a.id[:10], "--by", "alice", "--config", str(cfg))
    assert ok.returncode == 0, ok.stderr
    assert RunStore(db).get(a.id).status is ActionStatus.APPROVED and RunStore(db).get(a.id).approved_by == "alice"
    again = run_cli("approve", a.id, "--by", "alice", "--config", str(cfg))
    assert again.returncode == 1 and "not pending approval" in again.stderr
    assert run_cli("reject", b.id, "--by", "bob", "--config", str(cfg)).returncode == 0
    assert RunStore(db).get(b.id).status is ActionStatus.REJECTED
    missing = run_cli("approve", "ffff", "--by", "x", "--config", str(cfg))
    assert missing.returncode == 1 and "no runs match" in missing.stderr

    on = run_cli("killswitch", "on", "--by", "carol", "--config", str(cfg))
    assert on.returncode == 0 and "kill switch: on" in on.stdout
    refused = start_playbook(alert(starts_at_ms=4), playbook([NOTIFY], name="plain"), settings.remediation, db, None)
    assert refused[0].status is ActionStatus.REFUSED
    assert "kill switch: off" in run_cli("killswitch", "off", "--config", str(cfg)).stdout
    db.dispose()


def test_agent_serves_remediation_routes_and_rejects_bad_playbooks(tmp_path: Path) -> None:
    pb_dir = tmp_path / "playbooks"
    pb_dir.mkdir()
    (pb_dir / "ok.yaml").write_text(yaml.safe_dump({"name": "ok", "trigger": {"match": {"alertname": "X"}},
                                                    "steps": [NOTIFY]}))
    port = free_port()
    cfg = config(tmp_path, agent={"listen_port": port, "api_token": "tok-0123456789abcdef"},
                 remediation={"playbooks": [str(pb_dir)]},
                 # the playbook notifies 'oncall': a receiver it names must exist, or the agent refuses to start
                 alerting={"receivers": [{"name": "oncall", "type": "webhook", "url": "http://127.0.0.1:9/hook"}]})
    proc = subprocess.Popen([sys.executable, "-m", "app", "run", "--config", str(cfg)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, 60)
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": "Bearer tok-0123456789abcdef"}
        assert httpx.get(f"{base}/api/v1/actions").status_code == 401
        assert httpx.get(f"{base}/api/v1/actions", headers=auth).json() == {"status": "success", "data": []}
        assert httpx.post(f"{base}/api/v1/killswitch", json={"enabled": True}).status_code == 401
        resp = httpx.post(f"{base}/api/v1/killswitch", json={"enabled": True, "by": "ops"}, headers=auth)
        assert resp.json()["data"] == {"enabled": True}
        assert httpx.get(f"{base}/api/v1/actions/nope", headers=auth).status_code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    (pb_dir / "bad.yaml").write_text("name: bad\ntrigger: {}\nsteps:\n  - action: k8s_scale\n    params: {name: x}\n")
    done = run_cli("run", "--config", str(cfg), "--duration-s", "1")
    assert done.returncode == 1
    assert f"{pb_dir / 'bad.yaml'}: steps[0].params.replicas: missing" in done.stderr.replace("\n", "")
