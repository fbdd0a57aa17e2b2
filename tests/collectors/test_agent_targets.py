"""The real agent with one good scrape target and three bad ones (garbage, hang, HTTP 500)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from aiops.model import Series, parse_selector
from aiops.store import SqliteSeriesStore
from app.agent import Agent
from app.settings import load_settings
from app.wiring import build_collectors
from collectors import is_stale
from tests.collectors.helpers import Route, TargetServer, serve_targets


def _up_on_metrics(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics", timeout=5).text
    return {s.labels["target"]: s.value for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == "aiops_collector_up" and s.labels.get("collector") == "scrape"}


def test_agent_survives_bad_targets_and_records_up(target_server: TargetServer, tmp_path: Path) -> None:
    # one server per target, so that each has its own instance (host:port) and health series
    target_server.routes["/metrics"] = Route(body="# TYPE queue_depth gauge\nqueue_depth{queue=\"a\"} 7\n")
    with serve_targets() as garbage, serve_targets() as hang, serve_targets() as fail:
        served = {"n": 0}

        def good_then_garbage() -> Route:  # good twice, then garbage: the series must be marked stale
            served["n"] += 1
            return Route(body="was_good 1\n" if served["n"] <= 2 else "\x00\x01 this is not { the text format\n")

        garbage.routes["/metrics"] = good_then_garbage
        hang.routes["/metrics"] = Route(hang=True)
        fail.routes["/metrics"] = Route(500, "internal error")
        targets = {"good": target_server.url("/metrics"), "garbage": garbage.url("/metrics"),
                   "hang": hang.url("/metrics"), "fail": fail.url("/metrics")}
        settings = load_settings(None, collect={
            "host": {"enabled": False}, "gpu": {"enabled": False},
            "scrape": [{"url": u, "job": j, "interval_s": 0.3, "timeout_s": 0.5, "jitter_s": 0.05}
                       for j, u in targets.items()]},
            store={"path": str(tmp_path / "aiops.db")}, agent={"listen_port": 0})
        instance = {j: u.split("//", 1)[1].split("/", 1)[0] for j, u in targets.items()}
        agent = Agent(settings, build_collectors(settings))
        agent.start()
        try:
            want = {instance["good"]: 1.0, instance["garbage"]: 0.0, instance["hang"]: 0.0, instance["fail"]: 0.0}
            deadline = time.monotonic() + 45
            up: dict[str, float] = {}
            while time.monotonic() < deadline:
                up = _up_on_metrics(agent.api.url)
                if up == want:
                    break
                time.sleep(0.2)
            assert up == want
            # the good target keeps being scraped while the hanging one times out again and again
            time.sleep(1.5)
            assert all(t.is_alive() for t in agent._threads)
            assert httpx.get(agent.api.url + "/healthz", timeout=5).status_code == 200
        finally:
            agent.stop()
    assert not any(t.is_alive() for t in agent._threads)

    with SqliteSeriesStore(tmp_path / "aiops.db", read_only=True) as st:
        good = Series.of("queue_depth", queue="a", job="good", instance=instance["good"])
        data = st.read(good, 0, 2**62)
        assert len(data) >= 3 and set(data.values.tolist()) == {7.0}
        for job, inst in instance.items():
            [series] = st.select(parse_selector(f'aiops_collector_up{{collector="scrape",target="{inst}"}}'))
            values = st.read(series, 0, 2**62).values.tolist()
            assert values and values[-1] == (1.0 if job == "good" else 0.0), (job, values[-5:])
        # nothing of the bad targets reached the store but their health, and the staleness
        # marker of the series the garbage target exported while it was still good
        assert {s.name for s in st.select(parse_selector('{job=~"hang|fail"}'))} == set()
        [was_good] = st.select(parse_selector('{job="garbage"}'))
        values = st.read(was_good, 0, 2**62).values.tolist()
        assert was_good.name == "was_good" and values[:-1] == [1.0] * (len(values) - 1) and is_stale(values[-1])
        assert not any(is_stale(v) for v in data.values.tolist())
