"""Dashboard login against a real agent: hashed passwords, sessions carrying the user's role."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
import yaml
from streamlit.testing.v1 import AppTest

from aiops.httpauth import hash_password
from app.agent import Agent
from app.settings import load_settings
from tests.conftest import free_port
from tests.security.support import auth, capture_server, healthy, running_agent, wait_for, webhook

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Agent, Path, str]]:
    tmp = tmp_path_factory.mktemp("login")
    (tmp / "pb").mkdir()
    with capture_server() as cap:
        (tmp / "pb" / "gated.yaml").write_text(yaml.safe_dump({
            "name": "gated", "trigger": {"match": {"alertname": "Gated"}},
            "steps": [{"action": "http", "approval": True, "params": {"request": {
                "url": f"http://127.0.0.1:{cap.port}/x", "method": "POST"}}}]}))
        cfg = tmp / "aiops.yaml"
        cfg.write_text(yaml.safe_dump({
            "store": {"path": str(tmp / "aiops.db")},
            "agent": {"listen_port": free_port(), "tokens": [
                {"name": "hook", "role": "intake", "token": "intake-token-0123456789"},
                {"name": "viewer-user", "role": "viewer", "token": "viewer-token-0123456789"}]},
            "alerting": {"rules": [{"alert": "HighCPU", "expr": "cpu_ratio", "op": ">", "threshold": 0.8}]},
            "remediation": {"playbooks": [str(tmp / "pb")], "sweep_interval_s": 0.2},
            "dashboard": {"users": [
                {"name": "alice", "role": "operator", "password_hash": hash_password("alice-pass")},
                {"name": "vic", "role": "viewer",
                 "password_hash": bcrypt.hashpw(b"vic-pass", bcrypt.gensalt(rounds=4)).decode()}]},
        }))
        with running_agent(load_settings(cfg)) as agent:
            r = httpx.post(f"{agent.api.url}/api/v1/alertmanager/webhook", headers=auth("intake"),
                           json=webhook([{"labels": {"alertname": "Gated"}}]))
            assert r.status_code == 200, r.text
            rid = wait_for(lambda: next((x["id"] for x in httpx.get(
                f"{agent.api.url}/api/v1/actions", headers=auth("viewer")).json()["data"]), None))
            yield agent, cfg, rid


def _login(agent: Agent, user: str, password: str) -> httpx.Response:
    return httpx.post(f"{agent.api.url}/api/v1/login", json={"username": user, "password": password})


def test_login_sessions_carry_the_users_role(setup: tuple[Agent, Path, str]) -> None:
    agent, _, rid = setup
    assert _login(agent, "alice", "wrong").status_code == 401
    assert _login(agent, "mallory", "alice-pass").status_code == 401
    assert _login(agent, "alice", "").status_code == 400
    vic = _login(agent, "vic", "vic-pass")  # bcrypt
    alice = _login(agent, "alice", "alice-pass")  # argon2
    assert vic.status_code == 200 and alice.status_code == 200, (vic.text, alice.text)
    vic_tok, alice_tok = vic.json()["data"]["token"], alice.json()["data"]["token"]
    approve = f"{agent.api.url}/api/v1/actions/{rid}/approve"
    r = httpx.post(approve, json={}, headers={"Authorization": f"Bearer {vic_tok}"})
    assert r.status_code == 403 and "vic" in r.json()["error"], r.text  # refused with their identity
    forged = vic_tok.rsplit(".", 1)[0] + ".AAAA"
    assert httpx.post(approve, json={}, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    s = httpx.post(f"{agent.api.url}/api/v1/silences", headers={"Authorization": f"Bearer {alice_tok}"},
                   json={"matchers": ['alertname="HighCPU"'], "duration": "1h", "createdBy": "someone"})
    assert s.status_code == 200 and s.json()["data"]["createdBy"] == "alice", s.text
    assert healthy(agent)


def _page(cfg: Path, page: str, state: dict[str, Any] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["aiops_config"] = str(cfg)
    for k, v in (state or {}).items():
        at.session_state[k] = v
    at.query_params["page"] = page
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_dashboard_needs_a_login_and_viewers_get_no_write_controls(setup: tuple[Agent, Path, str]) -> None:
    agent, cfg, rid = setup
    at = _page(cfg, "remediation")
    assert [t.label for t in at.text_input] == ["User", "Password"]
    assert not [b for b in at.button if b.label in ("Approve", "Reject")]  # nothing before a login
    at.text_input[0].input("vic")
    at.text_input[1].input("vic-pass")
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    labels = [b.label for b in at.button]
    assert "Approve" not in labels and "Reject" not in labels and not [x for x in labels if "kill switch" in x]
    assert "Log out" in labels

    op = _page(cfg, "remediation")
    op.text_input[0].input("alice")
    op.text_input[1].input("alice-pass")
    op.button[0].click().run()
    assert "Approve" in [b.label for b in op.button]
    op.text_input(key=f"reason_{rid}").input("looks right")
    next(b for b in op.button if b.label == "Approve").click().run()
    assert not op.exception and not op.error, [e.value for e in op.error]
    run = httpx.get(f"{agent.api.url}/api/v1/actions/{rid}", headers=auth("viewer")).json()["data"]
    assert run["approved_by"] == "alice"  # the logged-in user, through the session token
    assert healthy(agent)
