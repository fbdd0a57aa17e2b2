"""Downsampling arithmetic of the store: per-bucket partial aggregates, mergeable.

Raw samples and rollup rows both become a :class:`Partial` (count, sum, min, max, last per
bucket); partials merge, so a downsampled read spanning expired raw data (rollups) and recent
raw data gives the same buckets as if all raw data were still there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from aiops.errors import InputError
from aiops.model import Series

__all__ = ["AGGREGATIONS", "Partial", "SeriesData", "finish", "merge_partials", "partial_from_raw"]

AGGREGATIONS: tuple[str, ...] = ("avg", "min", "max", "last", "sum", "count")


@dataclass(frozen=True, slots=True)
class SeriesData:
    """Samples of one series in time order: ``ts_ms`` (int64 UTC ms) and ``values`` (float64)."""

    series: Series
    ts_ms: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])


@dataclass(slots=True)
class Partial:
    """Partial aggregates per bucket, mergeable across raw data and rollups."""

    buckets: npt.NDArray[np.int64]
    count: npt.NDArray[np.float64]
    total: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    last: npt.NDArray[np.float64]
    last_ts: npt.NDArray[np.int64]


def partial_from_raw(ts: npt.NDArray[np.int64], vals: npt.NDArray[np.float64], step_ms: int) -> Partial:
    """Per-bucket aggregates of one series' raw samples, given in time order."""
    buckets_all = (ts // step_ms) * step_ms
    starts = np.flatnonzero(np.diff(buckets_all, prepend=np.int64(-(2**62)))) if ts.size else np.zeros(0, np.int64)
    return _reduce(ts, vals, buckets_all, starts)


def partial_groups(
    sids: npt.NDArray[np.int64], ts: npt.NDArray[np.int64], vals: npt.NDArray[np.float64], step_ms: int
) -> tuple[npt.NDArray[np.int64], Partial]:
    """Per-(series, bucket) aggregates of samples sorted by series and then time, in one pass.

    Returns:
        The series id of every bucket, and the buckets' aggregates.
    """
    buckets_all = (ts // step_ms) * step_ms
    if not ts.size:
        return np.zeros(0, dtype=np.int64), _reduce(ts, vals, buckets_all, np.zeros(0, dtype=np.int64))
    change = np.ones(ts.size, dtype=bool)
    change[1:] = (sids[1:] != sids[:-1]) | (buckets_all[1:] != buckets_all[:-1])
    starts = np.flatnonzero(change)
    return sids[starts], _reduce(ts, vals, buckets_all, starts)


def _reduce(ts: npt.NDArray[np.int64], vals: npt.NDArray[np.float64], buckets_all: npt.NDArray[np.int64],
            start: npt.NDArray[np.int64]) -> Partial:
    """Aggregates of the runs beginning at ``start`` (contiguous, non-empty, in time order)."""
    if not ts.size:
        z = np.zeros(0)
        return Partial(np.zeros(0, dtype=np.int64), z, z, z, z, z, np.zeros(0, dtype=np.int64))
    buckets = buckets_all[start]
    finite = np.isfinite(vals)
    fv = np.where(finite, vals, 0.0)
    count = np.add.reduceat(finite.astype(np.float64), start)
    total = np.add.reduceat(fv, start)
    low = np.minimum.reduceat(np.where(finite, vals, np.inf), start)
    high = np.maximum.reduceat(np.where(finite, vals, -np.inf), start)
    # last finite value of each bucket: samples are in time order, so the greatest finite position
    positions = np.where(finite, np.arange(ts.size), -1)
    last_pos = np.maximum.reduceat(positions, start)
    has = last_pos >= 0
    idx = np.maximum(last_pos, 0)
    last = np.where(has, vals[idx], np.nan)
    last_ts = np.where(has, ts[idx], -1)
    return Partial(buckets.astype(np.int64), count, total, low, high, last, last_ts.astype(np.int64))


def finish(series: Series, part: Partial, agg: str) -> SeriesData:
    with np.errstate(invalid="ignore", divide="ignore"):
        empty = part.count == 0
        if agg == "avg":
            out = np.where(empty, np.nan, part.total / np.where(empty, 1, part.count))
        elif agg == "min":
            out = np.where(empty, np.nan, part.low)
        elif agg == "max":
            out = np.where(empty, np.nan, part.high)
        elif agg == "sum":
            out = np.where(empty, np.nan, part.total)
        elif agg == "count":
            out = part.count.astype(np.float64)
        elif agg == "last":
            out = part.last
        else:
            raise InputError(f"aggregation {agg!r}: expected one of {', '.join(AGGREGATIONS)}")
    return SeriesData(series, part.buckets.astype(np.int64), np.asarray(out, dtype=np.float64))


def merge_partials(a: Partial, b: Partial) -> Partial:
    buckets = np.union1d(a.buckets, b.buckets)
    n = buckets.size
    count = np.zeros(n)
    total = np.zeros(n)
    low = np.full(n, np.inf)
    high = np.full(n, -np.inf)
    last = np.full(n, np.nan)
    last_ts = np.full(n, -1, dtype=np.int64)
    for p in (a, b):
        idx = np.searchsorted(buckets, p.buckets)
        count[idx] += p.count
        total[idx] += p.total
        low[idx] = np.minimum(low[idx], p.low)
        high[idx] = np.maximum(high[idx], p.high)
        newer = p.last_ts > last_ts[idx]
        last[idx[newer]] = p.last[newer]
        last_ts[idx[newer]] = p.last_ts[newer]
    return Partial(buckets, count, total, low, high, last, last_ts)


