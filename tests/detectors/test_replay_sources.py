"""`aiops replay` from the embedded store (--selector) and from a Prometheus API (--prometheus)."""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from aiops.model import Sample, Series
from aiops.store import SqliteSeriesStore
from aiops.timeutil import parse_time_ms
from detectors import create
from tests.conftest import run_cli

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def _values(n: int = 200, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(5, 0.5, n)
    x[150] = 30
    return x


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_replay_from_the_store(tmp_path: Path) -> None:
    store_path = tmp_path / "aiops.db"
    a, b = Series.of("cpu", host="a"), Series.of("cpu", host="b")
    with SqliteSeriesStore(store_path) as st:
        for s, seed in ((a, 1), (b, 2), (Series.of("mem", host="a"), 3)):
            st.append([Sample(s, T0 + i * 60_000, float(v)) for i, v in enumerate(_values(seed=seed))])
    config = tmp_path / "aiops.yaml"
    config.write_text(f"store:\n  path: {store_path}\n")
    out = tmp_path / "out"
    r = run_cli("replay", "--selector", "cpu", "--start", "2024-01-01T00:00:00Z", "--end", "2024-01-02T00:00:00Z",
                "--detector", "zscore", "--param", "window=20", "--output", str(out), "--config", str(config))
    assert r.returncode == 0, r.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == ['cpu_host_a.csv', 'cpu_host_b.csv']
    got = _rows(out / "cpu_host_a.csv")
    assert len(got) == 200 and parse_time_ms(got[3]["timestamp"]) == T0 + 3 * 60_000
    expected = create("zscore", window=20).score(_values(seed=1))
    np.testing.assert_allclose([float(g["anomaly_score"]) for g in got], expected, atol=1e-12)
    # one series into one file; nothing in range is an error naming the selector
    r = run_cli("replay", "--selector", 'cpu{host="a"}', "--start", "2024-01-01T00:00:00Z", "--end",
                "2024-01-01T01:00:00Z", "--detector", "zscore", "--output", str(tmp_path / "a.csv"),
                "--config", str(config))
    assert r.returncode == 0, r.stderr
    assert len(_rows(tmp_path / "a.csv")) == 61
    r = run_cli("replay", "--selector", "disk", "--start", "-1h", "--detector", "zscore",
                "--output", str(tmp_path / "d"), "--config", str(config))
    assert r.returncode == 1 and "disk" in r.stderr


class _PromHandler(BaseHTTPRequestHandler):
    values: list[float] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        q = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        if urlsplit(self.path).path != "/api/v1/query_range":
            self.send_error(404)
            return
        start, end, step = float(q["start"]), float(q["end"]), float(q["step"])
        pts = []
        t = start
        while t <= end + 1e-9:
            i = int(round((t - T0 / 1000) / step))
            if 0 <= i < len(self.values):
                pts.append([t, repr(self.values[i])])
            t += step
        body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"__name__": "latency_seconds", "job": "api"}, "values": pts}]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def prometheus_api() -> Iterator[str]:
    """A stand-in Prometheus HTTP API on 127.0.0.1 (port 0), answering query_range."""
    _PromHandler.values = _values(seed=4).tolist()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PromHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_replay_from_prometheus(prometheus_api: str, tmp_path: Path) -> None:
    out = tmp_path / "lat.csv"
    r = run_cli("replay", "--prometheus", prometheus_api, "--query", "latency_seconds", "--start",
                "2024-01-01T00:00:00Z", "--end", "2024-01-01T03:19:00Z", "--step", "60s", "--detector", "zscore",
                "--param", "window=20", "--output", str(out))
    assert r.returncode == 0, r.stderr
    got = _rows(out)
    assert len(got) == 200
    assert [float(g["value"]) for g in got] == _PromHandler.values
    expected = create("zscore", window=20).score(np.array(_PromHandler.values))
    np.testing.assert_allclose([float(g["anomaly_score"]) for g in got], expected, atol=1e-12)
    assert got[150]["is_anomaly"] == "1"
    r = run_cli("replay", "--prometheus", prometheus_api, "--detector", "zscore", "--output", str(out))
    assert r.returncode == 1 and "--query" in r.stderr
