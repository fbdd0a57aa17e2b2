"""`aiops series` and `aiops query` load no heavy library (issue: a fast CLI).

The start-up time itself is a benchmark (`benchmarks/cli_startup.py`), not a timed test; this
test pins the cause of a slow start: what the two commands import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aiops.model import Sample, Series
from aiops.store import SqliteSeriesStore

HEAVY = ("torch", "streamlit", "celery", "kubernetes", "sklearn", "scipy", "pandas", "statsmodels", "altair",
         "httpx", "starlette", "uvicorn", "sqlalchemy", "redis")

_PROBE = """
import json, sys
sys.argv[0] = "aiops"  # what the console script sees: core commands skip the area modules
from app.cli import main
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
finally:
    print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(%r))), file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["series", "up"], ["query", "up", "--start", "-1h"]], ids=["series", "query"])
def test_series_and_query_import_no_heavy_library(argv: list[str], tmp_path: Path) -> None:
    store = tmp_path / "aiops.db"
    with SqliteSeriesStore(store) as st:
        st.append([Sample(Series.of("up", {"job": "a"}), 1_000, 1.0)])
    env = {**os.environ, "AIOPS_STORE__PATH": str(store)}
    out = subprocess.run([sys.executable, "-c", _PROBE % (HEAVY,), *argv], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert 'up{job="a"}' in out.stdout
    loaded = json.loads(out.stderr.strip().splitlines()[-1])
    assert loaded == [], f"`aiops {argv[0]}` imported {loaded}"
