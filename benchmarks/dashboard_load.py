"""Dashboard load time in real Chromium over a week of minute data (dashboard issue).

Builds a store of 1,000 series x 10,080 points (7 days at 1 min), serves the console with
``python -m app dashboard`` and times, in headless Chromium (Debian's ``/usr/bin/chromium``
through Playwright), from navigation to chart drawn:

1. the metrics explorer charting 10 series over 7 days (downsampled in the store to ~600 points
   each, with the stats table);
2. the overview's first render (tiles, agents and targets, GPUs);
3. the baseline: a bare Streamlit page drawing one Altair chart of the same 6,000 points (what
   Streamlit and Vega cost before any of our code runs).

Each page is loaded ``--repeat`` times in one browser (after one warm-up load); the median
counts. Floors: explorer and overview under 2 s each (goal under 1 s).

Run: ``nice -n 5 python benchmarks/dashboard_load.py`` (``--series 50 --points 2000`` for a
smoke run; ``--store DIR`` keeps the built store there and reuses it next time). It prints the
load average it ran under; the last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiops.model import Sample, Series  # noqa: E402
from aiops.state import StateDB  # noqa: E402
from aiops.store import SqliteSeriesStore  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
DRAWN = ("() => { const c = document.querySelector('[data-testid=\"stVegaLiteChart\"] canvas,"
         " [data-testid=\"stVegaLiteChart\"] svg'); return !!c && c.getBoundingClientRect().width > 0"
         " && !document.querySelector('[data-testid=\"stStatusWidget\"]')"
         " && !document.querySelector('[data-testid^=\"stSkeleton\"]'); }")
SETTLED = ("() => !!document.querySelector('[data-testid=\"stMetric\"]')"
           " && !document.querySelector('[data-testid=\"stStatusWidget\"]')"
           " && !document.querySelector('[data-testid^=\"stSkeleton\"]')")
BASELINE_APP = '''
import altair as alt, numpy as np, pandas as pd, streamlit as st
t = pd.date_range(end=pd.Timestamp.now(tz="UTC"), periods=600, freq="1008s")
df = pd.concat([pd.DataFrame({"t": t, "value": np.random.default_rng(i).random(600), "label": f"s{i}"})
                for i in range(10)])
st.altair_chart(alt.Chart(df).mark_line().encode(x="t:T", y="value:Q", color="label:N"), width="stretch")
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


def build_store(path: Path, n_series: int, n_points: int, step_ms: int = 60_000) -> float:
    """10 explorer series, 10 collector targets, the rest background; returns seconds taken."""
    started = time.perf_counter()
    end = int(time.time() * 1000)
    ts = end - (n_points - 1 - np.arange(n_points)) * step_ms
    rng = np.random.default_rng(0)
    series = [Series.of("bench_latency_seconds", deployment="llm", pod=f"llm-{i}", instance=f"10.0.0.{i}:8000")
              for i in range(10)]
    series += [Series.of("aiops_collector_up", collector="scrape", target=f"http://10.0.1.{i}:9100/metrics",
                         instance="bench") for i in range(10)]
    series += [Series.of("bench_background_ratio", shard=str(i)) for i in range(max(0, n_series - 20))]
    with SqliteSeriesStore(path) as st:
        for s in series:
            base = rng.random()
            values = np.ones(n_points) if s.name == "aiops_collector_up" else base + 0.1 * rng.standard_normal(n_points)
            for lo in range(0, n_points, 5000):
                st.append([Sample(s, int(t), float(v)) for t, v in zip(ts[lo:lo + 5000], values[lo:lo + 5000],
                                                                       strict=True)])
        st.compact()
    db = StateDB(f"sqlite:///{path.with_name(path.stem + '-state.db')}")
    db.create_all()
    db.dispose()
    return time.perf_counter() - started


def serve(args: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen([*args, str(port)], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    wait_port(port)
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def time_page(page: object, url: str, ready: str, repeat: int) -> list[float]:
    """Milliseconds from navigation to ``ready`` true, ``repeat`` times after one warm-up."""
    out = []
    for i in range(repeat + 1):
        started = time.perf_counter()
        page.goto(url, timeout=120_000)  # type: ignore[attr-defined]
        page.wait_for_function(ready, timeout=120_000, polling=50)  # type: ignore[attr-defined]
        if i:
            out.append((time.perf_counter() - started) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--points", type=int, default=10_080)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--store", type=Path, default=None,
                        help="folder to keep the built store in and reuse on the next run (default: a temp folder)")
    opts = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="aiops-dash-bench-") as tmp_text:
        tmp = Path(tmp_text)
        if opts.store is not None:
            opts.store.mkdir(parents=True, exist_ok=True)
            tmp = opts.store.resolve()
        built = (tmp / "aiops.db").exists() and opts.store is not None
        build_s = 0.0 if built else build_store(tmp / "aiops.db", opts.series, opts.points)
        cfg = tmp / "aiops.yaml"
        cfg.write_text("store:\n  path: aiops.db\n")
        (tmp / "baseline.py").write_text(BASELINE_APP)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp)}
        load_before = os.getloadavg()[0]
        dash, port = serve([sys.executable, "-m", "app", "dashboard", "-c", str(cfg), "--port"], env, tmp / "dash.log")
        base, base_port = serve([sys.executable, "-m", "streamlit", "run", str(tmp / "baseline.py"),
                                 "--server.headless", "true", "--browser.gatherUsageStats", "false",
                                 "--server.port"], env, tmp / "base.log")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
                page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
                explorer = time_page(page, f"http://127.0.0.1:{port}/?page=metrics&series=bench_latency_seconds"
                                     "&range=7d", DRAWN, opts.repeat)
                overview = time_page(page, f"http://127.0.0.1:{port}/?page=overview", SETTLED, opts.repeat)
                baseline = time_page(page, f"http://127.0.0.1:{base_port}/", DRAWN, opts.repeat)
                browser.close()
        finally:
            stop(dash)
            stop(base)
    result = {"explorer_ms": round(statistics.median(explorer)), "overview_ms": round(statistics.median(overview)),
              "baseline_streamlit_chart_ms": round(statistics.median(baseline)),
              "explorer_runs_ms": [round(x) for x in explorer], "overview_runs_ms": [round(x) for x in overview],
              "series": opts.series, "points_per_series": opts.points, "store_build_s": round(build_s, 1),
              "floor_ms": 2000, "floors_met": None,
              "load_avg_1m_before": round(load_before, 2), "load_avg_1m_after": round(os.getloadavg()[0], 2)}
    result["floors_met"] = result["explorer_ms"] < 2000 and result["overview_ms"] < 2000
    print(f"{'page':<34}{'median ms':>10}  runs")
    print(f"{'explorer: 10 series x 7 days':<34}{result['explorer_ms']:>10}  {result['explorer_runs_ms']}")
    print(f"{'overview: first render':<34}{result['overview_ms']:>10}  {result['overview_runs_ms']}")
    print(f"{'baseline: bare Streamlit + chart':<34}{result['baseline_streamlit_chart_ms']:>10}")
    print(f"store: {opts.series} series x {opts.points} points, built in {build_s:.1f}s; floors (< 2000 ms) "
          f"{'met' if result['floors_met'] else 'NOT met'}; load average (1 min) {load_before:.2f} before the "
          f"pages, {result['load_avg_1m_after']:.2f} after")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
