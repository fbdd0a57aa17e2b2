from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops.errors import StoreError
from aiops.model import Sample, Series, parse_selector
from aiops.store import SqliteSeriesStore

CPU = Series.of("cpu", host="a", mode="user")


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteSeriesStore(tmp_path / "ts.db", rollup_step_ms=60_000, fold_samples=50)
    yield s
    s.close()


def test_append_read_roundtrip_keeps_nan_and_inf(store: SqliteSeriesStore) -> None:
    vals = [1.0, math.nan, math.inf, -math.inf, 2.5]
    store.append([Sample(CPU, 1000 * i, v) for i, v in enumerate(vals)])
    data = store.read(CPU, 0, 10_000)
    assert data.ts_ms.tolist() == [0, 1000, 2000, 3000, 4000]
    np.testing.assert_array_equal(data.values, np.array(vals))


def test_reads_see_head_and_folded_chunks_alike(store: SqliteSeriesStore) -> None:
    for i in range(30):  # fold_samples=50: some batches fold, the last stay in the head
        store.append([Sample(CPU, i * 1000, float(i)), Sample(CPU.with_labels(mode="sys"), i * 1000, -i)])
    data = store.read(CPU, 0, 10**9)
    assert data.values.tolist() == [float(i) for i in range(30)]
    store.fold()
    assert store.read(CPU, 5000, 7000).values.tolist() == [5.0, 6.0, 7.0]


def test_out_of_order_and_rewrites_last_write_wins(store: SqliteSeriesStore) -> None:
    store.append([Sample(CPU, 3000, 3.0), Sample(CPU, 1000, 1.0)])
    store.fold()
    store.append([Sample(CPU, 2000, 2.0), Sample(CPU, 3000, 33.0)])
    data = store.read(CPU, 0, 10_000)
    assert data.ts_ms.tolist() == [1000, 2000, 3000]
    assert data.values.tolist() == [1.0, 2.0, 33.0]


def test_select_with_all_four_matchers(store: SqliteSeriesStore) -> None:
    series = [Series.of("cpu", host=h, mode=m) for h in ("a", "b", "c") for m in ("user", "idle")]
    store.append([Sample(s, 0, 1.0) for s in series] + [Sample(Series.of("mem", host="a"), 0, 1.0)])
    def keys(sel: str) -> list[str]:
        return [s.key for s in store.select(parse_selector(sel))]
    assert keys('cpu{host="a"}') == ['cpu{host="a",mode="idle"}', 'cpu{host="a",mode="user"}']
    assert len(keys('cpu{mode!="idle"}')) == 3
    assert len(keys('cpu{host=~"a|b",mode="user"}')) == 2
    assert len(keys('cpu{host!~"a|b"}')) == 2
    assert keys('{host="a",__name__=~"m.*"}') == ['mem{host="a"}']


def test_downsample_aggregations_ignore_nan(store: SqliteSeriesStore) -> None:
    # two 60 s buckets: [1, 2, nan, 3] and [10, 20]
    pts = [(0, 1.0), (10_000, 2.0), (20_000, math.nan), (30_000, 3.0), (60_000, 10.0), (90_000, 20.0)]
    store.append([Sample(CPU, t, v) for t, v in pts])
    for agg, want in {"avg": [2.0, 15.0], "min": [1.0, 10.0], "max": [3.0, 20.0], "last": [3.0, 20.0],
                      "sum": [6.0, 30.0], "count": [3.0, 2.0]}.items():
        d = store.downsample(CPU, 0, 119_999, 60_000, agg)  # type: ignore[arg-type]
        assert d.ts_ms.tolist() == [0, 60_000] and d.values.tolist() == want, agg


