"""Each notifier renders its service's native format and puts it on the wire to a real HTTP server."""

from __future__ import annotations

import base64
import email
import hashlib
import hmac
import json
from collections.abc import Iterator
from urllib.parse import unquote_plus

import pytest
from notif_support import T0_MS, RecordingServer, Reply, SmtpServer, sample_notification

from alerting.notifiers.apprise_url import AppriseNotifier
from alerting.notifiers.dingtalk import DingTalkNotifier
from alerting.notifiers.discord import DiscordNotifier
from alerting.notifiers.feishu import FeishuNotifier
from alerting.notifiers.mattermost import MattermostNotifier
from alerting.notifiers.slack import SlackNotifier
from alerting.notifiers.smtp import SmtpNotifier
from alerting.notifiers.teams import TeamsNotifier
from alerting.notifiers.webhook import WebhookNotifier
from alerting.notifiers.wecom import WeComNotifier


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    s = RecordingServer()
    yield s
    s.stop()


def _send(notifier, n=None):  # type: ignore[no-untyped-def]
    payload = notifier.render(n or sample_notification())
    notifier.send(payload)
    return payload


def test_slack_block_kit(server: RecordingServer) -> None:
    notifier = SlackNotifier("ops", f"{server.url}/services/T0/B0/XXXX", channel="#alerts")
    _send(notifier)
    body = server.wait_for(1)[0].json
    assert body["channel"] == "#alerts"
    assert body["text"].startswith("[FIRING:2] HighGpuTemp")
    kinds = [b["type"] for b in body["blocks"]]
    assert kinds[0] == "header" and kinds.count("section") == 2 and kinds[-1] == "actions"
    first = body["blocks"][1]["text"]["text"]
    assert "*value 91.5 °C (threshold 85 °C)*" in first
    assert "since 2024-05-01T12:00:00Z" in first
    assert "http://dashboard.example:8501/?series=gpu_temperature_celsius%7B" in first
    silence, dashboard = body["blocks"][-1]["elements"]
    assert dashboard["url"] == "http://dashboard.example:8501"
    # the alert view of this group, where each alert has its Silence button
    assert silence["url"] == "http://dashboard.example:8501/?page=alerts&alertname=HighGpuTemp&label=group%3Dg1"


def test_slack_resolved_says_how_long(server: RecordingServer) -> None:
    _send(SlackNotifier("ops", f"{server.url}/hook"), sample_notification(resolved=True))
    body = server.wait_for(1)[0].json
    assert body["text"].startswith("[RESOLVED:2]")
    assert [b["text"]["text"] for b in body["blocks"][-1]["elements"]] == ["Open dashboard"]  # nothing to silence
    assert "lasted 12m 5s" in body["blocks"][1]["text"]["text"]


