from __future__ import annotations

import io
import json

import httpx
import pytest

from aiops.httpapi import HttpApi, Response
from aiops.logs import configure_logging, get_logger, redact, url_host


def test_logs_are_json_lines_with_fixed_keys_and_no_secrets() -> None:
    buf = io.StringIO()
    configure_logging("INFO", stream=buf)
    log = get_logger("aiops.test")
    hook = "https://hooks.slack.com/services/T000/B000/SECRETTOKEN"
    log.warning("notify_failed", receiver="slack", webhook_url=hook, error=f"POST {hook} failed",
                api_token="tok-123", series="cpu")
    import logging

    logging.getLogger("celery").error("stdlib says %s", hook)
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert lines[0]["event"] == "notify_failed" and lines[0]["level"] == "warning"
    assert {"timestamp", "level", "event", "logger"} <= set(lines[0])
    assert lines[0]["timestamp"].endswith("Z")
    text = buf.getvalue()
    assert "SECRETTOKEN" not in text and "tok-123" not in text
    assert "hooks.slack.com" in text  # the host stays, for debugging
    assert lines[1]["logger"] == "celery"


def test_url_helpers() -> None:
    assert url_host("https://user:pw@oapi.dingtalk.com/robot/send?access_token=x") == "https://oapi.dingtalk.com"
    assert "access_token" not in redact("see https://oapi.dingtalk.com/robot/send?access_token=x now")


@pytest.fixture
def api():
    a = HttpApi("127.0.0.1", 0, token="s3cret")
    a.route("GET", "/api/v1/things/{id}", lambda req: Response.json({"id": req.params["id"]}), role=None)
    a.route("POST", "/api/v1/things", lambda req: Response.json(req.json(), 201))
    a.route("GET", "/api/v1/boom", lambda req: 1 / 0, role=None)  # type: ignore[arg-type,return-value]
    a.start()
    yield a
    a.stop()


def test_http_api_routes_auth_and_errors(api: HttpApi) -> None:
    assert httpx.get(f"{api.url}/api/v1/things/7").json() == {"id": "7"}
    assert httpx.post(f"{api.url}/api/v1/things", json={"a": 1}).status_code == 401
    ok = httpx.post(f"{api.url}/api/v1/things", json={"a": 1}, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 201 and ok.json() == {"a": 1}
    bad = httpx.post(f"{api.url}/api/v1/things", content=b"{not json", headers={"Authorization": "Bearer s3cret"})
    assert bad.status_code == 400 and "JSON" in bad.json()["error"]
    assert httpx.get(f"{api.url}/api/v1/boom").status_code == 500
    assert httpx.get(f"{api.url}/api/v1/boom").status_code == 500  # still serving
    assert httpx.delete(f"{api.url}/api/v1/things/7").status_code == 405
    assert httpx.get(f"{api.url}/nope").status_code == 404
