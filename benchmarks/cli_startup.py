"""Start-up of the fast CLI commands: ``aiops series`` and ``aiops query`` (issue: under 0.5 s).

Each command runs as a fresh process on a small store (wall time from spawn to exit, the way a
shell user meets it), beside two baselines measured in the same run: a bare interpreter
(``python -c pass``) and ``python -c "import numpy"`` (the store needs numpy; no CLI can start
faster than that). ``--help`` of the full CLI is timed too: it imports every area module.

Run: ``python benchmarks/cli_startup.py`` (``--repeats N``). The last line of output is one
JSON object with the medians in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiops.model import Sample, Series  # noqa: E402
from aiops.store import SqliteSeriesStore  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def wall_ms(argv: list[str], env: dict[str, str], repeats: int) -> float:
    """Median wall time of ``argv`` as a new process, after one untimed warm-up (page cache)."""
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if i:
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=9, help="timed runs per command (median reported)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "aiops.db"
        with SqliteSeriesStore(store) as st:
            now = int(time.time() * 1000)
            st.append([Sample(Series.of("up", {"job": f"j{i}"}), now - k * 10_000, 1.0)
                       for i in range(100) for k in range(60)])
        env = {**os.environ, "AIOPS_STORE__PATH": str(store)}
        # `aiops` is the console script; `python -m app` runs the same main() without the script shim
        aiops = [sys.executable, "-m", "app"]
        figures = {
            "python_ms": wall_ms([sys.executable, "-c", "pass"], env, args.repeats),
            "numpy_ms": wall_ms([sys.executable, "-c", "import numpy"], env, args.repeats),
            "series_ms": wall_ms([*aiops, "series", "up"], env, args.repeats),
            "query_ms": wall_ms([*aiops, "query", 'up{job="j1"}', "--start", "-1h"], env, args.repeats),
            "help_ms": wall_ms([*aiops, "--help"], env, args.repeats),
        }
    load = os.getloadavg()[0]
    print(f"{'command':<28}{'median wall ms':>16}")
    for name, label in (("python_ms", "python -c pass (baseline)"), ("numpy_ms", "import numpy (baseline)"),
                        ("series_ms", "aiops series up"), ("query_ms", "aiops query up{job=...}"),
                        ("help_ms", "aiops --help (all areas)")):
        print(f"{label:<28}{figures[name]:>16.0f}")
    print(f"load average {load:.2f}; floor: series and query under 500 ms")
    print(json.dumps({**{k: round(v, 1) for k, v in figures.items()}, "load1": round(load, 2),
                      "floor_met": figures["series_ms"] < 500 and figures["query_ms"] < 500}))


if __name__ == "__main__":
    main()
