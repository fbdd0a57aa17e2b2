"""aiops.promapi and the prometheus collector against a stand-in Prometheus API on 127.0.0.1.

The real Prometheus is exercised in tests/integration/test_prometheus_stack.py; this server
produces the answers a real one rarely gives on demand (errors, garbage, NaN strings).
"""

from __future__ import annotations

import json
import math
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from aiops.errors import CollectError, InputError
from aiops.model import Series
from aiops.promapi import PrometheusClient
from collectors import PrometheusCollector
from collectors.settings import PrometheusSource
from tests.collectors.helpers import Route, TargetServer

JSON = "application/json"


def _matrix_route(server: TargetServer, values=("1", "NaN", "+Inf")):
    """A query_range answer: one point per step of the asked range (values cycle)."""

    def route() -> Route:
        path, _headers = server.requests[-1]
        q = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
        if q["query"] == "bad(":
            return Route(400, json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error"}), JSON)
        start, end, step = float(q["start"]), float(q["end"]), float(q["step"])
        pts, t, i = [], start, 0
        while t <= end + 1e-9:
            pts.append([t, values[i % len(values)]])
            t += step
            i += 1
        metric = {"__name__": "up", "job": "node"} if q["query"] == "up" else {"job": "node"}
        return Route(body=json.dumps({"status": "success", "data": {"resultType": "matrix",
                                                                     "result": [{"metric": metric, "values": pts}]}}),
                     content_type=JSON)

    return route


def test_query_range_converts_matrix_and_special_values(target_server: TargetServer) -> None:
    target_server.routes["/api/v1/query_range"] = _matrix_route(target_server)
    with PrometheusClient(target_server.url(""), bearer_token=SecretStr("tok")) as api:
        got = api.query_range("up", 1_000_000, 1_030_000, 15)
    assert [(s.series, s.ts_ms) for s in got] == [(Series.of("up", job="node"), t)
                                                   for t in (1_000_000, 1_015_000, 1_030_000)]
    assert got[0].value == 1 and math.isnan(got[1].value) and got[2].value == math.inf
    assert target_server.requests[-1][1]["Authorization"] == "Bearer tok"


def test_query_range_splits_long_ranges(target_server: TargetServer) -> None:
    target_server.routes["/api/v1/query_range"] = _matrix_route(target_server)
    with PrometheusClient(target_server.url("")) as api:
        got = api.query_range("up", 0, 20_000_000, 1)  # 20,001 points: two requests
    assert len(target_server.requests) == 2
    assert [s.ts_ms for s in got] == list(range(0, 20_000_001, 1000))


def test_errors_are_mapped(target_server: TargetServer) -> None:
    target_server.routes["/api/v1/query_range"] = _matrix_route(target_server)
    target_server.routes["/api/v1/query"] = Route(503, "<html>down</html>", "text/html")
    target_server.routes["/api/v1/series"] = Route(
        200, json.dumps({"status": "error", "errorType": "execution", "error": "too many samples"}), JSON)
    with PrometheusClient(target_server.url("/"), timeout_s=2) as api:
        with pytest.raises(InputError, match=r"query_range 'bad\(': rejected \(bad_data\): parse error"):
            api.query_range("bad(", 0, 1000, 1)
        with pytest.raises(CollectError, match="HTTP 503, not a Prometheus API answer"):
            api.query("up")
        with pytest.raises(CollectError, match="execution: too many samples"):
            api.series(["up"])
        with pytest.raises(InputError, match="step must be > 0"):
            api.query_range("up", 0, 1000, 0)


def test_instant_query_and_series(target_server: TargetServer) -> None:
    target_server.routes["/api/v1/query"] = Route(body=json.dumps({"status": "success", "data": {
        "resultType": "vector", "result": [{"metric": {"job": "a"}, "value": [1700000000.5, "-Inf"]}]}}),
        content_type=JSON)
    target_server.routes["/api/v1/series"] = Route(body=json.dumps({"status": "success", "data": [
        {"__name__": "up", "job": "a"}, {"__name__": "up", "job": "b"}]}), content_type=JSON)
    with PrometheusClient(target_server.url("")) as api:
        [s] = api.query("sum by (job) (up)", name="job_up")
        assert (s.series, s.ts_ms, s.value) == (Series.of("job_up", job="a"), 1_700_000_000_500, -math.inf)
        assert api.series(['up{job=~"a|b"}']) == [Series.of("up", job="a"), Series.of("up", job="b")]


def test_collector_imports_once_and_keeps_a_cursor(target_server: TargetServer) -> None:
    target_server.routes["/api/v1/query_range"] = _matrix_route(target_server, values=("2",))
    src = PrometheusSource(url=target_server.url(""), queries=["up", "rate(x_total[1m])"], step_s=10, lookback_s=60,
                           names={"rate(x_total[1m])": "x_rate"})
    c = PrometheusCollector(src)
    assert (c.name, c.target) == ("prometheus", f"127.0.0.1:{target_server.port}")
    first = c.collect(1_000_000)
    ups = sorted(s.ts_ms for s in first if s.series.name == "up")
    assert ups == list(range(940_000, 1_000_001, 10_000))
    assert {s.series for s in first if s.series.name != "up"} == {Series.of("x_rate", job="node")}
    second = c.collect(1_025_000)  # only the two new steps, nothing re-imported
    assert sorted(s.ts_ms for s in second if s.series.name == "up") == [1_010_000, 1_020_000]
    assert c.collect(1_029_000) == []  # no full step yet
    c.close()


def test_collector_keeps_good_queries_when_one_fails(target_server: TargetServer) -> None:
    target_server.routes["/api/v1/query_range"] = _matrix_route(target_server)
    c = PrometheusCollector(PrometheusSource(url=target_server.url(""), queries=["bad(", "up"], step_s=30,
                                             lookback_s=60))
    with pytest.raises(CollectError) as info:
        c.collect(600_000)
    assert "bad(" in str(info.value) and "parse error" in str(info.value)
    assert {s.series.name for s in info.value.samples} == {"up"}
    assert "up" in c.cursor_ms and "bad(" not in c.cursor_ms
    c.close()


def test_collector_server_down_is_collect_error() -> None:
    from tests.conftest import free_port

    c = PrometheusCollector(PrometheusSource(url=f"http://127.0.0.1:{free_port()}", queries=["up"], timeout_s=1))
    with pytest.raises(CollectError, match="ConnectError"):
        c.collect(1_000_000)
    c.close()