def test_teams_adaptive_card_envelope(server: RecordingServer) -> None:
    server.behave = lambda req: Reply(202, b"")
    _send(TeamsNotifier("ops", f"{server.url}/workflows/abc?sig=SECRET"))
    body = server.wait_for(1)[0].json
    assert body["type"] == "message"
    att = body["attachments"][0]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = att["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    facts = [f for item in card["body"] if item["type"] == "FactSet" for f in item["facts"]]
    assert {"title": "Value", "value": "91.5 °C"} in facts and {"title": "Threshold", "value": "85 °C"} in facts
    assert card["actions"][0]["type"] == "Action.OpenUrl"


def test_discord_embeds(server: RecordingServer) -> None:
    server.behave = lambda req: Reply(204, b"")
    _send(DiscordNotifier("ops", f"{server.url}/api/webhooks/1/tok"))
    body = server.wait_for(1)[0].json
    assert "HighGpuTemp" in body["content"]
    assert len(body["embeds"]) == 2
    e = body["embeds"][0]
    assert e["color"] == 0xE01E5A and e["url"].startswith("http://dashboard.example:8501/?series=")
    assert e["timestamp"] == "2024-05-01T12:00:00Z"
    assert {"name": "Value", "value": "91.5 °C", "inline": True} in e["fields"]
    assert body["allowed_mentions"] == {"parse": []}


def test_discord_caps_embeds_at_ten() -> None:
    payload = DiscordNotifier("ops", "http://127.0.0.1:9/x").render(sample_notification(n_alerts=14))
    assert len(payload["embeds"]) == 10
    assert "4 more" in payload["content"]


def test_mattermost_attachments(server: RecordingServer) -> None:
    _send(MattermostNotifier("ops", f"{server.url}/hooks/key", channel="alerts", username="aiops"))
    body = server.wait_for(1)[0].json
    assert body["channel"] == "alerts" and body["username"] == "aiops"
    assert len(body["attachments"]) == 2
    att = body["attachments"][0]
    assert att["color"] == "#E01E5A" and att["title_link"].startswith("http://dashboard.example:8501/")
    assert {"short": True, "title": "Threshold", "value": "85 °C"} in att["fields"]


def test_feishu_signed_interactive_card(server: RecordingServer) -> None:
    server.behave = lambda req: Reply(200, b'{"code":0,"msg":"success"}')
    secret = "feishu-secret-123"
    _send(FeishuNotifier("ops", f"{server.url}/open-apis/bot/v2/hook/TOKEN", secret=secret, clock=lambda: 1714564800.5))
    body = server.wait_for(1)[0].json
    assert body["timestamp"] == "1714564800"
    key = f"{body['timestamp']}\n{secret}".encode()
    expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert body["sign"] == expected
    assert body["msg_type"] == "interactive"
    card = body["card"]
    assert card["header"]["template"] == "red"
    text = card["elements"][0]["text"]["content"]
    assert "value 91.5 °C (threshold 85 °C)" in text and "since 2024-05-01T12:00:00Z" in text


def test_feishu_service_error_code_is_permanent(server: RecordingServer) -> None:
    from alerting.notifiers import DeliveryPermanentError, DeliveryTemporaryError

    server.behave = lambda req: Reply(200, b'{"code":19021,"msg":"sign match fail"}')
    notifier = FeishuNotifier("ops", f"{server.url}/hook/TOKEN", secret="s3cret-value")
    with pytest.raises(DeliveryPermanentError, match="19021"):
        _send(notifier)
    server.behave = lambda req: Reply(200, b'{"code":11232,"msg":"frequency limited"}')
    with pytest.raises(DeliveryTemporaryError):
        _send(notifier)


def test_dingtalk_signed_markdown(server: RecordingServer) -> None:
    server.behave = lambda req: Reply(200, b'{"errcode":0,"errmsg":"ok"}')
    secret = "SECabcdef0123456789"
    notifier = DingTalkNotifier("ops", f"{server.url}/robot/send?access_token=TOKEN", secret=secret,
                                at_mobiles=("13800000000",), clock=lambda: 1714564800.123)
    _send(notifier)
    req = server.wait_for(1)[0]
    assert req.query["access_token"] == ["TOKEN"]
    ts = req.query["timestamp"][0]
    assert ts == "1714564800123"
    digest = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    # parse_qs already undid the URL encoding once; the raw query must carry it url-encoded
    assert req.query["sign"][0] == base64.b64encode(digest).decode()
    body = req.json
    assert body["msgtype"] == "markdown"
    assert "**value 91.5 °C (threshold 85 °C)**" in body["markdown"]["text"]
    assert body["at"]["atMobiles"] == ["13800000000"]


def test_dingtalk_sign_is_url_encoded() -> None:
    from alerting.notifiers.dingtalk import dingtalk_sign

    sign = dingtalk_sign(1714564800123, "SECabcdef0123456789")
    assert "+" not in sign and "/" not in sign and "=" not in sign  # base64 specials are %-escaped
    digest = hmac.new(b"SECabcdef0123456789", b"1714564800123\nSECabcdef0123456789", hashlib.sha256).digest()
    assert unquote_plus(sign) == base64.b64encode(digest).decode()


def test_wecom_markdown_within_limit(server: RecordingServer) -> None:
    server.behave = lambda req: Reply(200, b'{"errcode":0,"errmsg":"ok"}')
    _send(WeComNotifier("ops", f"{server.url}/cgi-bin/webhook/send?key=KEY"))
    body = server.wait_for(1)[0].json
    assert body["msgtype"] == "markdown"
    assert '<font color="warning">' in body["markdown"]["content"]
    import dataclasses

    from aiops.model import Alert

    n = sample_notification(n_alerts=40)
    wordy = tuple(Alert.of(a.label_dict, {**a.annotation_dict, "description": "very hot " * 60}, value=a.value)
                  for a in n.alerts)
    big = WeComNotifier("ops", "http://127.0.0.1:9/x").render(dataclasses.replace(n, alerts=wordy))
    content = big["markdown"]["content"]
    assert len(content.encode()) <= 4096
    assert "alerts not shown" in content and "30 more alerts" in content


def test_webhook_is_alertmanager_format(server: RecordingServer) -> None:
    n = sample_notification()
    _send(WebhookNotifier("ops", f"{server.url}/am", headers={"Authorization": "Bearer tok-123"}), n)
    req = server.wait_for(1)[0]
    assert req.headers["Authorization"] == "Bearer tok-123"
    body = req.json
    assert set(body) == {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
                         "commonLabels", "commonAnnotations", "externalURL", "alerts"}
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "ops"
    assert body["groupKey"] == n.group_key and body["truncatedAlerts"] == 0
    assert body["commonLabels"] == {"alertname": "HighGpuTemp", "severity": "critical"}
    a = body["alerts"][0]
    assert set(a) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
    assert a["startsAt"] == "2024-05-01T12:00:00.000Z" and a["endsAt"] == "0001-01-01T00:00:00Z"
    assert a["fingerprint"] == n.alerts[0].fingerprint


def test_webhook_truncates_like_alertmanager() -> None:
    body = WebhookNotifier("ops", "http://127.0.0.1:9/x", max_alerts=3).render(sample_notification(n_alerts=5))
    assert len(body["alerts"]) == 3 and body["truncatedAlerts"] == 2


def test_email_over_real_smtp() -> None:
    smtp = SmtpServer()
    try:
        notifier = SmtpNotifier("mail", host="127.0.0.1", port=smtp.port, sender="aiops@example.org",
                                to=("oncall@example.org", "lead@example.org"), timeout_s=5)
        _send(notifier, sample_notification(resolved=True))
        assert len(smtp.messages) == 1
        sender, rcpts, data = smtp.messages[0]
        assert sender == "aiops@example.org" and rcpts == ["oncall@example.org", "lead@example.org"]
        msg = email.message_from_bytes(data)
        assert msg["Subject"].startswith("[aiops] [RESOLVED:2] HighGpuTemp")
        parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in msg.walk()
                 if not p.is_multipart()}
        assert "lasted 12m 5s" in parts["text/plain"]
        assert "lasted 12m 5s" in parts["text/html"] and "<a href=" in parts["text/html"]
    finally:
        smtp.stop()


