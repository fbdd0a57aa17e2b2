"""Alert latency and storm benchmark (alerting issue).

Measures, in one run, through real HTTP on 127.0.0.1:
1. latency from a sample that breaks a rule (``for: 0``, ``group_wait: 0``) to the chat
   receiver's request, for 1,000 alerts one after another (each its own group): the sample
   enters the real agent (``Agent.ingest`` -> store -> bus -> AlertingComponent -> outbox ->
   generic webhook notifier -> HTTP POST to a recording server). Next to it, the bare time of
   the same HTTP POST (httpx, same body size, same server) in the same run: the baseline;
2. a storm: 10,000 alerts from one batch of samples, evaluated, recorded in history, grouped
   and handed to the outbox (one notification, 100 alerts listed, 9,900 counted as truncated).

Floors: p99 < 1 s; storm < 10 s. The machine is shared by other engineers: figures measured
on a loaded machine are pessimistic.

Run: ``python benchmarks/alert_latency.py`` (``--alerts N`` and ``--burst N`` shrink it).
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
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

from aiops.logs import configure_logging  # noqa: E402
from aiops.model import Sample, Series, now_ms  # noqa: E402
from app.agent import Agent  # noqa: E402
from app.settings import load_settings  # noqa: E402


class Receiver:
    """A chat receiver on 127.0.0.1: notes when each instance's alert arrives."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.requests = 0
        self.cond = threading.Condition()
        rec = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                t = time.perf_counter()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                try:
                    alerts = json.loads(body).get("alerts", [])
                except (ValueError, AttributeError):
                    alerts = []
                with rec.cond:
                    rec.requests += 1
                    for a in alerts:
                        rec.arrived.setdefault(a.get("labels", {}).get("instance", ""), t)
                    rec.cond.notify_all()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, instance: str, timeout_s: float = 30.0) -> float | None:
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while instance not in self.arrived:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.arrived[instance]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--alerts", type=int, default=1_000, help="alerts timed one by one")
    ap.add_argument("--burst", type=int, default=10_000, help="alerts in the storm")
    args = ap.parse_args()
    configure_logging("WARNING")
    receiver = Receiver()
    tmp = Path(tempfile.mkdtemp(prefix="alert-bench-"))
    settings = load_settings(None, store={"path": tmp / "aiops.db"}, agent={"listen_port": 0}, alerting={
        "rules": [{"alert": "LatencyBench", "expr": "bench_value", "op": ">", "threshold": 0.5,
                   "annotations": {"summary": "{{ $labels.instance }} at {{ $value }}"}},
                  {"alert": "StormBench", "expr": "storm_value", "op": ">", "threshold": 0.5}],
        "route": {"receiver": "chat", "group_by": ["alertname", "instance"], "group_wait": 0,
                  "group_interval": "5m", "routes": [{"matchers": ['alertname="StormBench"'], "receiver": "storm",
                                                      "group_by": ["alertname"]}]},
        "receivers": [{"name": "chat", "type": "webhook", "url": receiver.url, "rate_limit_per_min": 0},
                      {"name": "storm", "type": "webhook", "url": receiver.url.replace("/hook", "/storm"),
                       "rate_limit_per_min": 0}],
        "evaluation_interval_s": 60,
    })
    from app.wiring import build_components  # the real component and the real outbox + webhook notifier

    agent = Agent(settings, [], build_components(settings))
    agent.start()
    try:
        engine = agent.ctx.extra["alerting"]
        # warm-up: imports, connections, first SQLite pages
        for i in range(20):
            agent.ingest([Sample(Series.of("bench_value", instance=f"warm-{i}"), now_ms(), 1.0)])
            receiver.wait(f"warm-{i}")
        latencies_ms: list[float] = []
        missing = 0
        for i in range(args.alerts):
            inst = f"i-{i}"
            t0 = time.perf_counter()
            agent.ingest([Sample(Series.of("bench_value", instance=inst), now_ms(), 1.0)])
            got = receiver.wait(inst)
            if got is None:
                missing += 1
                continue
            latencies_ms.append((got - t0) * 1000)
        # baseline: the bare HTTP POST of a same-sized body to the same server, same run
        body = json.dumps({"alerts": [{"labels": {"alertname": "LatencyBench", "instance": "x"},
                                       "annotations": {"summary": "x at 1"}}], "padding": "x" * 1500}).encode()
        base_ms: list[float] = []
        with httpx.Client() as client:
            for _ in range(args.alerts):
                t0 = time.perf_counter()
                client.post(receiver.url, content=body, headers={"Content-Type": "application/json"})
                base_ms.append((time.perf_counter() - t0) * 1000)
        # the storm: one batch of N breaking samples, evaluated, recorded and grouped
        rss0 = psutil.Process().memory_info().rss
        storm = [Sample(Series.of("storm_value", instance=f"s-{i}"), now_ms(), 1.0) for i in range(args.burst)]
        sent_before = engine.notifications_sent
        t0 = time.perf_counter()
        engine.on_samples(storm)
        burst_s = time.perf_counter() - t0
        rss_mb = (psutil.Process().memory_info().rss - rss0) / 2**20
        firing = sum(1 for d in engine.alerts() if d["alert"].name == "StormBench")
        storm_notes = engine.notifications_sent - sent_before
    finally:
        agent.stop()
        receiver.server.shutdown()
    figures = {
        "alerts": len(latencies_ms), "missing": missing,
        "p50_ms": round(statistics.median(latencies_ms), 2), "p99_ms": round(pct(latencies_ms, 99), 2),
        "max_ms": round(max(latencies_ms), 2),
        "baseline_p50_ms": round(statistics.median(base_ms), 3), "baseline_p99_ms": round(pct(base_ms, 99), 3),
        "burst_alerts": firing, "burst_10k_s": round(burst_s, 3), "burst_notifications": storm_notes,
        "burst_rss_growth_mb": round(rss_mb, 1),
    }
    print(f"{'measure':<44}{'value':>12}")
    print(f"{'sample -> chat request p50 (ms)':<44}{figures['p50_ms']:>12}")
    print(f"{'sample -> chat request p99 (ms)  [floor 1000]':<44}{figures['p99_ms']:>12}")
    print(f"{'sample -> chat request max (ms)':<44}{figures['max_ms']:>12}")
    print(f"{'bare HTTP POST p50 (ms)  [baseline]':<44}{figures['baseline_p50_ms']:>12}")
    print(f"{'bare HTTP POST p99 (ms)  [baseline]':<44}{figures['baseline_p99_ms']:>12}")
    print(f"{f'storm of {firing}: evaluated+grouped (s) [floor 10]':<44}{figures['burst_10k_s']:>12}")
    print(f"{'storm: notifications enqueued':<44}{storm_notes:>12}")
    print(f"{'storm: RSS growth (MiB)':<44}{figures['burst_rss_growth_mb']:>12}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
