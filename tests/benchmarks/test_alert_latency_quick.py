"""The small fast version of benchmarks/alert_latency.py: it runs end to end and prints its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_alert_latency_benchmark_quick_run_prints_every_figure() -> None:
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "alert_latency.py"), "--alerts", "20",
                          "--burst", "500"], text=True, capture_output=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"p50_ms", "p99_ms", "baseline_p99_ms", "burst_10k_s"} <= set(figures)
    assert figures["alerts"] == 20 and figures["missing"] == 0  # every alert reached the chat receiver
    assert figures["burst_alerts"] == 500 and figures["burst_notifications"] == 1
