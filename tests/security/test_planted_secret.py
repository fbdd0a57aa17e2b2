"""A marker in every secret field of the demo's configuration appears nowhere it could be read.

Runs ``aiops demo --fast`` with an overlay that plants the marker in API tokens, the session
secret, a Slack webhook URL, a webhook receiver's URL credentials, query token and header (both
receivers unreachable, so their failures are logged too) and a dashboard password; then reads
everything a person or a log collector could: the demo's output and log, every API response of
an agent on the same state, the CLI's tables and JSON, every dashboard page, and the errors of a
broken config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from streamlit.testing.v1 import AppTest

from aiops.errors import ConfigError
from aiops.httpauth import hash_password
from app.settings import load_settings
from dashboard.auth import IDENTITY_KEY, TOKEN_KEY, Identity
from tests.conftest import run_cli
from tests.security.support import running_agent

MARK = "PLANTEDx9q7"
TOKEN = f"{MARK}-api-token-0123456789"
APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


def _overlay() -> dict[str, Any]:
    return {
        "agent": {"tokens": [{"name": "ci", "role": "admin", "token": TOKEN}], "session_secret": f"{MARK}-session"},
        "alerting": {
            "receivers": [
                {"name": "chat", "type": "slack", "webhook_url": f"http://127.0.0.1:1/services/{MARK}-slack"},
                {"name": "hook", "type": "webhook", "url": f"http://u:{MARK}-pw@127.0.0.1:1/hook?token={MARK}-q",
                 "headers": {"Authorization": f"Bearer {MARK}-hdr"}},
            ],
            "route": {"receiver": "chat", "group_wait": "0s", "routes": [{"receiver": "hook", "continue": True}]},
        },
        "dashboard": {"users": [{"name": "alice", "role": "operator", "password_hash": hash_password(f"{MARK}-pw")}]},
    }


def _page_text(at: AppTest) -> str:
    parts: list[str] = []
    for kind in ("markdown", "caption", "text", "code", "json", "error", "info", "warning", "success", "subheader",
                 "title", "header", "metric", "table", "dataframe"):
        for el in at.get(kind):
            value = getattr(el, "value", None)
            parts.append(value.to_string() if hasattr(value, "to_string") else str(value))
            parts.append(str(getattr(el, "label", "")))
    return "\n".join(parts)


@pytest.mark.slow
def test_planted_secret_is_never_shown(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump(_overlay()))
    work = tmp_path / "demo"
    demo = run_cli("demo", "--fast", "--workdir", str(work), "--overlay", str(overlay), timeout=240)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert MARK not in demo.stdout and MARK not in demo.stderr
    log = (work / "demo.log").read_text()
    assert "notification" in log or "outbox" in log  # the unreachable receivers were tried and logged
    assert MARK not in log
    cfg = work / "aiops-demo.yaml"
    assert MARK in cfg.read_text()  # the planted config itself (the only place it may be)

    # the API of an agent on the demo's state (its cluster and service are gone: no collectors)
    settings = load_settings(cfg, collect={"host": {"enabled": False}, "gpu": {"enabled": False}, "scrape": [],
                                           "kubernetes": {"enabled": False}})
    with running_agent(settings) as agent:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        doc = httpx.get(f"{agent.api.url}/openapi.json").json()
        bodies = [json.dumps(doc)]
        for path, item in doc["paths"].items():
            if "get" in item and "{" not in path:
                bodies.append(httpx.get(f"{agent.api.url}{path}", headers=headers).text)
        runs = httpx.get(f"{agent.api.url}/api/v1/actions", headers=headers).json()["data"]
        assert runs, "the demo ran no action"
        bodies += [httpx.get(f"{agent.api.url}/api/v1/actions/{r['id']}", headers=headers).text for r in runs]
        bodies.append(httpx.post(f"{agent.api.url}/api/v1/login", json={"username": "alice",
                                                                        "password": "wrong"}).text)
        for body in bodies:
            assert MARK not in body, body[:500]

    for args in (["alerts"], ["actions", "--format", "json"], ["notify", "outbox"]):
        out = run_cli(*args, "--config", str(cfg))
        assert out.returncode == 0, (args, out.stderr[-500:])
        assert MARK not in out.stdout + out.stderr, args

    for page in ("alerts", "remediation"):
        at = AppTest.from_file(APP, default_timeout=60)
        at.session_state["aiops_config"] = str(cfg)
        at.session_state[IDENTITY_KEY] = Identity("alice", "operator")
        at.session_state[TOKEN_KEY] = "session"
        at.query_params["page"] = page
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert MARK not in _page_text(at), page

    broken = _overlay()
    broken["agent"]["tokens"][0]["token"] = [TOKEN]
    broken["alerting"]["receivers"][0]["channel"] = {"not": "a string"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(broken))
    with pytest.raises(ConfigError) as err:
        load_settings(bad)
    assert MARK not in str(err.value)
    captured = capfd.readouterr()
    assert MARK not in captured.out + captured.err  # the logs of this process, the agent's included
