"""The small fast version of benchmarks/ingest.py: it runs end to end and prints its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ingest_benchmark_quick_run_prints_every_figure() -> None:
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "ingest.py"), "--quick"], text=True,
                         capture_output=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(figures) == {"ingest_ratio", "ingest_samples_per_s", "baseline_samples_per_s", "read_10k_ms",
                            "agent_cpu_pct", "agent_rss_mib"}
    assert figures["ingest_samples_per_s"] > 0 and figures["agent_rss_mib"] > 0
