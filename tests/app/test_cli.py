from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from aiops.model import Sample, Series
from aiops.store import SqliteSeriesStore
from tests.conftest import run_cli


def _config(tmp_path: Path) -> Path:
    store = tmp_path / "ts.db"
    with SqliteSeriesStore(store) as st:
        s = Series.of("gpu_memory_used_bytes", gpu="0")
        st.append([Sample(s, 1_700_000_000_000 + i * 15_000, float(i)) for i in range(8)]
                  + [Sample(s.with_labels(gpu="1"), 1_700_000_000_000, math.nan)])
    cfg = tmp_path / "aiops.yaml"
    cfg.write_text(f"store:\n  path: {store}\n")
    return cfg


def test_query_prints_csv_and_downsamples(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    out = run_cli("query", 'gpu_memory_used_bytes{gpu="0"}', "--start", "1700000000", "--end", "1700000200",
                  "--format", "csv", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(io.StringIO(out.stdout)))
    assert rows[0] == ["series", "timestamp", "value"] and len(rows) == 9
    assert rows[1] == ['gpu_memory_used_bytes{gpu="0"}', "2023-11-14T22:13:20Z", "0.0"]
    step = run_cli("query", "gpu_memory_used_bytes", "--start", "1700000000", "--end", "1700000200", "--step", "1m",
                   "--agg", "max", "--format", "csv", "--config", str(cfg))
    rows = list(csv.reader(io.StringIO(step.stdout)))
    by_series = [r for r in rows[1:] if r[0].endswith('"0"}')]
    assert [r[2] for r in by_series] == ["2.0", "6.0", "7.0"]  # 60 s buckets aligned to the minute (t0 is :20)
    assert any(r[2] == "nan" for r in rows[1:] if r[0].endswith('"1"}'))


def test_query_table_and_errors(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    out = run_cli("query", "gpu_memory_used_bytes", "--start", "1700000000", "--end", "1700000200",
                  "--config", str(cfg))
    assert out.returncode == 0 and "gpu_memory_used_bytes{gpu=\"0\"}  (8 points)" in out.stdout
    bad = run_cli("query", 'x{a=b}', "--config", str(cfg))
    assert bad.returncode == 1 and "selector" in bad.stderr and "Traceback" not in bad.stderr
    listed = run_cli("series", 'gpu_memory_used_bytes{gpu=~"0|1"}', "--config", str(cfg))
    assert listed.stdout.split() == ['gpu_memory_used_bytes{gpu="0"}', 'gpu_memory_used_bytes{gpu="1"}']
    assert run_cli("--help").stdout.count("query") >= 1
