"""Remote-write across a receiver outage: nothing lost when Prometheus is down for 60 s.

A real ``prometheus --web.enable-remote-write-receiver`` (free port, its own TSDB) receives
``--series`` series, one sample each every second, through :class:`aiops.remotewrite.RemoteWriter`.
After ``--before-s`` seconds Prometheus is stopped for ``--outage-s`` seconds while collection goes
on (the samples wait in the on-disk queue), then started again on the same port and TSDB. At the
end every series is read back through ``PrometheusSeriesStore`` and compared with what was written.
Baseline in the same run: the seconds the queue needs to drain after the outage, against the
outage's length.

    python benchmarks/remote_write_outage.py                 # 60 s outage, ~2 minutes
    python benchmarks/remote_write_outage.py --outage-s 10   # quick

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiops.model import Sample, Series  # noqa: E402
from aiops.promapi import PrometheusClient  # noqa: E402
from aiops.promstore import PrometheusSeriesStore  # noqa: E402
from aiops.remotewrite import RemoteWriter  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    def __init__(self, root: Path) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise SystemExit("prometheus is not installed (Debian package prometheus)")
        self.binary, self.root, self.port = binary, root, _free_port()
        (root / "prometheus.yml").write_text("global:\n  scrape_interval: 1h\n")
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.root / "prometheus.log").open("ab")
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={self.root / 'prometheus.yml'}", f"--storage.tsdb.path={self.root / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-remote-write-receiver"],
            stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise SystemExit("prometheus did not become ready")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--series", type=int, default=1000)
    p.add_argument("--before-s", type=int, default=10)
    p.add_argument("--outage-s", type=int, default=60)
    p.add_argument("--after-s", type=int, default=10)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="rw-outage-"))
    prom = Prometheus(root)
    prom.start()
    writer = RemoteWriter(f"{prom.url}/api/v1/write", root / "queue", flush_interval_s=0.5, backoff_s=0.5,
                          backoff_max_s=5.0, timeout_s=5.0)
    writer.start()
    series = [Series.of("rw_outage_metric", pod=f"p{i // 8}", gpu=str(i % 8)) for i in range(args.series)]
    start_ms = (int(time.time()) - 1) * 1000
    written = 0
    peak_queue = 0
    try:
        total = args.before_s + args.outage_s + args.after_s
        outage_at, back_at = args.before_s, args.before_s + args.outage_s
        for k in range(total):
            if k == outage_at:
                prom.stop()
            if k == back_at:
                prom.start()
                restarted = time.monotonic()
            ts = start_ms + k * 1000
            writer.add([Sample(s, ts, float(k * 1000 + i % 1000)) for i, s in enumerate(series)])
            written += len(series)
            peak_queue = max(peak_queue, writer.pending_samples)
            time.sleep(max(0.0, (start_ms + (k + 1) * 1000) / 1000 - time.time()))
        while writer.pending_samples and time.monotonic() - restarted < 300:
            time.sleep(0.2)
        drain_s = time.monotonic() - restarted
        store = PrometheusSeriesStore(PrometheusClient(prom.url, timeout_s=30))
        returned = mismatched = 0
        end_ms = start_ms + total * 1000
        for i, s in enumerate(series):
            data = store.read(s, start_ms, end_ms)
            want = [(start_ms + k * 1000, float(k * 1000 + i % 1000)) for k in range(total)]
            got = list(zip(data.ts_ms.tolist(), data.values.tolist(), strict=True))
            returned += len(got)
            mismatched += got != want
        store.close()
    finally:
        writer.stop(drain_s=0)
        prom.stop()
        shutil.rmtree(root, ignore_errors=True)
    queue_bytes = sum(p.stat().st_size for p in (root / "queue").glob("*.rw")) if (root / "queue").exists() else 0
    print(f"{args.series} series at 1 s, Prometheus down {args.outage_s} s after {args.before_s} s")
    print(f"{'written':>10} {'returned':>10} {'series differing':>17} {'peak queued':>12} {'drain s':>8}")
    print(f"{written:>10} {returned:>10} {mismatched:>17} {peak_queue:>12} {drain_s:>8.1f}")
    print(json.dumps({"series": args.series, "outage_s": args.outage_s, "samples_written": written,
                      "samples_returned": returned, "series_differing": mismatched, "lost_samples": written - returned,
                      "peak_queued_samples": peak_queue, "drain_s": round(drain_s, 2),
                      "queue_bytes_left": queue_bytes}))


if __name__ == "__main__":
    main()
