"""Detector speed benchmark (detectors issue): points per second, batch and streaming.

For every detector: batch ``score`` on 1,000,000 points of a noisy daily wave (a fresh
detector; the time includes its own warm-up fits and scheduled refits, except lstm, whose
one training is timed apart as ``lstm_fit_s`` and whose batch figure is inference only), and
streaming ``update`` one point at a time on fewer points (stated in the table; a rate in
points/s either way). Next to them, in the same run, the baseline: a plain numpy vectorised
rolling z-score (cumulative sums, window 30) over the same 1,000,000 points.

Floors: zscore batch >= 25 % of the numpy baseline; zscore streaming >= 200,000 points/s;
iforest batch >= 100,000 points/s; lstm batched inference >= 50,000 points/s (CPU).
The machine is shared by other engineers: figures measured on a loaded machine are pessimistic.

Run: ``python benchmarks/detect_speed.py`` (``--points N`` shrinks it). The last line of
output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detectors import LSTMDetector, create  # noqa: E402


def numpy_rolling_zscore(x: np.ndarray, w: int = 30) -> np.ndarray:
    """The baseline: z of each point against the ``w`` points before it, by cumulative sums."""
    c1 = np.concatenate([[0.0], np.cumsum(x)])
    c2 = np.concatenate([[0.0], np.cumsum(x * x)])
    s1 = c1[w:-1] - c1[: -w - 1]
    s2 = c2[w:-1] - c2[: -w - 1]
    mean = s1 / w
    sd = np.sqrt(np.maximum(s2 / w - mean * mean, 0.0) * w / (w - 1))
    return (x[w:] - mean) / sd


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    """Fastest of ``repeat`` runs (the least disturbed by other processes), in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def stream_rate(name: str, params: dict[str, Any], warm: np.ndarray, x: np.ndarray, repeat: int = 1) -> float:
    """Points/s of ``update`` on ``x`` after ``warm`` went through ``score`` (models fitted)."""
    def run() -> None:
        det = create(name, **params)
        det.score(warm)
        upd = det.update
        t0 = time.perf_counter()
        for v in x:
            upd(v)
        timings.append(time.perf_counter() - t0)

    timings: list[float] = []
    for _ in range(repeat):
        run()
    return x.size / min(timings)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000, help="points for batch scoring")
    ap.add_argument("--repeat", type=int, default=3, help="runs of the fast measurements (best is kept)")
    args = ap.parse_args()
    n = args.points
    rng = np.random.default_rng(0)
    t = np.arange(n)
    x = 50 + 10 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 1, n)
    xl = x.tolist()
    res: dict[str, Any] = {"points": n, "cpu_count": os.cpu_count()}
    for name, params in [("zscore", {}), ("iforest", {}), ("lstm", {}), ("seasonal", {}), ("forecast", {"limit": 1.0})]:
        create(name, **params)  # import sklearn / torch / scipy before any clock starts
    rows: list[tuple[str, str, float, str]] = []

    base_s = best_of(lambda: numpy_rolling_zscore(x), args.repeat + 2)
    res["numpy_baseline_pts_per_s"] = n / base_s
    rows.append(("numpy rolling z (baseline)", "batch", n / base_s, f"{n:,} pts"))

    zs = best_of(lambda: create("zscore").score(x), args.repeat + 2)
    res["zscore_batch_pts_per_s"] = n / zs
    res["zscore_batch_vs_numpy_ratio"] = base_s / zs
    rows.append(("zscore", "batch", n / zs, f"{n:,} pts; {base_s / zs:.0%} of numpy"))
    m = min(n, 300_000)
    res["zscore_stream_points"] = m
    res["zscore_stream_pts_per_s"] = stream_rate("zscore", {}, x[:0], np.asarray(xl[:m], dtype=object),
                                                 args.repeat)
    rows.append(("zscore", "stream", res["zscore_stream_pts_per_s"], f"{m:,} pts, pure Python update()"))

    zr = best_of(lambda: create("zscore", robust=True).score(x), 1)
    res["zscore_robust_batch_pts_per_s"] = n / zr
    rows.append(("zscore robust=True", "batch", n / zr, f"{n:,} pts"))
    zsn = best_of(lambda: create("zscore", seasonal_period=288).score(x), 1)
    res["zscore_seasonal_batch_pts_per_s"] = n / zsn
    rows.append(("zscore seasonal_period=288", "batch", n / zsn, f"{n:,} pts"))

    fi = best_of(lambda: create("iforest").score(x), 2)
    res["iforest_batch_pts_per_s"] = n / fi
    refits = max(0, (n - 1000) // 20_000)
    rows.append(("iforest", "batch", n / fi, f"{n:,} pts incl. first fit + {refits} refits"))
    res["iforest_stream_pts_per_s"] = stream_rate("iforest", {}, x[:2000], x[2000:2300])
    rows.append(("iforest", "stream", res["iforest_stream_pts_per_s"], "300 pts"))

    t0 = time.perf_counter()
    lstm = LSTMDetector().fit(x[:2000])
    res["lstm_fit_s"] = time.perf_counter() - t0
    rows.append(("lstm fit (2,000 pts, 10 epochs)", "train", 2000 / res["lstm_fit_s"], f"{res['lstm_fit_s']:.2f} s"))
    li = best_of(lambda: lstm.score(x), 2)
    res["lstm_batch_pts_per_s"] = n / li
    import torch

    res["torch_threads"] = torch.get_num_threads()
    rows.append(("lstm", "batch", n / li, f"{n:,} pts, inference, {res['torch_threads']} torch threads"))
    lstm.threads = 1
    l1 = best_of(lambda: lstm.score(x), 2)
    res["lstm_batch_1_thread_pts_per_s"] = n / l1
    rows.append(("lstm threads=1", "batch", n / l1, f"{n:,} pts, inference, 1 torch thread"))
    t0 = time.perf_counter()
    for v in x[:500]:
        lstm.update(v)
    res["lstm_stream_pts_per_s"] = 500 / (time.perf_counter() - t0)
    rows.append(("lstm", "stream", res["lstm_stream_pts_per_s"], "500 pts"))

    se = best_of(lambda: create("seasonal", period=288).score(x), 1)
    res["seasonal_batch_pts_per_s"] = n / se
    rows.append(("seasonal (median, period 288)", "batch", n / se, f"{n:,} pts, refit every period"))
    res["seasonal_stream_pts_per_s"] = stream_rate("seasonal", {"period": 288}, x[:2000], x[2000:7000])
    rows.append(("seasonal", "stream", res["seasonal_stream_pts_per_s"], "5,000 pts"))
    m_stl = min(n, 288 * 10)
    st = best_of(lambda: create("seasonal", period=288, method="stl").score(x[:m_stl]), 1)
    res["seasonal_stl_batch_pts_per_s"] = m_stl / st
    rows.append(("seasonal (method=stl)", "batch", m_stl / st, f"{m_stl:,} pts (STL refits are slow)"))

    fo = best_of(lambda: create("forecast", limit=100.0).score(x), 1)
    res["forecast_batch_pts_per_s"] = n / fo
    rows.append(("forecast", "batch", n / fo, f"{n:,} pts"))
    res["forecast_stream_pts_per_s"] = stream_rate("forecast", {"limit": 100.0}, x[:100], x[100:5100])
    rows.append(("forecast", "stream", res["forecast_stream_pts_per_s"], "5,000 pts"))

    floors = {
        "zscore_batch_vs_numpy_ratio": 0.25,
        "zscore_stream_pts_per_s": 200_000,
        "iforest_batch_pts_per_s": 100_000,
        "lstm_batch_pts_per_s": 50_000,
    }
    for key, floor in floors.items():
        res[f"{key}_floor_met"] = bool(res[key] >= floor)

    print(f"{'detector':34} {'mode':7} {'points/s':>14}  note")
    for name, mode, rate, note in rows:
        print(f"{name:34} {mode:7} {rate:14,.0f}  {note}")
    print("floors: " + ", ".join(f"{k} >= {v:,} {'ok' if res[k + '_floor_met'] else 'MISSED'}"
                                 for k, v in floors.items()))
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in res.items()}))


if __name__ == "__main__":
    main()
