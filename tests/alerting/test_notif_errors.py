"""Notifiers sort failures into retryable and final ones at the wire, and never leak a secret."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from notif_support import RecordingServer, Reply, sample_notification

from aiops.logs import configure_logging, get_logger
from alerting.notifiers import DeliveryPermanentError, DeliveryTemporaryError, parse_retry_after_s
from alerting.notifiers.slack import SlackNotifier
from alerting.notifiers.webhook import WebhookNotifier

SECRET_PATH = "/services/T0SECRET/B0SECRET/XyZsecretToken42"


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    s = RecordingServer()
    yield s
    s.stop()


def _send(notifier) -> None:  # type: ignore[no-untyped-def]
    notifier.send(notifier.render(sample_notification()))


def test_500_is_temporary_without_secret(server: RecordingServer) -> None:
    server.behave = lambda req: Reply(500, b"internal error " + SECRET_PATH.encode())
    with pytest.raises(DeliveryTemporaryError) as exc:
        _send(SlackNotifier("ops", server.url + SECRET_PATH))
    assert exc.value.reason == "http_500"
    assert "XyZsecretToken42" not in str(exc.value) and "T0SECRET" not in str(exc.value)
    assert "127.0.0.1" in str(exc.value)


def test_429_honours_retry_after_seconds_and_date(server: RecordingServer) -> None:
    server.behave = lambda req: Reply(429, b"rate_limited", {"Retry-After": "7"})
    with pytest.raises(DeliveryTemporaryError) as exc:
        _send(SlackNotifier("ops", server.url + SECRET_PATH))
    assert exc.value.delay_s == 7.0 and exc.value.reason == "http_429"
    assert parse_retry_after_s("Wed, 21 Oct 2015 07:28:10 GMT", now_s=1445412480.0) == 10.0


def test_400_is_permanent_with_reason(server: RecordingServer) -> None:
    server.behave = lambda req: Reply(400, b"invalid_payload")
    with pytest.raises(DeliveryPermanentError, match="HTTP 400: invalid_payload") as exc:
        _send(SlackNotifier("ops", server.url + SECRET_PATH))
    assert exc.value.reason == "http_400"


def test_hang_is_a_timeout(server: RecordingServer) -> None:
    server.behave = lambda req: Reply(200, hang_s=3.0)
    with pytest.raises(DeliveryTemporaryError, match="timed out") as exc:
        _send(WebhookNotifier("ops", server.url + SECRET_PATH, timeout_s=0.5))
    assert exc.value.reason == "timeout"


def test_connection_refused_is_temporary() -> None:
    from tests.conftest import free_port

    with pytest.raises(DeliveryTemporaryError) as exc:
        _send(WebhookNotifier("ops", f"http://127.0.0.1:{free_port()}{SECRET_PATH}", timeout_s=2))
    assert exc.value.reason == "network" and "XyZsecretToken42" not in str(exc.value)


def test_secrets_never_logged_by_outbox(server: RecordingServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Drive a whole failing-then-succeeding delivery and read every log line."""
    from aiops.state import StateDB
    from alerting.outbox import DeliverySettings, Outbox

    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    calls = {"n": 0}

    def behave(req):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return Reply(500, b"boom " + SECRET_PATH.encode()) if calls["n"] == 1 else Reply(200)

    server.behave = behave
    db = StateDB(f"sqlite:///{tmp_path / 's.db'}")
    db.create_all()
    notifier = SlackNotifier("ops", server.url + SECRET_PATH)
    box = Outbox(db, {"ops": notifier}, settings=DeliverySettings(backoff_initial_s=0.05, poll_interval_s=0.05))
    box.start()
    try:
        box.enqueue(sample_notification())
        server.wait_for(2)
        assert box.drain(10)
    finally:
        box.stop()
        db.dispose()
    get_logger("test").info("done")
    text = stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    events = {line["event"] for line in lines}
    assert {"notification_send_failed", "notification_sent"} <= events
    for secret in ("XyZsecretToken42", "T0SECRET", "B0SECRET"):
        assert secret not in text
    assert repr(notifier).find("XyZ") == -1
    row = box.row(1)
    assert row["status"] == "sent"
    configure_logging("INFO")


def test_receiver_echoing_its_credentials_leaks_none(server: RecordingServer) -> None:
    """A receiver answering 401 with the Authorization header it got: neither the URL's password
    (sent by httpx as Basic base64) nor a bearer token without its scheme reaches our error."""
    server.behave = lambda req: Reply(401, json.dumps({"got": req.headers.get("Authorization", ""),
                                                       "token": "T0kenSecret42abc"}).encode())
    with pytest.raises(DeliveryPermanentError) as exc:
        _send(WebhookNotifier("ops", server.url.replace("http://", "http://bot:PassSecret99@") + "/hook"))
    assert "PassSecret99" not in str(exc.value)
    assert "Ym90OlBhc3NTZWNyZXQ5OQ==" not in str(exc.value)  # base64 of bot:PassSecret99
    with pytest.raises(DeliveryPermanentError) as exc:
        _send(WebhookNotifier("ops", server.url + "/hook", headers={"Authorization": "Bearer T0kenSecret42abc"}))
    assert "T0kenSecret42abc" not in str(exc.value) and exc.value.reason == "auth"
