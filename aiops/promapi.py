"""A small read-only client of the Prometheus HTTP API (``/api/v1/query``, ``query_range``, ``series``).

Used by the ``prometheus`` collector (import) and by detector replay (reading history from
Prometheus). Results come back in the kernel's types: :class:`~aiops.model.Series` and
:class:`~aiops.model.Sample`. ``"NaN"``, ``"+Inf"`` and ``"-Inf"`` values are kept.

Errors are translated at the edge: a query Prometheus rejects (``bad_data``, HTTP 400/422)
is the caller's :class:`~aiops.errors.InputError` naming the query; everything else (connection
refused, timeout, 5xx, a body that is not the API's JSON, ``status: error`` of another kind) is
a :class:`~aiops.errors.CollectError`. Messages name the server's host only: the URL may carry
credentials, and the token never appears.

Examples:
    >>> to_series({"__name__": "up", "job": "node"}, "up")
    Series(name='up', labels=(('job', 'node'),))
    >>> to_series({"job": "node"}, "sum by (job) (rate(x_total[5m]))").name
    'sum_by_job_rate_x_total_5m'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from pydantic import SecretStr

from aiops.errors import CollectError, InputError, trim
from aiops.logs import url_host
from aiops.model import METRIC_NAME, Sample, Series

__all__ = ["PrometheusClient", "to_series", "name_for_query", "MAX_POINTS_PER_QUERY"]

MAX_POINTS_PER_QUERY = 11_000  # Prometheus refuses a range query with more points per series
_NON_NAME = re.compile(r"[^a-zA-Z0-9_:]+")


def name_for_query(expr: str) -> str:
    """A metric name made from a PromQL expression, for results that carry no ``__name__``."""
    name = _NON_NAME.sub("_", expr).strip("_") or "query"
    if not METRIC_NAME.match(name):
        name = "q_" + name
    return name


def to_series(metric: Mapping[str, str], expr: str, name: str | None = None) -> Series:
    """The :class:`Series` of one result's ``metric`` object.

    Args:
        metric: the result's labels, ``__name__`` included when Prometheus kept it.
        expr: the query (source of the name when there is none).
        name: the name to use when ``metric`` has no ``__name__`` (default: from ``expr``).
    """
    labels = dict(metric)
    metric_name = labels.pop("__name__", None) or name or name_for_query(expr)
    return Series.of(metric_name, labels)


def _ms(seconds: float | str) -> int:
    return round(float(seconds) * 1000)


class PrometheusClient:
    """Read-only client of one Prometheus (or Prometheus-compatible) server.

    Args:
        url: base URL, e.g. ``http://prometheus:9090`` (a path prefix is kept).
        timeout_s: limit of one request.
        bearer_token: sent as ``Authorization: Bearer``.
        headers: extra headers (tenant ids, ...).
        verify_tls: verify the server's certificate.
        transport: an httpx transport (tests).
    """

    def __init__(self, url: str, timeout_s: float = 10.0, bearer_token: SecretStr | None = None,
                 headers: Mapping[str, str] | None = None, verify_tls: bool = True,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = url.rstrip("/")
        self.host = url_host(url)
        self.timeout_s = timeout_s
        hdrs = {"Accept": "application/json", "User-Agent": "aiops-promapi/0.1", **(headers or {})}
        if bearer_token is not None:
            hdrs["Authorization"] = f"Bearer {bearer_token.get_secret_value()}"
        self._client = httpx.Client(headers=hdrs, timeout=httpx.Timeout(timeout_s), verify=verify_tls,
                                    transport=transport)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the API -------------------------------------------------------------------------

    def query(self, expr: str, time_ms: int | None = None, name: str | None = None,
              timeout_s: float | None = None) -> list[Sample]:
        """Evaluate an instant query; one sample per result series (scalars become one series).

        Raises:
            InputError: Prometheus rejected the expression.
            CollectError: the server could not be asked or answered badly.
        """
        data = self._instant(expr, time_ms, timeout_s)
        kind, result = data.get("resultType"), data.get("result")
        if kind in ("scalar", "string"):
            ts, value = result
            return [Sample(Series(name or name_for_query(expr)), _ms(ts), _value(value))]
        if kind != "vector":
            raise CollectError(f"prometheus {self.host}: query {trim(expr, 80)!r}: unexpected resultType {kind!r}")
        return [Sample(to_series(r["metric"], expr, name), _ms(r["value"][0]), _value(r["value"][1]))
                for r in result]

    def query_matrix(self, expr: str, time_ms: int | None = None, timeout_s: float | None = None) -> list[Sample]:
        """Evaluate an instant query whose result is a range vector (``up[5m]``): the raw samples.

        Raises:
            InputError: Prometheus rejected the expression.
            CollectError: the server could not be asked or answered badly.
        """
        data = self._instant(expr, time_ms, timeout_s)
        if data.get("resultType") != "matrix":
            raise CollectError(f"prometheus {self.host}: query {trim(expr, 80)!r}: "
                               f"expected a matrix, got {data.get('resultType')!r}")
        out: list[Sample] = []
        for r in data["result"]:
            series = to_series(r["metric"], expr)
            out.extend(Sample(series, _ms(t), _value(v)) for t, v in r.get("values", ()))
        return out

    def query_range(self, expr: str, start_ms: int, end_ms: int, step_s: float, name: str | None = None,
                    timeout_s: float | None = None) -> list[Sample]:
        """Evaluate ``expr`` at ``start_ms``, ``start_ms + step``, ... up to ``end_ms``.

        Ranges longer than Prometheus' 11,000 points are split into several requests.

        Raises:
            InputError: Prometheus rejected the expression or the range.
            CollectError: the server could not be asked or answered badly.
        """
        if end_ms < start_ms:
            raise InputError(f"query_range {trim(expr, 80)!r}: end {end_ms} before start {start_ms}")
        if not (step_s > 0 and math.isfinite(step_s)):
            raise InputError(f"query_range {trim(expr, 80)!r}: step must be > 0 seconds, got {step_s}")
        step_ms = max(1, round(step_s * 1000))
        span_ms = step_ms * (MAX_POINTS_PER_QUERY - 1)
        out: list[Sample] = []
        lo = start_ms
        while lo <= end_ms:
            hi = min(end_ms, lo + span_ms)
            params = {"query": expr, "start": f"{lo / 1000:.3f}", "end": f"{hi / 1000:.3f}", "step": f"{step_s:g}"}
            data = self._get("/api/v1/query_range", params, expr, timeout_s)
            if data.get("resultType") != "matrix":
                raise CollectError(f"prometheus {self.host}: query_range {trim(expr, 80)!r}: "
                                   f"expected a matrix, got {data.get('resultType')!r}")
            for r in data["result"]:
                series = to_series(r["metric"], expr, name)
                out.extend(Sample(series, _ms(t), _value(v)) for t, v in r.get("values", ()))
            lo = hi + step_ms
        return out

    def series(self, matchers: Sequence[str], start_ms: int | None = None, end_ms: int | None = None,
               timeout_s: float | None = None) -> list[Series]:
        """The series matching any of the selectors ``matchers`` (e.g. ``['up{job="node"}']``)."""
        params: dict[str, Any] = {"match[]": list(matchers)}
        if start_ms is not None:
            params["start"] = f"{start_ms / 1000:.3f}"
        if end_ms is not None:
            params["end"] = f"{end_ms / 1000:.3f}"
        data = self._get("/api/v1/series", params, " or ".join(matchers), timeout_s)
        return [to_series(m, "series") for m in data]

    def _instant(self, expr: str, time_ms: int | None, timeout_s: float | None) -> Any:
        params: dict[str, Any] = {"query": expr}
        if time_ms is not None:
            params["time"] = f"{time_ms / 1000:.3f}"
        return self._get("/api/v1/query", params, expr, timeout_s)

    # --- transport -------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, Any], expr: str, timeout_s: float | None) -> Any:
        what = f"prometheus {self.host}: {path.rsplit('/', 1)[-1]} {trim(expr, 80)!r}"
        timeout = httpx.Timeout(timeout_s if timeout_s is not None else self.timeout_s)
        try:
            resp = self._client.get(self.base_url + path, params=params, timeout=timeout)
        except httpx.TimeoutException:
            raise CollectError(f"{what}: no answer within {timeout.read:g}s") from None
        except httpx.HTTPError as exc:
            raise CollectError(f"{what}: {type(exc).__name__}") from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "status" not in body:
            raise CollectError(
                f"{what}: HTTP {resp.status_code}, not a Prometheus API answer: {trim(resp.text, 120)!r}")
        if body["status"] != "success":
            etype, error = body.get("errorType", "error"), trim(body.get("error", ""), 200)
            if etype == "bad_data" or resp.status_code in (400, 422):
                raise InputError(f"{what}: rejected ({etype}): {error}")
            raise CollectError(f"{what}: HTTP {resp.status_code} {etype}: {error}")
        if resp.status_code // 100 != 2:
            raise CollectError(f"{what}: HTTP {resp.status_code}")
        return body.get("data")


def _value(text: str | float) -> float:
    """Prometheus sends values as strings: ``"1.5"``, ``"NaN"``, ``"+Inf"``, ``"-Inf"``."""
    return float(text)
