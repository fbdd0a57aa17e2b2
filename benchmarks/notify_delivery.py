"""Notification delivery benchmark (alerting issue, delivery half).

Measures, through real HTTP on 127.0.0.1 and a real SQLite state DB:
1. ``enqueue``: rows written per second and p99 ms of one ``Outbox.enqueue`` (the alerting
   core's hot call; it must never wait on the network);
2. delivery: notifications per second through one unlimited lane (lease, render, POST,
   mark sent) and the enqueue-to-delivered latency (p50/p99), next to the baseline: the bare
   httpx POST of the same bodies to the same server in the same run;
3. a storm: 10,000 notifications to a receiver limited to 600/min: seconds to settle, messages
   actually sent, notifications held back (all recorded), RSS growth of the process.

The machine is shared by other engineers: figures measured on a loaded machine are pessimistic.
Run: ``python benchmarks/notify_delivery.py`` (``--n N`` and ``--burst N`` shrink it).
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "alerting"))

from notif_support import RecordingServer, make_outbox, sample_notification  # noqa: E402

from aiops.logs import configure_logging  # noqa: E402
from aiops.state import StateDB  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="notifications for the enqueue and delivery runs")
    ap.add_argument("--burst", type=int, default=10_000, help="notifications in the storm")
    args = ap.parse_args()
    configure_logging("WARNING")
    tmp = Path(tempfile.mkdtemp(prefix="notify-bench-"))
    srv = RecordingServer()
    figures: dict[str, float] = {}

    # 1 + 2: enqueue, then deliver through one unlimited lane
    db = StateDB(f"sqlite:///{tmp / 'a.db'}")
    db.create_all()
    box = make_outbox(db, {"ops": srv}, timeout_s=10)
    notes = [sample_notification(group=f"g{i}", n_alerts=2) for i in range(args.n)]
    enq_ms = []
    t0 = time.perf_counter()
    for n in notes:
        t = time.perf_counter()
        box.enqueue(n)
        enq_ms.append((time.perf_counter() - t) * 1000)
    enq_s = time.perf_counter() - t0
    figures["enqueue_per_s"] = args.n / enq_s
    figures["enqueue_p99_ms"] = _pct(enq_ms, 0.99)
    box.start()
    t0 = time.perf_counter()
    box.drain(600)
    deliver_s = time.perf_counter() - t0
    box.stop()
    figures["deliver_per_s"] = args.n / deliver_s

    # latency while enqueueing at a steady pace (the lane idles between messages)
    db2 = StateDB(f"sqlite:///{tmp / 'b.db'}")
    db2.create_all()
    srv2 = RecordingServer()
    box2 = make_outbox(db2, {"ops": srv2}, timeout_s=10)
    box2.start()
    m = min(300, args.n)
    for i in range(m):
        box2.enqueue(sample_notification(group=f"l{i}"))
        time.sleep(0.01)
    box2.drain(120)
    box2.stop()
    with db2.engine.connect() as conn:
        lat = [float(r[0]) for r in conn.exec_driver_sql("select sent_ms - created_ms from outbox where status='sent'")]
    figures["latency_p50_ms"] = statistics.median(lat)
    figures["latency_p99_ms"] = _pct(lat, 0.99)
    srv2.stop()

    # baseline: the bare POST of the same rendered bodies
    from alerting.notifiers.webhook import alertmanager_message

    bodies = [json.dumps(alertmanager_message(n)).encode() for n in notes]
    with httpx.Client() as client:
        t0 = time.perf_counter()
        for body in bodies:
            client.post(srv.url + "/baseline", content=body, headers={"Content-Type": "application/json"})
        base_s = time.perf_counter() - t0
    figures["baseline_post_per_s"] = args.n / base_s

    # 3: storm
    srv3 = RecordingServer()
    db3 = StateDB(f"sqlite:///{tmp / 'c.db'}")
    db3.create_all()
    box3 = make_outbox(db3, {"ops": srv3}, rate={"ops": (600.0, 10)})
    box3.start()
    gc.collect()
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    t0 = time.perf_counter()
    for i in range(args.burst):
        box3.enqueue(sample_notification(group=f"s{i % 50}", n_alerts=1))
    box3.drain(600)
    figures["storm_settle_s"] = time.perf_counter() - t0
    figures["storm_rss_growth_mib"] = (proc.memory_info().rss - rss0) / 2**20
    box3.stop()
    counts = box3.counts()
    figures["storm_sent"] = counts.get("sent", 0)
    figures["storm_held_back"] = counts.get("held_back", 0)
    figures["storm_recorded"] = sum(counts.values())
    srv3.stop()
    srv.stop()

    rows = [
        ("enqueue (SQLite, one row per call)", f"{figures['enqueue_per_s']:.0f}/s",
         f"p99 {figures['enqueue_p99_ms']:.2f} ms"),
        ("deliver, one lane (lease+render+POST+mark)", f"{figures['deliver_per_s']:.0f}/s", ""),
        ("baseline: bare httpx POST, same bodies", f"{figures['baseline_post_per_s']:.0f}/s", ""),
        ("enqueue -> delivered, steady pace", f"p50 {figures['latency_p50_ms']:.1f} ms",
         f"p99 {figures['latency_p99_ms']:.1f} ms"),
        (f"storm of {args.burst} at 600/min", f"{figures['storm_settle_s']:.1f} s to settle",
         f"{figures['storm_sent']} sent, {figures['storm_held_back']} held back, "
         f"{figures['storm_recorded']} recorded, RSS +{figures['storm_rss_growth_mib']:.0f} MiB"),
    ]
    for name, a, b in rows:
        print(f"{name:45s} {a:>22s}  {b}")
    print(json.dumps({k: round(v, 3) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
