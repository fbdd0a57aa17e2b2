"""Ingest at fleet scale, side by side with a real Prometheus (issue 14).

For each size (10,000 and 100,000 series) one static HTTP target exports half counters and half
gauges whose values change every second. Our agent (``python -m app run``) and the Debian
``prometheus`` binary (own TSDB directory, free ports) scrape it at the same time every 10 s (``--interval``).
After both have done their first scrape (series creation is not steady state), a window of
``--duration`` seconds is measured for both processes:

* CPU ms per 1,000 samples: process CPU (user + system, psutil) over the window divided by the
  samples each one appended in it (``aiops_samples_ingested_total``,
  ``prometheus_tsdb_head_samples_appended_total``). Ours is also given including the agent's
  stop (its last fold) and the store's compaction and vacuum afterwards, which Prometheus has no
  counterpart of within two minutes (its head compaction comes after two hours);
* RSS: the largest resident set seen during the window (sampled every second);
* bytes per sample on disk: Prometheus' TSDB directory (WAL, head chunks) over its appended
  samples at the end of the window; ours after the agent stopped and the store ran its own
  compaction (``compact()`` + ``vacuum()``), over the samples the store holds.

Sizes run interleaved (10k, 100k, 10k, 100k, ...) for ``--repeats`` rounds; figures are medians
over rounds. Run: ``python benchmarks/ingest_scale.py`` (about 15 minutes), or
``--quick`` (2,000 and 10,000 series, 30 s, one round) while developing. The last line is one
JSON object with ``cpu_ratio_10k``, ``cpu_ratio_100k``, ``bytes_ratio_100k``, ``rss_ratio_100k``
and every figure behind them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiops.store import SqliteSeriesStore  # noqa: E402

INTERVAL_S = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Target:
    """A static target of ``n`` series; values change every second (counters and gauges)."""

    def __init__(self, n: int) -> None:
        half = n // 2
        self.counters = [f'bench_requests_total{{route="/r{i % 100}",pod="p{i // 100}"}}' for i in range(half)]
        self.gauges = [f'bench_queue_depth{{queue="q{i % 100}",pod="p{i // 100}"}}' for i in range(n - half)]
        self._lock = threading.Lock()
        self._second = -1
        self._body = b""
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - stdlib's name
                body = target.body()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def body(self) -> bytes:
        now = int(time.time())
        with self._lock:
            if now != self._second:
                lines = ["# TYPE bench_requests_total counter"]
                lines += [f"{k} {1000 + i + (i % 7 + 1) * now % 1_000_000}" for i, k in enumerate(self.counters)]
                lines.append("# TYPE bench_queue_depth gauge")
                lines += [f"{k} {round(50 + 20 * math.sin(now / 60 + i), 2)}" for i, k in enumerate(self.gauges)]
                self._body = ("\n".join(lines) + "\n").encode()
                self._second = now
            return self._body

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def counter(url: str, name: str) -> float:
    """Sum of a metric's samples on a /metrics page (0 while the server is not up yet)."""
    try:
        text = httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return 0.0
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cpu_s(ps: psutil.Process) -> float:
    t = ps.cpu_times()
    return float(t.user + t.system)


def busy_processes(top: int = 6) -> list[str]:
    """The processes using most CPU right now (the machine is shared: noisy numbers need context)."""
    procs = list(psutil.process_iter(["name"]))
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(1.0)
    usage = []
    for p in procs:
        try:
            usage.append((p.cpu_percent(None), p.info["name"]))
        except psutil.Error:
            pass
    return [f"{name} {pct:.0f}" for pct, name in sorted(usage, reverse=True)[:top] if pct >= 5]


