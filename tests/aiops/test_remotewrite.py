"""Remote-write: our hand-written protobuf parses with Google's protobuf runtime, the on-disk queue is
bounded and survives restarts, and against a real ``prometheus --web.enable-remote-write-receiver``
what was written is what query_range (through PrometheusSeriesStore) returns, also across an outage."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from aiops.model import Sample, Series
from aiops.promapi import PrometheusClient
from aiops.promstore import PrometheusSeriesStore
from aiops.remotewrite import RemoteWriter
from aiops.remotewrite_proto import compress, decode_write_request, decompress, encode_write_request
from tests.conftest import free_port
from tests.prometheus_server import PrometheusServer as _Prometheus

# --- wire format ---------------------------------------------------------------------------


@functools.cache
def _prompb() -> type:
    """prompb.WriteRequest built at run time from its descriptor (no generated code needed)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FileDescriptorProto(name="rw_test.proto", package="prometheus", syntax="proto3")
    lab = f.message_type.add(name="Label")
    lab.field.add(name="name", number=1, type=9, label=1)
    lab.field.add(name="value", number=2, type=9, label=1)
    smp = f.message_type.add(name="Sample")
    smp.field.add(name="value", number=1, type=1, label=1)
    smp.field.add(name="timestamp", number=2, type=3, label=1)
    ts = f.message_type.add(name="TimeSeries")
    ts.field.add(name="labels", number=1, type=11, label=3, type_name=".prometheus.Label")
    ts.field.add(name="samples", number=2, type=11, label=3, type_name=".prometheus.Sample")
    wr = f.message_type.add(name="WriteRequest")
    wr.field.add(name="timeseries", number=1, type=11, label=3, type_name=".prometheus.TimeSeries")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("prometheus.WriteRequest"))


_names = st.text("abcxyzABCZ_019", min_size=1, max_size=8).filter(lambda n: not n[0].isdigit())


_series = st.builds(Series.of, _names, st.dictionaries(_names.filter(lambda n: not n.startswith("__")),
                                                      st.text(max_size=20), max_size=4))
_points = st.lists(st.tuples(st.integers(-2**62, 2**62), st.floats(allow_nan=True)), max_size=5)


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(_series, _points, max_size=5))
def test_encoding_parses_with_the_protobuf_runtime(batch: dict[Series, list[tuple[int, float]]]) -> None:
    body = encode_write_request(batch, extra=(("node", "n1"),))
    msg = _prompb()()
    msg.ParseFromString(body)
    assert len(msg.timeseries) == len(batch)
    for ts, (series, points) in zip(msg.timeseries, batch.items(), strict=True):
        names = [lab.name for lab in ts.labels]
        assert names == sorted(names)  # the specification requires sorted label names
        want = {"node": "n1", **dict(series.labels), "__name__": series.name}
        assert {lab.name: lab.value for lab in ts.labels} == want
        got = [(s.timestamp, s.value) for s in ts.samples]
        assert [t for t, _ in got] == [t for t, _ in points]
        assert all(a == b or (math.isnan(a) and math.isnan(b)) for (_, a), (_, b) in zip(got, points, strict=True))
    decoded = decode_write_request(decompress(compress(body)))
    assert [(name, dict(labels)) for name, labels, _ in decoded] == [
        (s.name, {**dict(s.labels), "node": dict(s.labels).get("node", "n1")}) for s in batch]


# --- the queue -----------------------------------------------------------------------------


def _samples(n_series: int, ts_ms: int, value: float = 1.0) -> list[Sample]:
    return [Sample(Series.of("rw_test", i=str(i)), ts_ms, value + i) for i in range(n_series)]


def test_queue_is_bounded_dropping_the_oldest(tmp_path: Path) -> None:
    reg = CollectorRegistry()
    w = RemoteWriter(f"http://127.0.0.1:{free_port()}/api/v1/write", tmp_path, max_queue_bytes=6000,
                     batch_max_samples=100, registry=reg)
    for k in range(40):
        w.add(_samples(100, 1_000 + k))
        w.flush()
    size = sum(p.stat().st_size for p in tmp_path.glob("*.rw"))
    assert 0 < size <= 6000 and w.queued_samples < 4000
    dropped = reg.get_sample_value("aiops_remote_write_samples_dropped_total", {"reason": "queue_full"})
    assert dropped == 4000 - w.queued_samples
    seqs = sorted(int(p.stem.split("-")[0]) for p in tmp_path.glob("*.rw"))
    assert seqs[-1] == 40 and seqs == list(range(seqs[0], 41))  # the newest kept, contiguous
    assert w.send_next() is False  # nothing listens: kept for a retry
    assert w.queued_samples == sum(int(p.stem.split("-")[1]) for p in tmp_path.glob("*.rw"))
    again = RemoteWriter("http://127.0.0.1:1/api/v1/write", tmp_path)  # a restarted agent resumes the queue
    assert again.queued_samples == w.queued_samples


