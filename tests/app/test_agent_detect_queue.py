"""Ingest never waits for live detection: a detector stuck on its first point stops nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiops.model import Sample, Series
from app.agent import Agent
from app.settings import load_settings
from detectors.live import DetectionComponent
from detectors.registry import _CLASSES, register
from detectors.settings import DetectorSpec
from detectors.zscore import ZScoreDetector

GATE = threading.Event()  # the stuck detector waits on it
ENTERED = threading.Event()


class StuckDetector(ZScoreDetector):
    """A z-score detector whose every step waits until the test opens the gate (a slow model)."""

    name = "stuck_for_test"

    def detect_one(self, value: Any) -> tuple[float, bool]:
        ENTERED.set()
        GATE.wait(30)
        return super().detect_one(value)

    def update(self, value: Any) -> float:
        return self.detect_one(value)[0]


def _wait(pred: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


@pytest.fixture
def stuck_detector() -> Iterator[None]:
    """Registered only while the test runs: registered at import, it would join the contract
    suite's parametrisation over every registered detector (and wait 30 s a point there)."""
    register(StuckDetector)
    try:
        yield
    finally:
        _CLASSES.pop(StuckDetector.name, None)


def test_ingest_does_not_wait_for_a_slow_detector(tmp_path: Path, stuck_detector: None) -> None:
    GATE.clear()
    ENTERED.clear()
    settings = load_settings(store={"path": tmp_path / "ts.db"}, agent={"listen_port": 0, "instance": "t"})
    spec = DetectorSpec(name="stuck", detector="stuck_for_test", selector="m", params={"window": 5})
    detect = DetectionComponent([spec], checkpoint_interval_s=3600, queue_max_samples=5)
    agent = Agent(settings, [], [detect])
    agent.start()
    try:
        series = Series.of("m", i="0")
        agent.ingest([Sample(series, 1_000, 1.0)])
        assert ENTERED.wait(10)  # detection is now stuck inside its first point
        for k in range(2, 40):  # ... while the agent keeps storing everything that arrives
            agent.ingest([Sample(series, k * 1_000, float(k))])
        _wait(lambda: len(agent.store.read(series, 0, 10**9)) == 39)
        inbox = detect._inbox
        assert inbox is not None
        _wait(lambda: inbox.queued_items + inbox.dropped_items == 38)  # every batch after the first offered
        assert detect.scored == 0 and inbox.queued_items == 5  # the bounded queue kept 5, dropped the rest
        dropped = agent.registry.get_sample_value("aiops_detect_dropped_samples_total")
        assert dropped == 38 - 5
        GATE.set()
    finally:
        GATE.set()
        agent.stop()
    assert detect.scored == 39 - dropped  # what was queued was scored before the stop's checkpoint
