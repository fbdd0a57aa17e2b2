"""Live detection at fleet scale: the agent's real detection path with the default detector.

For 10,000 and 100,000 series (each in a fresh subprocess, so memory is measured cleanly): a
:class:`~detectors.live.DetectionComponent` with one default detector spec selecting every
series is started on a real bus, a real SQLite series store and state database (scores and
expected bands written to the store, as ``detect.write_scores`` does by default), and fed
rounds of one sample per series in batches of 5,000 (as the ingest writer publishes them).
Reported: resident memory, CPU time per sample (``update_us``: routing, the detector's update,
the gauge, and writing score and band to the store), the CPU share of one core at one sample
per series per 10 s, and the pickled checkpoint per series (what ``checkpoint()`` writes).

The spec sets ``min_periods=3`` so that the measured rounds are past the warm-up; the arithmetic
per update is the default detector's once warm.

Usage::

    nice -n 5 python benchmarks/detect_scale.py [--series 10000,100000] [--rounds 8]

The last line is one JSON object: ``series``, ``rss_mib``, ``cpu_pct``, ``bytes_per_series``,
``update_us`` (for the largest run, scores and bands written to the store),
``update_us_without_store_writes`` (the same size, the detection path alone) and ``runs``
(every run). CPU time is the process's (``time.process_time``): the store's own threads count.
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BATCH = 5000
FLOORS = {"rss_mib": 2048.0, "cpu_pct": 100.0}


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def run_one(n: int, rounds: int, write: bool = True) -> dict[str, Any]:
    import numpy as np
    from prometheus_client import CollectorRegistry

    from aiops.bus import Bus
    from aiops.model import Sample, Series
    from aiops.protocols import AgentContext
    from aiops.state import StateDB
    from aiops.store import SqliteSeriesStore
    from app.settings import load_settings
    from detectors.live import _STATE_VERSION, DetectionComponent
    from detectors.settings import DetectorSpec

    tmp = Path(tempfile.mkdtemp(prefix="detect-scale-"))
    store = SqliteSeriesStore(tmp / "series.db")
    state = StateDB(f"sqlite:///{tmp / 'state.db'}")
    state.create_all()  # the agent migrates its state database at start: checkpoints need the kv table
    series = [Series.of("gpu_util_ratio", job="scale", instance=f"node-{i // 8}", gpu=str(i % 8)) for i in range(n)]
    spec = DetectorSpec(name="default", selector='gpu_util_ratio{job="scale"}', params={"min_periods": 3})
    comp = DetectionComponent([spec], checkpoint_interval_s=3600.0, write_scores=write)
    bus = Bus()
    comp.start(AgentContext(load_settings(None), store, state, bus, CollectorRegistry(), None, {}))  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    base = rss0 = _rss_mib()
    cpu = 0.0
    timed = 0
    for r in range(rounds):
        values = (0.5 + 0.05 * rng.standard_normal(n)).tolist()
        ts = 1_700_000_000_000 + r * 10_000
        samples = [Sample(s, ts, v) for s, v in zip(series, values, strict=True)]
        c0 = time.process_time()
        for lo in range(0, n, BATCH):
            comp.on_samples(samples[lo: lo + BATCH])
        took = time.process_time() - c0
        if r >= 4:  # past the warm-up (min_periods 3) and the first allocations
            cpu += took
            timed += n
        if r == 0:
            base = rss0
    rss = _rss_mib()
    keys = list(comp._instances)[:: max(1, n // 2000)]
    sizes = [len(pickle.dumps({"version": _STATE_VERSION, "digest": comp._watches[0].digest,
                               "last_ts_ms": comp._instances[k].last_ts_ms, "detector": comp._instances[k].detector},
                              protocol=pickle.HIGHEST_PROTOCOL)) for k in keys]
    c0 = time.perf_counter()
    comp.stop()  # checkpoints every instance
    checkpoint_s = time.perf_counter() - c0
    store.close()
    state.dispose()
    shutil.rmtree(tmp, ignore_errors=True)  # the 100,000-series store is ~100 MB
    update_us = cpu / max(timed, 1) * 1e6
    return {"series": n, "rss_mib": round(rss, 1), "rss_growth_mib": round(rss - base, 1),
            "memory_bytes_per_series": round((rss - base) * 1048576 / n), "update_us": round(update_us, 2),
            "cpu_pct": round(update_us * 1e-6 * n / 10.0 * 100.0, 1),
            "bytes_per_series": round(sum(sizes) / len(sizes)),
            "checkpoint_s": round(checkpoint_s, 2), "rounds": rounds, "write_scores": write}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", default="10000,100000")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--no-write", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.rounds, not args.no_write)))
        return 0
    from rich.console import Console
    from rich.table import Table

    runs = []
    sizes = [int(v) for v in args.series.split(",")]
    # the largest size also without writing scores to the store: the detectors' own share
    plan = [(n, True) for n in sizes[-1:]] + [(n, False) for n in sizes]  # (series, no_write)
    for n, no_write in plan:
        cmd = [sys.executable, __file__, "--one", str(n), "--rounds", str(args.rounds)] + (["--no-write"] * no_write)
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if r.returncode != 0:
            print(r.stderr[-2000:], file=sys.stderr)
            return 1
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    t = Table(title="live detection, default detector (profile), one sample per series per 10 s", title_justify="left")
    for col in ("series", "scores to store", "RSS MiB", "RSS growth MiB", "memory B/series", "update us",
                "CPU % of a core", "checkpoint B/series", "checkpoint s"):
        t.add_column(col, justify="right")
    for r in runs:
        t.add_row(*(str(r[k]) for k in ("series", "write_scores", "rss_mib", "rss_growth_mib",
                                        "memory_bytes_per_series", "update_us", "cpu_pct", "bytes_per_series",
                                        "checkpoint_s")))
    console = Console(width=150)
    console.print(t)
    last = runs[-1]
    for key, floor in FLOORS.items():
        console.print(f"{'PASS' if last[key] < floor else 'FAIL'}  {last['series']} series {key} "
                      f"{last[key]} < {floor}", highlight=False)
    detector_only = next(r for r in runs if r["series"] == last["series"] and not r["write_scores"])
    print(json.dumps({**{k: last[k] for k in ("series", "rss_mib", "cpu_pct", "bytes_per_series", "update_us")},
                      "memory_bytes_per_series": last["memory_bytes_per_series"],
                      "update_us_without_store_writes": detector_only["update_us"],
                      "memory_bytes_per_series_without_store_writes": detector_only["memory_bytes_per_series"],
                      "runs": runs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
