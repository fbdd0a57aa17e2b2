"""Tiny synthetic incidents with a known root cause."""

from __future__ import annotations

import numpy as np

from rca import RcaCase

STEP_MS = 60_000


def chain_case(seed: int = 0, n: int = 300, onset: int = 240, shift: float = 6.0) -> RcaCase:
    """db:cpu -> feature:latency -> api:latency; the fault is a level shift of db:cpu.

    Every downstream metric moves about as much as its cause (in its own sigmas), so the size
    of the change alone cannot tell cause from effect.
    """
    rng = np.random.default_rng(seed)
    db = rng.normal(size=n)
    db[onset:] += shift
    feature = 2.0 * db + rng.normal(size=n) * 0.5
    api = 2.0 * feature + rng.normal(size=n) * 0.5
    noise = rng.normal(size=n)  # an unrelated metric of the same service
    ts = np.arange(n, dtype=np.int64) * STEP_MS + 1_700_000_000_000
    return RcaCase(
        ts,
        np.c_[db, feature, api, noise],
        ("db:cpu", "feature:latency", "api:latency", "api:gc_pause"),
        alert_ms=int(ts[onset + 2]),
        symptom="api:latency",
    )


CHAIN_EDGES = [("db", "feature"), ("feature", "api")]
