"""Replay sources besides CSV files: the embedded store and a Prometheus server.

Both yield :class:`~aiops.store.SeriesData` (timestamps in UTC ms, float values); replayed
series are written with ISO-8601 UTC timestamps, one output file per series.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aiops.config import parse_duration_s
from aiops.errors import InputError
from aiops.model import Sample, Series, parse_selector
from aiops.store import SeriesData, SqliteSeriesStore
from aiops.timeutil import format_ts_ms, parse_time_ms
from detectors.params import resolve_durations
from detectors.registry import get
from detectors.replay import ReplayResult, make_detector, median_interval_s, score_series, write_output

__all__ = ["read_store", "read_prometheus", "replay_series", "file_name_of"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _range_ms(start: str, end: str) -> tuple[int, int]:
    start_ms, end_ms = parse_time_ms(start), parse_time_ms(end)
    if end_ms < start_ms:
        raise InputError(f"--start {start!r} is after --end {end!r}")
    return start_ms, end_ms


def read_store(path: str | Path, selector: str, start: str, end: str) -> list[SeriesData]:
    """Raw samples of every stored series matching ``selector`` between ``start`` and ``end``.

    Raises:
        InputError: a bad selector or time, or no series matches.
    """
    start_ms, end_ms = _range_ms(start, end)
    matchers = parse_selector(selector)
    with SqliteSeriesStore(path, read_only=True) as store:
        found = [store.read(s, start_ms, end_ms) for s in store.select(matchers)]
    found = [d for d in found if len(d)]
    if not found:
        raise InputError(f"--selector {selector}: no stored samples in {path} between {start} and {end}")
    return found


def read_prometheus(url: str, query: str, start: str, end: str, step: str) -> list[SeriesData]:
    """The result of a ``query_range`` on a Prometheus server, one entry per returned series.

    Raises:
        InputError: a bad time or step. CollectError: the server cannot be read.
    """
    from aiops.promapi import PrometheusClient

    start_ms, end_ms = _range_ms(start, end)
    try:
        step_s = parse_duration_s(step)
    except ValueError as exc:
        raise InputError(f"--step {step!r}: {exc}") from exc
    if step_s <= 0:
        raise InputError(f"--step {step!r}: must be positive")
    with PrometheusClient(url) as client:
        samples = client.query_range(query, start_ms, end_ms, step_s)
    by_series: dict[Series, list[Sample]] = {}
    for sample in samples:
        by_series.setdefault(sample.series, []).append(sample)
    found = []
    for series, points in sorted(by_series.items()):
        points.sort(key=lambda p: p.ts_ms)
        found.append(SeriesData(series, np.array([p.ts_ms for p in points], dtype=np.int64),
                                np.array([p.value for p in points], dtype=np.float64)))
    if not found:
        raise InputError(f"--query {query}: Prometheus at {url} returned no samples between {start} and {end}")
    return found


def file_name_of(data: SeriesData) -> str:
    """A file name for a series: its canonical key with unsafe characters replaced."""
    return _UNSAFE.sub("_", data.series.key).strip("_")[:200] + ".csv"


def replay_series(found: Sequence[SeriesData], output: str | Path, detector: str, params: dict[str, Any] | None = None,
                  threshold: float | None = None) -> list[ReplayResult]:
    """Replay each series through a fresh detector.

    ``output`` is a file when it ends in ``.csv`` and one series was found; otherwise a directory
    with one file per series, named after the series.
    """
    out = Path(output)
    single = len(found) == 1 and out.suffix.lower() == ".csv"
    if not single and out.suffix.lower() == ".csv":
        raise InputError(f"--output {out}: {len(found)} series matched; give a directory for them")
    results = []
    used: set[str] = set()
    for data in found:
        started = time.perf_counter()
        resolved = resolve_durations(get(detector), dict(params or {}), median_interval_s(data.ts_ms))
        det = make_detector(detector, resolved, threshold)
        scores, flags = score_series(det, data.values)
        name = file_name_of(data)
        if name in used:  # two keys that differ only in characters a file name cannot hold
            digest = hashlib.sha1(data.series.key.encode(), usedforsecurity=False).hexdigest()
            name = name[:-4] + "_" + digest[:8] + ".csv"
        used.add(name)
        target = out if single else out / name
        write_output(target, [format_ts_ms(t) for t in data.ts_ms.tolist()], [repr(v) for v in data.values.tolist()],
                     scores, flags)
        results.append(ReplayResult(data.series.key, str(target), len(scores), int(flags.sum()),
                                    time.perf_counter() - started))
    return results
