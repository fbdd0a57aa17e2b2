"""Reads of the time-series store for the pages: names, labels, frames, detector companions.

Frames are long (one row per series and time) with fixed column names, so a label value with
``:``, ``.``, quotes, brackets or unicode is only ever data, never a Vega-Lite field name (the
cause of ``"46635}" is not one of the valid encoding data types``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from aiops.model import Matcher, MatchOp, Series
from aiops.store import SqliteSeriesStore
from dashboard.units import unit_of

__all__ = ["COMPANIONS", "SCORE_METRIC", "LOWER_METRIC", "UPPER_METRIC", "metric_names", "label_values", "select",
           "step_for", "long_frame", "companions", "series_label"]

# Written by live detection (detectors/live.py) as ordinary series, so Grafana can chart them too:
# the series' own labels plus ``detector``.
SCORE_METRIC = "aiops_anomaly_score"
LOWER_METRIC = "aiops_expected_lower"
UPPER_METRIC = "aiops_expected_upper"
_COMPANION_METRICS = (SCORE_METRIC, LOWER_METRIC, UPPER_METRIC)
COMPANIONS = frozenset(_COMPANION_METRICS)
# Labels a companion may use to name the series it belongs to, besides copying its labels.
_OWNER_LABELS = ("series", "metric", "__metric__", "series_name")

CHART_POINTS = 600  # points per series on a chart: enough for a 1,400-pixel-wide plot


def metric_names(store: SqliteSeriesStore) -> list[str]:
    """Every metric name in the store, sorted."""
    return sorted({s.name for s in store.select([])})


def label_values(store: SqliteSeriesStore, metric: str | None) -> dict[str, list[str]]:
    """Label name -> sorted values over the series of ``metric`` (all series when ``None``)."""
    matchers = [Matcher("__name__", MatchOp.EQ, metric)] if metric else []
    out: dict[str, set[str]] = {}
    for s in store.select(matchers):
        for k, v in s.labels:
            out.setdefault(k, set()).add(v)
    return {k: sorted(v) for k, v in sorted(out.items())}


def select(store: SqliteSeriesStore, metric: str | None, filters: Mapping[str, Sequence[str]],
           extra: Sequence[Matcher] = ()) -> list[Series]:
    """Series of ``metric`` whose label ``k`` is one of ``filters[k]`` (empty: any), and ``extra``."""
    matchers = [Matcher("__name__", MatchOp.EQ, metric)] if metric else []
    found = store.select([*matchers, *extra])
    wanted = {k: set(v) for k, v in filters.items() if v}
    return [s for s in found if all(s.get(k) in vals for k, vals in wanted.items())]


def step_for(start_ms: int, end_ms: int, points: int = CHART_POINTS) -> int:
    """Bucket width giving about ``points`` buckets, rounded to whole seconds (min 1 s)."""
    return max(1000, ((end_ms - start_ms) // points // 1000) * 1000)


def series_label(s: Series, shown: Sequence[Series]) -> str:
    """A short legend label: only the labels that differ among ``shown`` (the metric if one)."""
    if len(shown) <= 1:
        return s.key
    names = {x.name for x in shown}
    varying = [k for k in sorted({k for x in shown for k, _ in x.labels})
               if len({x.get(k) for x in shown}) > 1]
    inner = ", ".join(f'{k}="{s.get(k)}"' for k in varying)
    prefix = s.name if len(names) > 1 else ""
    return f"{prefix}{{{inner}}}" if inner else s.key


def long_frame(store: SqliteSeriesStore, series: Sequence[Series], start_ms: int, end_ms: int,
               step_ms: int | None = None) -> pd.DataFrame:
    """Columns ``t`` (UTC), ``series`` (text form), ``label`` (legend), ``metric``, ``unit``, ``value``.

    Downsampled in the store (``avg`` per ``step_ms`` bucket) when ``step_ms`` is given; empty
    buckets and non-finite values are dropped, so the chart gets only drawable points.
    """
    parts = []
    for s in series:
        data = store.downsample(s, start_ms, end_ms, step_ms) if step_ms else store.read(s, start_ms, end_ms)
        ok = np.isfinite(data.values)
        if not ok.any():
            continue
        parts.append(pd.DataFrame({
            "t": pd.to_datetime(data.ts_ms[ok], unit="ms", utc=True), "series": s.key,
            "label": series_label(s, series), "metric": s.name, "unit": unit_of(s.name).key,
            "value": data.values[ok]}))
    if not parts:
        return pd.DataFrame({"t": pd.Series(dtype="datetime64[ns, UTC]"), "series": [], "label": [],
                             "metric": [], "unit": [], "value": []})
    return pd.concat(parts, ignore_index=True)


def companions(store: SqliteSeriesStore, base: Series) -> dict[str, dict[str, Series]]:
    """Live detection's series for ``base``: ``{metric: {detector: series}}``.

    A companion carries ``base``'s labels plus ``detector`` (and possibly a label naming the
    metric, which must then be ``base``'s).
    """
    own = dict(base.labels)
    out: dict[str, dict[str, Series]] = {}
    for metric in _COMPANION_METRICS:
        for c in store.select([Matcher("__name__", MatchOp.EQ, metric)]):
            labels = dict(c.labels)
            detector = labels.pop("detector", "")
            owner = next((labels.pop(k) for k in _OWNER_LABELS if k in labels and k not in own), None)
            if owner is not None and owner not in (base.name, base.key):
                continue
            if labels == own:
                out.setdefault(metric, {})[detector] = c
    return out
