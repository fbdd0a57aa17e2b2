"""The component inside a real HTTP server and bus; the CLI against the DB and against the API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry

from aiops.bus import ALERTS, SAMPLES, Bus
from aiops.httpapi import HttpApi
from aiops.protocols import AgentContext
from aiops.state import StateDB
from aiops.store import SqliteSeriesStore
from alerting.component import AlertingComponent
from alerting.config import load_alerting
from app.settings import load_settings
from tests.alerting.core_support import RecordingSink, cpu
from tests.conftest import run_cli

TOKEN = "s3cret"


def wait_for(cond: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[dict[str, Any]]:
    cfg = tmp_path / "aiops.yaml"
    cfg.write_text(yaml.safe_dump({
        "store": {"path": str(tmp_path / "aiops.db")},
        "agent": {"api_token": TOKEN},
        "alerting": {
            "rules": [{"alert": "HighCPU", "expr": "cpu_ratio", "op": ">", "threshold": 0.8,
                       "annotations": {"summary": "{{ $labels.instance }} at {{ $value }}"}}],
            "route": {"receiver": "chat", "group_by": ["alertname", "instance"], "group_wait": 0,
                      "group_interval": "1s"},
            "silence_receiver": "ops",
            "evaluation_interval_s": 1,
        },
    }))
    settings = load_settings(cfg)
    state = StateDB(settings.store.state_db_url())
    state.create_all()
    store = SqliteSeriesStore(settings.store.path)
    bus, registry = Bus(), CollectorRegistry()
    api = HttpApi("127.0.0.1", 0, TOKEN, registry)
    sink = RecordingSink()
    published: list[Any] = []
    bus.subscribe(ALERTS, published.extend)
    comp = AlertingComponent(load_alerting(settings.alerting, str(cfg)), lambda ctx: sink)
    comp.start(AgentContext(settings, store, state, bus, registry, api, {}))
    api.start()
    try:
        yield {"cfg": cfg, "url": api.url, "bus": bus, "sink": sink, "published": published, "comp": comp}
    finally:
        comp.stop()
        api.stop()
        store.close()
        state.dispose()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_bus_sample_to_sink_and_api_views(agent: dict[str, Any]) -> None:
    sink: RecordingSink = agent["sink"]
    agent["bus"].publish(SAMPLES, [cpu(0.97, int(time.time() * 1000), "web-1")])
    assert sink.names() == [("chat", "firing", ["HighCPU/web-1:firing"])]
    assert [a.name for a in agent["published"]] == ["HighCPU"]
    body = httpx.get(f"{agent['url']}/api/v1/alerts", headers=AUTH).json()
    assert [(x["labels"]["instance"], x["state"], x["annotations"]["summary"]) for x in body["data"]] == [
        ("web-1", "firing", "web-1 at 0.97")]
    assert httpx.get(f"{agent['url']}/api/v1/alerts", headers=AUTH, params={"state": "resolved"}).json()["data"] == []
    hist = httpx.get(f"{agent['url']}/api/v1/alerts", headers=AUTH,
                     params={"history": "1", "label": "instance=web-1"}).json()
    assert [e["state"] for e in hist["data"]] == ["firing"]
    bad = httpx.get(f"{agent['url']}/api/v1/alerts", headers=AUTH, params={"history": "1", "limit": "lots"})
    assert bad.status_code == 400 and bad.json()["field"] == "query.limit", bad.text
    metrics = httpx.get(f"{agent['url']}/metrics").text
    assert 'aiops_alert_state_changes_total{state="firing"} 1.0' in metrics


def test_silence_api_with_token_and_announcements(agent: dict[str, Any]) -> None:
    url, sink = agent["url"], agent["sink"]
    body = {"matchers": ['instance="web-2"'], "duration": "2h", "createdBy": "ana", "comment": "deploy"}
    assert httpx.post(f"{url}/api/v1/silences", json=body).status_code == 401
    r = httpx.post(f"{url}/api/v1/silences", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    sid = r.json()["silenceID"]
    assert sink.names() == [("ops", "firing", ["SilenceCreated/:firing"])]
    listed = httpx.get(f"{url}/api/v1/silences", headers=AUTH).json()["data"]
    # the authenticated principal, not the free-text createdBy
    assert [(s["id"], s["status"]["state"], s["createdBy"]) for s in listed] == [(sid, "active", "api-token")]
    agent["bus"].publish(SAMPLES, [cpu(0.97, int(time.time() * 1000), "web-2")])
    alerts = httpx.get(f"{url}/api/v1/alerts", headers=AUTH).json()["data"]
    assert alerts[0]["status"]["silencedBy"] == [sid] and len(sink.got) == 1
    bad = httpx.post(f"{url}/api/v1/silences", json={"matchers": [], "createdBy": "x"},
                     headers={"Authorization": f"Bearer {TOKEN}"})
    assert bad.status_code == 400 and "matchers" in bad.json()["error"]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.delete(f"{url}/api/v1/silences/nope", headers=auth).status_code == 404
    assert httpx.delete(f"{url}/api/v1/silences/{sid}", headers=auth).json()["data"]["status"]["state"] == "expired"
    assert sink.names()[1] == ("ops", "resolved", ["SilenceExpired/:resolved"])
    wait_for(lambda: any("HighCPU/web-2:firing" in n[2] for n in sink.names()))  # unmuted at the next interval


def test_alertmanager_webhook_endpoint(agent: dict[str, Any]) -> None:
    url, sink = agent["url"], agent["sink"]
    payload = {"version": "4", "groupKey": "{}:{alertname=\"PromDown\"}", "status": "firing", "receiver": "aiops",
               "alerts": [{"status": "firing", "labels": {"alertname": "PromDown", "instance": "p:9090"},
                           "annotations": {"summary": "down"}, "startsAt": "2024-05-01T12:00:00.5Z",
                           "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom/graph"}]}
    assert httpx.post(f"{url}/api/v1/alertmanager/webhook", json=payload).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.post(f"{url}/api/v1/alertmanager/webhook", json=payload, headers=auth)
    assert r.json() == {"status": "success", "received": 1, "changed": 1, "forwarded": False}
    assert sink.names() == [("chat", "firing", ["PromDown/p:9090:firing"])]
    assert sink.got[0].alerts[0].starts_at_ms == 1714564800500
    assert [a.name for a in agent["published"]] == ["PromDown"]  # remediation hears it too
    bad = httpx.post(f"{url}/api/v1/alertmanager/webhook", json={"version": "4", "alerts": [{"status": "x"}]},
                     headers=auth)
    assert bad.status_code == 400 and "body.alerts[0]" in bad.json()["error"]
    assert httpx.post(f"{url}/api/v1/alertmanager/webhook", content=b"{nope", headers=auth).status_code == 400


def test_cli_silences_and_history_direct_and_via_agent(agent: dict[str, Any], tmp_path: Path) -> None:
    cfg = str(agent["cfg"])
    agent["bus"].publish(SAMPLES, [cpu(0.97, int(time.time() * 1000), "db-1")])
    out = run_cli("alerts", "--config", cfg, "--format", "json", "--label", "instance=db-1")
    assert out.returncode == 0, out.stderr
    assert [(r["alertname"], r["state"]) for r in json.loads(out.stdout)] == [("HighCPU", "firing")]
    table = run_cli("alerts", "--config", cfg, "--state", "firing", "--name", "HighCPU")
    assert "HighCPU" in table.stdout and "db-1" in table.stdout
    direct = run_cli("silence", "add", "--config", cfg, "--matcher", 'alertname="HighCPU"', "--duration", "2h",
                     "--author", "bob", "--comment", "from the CLI")
    assert direct.returncode == 0, direct.stderr
    via = run_cli("silence", "add", "--config", cfg, "--agent-url", agent["url"], "--matcher", 'instance="x"',
                  "--duration", "30m", "--author", "eve")
    assert via.returncode == 0, via.stderr
    listed = json.loads(run_cli("silence", "list", "--config", cfg, "--format", "json").stdout)
    # through the agent the token's principal is recorded, not --author
    assert {s["createdBy"] for s in listed} == {"bob", "api-token"}
    expired = run_cli("silence", "expire", direct.stdout.strip(), "--config", cfg, "--agent-url", agent["url"])
    assert expired.returncode == 0, expired.stderr
    active = json.loads(run_cli("silence", "list", "--config", cfg, "--format", "json", "--state", "active",
                                "--agent-url", agent["url"]).stdout)
    assert [s["createdBy"] for s in active] == ["api-token"]
    bad = run_cli("silence", "add", "--config", cfg, "--matcher", "alertname", "--author", "x")
    assert bad.returncode == 1 and "matcher 'alertname'" in bad.stderr