def test_segments_split_at_batch_max(tmp_path: Path) -> None:
    w = RemoteWriter("http://127.0.0.1:1/api/v1/write", tmp_path, batch_max_samples=250)
    w.add(_samples(1000, 5_000))
    w.add(_samples(1, 6_000))
    w.flush()
    counts = sorted(int(p.stem.split("-")[1]) for p in tmp_path.glob("*.rw"))
    assert sum(counts) == 1001 and max(counts) <= 250


# --- against a real Prometheus -------------------------------------------------------------


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[_Prometheus]:
    prom = _Prometheus(tmp_path)
    prom.start()
    try:
        yield prom
    finally:
        prom.stop()


def _wait_drained(w: RemoteWriter, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while w.pending_samples and time.monotonic() < deadline:
        time.sleep(0.1)
    assert w.pending_samples == 0, f"{w.pending_samples} samples still queued"


def _read_all(store: PrometheusSeriesStore, series: list[Series], start_ms: int, end_ms: int
              ) -> dict[Series, list[tuple[int, float]]]:
    out = {}
    for s in series:
        data = store.read(s, start_ms, end_ms)
        out[s] = list(zip(data.ts_ms.tolist(), data.values.tolist(), strict=True))
    return out


@pytest.mark.integration
def test_written_is_what_prometheus_returns_also_after_an_outage(prometheus: _Prometheus, tmp_path: Path) -> None:
    reg = CollectorRegistry()
    w = RemoteWriter(f"{prometheus.url}/api/v1/write", tmp_path / "queue", batch_max_samples=500,
                     flush_interval_s=0.2, backoff_s=0.2, backoff_max_s=1.0, timeout_s=2.0,
                     external_labels={"node": "gpu-node-1"}, registry=reg)
    w.start()
    series = [Series.of("rw_gpu_utilization_ratio", gpu=str(i), instance="a") for i in range(40)]
    start_ms = (int(time.time() * 1000) // 1000) * 1000 - 60_000
    written: dict[Series, list[tuple[int, float]]] = {s: [] for s in series}

    def collect(k: int) -> None:
        ts = start_ms + k * 1000
        batch = [Sample(s, ts, round((i * 0.37 + k * 0.011) % 1, 6)) for i, s in enumerate(series)]
        w.add(batch)
        for smp in batch:
            written[smp.series].append((smp.ts_ms, smp.value))

    try:
        for k in range(20):
            collect(k)
        _wait_drained(w)
        store = PrometheusSeriesStore(PrometheusClient(prometheus.url))
        stored = [Series.of(s.name, s.label_dict, node="gpu-node-1") for s in series]  # + the external label
        got = _read_all(store, stored, start_ms, start_ms + 60_000)
        assert [got[st_] for st_ in stored] == [written[s] for s in series]

        prometheus.stop()  # the outage: collection goes on, samples wait on disk
        for k in range(20, 40):
            collect(k)
            time.sleep(0.15)
        assert w.queued_samples > 0 and (reg.get_sample_value("aiops_remote_write_failures_total") or 0) > 0
        prometheus.start()  # same port, same TSDB
        for k in range(40, 45):
            collect(k)
        _wait_drained(w)
        got = _read_all(store, stored, start_ms, start_ms + 60_000)
        assert [got[st_] for st_ in stored] == [written[s] for s in series]
        assert sum(len(v) for v in got.values()) == 40 * 45
        assert reg.get_sample_value("aiops_remote_write_samples_sent_total") == 40 * 45
        assert not reg.get_sample_value("aiops_remote_write_samples_dropped_total", {"reason": "rejected"})
        store.close()
    finally:
        w.stop(drain_s=0)