def run_round(n: int, duration_s: float, tmp: Path, interval_s: int = INTERVAL_S) -> dict[str, float]:
    target = Target(n)
    target.body()
    work = Path(tempfile.mkdtemp(dir=tmp))
    agent_port, prom_port = free_port(), free_port()
    (work / "agent.yaml").write_text(
        "collect:\n  host: {enabled: false}\n  gpu: {enabled: false}\n  scrape:\n"
        f"    - url: http://127.0.0.1:{target.port}/metrics\n      job: bench\n"
        f"      interval_s: {interval_s}\n      jitter_s: 0\n      timeout_s: {interval_s - 1}\n"
        f"store:\n  path: {work / 'agent.db'}\n"
        f"agent:\n  listen_host: 127.0.0.1\n  listen_port: {agent_port}\n  log_level: WARNING\n"
    )
    (work / "prometheus.yml").write_text(
        f"global:\n  scrape_interval: {interval_s}s\n  scrape_timeout: {interval_s - 1}s\n"
        f"scrape_configs:\n  - job_name: bench\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{target.port}']\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    agent = subprocess.Popen([sys.executable, "-m", "app", "run", "--config", str(work / "agent.yaml")],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    prom = subprocess.Popen(["prometheus", f"--config.file={work / 'prometheus.yml'}",
                             f"--storage.tsdb.path={work / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}",
                             "--log.level=warn"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ours_url, prom_url = f"http://127.0.0.1:{agent_port}/metrics", f"http://127.0.0.1:{prom_port}/metrics"
    ours_name, prom_name = "aiops_samples_ingested_total", "prometheus_tsdb_head_samples_appended_total"
    try:
        a_ps, p_ps = psutil.Process(agent.pid), psutil.Process(prom.pid)
        deadline = time.monotonic() + 120
        while counter(ours_url, ours_name) < n or counter(prom_url, prom_name) < n:
            if agent.poll() is not None:
                err = agent.stderr.read().decode()[-2000:] if agent.stderr else ""
                raise RuntimeError(f"agent exited early: {err}")
            if prom.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("prometheus or the agent did not scrape within 120 s")
            time.sleep(0.5)
        time.sleep(1.0)  # let the first scrape's append finish on both sides
        a_cpu0, p_cpu0 = cpu_s(a_ps), cpu_s(p_ps)
        a_n0, p_n0 = counter(ours_url, ours_name), counter(prom_url, prom_name)
        started = time.monotonic()
        a_rss = p_rss = 0
        while time.monotonic() - started < duration_s:
            a_rss = max(a_rss, a_ps.memory_info().rss)
            p_rss = max(p_rss, p_ps.memory_info().rss)
            time.sleep(1.0)
        a_cpu1, p_cpu1 = cpu_s(a_ps), cpu_s(p_ps)
        a_n1, p_n1 = counter(ours_url, ours_name), counter(prom_url, prom_name)
        prom_bytes = dir_bytes(work / "tsdb")
        ours_before = sum(f.stat().st_size for f in work.glob("agent.db*") if f.is_file())
    finally:
        prom.send_signal(signal.SIGTERM)
        prom.wait(60)
        # the agent's whole CPU time arrives in RUSAGE_CHILDREN when it is reaped
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(300)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
            raise RuntimeError("the agent did not stop within 300 s of SIGTERM") from None
        finally:
            target.close()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    total_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    a_stop = max(0.0, total_cpu - a_cpu1)  # the agent's last fold and shutdown
    with SqliteSeriesStore(work / "agent.db") as store:
        started_cpu = time.process_time()  # the compaction's CPU, not the catalog load of opening
        store.compact()
        store.vacuum()
        compaction_s = time.process_time() - started_cpu
        ours_bytes = store.size_bytes()
        ours_samples = int(store._reader().execute("SELECT coalesce(sum(n), 0) FROM chunks").fetchone()[0])
    shutil.rmtree(work, ignore_errors=True)
    a_win, p_win = a_n1 - a_n0, p_n1 - p_n0
    return {
        "ours_cpu_ms_per_1k": 1e6 * (a_cpu1 - a_cpu0) / a_win,
        "ours_cpu_ms_per_1k_incl_compaction": 1e6 * (a_cpu1 - a_cpu0 + a_stop + compaction_s) / a_win,
        "prom_cpu_ms_per_1k": 1e6 * (p_cpu1 - p_cpu0) / p_win,
        "ours_rss_mib": a_rss / 2**20,
        "prom_rss_mib": p_rss / 2**20,
        "ours_bytes_per_sample": ours_bytes / max(ours_samples, 1),
        "ours_bytes_per_sample_before_compaction": ours_before / max(a_n1, 1),
        "prom_bytes_per_sample": prom_bytes / max(p_n1, 1),
        "ours_window_samples": a_win,
        "prom_window_samples": p_win,
        "ours_stop_and_compaction_cpu_s": a_stop + compaction_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 and 10,000 series, 30 s, one round")
    parser.add_argument("--duration", type=float, default=None, help="measured window per round, seconds "
                        "(default 120; 30 with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved rounds per size (default 2; 1 quick)")
    parser.add_argument("--interval", type=int, default=INTERVAL_S, help="scrape interval, seconds (default 10)")
    parser.add_argument("--sizes", type=int, nargs=2, default=None, metavar=("SMALL", "LARGE"),
                        help="the two target sizes (default 10000 100000; JSON keys stay _10k/_100k)")
    args = parser.parse_args()
    if shutil.which("prometheus") is None:
        sys.exit("prometheus not found: apt-get install prometheus")
    sizes = tuple(args.sizes) if args.sizes else (2_000, 10_000) if args.quick else (10_000, 100_000)
    duration = args.duration or (30.0 if args.quick else 120.0)
    repeats = args.repeats or (1 if args.quick else 2)
    names = {sizes[0]: "10k", sizes[1]: "100k"}  # the JSON keys name the full sizes
    rounds: dict[int, list[dict[str, float]]] = {n: [] for n in sizes}
    others = busy_processes()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        for r in range(repeats):
            for n in sizes:
                print(f"round {r + 1}/{repeats}: {n:,} series, {duration:g} s ...", flush=True)
                rounds[n].append(run_round(n, duration, Path(d), args.interval))
    med: dict[int, dict[str, float]] = {n: {k: statistics.median(x[k] for x in rounds[n]) for k in rounds[n][0]}
                                        for n in sizes}
    out: dict[str, Any] = {}
    print(f"\n{'figure':<44}{'aiops':>12}{'prometheus':>12}{'ratio':>8}")
    for n in sizes:
        m, key = med[n], names[n]
        rows = [
            ("CPU ms / 1,000 samples", m["ours_cpu_ms_per_1k"], m["prom_cpu_ms_per_1k"], "cpu"),
            ("  incl. last fold + compaction", m["ours_cpu_ms_per_1k_incl_compaction"], m["prom_cpu_ms_per_1k"],
             "cpu_incl_compaction"),
            ("RSS MiB", m["ours_rss_mib"], m["prom_rss_mib"], "rss"),
            ("bytes / sample on disk", m["ours_bytes_per_sample"], m["prom_bytes_per_sample"], "bytes"),
        ]
        for label, ours, prom, short in rows:
            ratio = ours / prom if prom else float("inf")
            print(f"{f'{n:,} series: {label}':<44}{ours:>12.2f}{prom:>12.2f}{ratio:>8.2f}")
            out[f"{short}_ratio_{key}"] = round(ratio, 3)
        for k, v in m.items():
            out[f"{k}_{key}"] = round(v, 3)
    print(f"(ours before compaction: {med[sizes[1]]['ours_bytes_per_sample_before_compaction']:.1f} B/sample; "
          f"load average at start {load0:.1f}, at end {os.getloadavg()[0]:.1f}; "
          f"floors: cpu_ratio_100k <= 3, bytes_ratio_100k <= 2)")
    if others:
        print("busiest other processes at start (% of a core):", ", ".join(others))
    out["sizes"] = list(sizes)
    out["duration_s"] = duration
    out["repeats"] = repeats
    print(json.dumps(out))


if __name__ == "__main__":
    main()