def test_email_refused_recipient_is_permanent() -> None:
    from alerting.notifiers import DeliveryPermanentError

    smtp = SmtpServer()
    smtp.refuse.add("nobody@example.org")
    try:
        notifier = SmtpNotifier("mail", host="127.0.0.1", port=smtp.port, sender="a@example.org",
                                to=("nobody@example.org",), timeout_s=5)
        with pytest.raises(DeliveryPermanentError, match="550"):
            _send(notifier)
    finally:
        smtp.stop()


def test_email_server_down_is_temporary() -> None:
    from notif_support import RecordingServer as _  # noqa: F401  (keeps import order stable)

    from alerting.notifiers import DeliveryTemporaryError
    from tests.conftest import free_port

    notifier = SmtpNotifier("mail", host="127.0.0.1", port=free_port(), sender="a@example.org",
                            to=("b@example.org",), timeout_s=2)
    with pytest.raises(DeliveryTemporaryError):
        _send(notifier)


def test_apprise_json_url(server: RecordingServer) -> None:
    host = server.url.removeprefix("http://")
    notifier = AppriseNotifier("apprise", f"json://{host}/notify", timeout_s=5)
    _send(notifier)
    body = server.wait_for(1)[0].json
    assert body["title"].startswith("[FIRING:2] HighGpuTemp")
    assert "value 91.5 °C (threshold 85 °C)" in body["message"]
    assert body["type"] == "failure"


def test_apprise_failure_is_temporary(server: RecordingServer) -> None:
    from alerting.notifiers import DeliveryTemporaryError

    server.behave = lambda req: Reply(500, b"boom")
    host = server.url.removeprefix("http://")
    with pytest.raises(DeliveryTemporaryError, match="json://"):
        _send(AppriseNotifier("apprise", f"json://{host}/notify", timeout_s=5))


def test_every_format_renders_nan_and_empty_groups() -> None:
    """NaN values and alerts without annotations never crash a renderer."""
    import dataclasses

    from aiops.model import Alert

    n = sample_notification()
    odd = dataclasses.replace(n, alerts=(Alert.of({"alertname": "X"}, value=float("nan"), starts_at_ms=T0_MS),
                                         Alert.of({}, value=float("inf"))), external_url="")
    for notifier in (SlackNotifier("a", "http://h/x"), TeamsNotifier("a", "http://h/x"),
                     DiscordNotifier("a", "http://h/x"), MattermostNotifier("a", "http://h/x"),
                     FeishuNotifier("a", "http://h/x"), DingTalkNotifier("a", "http://h/x"),
                     WeComNotifier("a", "http://h/x"), WebhookNotifier("a", "http://h/x")):
        out = notifier.render(odd)
        text = json.dumps(out)
        assert "NaN" in text or notifier.kind == "webhook"
