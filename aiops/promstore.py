"""A read-only series store backed by a Prometheus-compatible server.

At scale the agent and the dashboard read history from Prometheus (or Thanos, Mimir,
VictoriaMetrics: anything that speaks the HTTP API) instead of the embedded store. This class
offers the read half of :class:`~aiops.store.SeriesStore` over :class:`~aiops.promapi.PrometheusClient`:

- ``select`` asks ``/api/v1/series`` with the matchers rendered as a selector;
- ``read`` evaluates the range selector ``series[<span>s]`` at ``end``, which returns the raw
  samples the server holds (not an interpolated grid), then trims to ``start``;
- ``downsample`` runs ``<agg>_over_time(series[<step>s])`` as a range query, so buckets are
  computed by the server, one per step.

Writing is refused here: Prometheus is filled by its own scrapes or by the agent's remote-write
(:mod:`aiops.remotewrite`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from aiops.config import SeriesReadSettings
from aiops.errors import InputError, StoreError
from aiops.model import Matcher, Sample, Series
from aiops.promapi import PrometheusClient
from aiops.store import AGGREGATIONS, Aggregation, SeriesData, SqliteSeriesStore

__all__ = ["PrometheusSeriesStore", "SeriesReader", "open_series_reader", "render_selector"]

_OVER_TIME = {"avg": "avg_over_time", "min": "min_over_time", "max": "max_over_time", "last": "last_over_time",
              "sum": "sum_over_time", "count": "count_over_time"}


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_selector(matchers: Sequence[Matcher]) -> str:
    """PromQL text of ``matchers``: ``{__name__="up",job=~"node.*"}``.

    Examples:
        >>> from aiops.model import parse_selector
        >>> render_selector(parse_selector('up{job=~"a|b"}'))
        '{__name__="up",job=~"a|b"}'
    """
    return "{" + ",".join(f"{m.label}{m.op.value}{_quote(m.value)}" for m in matchers) + "}"


def _exact(series: Series) -> str:
    """A selector matching exactly ``series`` (every label, and no label it lacks... as PromQL can)."""
    labels = ",".join(f"{k}={_quote(v)}" for k, v in series.labels)
    return f"{series.name}{{{labels}}}" if labels else series.name


class PrometheusSeriesStore:
    """Reads series from a Prometheus-compatible server through its HTTP API.

    Args:
        client: the API client (owns the URL, token and timeouts).
    """

    def __init__(self, client: PrometheusClient) -> None:
        self.client = client

    def append(self, samples: Sequence[Sample]) -> int:
        raise StoreError(f"prometheus {self.client.host} is a read-only store")

    def select(self, matchers: Sequence[Matcher]) -> list[Series]:
        """The series matching ``matchers``; none: every series (Prometheus needs one matcher)."""
        selector = render_selector(matchers) if matchers else '{__name__=~".+"}'
        return sorted(set(self.client.series([selector])), key=lambda s: s.key)

    def _frame(self, series: Series, samples: list[Sample]) -> SeriesData:
        # a selector can also match series with more labels than ``series``: keep the exact one
        own = sorted((s.ts_ms, s.value) for s in samples if s.series == series)
        ts = np.array([t for t, _ in own], dtype=np.int64)
        vals = np.array([v for _, v in own], dtype=np.float64)
        return SeriesData(series, ts, vals)

    def read(self, series: Series, start_ms: int, end_ms: int) -> SeriesData:
        span_s = max(1, -(-(end_ms - start_ms) // 1000))
        expr = f"{_exact(series)}[{span_s}s]"
        data = self._frame(series, self.client.query_matrix(expr, end_ms))
        keep = data.ts_ms >= start_ms
        return SeriesData(series, data.ts_ms[keep], data.values[keep])

    def latest(self, series: Series, since_ms: int = 0) -> Sample | None:
        """The newest sample of ``series`` at or after ``since_ms`` (None: none)."""
        end_ms = int(time.time() * 1000)
        if since_ms > end_ms:
            return None
        data = self.read(series, since_ms, end_ms)
        if data.ts_ms.size == 0:
            return None
        return Sample(series, int(data.ts_ms[-1]), float(data.values[-1]))

    def downsample(self, series: Series, start_ms: int, end_ms: int, step_ms: int,
                   agg: Aggregation = "avg") -> SeriesData:
        if agg not in AGGREGATIONS:
            raise InputError(f"aggregation {agg!r}: expected one of {', '.join(AGGREGATIONS)}")
        if step_ms <= 0:
            raise InputError(f"downsample step_ms must be > 0, got {step_ms}")
        step_s = step_ms / 1000
        expr = f"{_OVER_TIME[agg]}({_exact(series)}[{step_s:g}s])"
        # Prometheus evaluates at the END of each window; our buckets are named by their start
        first_end = (start_ms // step_ms) * step_ms + step_ms
        samples = self.client.query_range(expr, first_end, end_ms + step_ms, step_s, name=series.name)
        shifted = [Sample(series, s.ts_ms - step_ms, s.value) for s in samples
                   if s.series.labels == series.labels]
        return self._frame(series, shifted)

    def close(self) -> None:
        self.client.close()


class SeriesReader(Protocol):
    """What verifications read: the embedded store and Prometheus both offer it."""

    def select(self, matchers: Sequence[Matcher]) -> list[Series]: ...

    def read(self, series: Series, start_ms: int, end_ms: int) -> SeriesData: ...

    def latest(self, series: Series, since_ms: int = 0) -> Sample | None: ...

    def close(self) -> None: ...


def open_series_reader(read: SeriesReadSettings, store_path: Path | None) -> SeriesReader:
    """The series source of ``store.read``: Prometheus when ``prometheus_url`` is set, else the store file.

    Raises:
        StoreError: no Prometheus configured and the store file is missing or unreadable.
    """
    if read.prometheus_url is not None:
        headers = {k: v.get_secret_value() for k, v in read.headers.items()}
        return PrometheusSeriesStore(PrometheusClient(read.prometheus_url, read.timeout_s, read.bearer_token,
                                                      headers=headers))
    if store_path is None or not Path(store_path).exists():
        raise StoreError(f"store {store_path} is not readable (on another machine? set store.read.prometheus_url "
                         "to read from the Prometheus the agents remote-write to)")
    return SqliteSeriesStore(store_path, read_only=True)
