"""Output that cannot be hijacked: the CLI prints alert content literally, chat payloads mention nobody."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from aiops.model import Alert, AlertState
from aiops.notification import Notification
from alerting.notifiers.receivers import build_notifier, parse_receivers
from tests.conftest import run_cli
from tests.security.support import auth, healthy, running_agent, settings_for, wait_for, webhook

HOSTILE = "[/bold] [red]boom[/red] [link=http://evil.example]x[/link] \x1b]0;pwned\x07\x1b[2J"


def test_rich_markup_label_is_printed_literally_by_aiops_alerts(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    with running_agent(settings) as agent:
        r = httpx.post(f"{agent.api.url}/api/v1/alertmanager/webhook", headers=auth("intake"),
                       json=webhook([{"labels": {"alertname": "Markup", "x": HOSTILE}}]))
        assert r.status_code == 200, r.text
        wait_for(lambda: httpx.get(f"{agent.api.url}/api/v1/alerts", headers=auth("viewer")).json()["data"])
        assert healthy(agent)
    cfg = str(tmp_path / "aiops.yaml")
    out = run_cli("alerts", "--config", cfg)
    assert out.returncode == 0, out.stderr
    printed = out.stdout
    assert "MarkupError" not in out.stderr
    # the markup is there as text, the escape sequences are made visible and never reach the terminal
    assert "[/bold]" in printed and "[red]boom[/red]" in printed
    assert "\x1b" not in printed and "\x07" not in printed
    assert "\\x1b" in printed and "\\x07" in printed
    listed = run_cli("silence", "add", "--config", cfg, "--matcher", 'alertname="Markup"', "--duration", "1h",
                     "--author", "[/red]", "--comment", "[bold]x\x1b[31m")
    assert listed.returncode == 0, listed.stderr
    table = run_cli("silence", "list", "--config", cfg)
    assert table.returncode == 0, table.stderr
    assert "[/red]" in table.stdout and "\x1b" not in table.stdout
    bad = run_cli("alerts", "--config", cfg, "--label", "[/bold]")  # an error message quoting markup
    assert bad.returncode == 1 and "[/bold]" in bad.stderr and "MarkupError" not in bad.stderr


@pytest.mark.parametrize("kind", ["slack", "teams", "discord", "mattermost", "feishu", "dingtalk", "wecom"])
def test_chat_payloads_escape_mentions_in_every_field(kind: str) -> None:
    alert = Alert.of({"alertname": "Disk <!here> @everyone", "severity": "<!channel>", "instance": "@here",
                      "team": '<at user_id="all">'},
                     {"summary": "ping <!everyone> and @channel", "description": "<@U123> <#C42> @all"},
                     state=AlertState.FIRING, starts_at_ms=1_700_000_000_000, value=1.0)
    n = Notification(receiver="chat", group_key="{}", group_labels=(("alertname", alert.name),
                                                                   ("team", "@everyone")),
                     alerts=(alert,), external_url="http://dash.example")
    (cfg,) = parse_receivers([{"name": "chat", "type": kind, "webhook_url": "https://chat.example/hook/secret"}])
    payload = build_notifier(cfg).render(n)
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    for mention in ("<!here>", "<!channel>", "<!everyone>", "@everyone", "@here", "@channel", "@all",
                    "<at user_id", "<@U123>", "<#C42>"):
        assert mention not in text, (kind, mention, text[:400])
    if kind == "slack":
        assert "<!" not in payload["text"] and "@everyone" not in payload["text"]  # the fallback too
