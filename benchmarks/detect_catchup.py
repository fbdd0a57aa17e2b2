"""The first batch after a restore, with and without the catch-up on stored samples.

``N`` z-score detectors learn 25 points, are checkpointed (a clean stop), ``--gap`` more points
per series are stored while nobody detects, then a second component restores them all on its
first batch: with ``catchup_s=0`` (resume from the checkpoint alone) and with ``catchup_s=600``
(score the stored points after the checkpoint first: one store query for the batch's restored
detectors). SQLite store and state database in a temporary folder.

    python benchmarks/detect_catchup.py --series 5000 --gap 6

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def measure(n: int, gap: int, catchup_s: float) -> dict[str, float]:
    import structlog
    from prometheus_client import CollectorRegistry

    from aiops.bus import Bus
    from aiops.model import Sample, Series
    from aiops.protocols import AgentContext
    from aiops.state import StateDB
    from aiops.store import SqliteSeriesStore
    from app.settings import load_settings
    from detectors.live import DetectionComponent
    from detectors.settings import DetectorSpec

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    spec = DetectorSpec(name="z", detector="zscore", selector="bench_metric", params={"window": 20})
    series = [Series.of("bench_metric", i=str(i)) for i in range(n)]

    def batch(ts_ms: int) -> list[Sample]:
        return [Sample(s, ts_ms, 1.0 + 0.01 * ((ts_ms // 1000 + i) % 7)) for i, s in enumerate(series)]

    folder = Path(tempfile.mkdtemp(prefix="aiops-catchup-"))
    store = SqliteSeriesStore(folder / "samples.db")
    db = StateDB(f"sqlite:///{folder / 'state.db'}")
    db.create_all()

    def component() -> DetectionComponent:
        comp = DetectionComponent([spec], 3600, catchup_s=catchup_s)
        comp.start(AgentContext(load_settings(None), store, db, Bus(), CollectorRegistry(), None, {}))  # type: ignore[arg-type]
        return comp

    first, ts = component(), 1_700_000_000_000
    for _ in range(25):
        ts += 10_000
        samples = batch(ts)
        store.append(samples)
        first.on_samples(samples)
    first.stop()
    for _ in range(gap):  # stored while nobody detected
        ts += 10_000
        store.append(batch(ts))
    second = component()
    ts += 10_000
    samples = batch(ts)
    store.append(samples)
    started = time.perf_counter()
    second.on_samples(samples)
    took = time.perf_counter() - started
    second.stop()
    store.close()
    db.dispose()
    return {"catchup_s": catchup_s, "first_batch_s": round(took, 3), "updates": second.scored,
            "ms_per_detector": round(took * 1000 / n, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=5000)
    ap.add_argument("--gap", type=int, default=6, help="points per series stored while nobody detected")
    args = ap.parse_args()
    runs = [measure(args.series, args.gap, c) for c in (0.0, 600.0)]
    for run in runs:
        print(f"catchup_s={run['catchup_s']:g}: first batch {run['first_batch_s']} s, {run['updates']} updates")
    print(json.dumps({"series": args.series, "gap": args.gap, "runs": runs}))


if __name__ == "__main__":
    main()
