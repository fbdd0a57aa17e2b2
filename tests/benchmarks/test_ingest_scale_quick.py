"""The small fast version of benchmarks/ingest_scale.py: agent and real prometheus, end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs the prometheus binary (apt install prometheus)")
def test_ingest_scale_quick_run_prints_the_ratios() -> None:
    args = ["--sizes", "300", "1000", "--duration", "5", "--interval", "2", "--repeats", "1"]
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "ingest_scale.py"), *args], text=True,
                         capture_output=True, timeout=400)
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("cpu_ratio_10k", "cpu_ratio_100k", "bytes_ratio_100k", "rss_ratio_100k"):
        assert figures[key] > 0, key
    # both scraped in the window: two or three scrapes of 1,000 series (+ our health)
    assert figures["ours_window_samples_100k"] >= 1_000 and figures["prom_window_samples_100k"] >= 1_000
    assert 0 < figures["ours_bytes_per_sample_100k"] < 200
