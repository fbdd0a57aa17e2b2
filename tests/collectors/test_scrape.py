"""The scrape collector against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import math
import time

import pytest
from pydantic import SecretStr

from aiops.errors import CollectError, ConfigError
from aiops.model import Series
from collectors import ScrapeCollector, is_stale
from collectors.scrape import target_instance
from collectors.settings import ScrapeTarget
from tests.collectors.helpers import Route, TargetServer

GOOD = """\
# HELP http_requests_total Requests served.
# TYPE http_requests_total counter
http_requests_total{method="get",code="200"} 1027
http_requests_total{method="post",code="400"} 3 1395066363000
# TYPE temperature gauge
temperature NaN
# TYPE up_limit gauge
up_limit{kind="hi"} +Inf
up_limit{kind="lo"} -Inf
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.05"} 24054
latency_seconds_bucket{le="0.5"} 33444
latency_seconds_bucket{le="+Inf"} 144320
latency_seconds_sum 53423
latency_seconds_count 144320
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.5"} 4773
rpc_duration_seconds{quantile="0.99"} 76656
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
escaped{path="C:\\\\dir\\"x\\"",msg="a\\nb"} 1
untyped_thing 42
"""


def _collector(server: TargetServer, path: str = "/metrics", **kw) -> ScrapeCollector:
    kw.setdefault("timeout_s", 2)
    return ScrapeCollector(ScrapeTarget(url=server.url(path), job="app", **kw))


def _values(samples) -> dict[Series, float]:
    return {s.series: s.value for s in samples}


def test_good_body_all_types(target_server: TargetServer) -> None:
    target_server.routes["/metrics"] = Route(body=GOOD)
    c = _collector(target_server, labels={"env": "test"})
    inst = f"127.0.0.1:{target_server.port}"
    assert (c.name, c.target) == ("scrape", inst)
    samples = c.collect(5000)
    v = _values(samples)
    base = {"job": "app", "instance": inst, "env": "test"}
    assert v[Series.of("http_requests_total", base, method="get", code="200")] == 1027
    assert v[Series.of("latency_seconds_bucket", base, le="+Inf")] == 144320
    assert v[Series.of("latency_seconds_sum", base)] == 53423
    assert v[Series.of("rpc_duration_seconds", base, quantile="0.99")] == 76656
    assert v[Series.of("rpc_duration_seconds_sum", base)] == 1.7560473e07
    assert v[Series.of("untyped_thing", base)] == 42
    assert v[Series.of("escaped", base, path='C:\\dir"x"', msg="a\nb")] == 1
    assert math.isnan(v[Series.of("temperature", base)])
    assert v[Series.of("up_limit", base, kind="hi")] == math.inf
    assert v[Series.of("up_limit", base, kind="lo")] == -math.inf
    assert len(samples) == 16
    ts = {s.series.get("method"): s.ts_ms for s in samples if s.series.name == "http_requests_total"}
    assert ts == {"get": 5000, "post": 1395066363000}  # explicit timestamps honoured
    assert c.parser.types["latency_seconds"] == "histogram"
    assert c.parser.types["rpc_duration_seconds"] == "summary"
    c.close()


def test_headers_and_bearer_token_are_sent(target_server: TargetServer) -> None:
    target_server.routes["/metrics"] = Route(body="x 1\n")
    c = _collector(target_server, headers={"X-Scope-OrgID": SecretStr("tenant-1")},
                   bearer_token=SecretStr("s3cret"))
    c.collect(0)
    _path, headers = target_server.requests[-1]
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["X-Scope-OrgID"] == "tenant-1"
    assert "text/plain" in headers["Accept"]
    c.close()


def test_target_labels_win_and_scraped_ones_become_exported(target_server: TargetServer) -> None:
    target_server.routes["/metrics"] = Route(body='m{job="other",instance="pod-1",env="prod",exported_env="x"} 1\n')
    c = _collector(target_server, labels={"env": "test"})
    [s] = c.collect(0)
    assert s.series.label_dict == {
        "job": "app", "exported_job": "other",
        "instance": f"127.0.0.1:{target_server.port}", "exported_instance": "pod-1",
        "env": "test", "exported_exported_env": "prod", "exported_env": "x",
    }
    c.close()


def test_openmetrics_timestamps_in_seconds_and_created_dropped(target_server: TargetServer) -> None:
    target_server.routes["/metrics"] = Route(
        content_type="application/openmetrics-text; version=1.0.0; charset=utf-8",
        body='# TYPE jobs counter\njobs_total 3 1700000000.5 # {trace_id="abc"} 1\n'
             'jobs_created 1699999999\n# EOF\n')
    c = _collector(target_server)
    [s] = c.collect(1)
    assert (s.series.name, s.ts_ms, s.value) == ("jobs_total", 1_700_000_000_500, 3.0)
    c.close()


@pytest.mark.parametrize(("body", "needle"), [
    ("<html><body>Not metrics</body></html>\n", "line 1: invalid metric name"),
    ("ok_metric 1\nbroken_metric{a=\"1\" 2\n", "line 2"),
    ("ok_metric 1\nother_metric one\n", "line 2: value 'one'"),
    ("# TYPE x flux\nx 1\n", "line 1: unknown metric type 'flux'"),
    ("# TYPE h histogram\nh_bucket 3\n", "line 2: histogram bucket h_bucket has no 'le' label"),
    ("m 1\nm 2\n", "line 2: duplicate series"),
])
def test_garbage_is_a_collect_error_naming_the_line(target_server: TargetServer, body: str, needle: str) -> None:
    target_server.routes["/metrics"] = Route(body=body)
    c = _collector(target_server)
    with pytest.raises(CollectError) as info:
        c.collect(0)
    assert needle in str(info.value)
    assert f"127.0.0.1:{target_server.port}" in str(info.value)
    c.close()


def test_http_500_names_the_status(target_server: TargetServer) -> None:
    target_server.routes["/metrics"] = Route(500, "boom")
    c = _collector(target_server)
    with pytest.raises(CollectError, match="HTTP 500 Internal Server Error"):
        c.collect(0)
    c.close()


def test_hang_fails_after_timeout(target_server: TargetServer) -> None:
    target_server.routes["/metrics"] = Route(hang=True)
    c = _collector(target_server, timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(CollectError, match="no response within 0.5s"):
        c.collect(0)
    assert time.monotonic() - started < 10  # generous: bounded, not exact
    c.close()


def test_connection_refused_is_a_collect_error_without_url_secrets() -> None:
    from tests.conftest import free_port

    c = ScrapeCollector(ScrapeTarget(url=f"http://127.0.0.1:{free_port()}/metrics?token=hunter2", timeout_s=1))
    with pytest.raises(CollectError) as info:
        c.collect(0)
    assert "ConnectError" in str(info.value)
    assert "hunter2" not in str(info.value)
    c.close()


def test_staleness_marker_once_when_a_series_disappears(target_server: TargetServer) -> None:
    body = {"text": "a 1\nb 2\nc 3\n"}
    target_server.routes["/metrics"] = lambda: Route(body=body["text"])
    c = _collector(target_server)
    assert len(c.collect(1000)) == 3
    body["text"] = "a 1\nc 3\n"
    second = c.collect(2000)
    stale = [s for s in second if is_stale(s.value)]
    assert [s.series.name for s in stale] == ["b"]
    assert stale[0].ts_ms == 2000 and math.isnan(stale[0].value)
    third = c.collect(3000)  # marked once only
    assert not any(is_stale(s.value) for s in third)
    assert sorted(s.series.name for s in third) == ["a", "c"]
    c.close()


def test_target_down_marks_every_seen_series_stale_once(target_server: TargetServer) -> None:
    state = {"route": Route(body="a 1\nb NaN\n")}
    target_server.routes["/metrics"] = lambda: state["route"]
    c = _collector(target_server)
    c.collect(1000)
    state["route"] = Route(500, "down")
    with pytest.raises(CollectError) as info:
        c.collect(2000)
    markers = info.value.samples
    assert sorted(s.series.name for s in markers) == ["a", "b"]
    assert all(is_stale(s.value) and s.ts_ms == 2000 for s in markers)
    with pytest.raises(CollectError) as again:
        c.collect(3000)
    assert again.value.samples == ()
    state["route"] = Route(body="a 5\n")
    assert [(s.series.name, s.value) for s in c.collect(4000)] == [("a", 5.0)]
    c.close()


def test_exported_nan_is_not_a_staleness_marker(target_server: TargetServer) -> None:
    target_server.routes["/metrics"] = Route(body="x NaN\n")
    c = _collector(target_server)
    [s] = c.collect(0)
    assert math.isnan(s.value) and not is_stale(s.value)
    c.close()


def test_bad_urls_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="scheme 'ftp'"):
        target_instance("ftp://example.com/metrics")
    assert target_instance("http://[::1]:9100/metrics") == "[::1]:9100"
    assert target_instance("http://example.com/metrics") == "example.com:80"


def test_empty_body_is_valid_and_marks_everything_stale(target_server: TargetServer) -> None:
    body = {"text": "a 1\nb 2\n"}
    target_server.routes["/metrics"] = lambda: Route(body=body["text"])
    c = _collector(target_server)
    c.collect(0)
    body["text"] = ""
    out = c.collect(1)
    assert sorted(s.series.name for s in out) == ["a", "b"] and all(is_stale(s.value) for s in out)
    assert c.collect(2) == []
    c.close()
