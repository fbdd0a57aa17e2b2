"""SMD root-cause labels: the metrics our change scores rank first are the labelled ones.

Uses machine-1-2 of ``../shared/datasets/smd`` (a tuning machine of the benchmark: the figures
that count come from ``benchmarks/rca_quality.py`` on held-out machines).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rca import RcaCase, RcaParams, localize

SMD = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "smd" / "machine-1-2"

pytestmark = pytest.mark.skipif(not SMD.is_dir(), reason=f"SMD dataset not found at {SMD} (../shared/datasets/smd)")


def test_labelled_metrics_rank_first_on_machine_1_2() -> None:
    pd = pytest.importorskip("pandas")
    train = pd.read_csv(SMD / "train.csv.gz")
    test = pd.read_csv(SMD / "test.csv.gz")
    cols = [c for c in train.columns if c != "timestamp"]
    both = np.vstack([train[cols].to_numpy(float), test[cols].to_numpy(float)])
    ts = np.arange(len(both), dtype=np.int64) * 60_000
    names = tuple(f"machine:{c}" for c in cols)
    hits = []
    for line in (SMD / "interpretation_label.txt").read_text().splitlines():
        span, dims = line.strip().split(":")
        s, e = (int(v) for v in span.split("-"))
        labelled = {int(d) - 1 for d in dims.split(",")}
        a, b = len(train) + s, len(train) + e - 1
        case = RcaCase(ts[: b + 1], both[: b + 1], names, alert_ms=int(ts[a]), onset_ms=int(ts[a]),
                       end_ms=int(ts[b]))
        ranked = [cols.index(c.metric) for c in localize(case, None, RcaParams(train_points=100_000,
                                                                              window_points=100_000)).causes]
        k = math.ceil(1.5 * len(labelled))
        hits.append(len(labelled & set(ranked[:k])) / len(labelled))
    assert len(hits) == 10
    assert float(np.mean(hits)) >= 0.75  # HitRate@150 %; random ranking gives about 0.1
