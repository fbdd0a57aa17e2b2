"""Store ingest and agent overhead benchmark (foundation issue).

Measures, in one run:
1. the store's append throughput for 2,000,000 samples over 1,000 series in batches of 5,000,
   next to the plain baseline: sqlite3 ``executemany`` into a bare ``(series_id, ts, value)``
   table with the same pragmas (WAL, synchronous=NORMAL) and one transaction per batch;
2. the time to read one series' 10,000 points (median of 20 reads, after a fold, cold cache
   per read connection not forced);
3. the agent's CPU share and RSS while scraping a local target of 10,000 series every 10 s for
   60 s (``python -m app run`` in a subprocess, measured with psutil after a warm-up).

Run: ``python benchmarks/ingest.py`` (``--quick`` shrinks every part for a smoke run).
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiops.model import Sample, Series  # noqa: E402
from aiops.store import PRAGMAS, SqliteSeriesStore  # noqa: E402


def make_batches(n_samples: int, n_series: int, batch: int) -> tuple[list[Series], list[list[Sample]]]:
    series = [Series.of("bench_metric", instance=f"host-{i % 50}", job="bench", shard=str(i)) for i in range(n_series)]
    t0 = 1_700_000_000_000
    rng = random.Random(1)
    batches: list[list[Sample]] = []
    k = 0
    for _ in range(n_samples // batch):
        out = []
        for _ in range(batch):
            out.append(Sample(series[k % n_series], t0 + (k // n_series) * 1000, rng.random()))
            k += 1
        batches.append(out)
    return series, batches


def bench_store(tmp: Path, batches: list[list[Sample]]) -> float:
    store = SqliteSeriesStore(tmp / "store.db")
    n = sum(len(b) for b in batches)
    started = time.perf_counter()
    for b in batches:
        store.append(b)
    elapsed = time.perf_counter() - started
    store.close()
    return n / elapsed


def bench_baseline(tmp: Path, batches: list[list[Sample]]) -> float:
    conn = sqlite3.connect(tmp / "baseline.db", isolation_level=None)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    conn.execute("CREATE TABLE samples (series_id INTEGER, ts INTEGER, value REAL)")
    ids: dict[Series, int] = {}
    # the baseline gets its rows pre-built: only executemany + commit is timed
    rows = [[(ids.setdefault(s.series, len(ids)), s.ts_ms, s.value) for s in b] for b in batches]
    n = sum(len(r) for r in rows)
    started = time.perf_counter()
    for r in rows:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO samples VALUES (?, ?, ?)", r)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return n / elapsed


def bench_read(tmp: Path, points: int) -> float:
    store = SqliteSeriesStore(tmp / "read.db")
    target = Series.of("read_metric", instance="a")
    others = [Series.of("read_metric", instance=f"o{i}") for i in range(99)]
    t0 = 1_700_000_000_000
    # interleaved with 99 other series, as an agent writes them: 10 s scrapes of 100 series
    for i in range(0, points, 10):
        batch = [Sample(target, t0 + (i + j) * 10_000, float(i + j)) for j in range(10)]
        batch += [Sample(o, t0 + (i + j) * 10_000, 1.0) for o in others for j in range(10)]
        store.append(batch)
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        data = store.read(target, t0, t0 + points * 10_000)
        timings.append((time.perf_counter() - started) * 1000)
        assert len(data) == points, len(data)
    store.close()
    return statistics.median(timings)


class _Target(BaseHTTPRequestHandler):
    body = b""
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - stdlib's name
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def bench_agent(tmp: Path, n_series: int, interval_s: float, measure_s: float) -> tuple[float, float]:
    lines = ["# TYPE bench_requests_total counter"]
    lines += [f'bench_requests_total{{route="/r{i % 100}",pod="p{i // 100}"}} {i * 1.5}' for i in range(n_series)]
    _Target.body = ("\n".join(lines) + "\n").encode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cfg = tmp / "agent.yaml"
    cfg.write_text(
        "collect:\n  host: {enabled: false}\n  gpu: {enabled: false}\n  scrape:\n"
        f"    - url: http://127.0.0.1:{server.server_address[1]}/metrics\n"
        f"      interval_s: {interval_s}\n      jitter_s: 0\n      timeout_s: 5\n"
        f"store:\n  path: {tmp / 'agent.db'}\nagent:\n  listen_port: 0\n  log_level: WARNING\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "app", "run", "--config", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ps = psutil.Process(proc.pid)
        time.sleep(min(interval_s + 5, 15))  # start-up and the first scrape are not steady state
        if proc.poll() is not None:
            raise RuntimeError(f"agent exited early: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        cpu0 = ps.cpu_times()
        wall0 = time.monotonic()
        rss_max = 0
        while time.monotonic() - wall0 < measure_s:
            rss_max = max(rss_max, ps.memory_info().rss)
            time.sleep(0.5)
        cpu1 = ps.cpu_times()
        wall = time.monotonic() - wall0
        cpu_pct = 100.0 * ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / wall
    finally:
        proc.terminate()
        proc.wait(30)
        server.shutdown()
    # the figures only count if the agent really scraped and stored every series
    from aiops.model import parse_selector

    with SqliteSeriesStore(tmp / "agent.db", read_only=True) as st:
        found = st.select(parse_selector("bench_requests_total"))
        points = len(st.read(found[0], 0, 2**62)) if found else 0
    print(f"agent stored {len(found)} series, {points} scrapes of the first one")
    if len(found) < n_series or points < measure_s / interval_s:
        raise RuntimeError(f"agent did not keep up: {len(found)} series, {points} points")
    return cpu_pct, rss_max / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    n_samples, n_series, batch = (200_000, 1_000, 5_000) if args.quick else (2_000_000, 1_000, 5_000)
    scrape_series, interval_s, measure_s = (2_000, 2.0, 6.0) if args.quick else (10_000, 10.0, 60.0)

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        _, batches = make_batches(n_samples, n_series, batch)
        baseline = bench_baseline(tmp, batches)
        ours = bench_store(tmp, batches)
        read_ms = bench_read(tmp, 10_000)
        cpu_pct, rss_mib = bench_agent(tmp, scrape_series, interval_s, measure_s)

    ratio = ours / baseline
    print(f"{'figure':<44}{'value':>16}  floor")
    print(f"{'store append (samples/s)':<44}{ours:>16,.0f}")
    print(f"{'plain sqlite3 executemany (samples/s)':<44}{baseline:>16,.0f}")
    print(f"{'ratio store / baseline':<44}{ratio:>16.2f}  >= 0.50")
    print(f"{'read one series, 10,000 points (ms)':<44}{read_ms:>16.2f}  < 20")
    print(f"{f'agent CPU, {scrape_series} series / {interval_s:g}s (% of a core)':<44}{cpu_pct:>16.2f}  < 5")
    print(f"{'agent RSS (MiB)':<44}{rss_mib:>16.1f}  < 250")
    print(json.dumps({
        "ingest_ratio": round(ratio, 3),
        "ingest_samples_per_s": round(ours),
        "baseline_samples_per_s": round(baseline),
        "read_10k_ms": round(read_ms, 3),
        "agent_cpu_pct": round(cpu_pct, 3),
        "agent_rss_mib": round(rss_mib, 1),
    }))


if __name__ == "__main__":
    main()
