"""Real prometheus-node-exporter and real Prometheus: scrape and import must agree.

node_exporter serves this host's metrics; Prometheus scrapes it every second. The scrape
collector reads node_exporter directly into a real SqliteSeriesStore; the prometheus collector
imports the same series from Prometheus' HTTP API into the same store. Both paths must give
the same series (same labels) with the values node_exporter served.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aiops.errors import StoreError
from aiops.model import Series, now_ms, parse_selector
from aiops.promapi import PrometheusClient
from aiops.store import SqliteSeriesStore
from collectors import PrometheusCollector, ScrapeCollector
from collectors.settings import PrometheusSource, ScrapeTarget
from tests.conftest import free_port

pytestmark = pytest.mark.integration

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
PROMETHEUS = "/usr/bin/prometheus"
STABLE = ("node_memory_MemTotal_bytes", "node_filesystem_size_bytes")


def _binary(path: str) -> str:
    found = shutil.which(path) or shutil.which(Path(path).name)
    if not found:
        pytest.skip(f"{Path(path).name} is not installed (expected {path}; Debian package "
                    f"{'prometheus-node-exporter' if 'node' in path else 'prometheus'})")
    return found


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout_s}s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def node_exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a running node_exporter with a few cheap collectors."""
    binary = _binary(NODE_EXPORTER)
    port = free_port()
    log = tmp_path_factory.mktemp("node_exporter") / "log.txt"
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
                                 "--collector.meminfo", "--collector.filesystem", "--collector.loadavg",
                                 "--collector.cpu", "--collector.netdev", "--collector.time"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_http(f"http://127.0.0.1:{port}/metrics", proc, log)
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def prometheus(node_exporter: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a running Prometheus scraping node_exporter every second (job "node")."""
    binary = _binary(PROMETHEUS)
    d = tmp_path_factory.mktemp("prometheus")
    target = node_exporter.split("//", 1)[1].split("/", 1)[0]
    (d / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: node\n    static_configs: [{{targets: ['{target}']}}]\n")
    port = free_port()
    log = d / "log.txt"
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=out, stderr=subprocess.STDOUT, cwd=d)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/-/ready", proc, log)
        deadline = time.monotonic() + 60
        with PrometheusClient(url, timeout_s=5) as api:  # ready means started, not yet scraped twice
            while len(api.query_range(STABLE[0], now_ms() - 30_000, now_ms(), 1)) < 2:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Prometheus has no {STABLE[0]} after 60s: {log.read_text()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        _stop(proc)


def test_scrape_and_import_agree_with_node_exporter(node_exporter: str, prometheus: str, tmp_path: Path) -> None:
    # what node_exporter serves, read independently with prometheus_client's parser
    served: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(httpx.get(node_exporter, timeout=10).text):
        for s in family.samples:
            if s.name in STABLE:
                served[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert any(k[0] == "node_filesystem_size_bytes" for k in served), "node_exporter reports no filesystem"

    instance = node_exporter.split("//", 1)[1].split("/", 1)[0]
    store = SqliteSeriesStore(tmp_path / "aiops.db")
    try:
        scrape = ScrapeCollector(ScrapeTarget(url=node_exporter, job="node", timeout_s=10))
        scraped = scrape.collect(now_ms())
        scrape.close()
        assert len(scraped) > 100  # cpu, memory, filesystem, network families
        store.append(scraped)

        imp = PrometheusCollector(PrometheusSource(url=prometheus, queries=list(STABLE), step_s=1, lookback_s=20,
                                                   timeout_s=20))
        imported = imp.collect(now_ms())
        assert imported
        store.append(imported)
        # a second import brings only newer points
        first_cursor = dict(imp.cursor_ms)
        time.sleep(1.2)
        again = imp.collect(now_ms())
        assert all(s.ts_ms > first_cursor[STABLE[0]] for s in again if s.series.name == STABLE[0])
        imp.close()

        for name in STABLE:
            stored = store.select(parse_selector(name))
            scraped_series = {s.series for s in scraped if s.series.name == name}
            imported_series = {s.series for s in imported if s.series.name == name}
            # the same series through both paths: job/instance applied the way Prometheus does
            # (filesystems may come and go while other processes run: compare what both saw)
            both = scraped_series & imported_series
            if name == "node_memory_MemTotal_bytes":
                assert scraped_series == imported_series, (scraped_series ^ imported_series)
            else:
                assert "/" in {s.get("mountpoint") for s in both}, (scraped_series ^ imported_series)
            assert both <= set(stored)
            for series in both:
                want = served[(name, tuple(kv for kv in series.labels if kv[0] not in ("job", "instance")))]
                assert series.get("job") == "node" and series.get("instance") == instance
                data = store.read(series, 0, now_ms() + 60_000)
                assert len(data) >= 2  # one scraped point + imported points
                # every stored value, scraped or imported, is what node_exporter served
                assert all(math.isclose(v, want, rel_tol=0, abs_tol=0) for v in data.values.tolist()), (
                    series, want, data.values.tolist()[:5])
        mem = Series.of(STABLE[0], job="node", instance=instance)
        assert store.latest(mem) is not None
    finally:
        store.close()


def test_prometheus_store_serves_reads_like_the_embedded_store(prometheus: str) -> None:
    """The read half of the store interface, answered by the real Prometheus."""
    from aiops.promstore import PrometheusSeriesStore

    store = PrometheusSeriesStore(PrometheusClient(prometheus, timeout_s=10))
    try:
        found = store.select(parse_selector('node_filesystem_size_bytes{mountpoint="/"}'))
        assert found and all(s.get("mountpoint") == "/" and s.get("job") == "node" for s in found)
        mem = store.select(parse_selector(STABLE[0]))[0]
        end = now_ms()
        raw = store.read(mem, end - 20_000, end)
        assert len(raw) >= 2 and bool((raw.ts_ms >= end - 20_000).all())
        assert bool((raw.ts_ms[1:] > raw.ts_ms[:-1]).all())  # raw scrapes, time-ordered
        # scraped every second: raw points are ~1 s apart, not on a query grid
        assert 500 <= int(np.median(np.diff(raw.ts_ms))) <= 2000
        down = store.downsample(mem, end - 20_000, end, 10_000, "max")
        assert len(down) >= 1 and bool((down.ts_ms % 10_000 == 0).all())
        assert set(down.values.tolist()) == set(raw.values.tolist())  # MemTotal is constant
        count = store.downsample(mem, end - 20_000, end, 10_000, "count")
        # every raw point falls in one bucket (Prometheus windows are left-open: (t - step, t])
        assert min(count.values.tolist()) >= 1 and sum(count.values.tolist()) <= len(raw) + 1
        with pytest.raises(StoreError):
            store.append([])
    finally:
        store.close()
