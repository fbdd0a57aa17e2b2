"""Detector calibration check: false-alarm rates on anomaly-free series (detectors issue).

Every detector's score claims ``P(score > 0.99) ~ 1 %`` on normal data. This runs each
calibrated detector with its defaults over six anomaly-free series of 20,000 points (Gaussian
noise, AR(1) with phi 0.8, a noisy daily wave of 288 points, a random walk, Laplace noise, a
noisy linear trend) and prints the share of points (after the first 1,000) scoring above 0.99,
above 0.999, and at or above the detector's own threshold. No baseline: the target is 1 %.

Run: ``python benchmarks/detect_calibration.py`` (``--points N`` shrinks it). The last line of
output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detectors import create  # noqa: E402

DETECTORS: dict[str, dict[str, Any]] = {"zscore": {}, "iforest": {}, "lstm": {}, "seasonal": {"period": 288}}


def series(n: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ar = np.zeros(n)
    eps = rng.normal(size=n)
    for i in range(1, n):
        ar[i] = 0.8 * ar[i - 1] + eps[i]
    t = np.arange(n)
    return {
        "gauss": rng.normal(size=n),
        "ar1": ar,
        "wave": np.sin(2 * np.pi * t / 288) + 0.2 * rng.normal(size=n),
        "walk": np.cumsum(rng.normal(size=n)),
        "laplace": rng.laplace(size=n),
        "trend": 0.01 * t + rng.normal(size=n),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=20_000, help="points per series")
    args = ap.parse_args()
    data = series(args.points)
    res: dict[str, float] = {}
    print(f"{'detector':10} {'series':8} {'>0.99':>8} {'>0.999':>8} {'>=threshold':>12}")
    for name, params in DETECTORS.items():
        for kind, x in data.items():
            det = create(name, **params)
            s = det.score(x)[1000:]
            a, b, c = (s > 0.99).mean(), (s > 0.999).mean(), (s >= det.threshold).mean()
            res[f"{name}_{kind}_over_099_pct"] = 100 * a
            res[f"{name}_{kind}_over_0999_pct"] = 100 * b
            res[f"{name}_{kind}_at_threshold_pct"] = 100 * c
            print(f"{name:10} {kind:8} {a:8.2%} {b:8.2%} {c:12.2%}  (threshold {det.threshold})")
    print(json.dumps({k: round(v, 3) for k, v in res.items()}))


if __name__ == "__main__":
    main()
