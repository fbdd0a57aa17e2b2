"""Secrets are references and never shown: config references, masked action parameters, quiet errors."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from aiops.errors import ConfigError
from alerting.notifiers.receivers import parse_receivers
from app.settings import load_settings
from tests.conftest import run_cli
from tests.security.support import auth, capture_server, healthy, running_agent, settings_for, wait_for, webhook

MARK = "PLANTED-c0ffee-SECRET"


def test_env_and_file_references_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "slack"
    secret_file.write_text(f"https://hooks.slack.example/services/{MARK}\n")
    monkeypatch.setenv("AIOPS_TEST_TOKEN", f"{MARK}-token")
    cfg = tmp_path / "aiops.yaml"
    cfg.write_text(yaml.safe_dump({
        "agent": {"api_token": "${env:AIOPS_TEST_TOKEN}"},
        "alerting": {"receivers": [{"name": "chat", "type": "slack", "webhook_url": f"${{file:{secret_file}}}"}]},
    }))
    s = load_settings(cfg)
    assert s.agent.api_token is not None and s.agent.api_token.get_secret_value() == f"{MARK}-token"
    assert s.alerting.receivers[0]["webhook_url"] == f"https://hooks.slack.example/services/{MARK}"
    assert MARK not in repr(s.agent)
    cfg.write_text(yaml.safe_dump({"agent": {"api_token": "${env:AIOPS_TEST_UNSET}"}}))
    with pytest.raises(ConfigError, match=r"agent\.api_token: \$\{env:AIOPS_TEST_UNSET\}: environment variable"):
        load_settings(cfg)


def test_validation_errors_never_echo_a_secret(tmp_path: Path) -> None:
    cfg = tmp_path / "aiops.yaml"
    for doc in ({"agent": {"api_token": [f"tok-{MARK}"]}},
                {"agent": {"tokens": [{"name": "ci", "role": "operator", "token": MARK[:10]}]}},
                {"alerting": {"receivers": [{"name": "x", "type": "slack", "webhook_url": f"https://h/{MARK}",
                                             "channel": ["not", "a", "string"]}]}},
                {"remediation": {"broker_url": {"url": f"redis://:{MARK}@h"}}}):
        cfg.write_text(yaml.safe_dump(doc))
        with pytest.raises(ConfigError) as err:
            s = load_settings(cfg)
            parse_receivers(s.alerting.receivers)
        assert MARK not in str(err.value) and MARK[:10] not in str(err.value), str(err.value)
        if "alerting" in doc:  # the CLI's one red line says the same, without the secret
            out = run_cli("notify", "test", "x", "--config", str(cfg))
            assert out.returncode == 1 and "error" in out.stderr and MARK not in out.stdout + out.stderr


def test_action_headers_and_url_credentials_are_masked_everywhere(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRAIN_TOKEN", MARK)
    with capture_server() as cap:
        pb = {"name": "drain", "trigger": {"match": {"alertname": "Drain"}},
              "steps": [{"action": "http", "params": {"request": {
                  "url": f"http://127.0.0.1:{cap.port}/admin/drain?token=lit-{MARK}", "method": "POST",
                  "headers": {"Authorization": "Bearer ${env:DRAIN_TOKEN}", "X-Literal": f"lit-{MARK}"}}}}]}
        settings = settings_for(tmp_path, [pb])
        with running_agent(settings) as agent:
            r = httpx.post(f"{agent.api.url}/api/v1/alertmanager/webhook", headers=auth("intake"),
                           json=webhook([{"labels": {"alertname": "Drain"}}]))
            assert r.status_code == 200
            wait_for(lambda: cap.requests)
            assert cap.requests[0][2]["Authorization"] == f"Bearer {MARK}"  # the reference resolved at send time

            def done() -> list[dict[str, object]]:
                runs = httpx.get(f"{agent.api.url}/api/v1/actions", headers=auth("viewer")).json()["data"]
                return [x for x in runs if x["status"] in ("applied", "succeeded", "verified", "failed")]

            runs = wait_for(done)
            shown = json.dumps(runs)
            detail = httpx.get(f"{agent.api.url}/api/v1/actions/{runs[0]['id']}", headers=auth("viewer")).text
            assert MARK not in shown and MARK not in detail, (shown, detail)
            assert '"Authorization": "***"' in shown and "token=***" in shown
            assert healthy(agent)
        cli = run_cli("actions", "--config", str(tmp_path / "aiops.yaml"), "--format", "json")
        assert cli.returncode == 0, cli.stderr
        assert MARK not in cli.stdout and MARK not in cli.stderr
        from aiops.state import StateDB, audit

        db = StateDB(settings.store.state_db_url())
        try:
            with db.begin() as conn:
                trail = json.dumps([dict(r._mapping) for r in conn.execute(audit.select())], default=str)
        finally:
            db.dispose()
        assert MARK not in trail  # the audit table never holds a secret