def test_retention_drops_raw_but_keeps_rollups(store: SqliteSeriesStore) -> None:
    day = 86_400_000
    pts = [Sample(CPU, t, float(t // 1000)) for t in range(0, 2 * day, 30_000)]
    store.append(pts)
    aggs = ("avg", "min", "max", "last", "sum", "count")
    before = {agg: store.downsample(CPU, 0, 2 * day, 3_600_000, agg) for agg in aggs}  # type: ignore[arg-type]
    stats = store.apply_retention(now_ms=2 * day, raw_retention_ms=day, rollup_retention_ms=30 * day)
    assert stats["rolled_up_points"] == day // 30_000
    raw = store.read(CPU, 0, 2 * day)
    assert raw.ts_ms.min() >= day  # raw older than a day is gone
    for agg in aggs:  # the hourly view is unchanged: rollups answer where raw data is gone
        after = store.downsample(CPU, 0, 2 * day, 3_600_000, agg)  # type: ignore[arg-type]
        assert after.ts_ms.tolist() == before[agg].ts_ms.tolist()
        np.testing.assert_allclose(after.values, before[agg].values, err_msg=agg)
    store.apply_retention(now_ms=40 * day, raw_retention_ms=day, rollup_retention_ms=30 * day)
    assert len(store.downsample(CPU, 0, 2 * day, 3_600_000)) == 0


def test_compaction_keeps_every_point(store: SqliteSeriesStore) -> None:
    for i in range(100):
        store.append([Sample(CPU, i * 1000, float(i))])
        store.fold()  # one small chunk per point: the worst case compaction exists for
    assert store.compact() == 100
    assert store.read(CPU, 0, 10**9).values.tolist() == [float(i) for i in range(100)]


def test_concurrent_writer_and_reader_processes(tmp_path: Path) -> None:
    path = tmp_path / "ts.db"
    writer = SqliteSeriesStore(path, fold_samples=1000)
    reader = SqliteSeriesStore(path, read_only=True)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for i in range(300):
                writer.append([Sample(CPU, i, float(i)), Sample(Series.of("x", i=str(i % 7)), i, 1.0)])
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=write)
    t.start()
    seen = 0
    while t.is_alive():
        n = len(reader.read(CPU, 0, 10**9))
        assert n >= seen  # never goes backwards, never raises
        seen = n
    t.join()
    assert not errors and len(reader.read(CPU, 0, 10**9)) == 300
    with pytest.raises(StoreError):
        reader.append([Sample(CPU, 0, 1.0)])
    writer.close()
    reader.close()


@pytest.mark.slow
def test_crash_mid_write_loses_at_most_one_batch_and_never_corrupts(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    script = textwrap.dedent(f"""
        import sys
        from aiops.model import Sample, Series
        from aiops.store import SqliteSeriesStore
        st = SqliteSeriesStore({str(path)!r}, fold_samples=20_000)
        series = [Series.of("m", i=str(i)) for i in range(100)]
        b = 0
        while True:
            st.append([Sample(s, b * 1000 + j, float(b)) for s in series for j in range(10)])
            b += 1
            if b == 5:
                print("ready", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(0.7)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    st = SqliteSeriesStore(path)
    assert st.integrity_ok()
    counts = {len(st.read(s, 0, 10**12)) for s in st.select(parse_selector('m{i=~".*"}'))}
    assert len(counts) == 1  # every series has the same number of points: whole batches only
    n = counts.pop()
    assert n % 10 == 0 and n >= 50
    st.append([Sample(Series.of("m", i="0"), 10**11, 1.0)])  # and it is writable again
    st.close()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.floats(allow_nan=True, allow_infinity=True)), max_size=60))
def test_store_returns_the_last_value_per_timestamp(tmp_path_factory: pytest.TempPathFactory, pts) -> None:
    path = tmp_path_factory.mktemp("h") / "h.db"
    with SqliteSeriesStore(path, fold_samples=17) as s:
        for i in range(0, len(pts), 7):
            s.append([Sample(CPU, t, v) for t, v in pts[i:i + 7]])
        want: dict[int, float] = {}
        for t, v in pts:
            want[t] = v
        got = s.read(CPU, 0, 10_000)
        assert got.ts_ms.tolist() == sorted(want)
        np.testing.assert_array_equal(got.values, np.array([want[t] for t in sorted(want)], dtype=float))


_MANY = [CPU, CPU.with_labels(mode="sys"), Series.of("mem", host="a"), Series.of("mem", host="b")]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2_000), st.floats(allow_nan=True, allow_infinity=True)),
                max_size=120),
       st.lists(st.sampled_from(["append", "fold", "compact"]), min_size=1, max_size=12),
       st.integers(0, 2_000), st.integers(0, 2_000))
def test_read_many_reads_what_one_read_per_series_does(tmp_path_factory: pytest.TempPathFactory, pts, steps,
                                                      a: int, b: int) -> None:
    """Over chunks (raw and compacted), the head, rewrites of a timestamp and unknown series."""
    path = tmp_path_factory.mktemp("m") / "m.db"
    with SqliteSeriesStore(path, fold_samples=23) as s:
        batches = [pts[i:i + 9] for i in range(0, len(pts), 9)]
        for step in steps:
            if step == "append" and batches:
                s.append([Sample(_MANY[k], t, v) for k, t, v in batches.pop(0)])
            elif step == "fold":
                s.fold()
            elif step == "compact":
                s.compact()
        for batch in batches:
            s.append([Sample(_MANY[k], t, v) for k, t, v in batch])
        lo, hi = min(a, b), max(a, b)
        unknown = Series.of("never", written="1")
        got = s.read_many([*_MANY, unknown], lo, hi)
        assert list(got) == [*_MANY, unknown]
        for series in [*_MANY, unknown]:
            want = s.read(series, lo, hi)
            assert got[series].series == series
            assert got[series].ts_ms.tolist() == want.ts_ms.tolist()
            np.testing.assert_array_equal(got[series].values, want.values)


def test_read_many_sees_series_another_process_created(tmp_path: Path) -> None:
    with SqliteSeriesStore(tmp_path / "ts.db") as writer, SqliteSeriesStore(tmp_path / "ts.db") as reader:
        assert reader.read_many([CPU], 0, 10)[CPU].ts_ms.tolist() == []
        writer.append([Sample(CPU, 5, 1.0)])
        assert reader.read_many([CPU], 0, 10)[CPU].ts_ms.tolist() == [5]
