"""Real Prometheus and Alertmanager around our agent.

Prometheus evaluates an always-firing rule and sends it to Alertmanager; Alertmanager's webhook
posts it to our agent's /api/v1/alertmanager/webhook (bearer token via http_config); our routing
hands it to delivery and a recording chat receiver on 127.0.0.1 gets it. The other way: a sample
breaking one of our rules is pushed into Alertmanager, where GET /api/v2/alerts shows it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from aiops.annotations import register_annotator, unregister_annotator
from aiops.model import Alert, Sample, Series, now_ms
from alerting.component import AlertingComponent
from alerting.config import load_alerting
from app.agent import Agent
from app.settings import load_settings
from tests.alerting.core_support import RecordingSink
from tests.conftest import free_port, wait_for, wait_port

pytestmark = pytest.mark.integration

TOKEN = "integration-token"
AM_BIN = "/usr/bin/prometheus-alertmanager"
PROM_BIN = "/usr/bin/prometheus"


def _outbox_landed() -> bool:
    try:
        import alerting.outbox  # noqa: F401
    except ModuleNotFoundError:
        return False
    return True


class Recorder:
    """A chat receiver: records every POST body."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        rec = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    rec.bodies.append(json.loads(body))
                except ValueError:
                    rec.bodies.append(body.decode(errors="replace"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()




@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    for binary in (AM_BIN, PROM_BIN):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} not installed (Debian packages prometheus-alertmanager and prometheus)")
    recorder = Recorder()
    agent_port, am_port, prom_port = free_port(), free_port(), free_port()
    am_url = f"http://127.0.0.1:{am_port}"
    real_delivery = _outbox_landed()
    alerting: dict[str, Any] = {
        "rules": [{"alert": "OurHighValue", "expr": "demo_value", "op": ">", "threshold": 10,
                   "labels": {"severity": "warning"}, "annotations": {"summary": "value {{ $value }}"}}],
        "route": {"receiver": "chat", "group_by": ["alertname"], "group_wait": 0, "group_interval": "1s"},
        "alertmanager_urls": [am_url],
        "evaluation_interval_s": 1,
    }
    if real_delivery:
        alerting["receivers"] = [{"name": "chat", "type": "webhook", "url": recorder.url, "rate_limit_per_min": 0}]
    cfg = tmp_path / "aiops.yaml"
    cfg.write_text(yaml.safe_dump({
        "store": {"path": str(tmp_path / "aiops.db")},
        "agent": {"listen_port": agent_port, "api_token": TOKEN},
        "alerting": alerting,
    }))
    settings = load_settings(cfg)
    sink = RecordingSink()
    if real_delivery:
        from app.wiring import build_components

        components = build_components(settings)
    else:
        components = [AlertingComponent(load_alerting(settings.alerting, str(cfg)), sink)]
    agent = Agent(settings, [], components)
    agent.start()

    am_cfg = tmp_path / "alertmanager.yml"
    am_cfg.write_text(yaml.safe_dump({
        "route": {"receiver": "null", "group_by": ["alertname"], "group_wait": "0s", "group_interval": "1s",
                  "repeat_interval": "1h",
                  "routes": [{"matchers": ['alertname="AlwaysFiring"'], "receiver": "aiops"}]},
        "receivers": [
            {"name": "null"},
            {"name": "aiops", "webhook_configs": [{
                "url": f"http://127.0.0.1:{agent_port}/api/v1/alertmanager/webhook", "send_resolved": True,
                "http_config": {"authorization": {"type": "Bearer", "credentials": TOKEN}}}]},
        ],
    }))
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "always", "interval": "1s", "rules": [
        {"alert": "AlwaysFiring", "expr": "vector(1) > 0", "labels": {"severity": "info"},
         "annotations": {"summary": "fires forever"}}]}]}))
    prom_cfg = tmp_path / "prometheus.yml"
    prom_cfg.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
    }))
    logs = (tmp_path / "am.log").open("w"), (tmp_path / "prom.log").open("w")
    am = subprocess.Popen([AM_BIN, f"--config.file={am_cfg}", "--cluster.listen-address=",
                           f"--web.listen-address=127.0.0.1:{am_port}", f"--storage.path={tmp_path / 'am'}"],
                          stdout=logs[0], stderr=subprocess.STDOUT)
    # resend-delay 1s: Prometheus' first send can precede its discovery of the Alertmanager; the
    # default (1m) would then make the test wait a minute for the next one
    prom = subprocess.Popen([PROM_BIN, f"--config.file={prom_cfg}", f"--storage.tsdb.path={tmp_path / 'prom'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}", "--rules.alert.resend-delay=1s"],
                            stdout=logs[1], stderr=subprocess.STDOUT)
    try:
        wait_port(am_port, 60)
        wait_port(prom_port, 60)
        yield {"agent": agent, "am_url": am_url, "recorder": recorder, "sink": sink, "real": real_delivery,
               "tmp": tmp_path}
    finally:
        for proc in (prom, am):
            proc.terminate()
        for proc in (prom, am):
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        for f in logs:
            f.close()
        agent.stop()
        recorder.stop()


def test_alertmanager_to_our_chat_and_our_alert_into_alertmanager(stack: dict[str, Any]) -> None:
    # Prometheus -> Alertmanager -> our webhook -> routing -> chat receiver
    if stack["real"]:
        def delivered() -> bool:
            return any("AlwaysFiring" in json.dumps(b) for b in stack["recorder"].bodies)
        wait_for(delivered, 90, "AlwaysFiring at the chat receiver (see am.log / prom.log)")
    else:  # delivery (alerting.outbox) not on main yet: it reached the sink
        def in_sink() -> bool:
            return any(a.name == "AlwaysFiring" for n in stack["sink"].got for a in n.alerts)
        wait_for(in_sink, 90, "AlwaysFiring in the outbox sink")
    history = httpx.get(f"http://127.0.0.1:{stack['agent'].api.port}/api/v1/alerts",
                        params={"name": "AlwaysFiring"}, headers={"Authorization": f"Bearer {TOKEN}"}).json()["data"]
    assert history and history[0]["source"] == "alertmanager" and history[0]["labels"]["severity"] == "info"

    # our sample -> our rule -> pushed to Alertmanager's /api/v2/alerts, with what annotators add
    # (root-cause localisation registers one; its own annotations still win)
    def causes(alert: Alert) -> dict[str, str]:
        return {"rca": "Likely causes: 1. deployment/inference/llm", "summary": "not this"} \
            if alert.name == "OurHighValue" else {}

    register_annotator(causes)
    try:
        stack["agent"].ingest([Sample(Series.of("demo_value", instance="x"), now_ms(), 42.0)])

        def in_alertmanager() -> list[Any]:
            got = httpx.get(f"{stack['am_url']}/api/v2/alerts").json()
            return [a for a in got if a["labels"].get("alertname") == "OurHighValue"]

        ours = wait_for(in_alertmanager, 60, "OurHighValue in Alertmanager")
    finally:
        unregister_annotator(causes)
    assert ours[0]["labels"]["instance"] == "x" and ours[0]["annotations"]["summary"] == "value 42"
    assert ours[0]["annotations"]["rca"] == "Likely causes: 1. deployment/inference/llm"
    assert ours[0]["status"]["state"] == "active"
