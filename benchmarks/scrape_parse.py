"""Scrape parsing cost: our cached exposition parser vs prometheus_client's parser.

One target exporting 10,000 series (gauges, counters, histograms; node_exporter-like label
sets) is parsed the way the scrape collector parses it: the first scrape fills the series
cache (cold), later scrapes hit it (warm). The baseline is
``prometheus_client.parser.text_string_to_metric_families`` on the same text, every sample
materialised. A full ``ScrapeCollector.collect`` over real HTTP on 127.0.0.1 is timed as well.
CPU time (``time.process_time``), median of the repeats.

Run: ``python benchmarks/scrape_parse.py`` (``--series N``, ``--repeats N``).
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from collectors import ExpositionParser, ScrapeCollector  # noqa: E402
from collectors.settings import ScrapeTarget  # noqa: E402


def exposition(n: int) -> str:
    """About ``n`` series: a third gauges, a third counters, a third histogram lines."""
    lines: list[str] = []
    per = n // 3
    lines.append("# HELP app_queue_depth Items waiting.\n# TYPE app_queue_depth gauge")
    lines += [f'app_queue_depth{{queue="q{i}",shard="{i % 16}",region="eu-west-1"}} {i * 0.5}' for i in range(per)]
    lines.append("# HELP app_requests_total Requests.\n# TYPE app_requests_total counter")
    lines += [f'app_requests_total{{path="/api/v1/items/{i}",method="GET",code="200"}} {i * 7}' for i in range(per)]
    lines.append("# HELP app_latency_seconds Latency.\n# TYPE app_latency_seconds histogram")
    buckets = ("0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf")
    routes = max(1, (n - 2 * per) // (len(buckets) + 2))
    for r in range(routes):
        for j, le in enumerate(buckets):
            lines.append(f'app_latency_seconds_bucket{{route="r{r}",le="{le}"}} {j * 10 + r}')
        lines.append(f'app_latency_seconds_sum{{route="r{r}"}} {r * 1.5}')
        lines.append(f'app_latency_seconds_count{{route="r{r}"}} {70 + r}')
    return "\n".join(lines) + "\n"


def cpu_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        times.append((time.process_time() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    text = exposition(args.series)
    n_lines = sum(1 for ln in text.splitlines() if ln and not ln.startswith("#"))
    labels = {"job": "app", "instance": "127.0.0.1:9100"}

    cold = cpu_ms(lambda: ExpositionParser(labels).parse(text, 0), max(3, args.repeats // 3))
    warm_parser = ExpositionParser(labels)
    warm_parser.parse(text, 0)
    warm = cpu_ms(lambda: warm_parser.parse(text, 1), args.repeats)
    baseline = cpu_ms(lambda: [s for f in text_string_to_metric_families(text) for s in f.samples],
                      max(3, args.repeats // 3))

    body = text.encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_a: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        c = ScrapeCollector(ScrapeTarget(url=f"http://127.0.0.1:{server.server_address[1]}/metrics", job="app"))
        c.collect(0)
        # process_time counts the server thread too (same process): an upper bound for the scraper
        collect = cpu_ms(lambda: c.collect(1), args.repeats)
        c.close()
    finally:
        server.shutdown()

    rows = [("our parser, first scrape (cache fill)", cold), ("our parser, later scrapes (cached)", warm),
            ("prometheus_client parser", baseline), ("ScrapeCollector.collect over HTTP (+ server)", collect)]
    print(f"{n_lines} series, {len(body) / 1024:.0f} KiB per scrape; CPU ms per scrape (median)")
    print(f"{'what':<48}{'cpu ms':>10}")
    for name, ms in rows:
        print(f"{name:<48}{ms:>10.1f}")
    print(f"speed-up over prometheus_client (cached): {baseline / warm:.1f}x")
    print("note: measured on a machine shared with other work; figures are pessimistic")
    print(json.dumps({"series": n_lines, "body_bytes": len(body), "parse_cold_cpu_ms": round(cold, 2),
                      "parse_warm_cpu_ms": round(warm, 2), "prometheus_client_cpu_ms": round(baseline, 2),
                      "collect_http_cpu_ms": round(collect, 2), "speedup_x": round(baseline / warm, 2)}))


if __name__ == "__main__":
    main()
