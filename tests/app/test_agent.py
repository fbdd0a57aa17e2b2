from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from aiops.bus import SAMPLES
from aiops.errors import CollectError
from aiops.model import Sample, Series, parse_selector
from app.agent import Agent
from app.settings import load_settings


class ListCollector:
    """A collector whose behaviour each test chooses: good values, errors, bugs or garbage."""

    def __init__(self, name: str, behaviour: str, interval_s: float = 0.05) -> None:
        self.name, self.target, self.behaviour = "test", name, behaviour
        self.interval_s, self.timeout_s, self.jitter_s = interval_s, 1.0, 0.0
        self.calls = 0
        self.closed = False

    def collect(self, now_ms: int) -> Sequence[Sample]:
        self.calls += 1
        if self.behaviour == "error":
            raise CollectError(f"{self.target}: connection refused")
        if self.behaviour == "bug":
            raise ZeroDivisionError("collector bug")
        if self.behaviour == "garbage":
            return [Sample(Series.of("g"), now_ms, "not a number"), "junk"]  # type: ignore[list-item]
        s = Series.of("good_metric", target=self.target)
        return [Sample(s, now_ms, float(self.calls)), Sample(s.with_labels(kind="nan"), now_ms, math.nan)]

    def close(self) -> None:
        self.closed = True


def _settings(tmp_path: Path):
    return load_settings(store={"path": tmp_path / "ts.db", "maintenance_interval_s": 0.2},
                         agent={"listen_port": 0, "instance": "test-agent"})


def _wait(pred, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_bad_collectors_never_stop_the_agent(tmp_path: Path) -> None:
    collectors = [ListCollector("ok", "good"), ListCollector("down", "error"), ListCollector("buggy", "bug"),
                  ListCollector("junk", "garbage")]
    agent = Agent(_settings(tmp_path), collectors)
    published: list[int] = []
    agent.bus.subscribe(SAMPLES, lambda batch: published.append(len(batch)))
    agent.start()
    try:
        _wait(lambda: all(c.calls >= 3 for c in collectors))
        _wait(lambda: len(agent.store.select(parse_selector('good_metric{target="ok"}'))) == 2)
        metrics = httpx.get(f"{agent.api.url}/metrics").text
        assert 'aiops_collector_up{collector="test",target="ok"} 1.0' in metrics
        for bad in ("down", "buggy"):
            assert f'aiops_collector_up{{collector="test",target="{bad}"}} 0.0' in metrics
            assert f'aiops_collector_errors_total{{collector="test",target="{bad}"}}' in metrics
        assert httpx.get(f"{agent.api.url}/healthz").json()["status"] == "ok"
    finally:
        agent.stop()
    # health is stored as series too, and NaN samples survive
    from aiops.store import SqliteSeriesStore

    with SqliteSeriesStore(tmp_path / "ts.db", read_only=True) as st:
        up = st.select(parse_selector('aiops_collector_up{target="down"}'))
        assert up and set(st.read(up[0], 0, 2**62).values.tolist()) == {0.0}
        nan = st.read(Series.of("good_metric", kind="nan", target="ok"), 0, 2**62)
        assert len(nan) >= 3 and all(math.isnan(v) for v in nan.values)
        assert not st.select(parse_selector('g'))  # the garbage sample was dropped, not stored
    assert published and all(c.closed for c in collectors)


def test_stop_flushes_everything_collected(tmp_path: Path) -> None:
    slow_writer_batches = [[Sample(Series.of("flush", i=str(i)), 1000, 1.0)] for i in range(500)]
    agent = Agent(_settings(tmp_path), [])
    agent.start()
    for b in slow_writer_batches:
        agent.ingest(b)
    agent.stop()
    from aiops.store import SqliteSeriesStore

    with SqliteSeriesStore(tmp_path / "ts.db", read_only=True) as st:
        assert st.series_count() >= 500


def test_broken_subscriber_does_not_block_ingest(tmp_path: Path) -> None:
    agent = Agent(_settings(tmp_path), [ListCollector("ok", "good")])
    agent.bus.subscribe(SAMPLES, lambda batch: 1 / 0)
    got = threading.Event()
    agent.bus.subscribe(SAMPLES, lambda batch: got.set())
    agent.start()
    try:
        assert got.wait(20)
    finally:
        agent.stop()


def test_maintenance_runs_and_exports_store_gauges(tmp_path: Path) -> None:
    agent = Agent(_settings(tmp_path), [ListCollector("ok", "good")])
    agent.start()
    try:
        def store_series() -> float:
            for line in httpx.get(f"{agent.api.url}/metrics").text.splitlines():
                if line.startswith("aiops_store_series "):
                    return float(line.split()[1])
            return 0.0

        _wait(lambda: store_series() > 0)
    finally:
        agent.stop()


def test_log_collector_saves_offsets_and_totals_once_the_agent_stored_them(tmp_path: Path) -> None:
    from collectors.logfile import LogFileCollector
    from collectors.logsettings import LogFileSource

    log = tmp_path / "app.log"
    log.write_text("ERROR one\nERROR two\n")
    src = LogFileSource.model_validate({"name": "api", "paths": [str(log)], "state_dir": str(tmp_path / "st"),
                                        "start_at": "beginning", "interval_s": 0.05,
                                        "parsing": {"templates": False}})
    collector = LogFileCollector(src)
    agent = Agent(_settings(tmp_path), [collector])
    agent.start()
    try:
        _wait(lambda: collector.state_path.exists())
        sel = parse_selector('aiops_log_lines_total{source="api",level="error"}')
        _wait(lambda: any(2.0 in agent.store.read(s, 0, 2**62).values.tolist() for s in agent.store.select(sel)))
    finally:
        agent.stop()
    import json

    saved = json.loads(collector.state_path.read_text())
    assert saved["totals"]["lines"] == {"error": 2}
    assert saved["files"][str(log)]["offset"] == log.stat().st_size
