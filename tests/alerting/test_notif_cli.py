"""``aiops notify test|outbox|retry`` in a subprocess, against a real receiver and state DB."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from notif_support import RecordingServer, Reply, make_outbox, sample_notification

from aiops.state import StateDB
from tests.conftest import run_cli


def _config(tmp_path: Path, url: str) -> Path:
    cfg = {
        "store": {"path": str(tmp_path / "aiops.db")},
        "dashboard": {"base_url": "http://dash.example:8501"},
        "alerting": {"receivers": [{"name": "hook", "type": "webhook", "url": f"{url}/hook/SECRETTOKEN"}]},
    }
    path = tmp_path / "aiops.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_notify_test_outbox_and_retry(tmp_path: Path) -> None:
    srv = RecordingServer()
    try:
        cfg = _config(tmp_path, srv.url)
        done = run_cli("notify", "test", "hook", "--config", str(cfg), timeout=120)
        assert done.returncode == 0, done.stderr
        assert "sent the example notification to hook (http://127.0.0.1" in done.stdout
        assert "SECRETTOKEN" not in done.stdout + done.stderr
        body = srv.wait_for(1)[0].json
        assert body["receiver"] == "hook"
        assert body["alerts"][0]["generatorURL"].startswith("http://dash.example:8501/?series=")

        missing = run_cli("notify", "test", "nope", "--config", str(cfg), timeout=120)
        assert missing.returncode == 1 and "receiver 'nope' is not in alerting.receivers (known: hook)" in (
            missing.stdout + missing.stderr)

        # a failed row in the same state DB the CLI reads
        srv.behave = lambda req: Reply(401, b"invalid_token")  # 401 fails at once (a 404 is retried a while)
        db = StateDB(f"sqlite:///{tmp_path / 'aiops-state.db'}")
        db.create_all()
        box = make_outbox(db, {"hook": srv})
        box.start()
        row_id = box.enqueue(sample_notification("hook"))
        assert box.drain(10)
        box.stop()
        listed = run_cli("notify", "outbox", "--status", "failed", "--format", "json", "--config", str(cfg))
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        assert [r["id"] for r in rows] == [row_id] and "HTTP 401" in rows[0]["last_error"]

        again = run_cli("notify", "retry", "--config", str(cfg))
        assert again.returncode == 0 and "re-queued 1 failed notification" in again.stdout
        assert box.row(row_id)["status"] == "queued"
        db.dispose()
    finally:
        srv.stop()
