"""The store's layout at scale: chunk codec, columns, adaptive folding, batched maintenance, vacuum."""

from __future__ import annotations

import json
import math
import sqlite3
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops.chunkcodec import decode, decode_many, encode_groups
from aiops.columns import SampleColumns, concat_samples
from aiops.errors import InputError, StoreError
from aiops.model import Sample, Series, parse_selector
from aiops.store import SqliteSeriesStore

STALE_BITS = 0x7FF0000000000002
finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)
any_bits = st.integers(0, 2**64 - 1).map(lambda b: struct.unpack("<d", struct.pack("<Q", b))[0])


def bits(a: np.ndarray) -> list[int]:
    return np.ascontiguousarray(a, dtype="<f8").view("<u8").tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(-(2**40), 2**40), st.one_of(finite_or_not, any_bits)),
                         min_size=1, max_size=40), min_size=1, max_size=6))
def test_codec_round_trips_bit_exact(groups: list[list[tuple[int, float]]]) -> None:
    """Irregular, unsorted, negative timestamps and every float bit pattern (NaN payloads, ±Inf)."""
    ts = np.array([t for g in groups for t, _ in g], dtype=np.int64)
    vals = np.array([v for g in groups for _, v in g], dtype=np.float64)
    bounds = np.cumsum([0] + [len(g) for g in groups]).astype(np.int64)
    start = np.array([min(t for t, _ in g) for g in groups], dtype=np.int64)
    blobs = encode_groups(ts, vals, bounds, start)
    assert len(blobs) == len(groups)
    for g, blob in enumerate(blobs):  # one at a time ...
        t, v = decode(blob, len(groups[g]), int(start[g]))
        assert t.tolist() == ts[bounds[g]:bounds[g + 1]].tolist()
        assert bits(v) == bits(vals[bounds[g]:bounds[g + 1]])
    t, v, b = decode_many(blobs, [len(g) for g in groups], start.tolist())  # ... and all at once
    assert t.tolist() == ts.tolist() and bits(v) == bits(vals) and b.tolist() == bounds.tolist()


def test_codec_keeps_the_staleness_marker_and_is_small_on_scrapes() -> None:
    stale = struct.unpack("<d", struct.pack("<Q", STALE_BITS))[0]
    rng = np.random.default_rng(3)
    ts = 1_700_000_000_000 + np.arange(120, dtype=np.int64) * 10_000 + rng.integers(-3, 4, 120)
    vals = np.cumsum(rng.integers(0, 40, 120)).astype(np.float64)
    vals[60] = stale
    blob = encode_groups(ts, vals, np.array([0, 120]), np.array([ts.min()]))[0]
    t, v = decode(blob, 120, int(ts.min()))
    assert bits(v)[60] == STALE_BITS and t.tolist() == ts.tolist()
    assert len(blob) / 120 < 5  # a counter scraped every 10 s: raw arrays would take 16 bytes a point


def test_codec_rejects_a_truncated_chunk() -> None:
    blob = encode_groups(np.array([0, 10, 20]), np.array([1.5, 2.5, 3.5]), np.array([0, 3]), np.array([0]))[0]
    with pytest.raises(StoreError):
        decode(blob[:-2], 3, 0)


def test_columns_are_a_sequence_of_samples() -> None:
    cpu = Series.of("cpu", host="a")
    cols = SampleColumns.of([cpu, cpu, cpu], [1, 2, 3], [0.5, math.inf, 2.0])
    assert len(cols) == 3 and cols[1] == Sample(cpu, 2, math.inf) and list(cols[1:])[0].ts_ms == 2
    assert cols == [Sample(cpu, 1, 0.5), Sample(cpu, 2, math.inf), Sample(cpu, 3, 2.0)]
    assert len(concat_samples([cols, [Sample(cpu, 9, 1.0)], []])) == 4
    with pytest.raises(InputError):
        SampleColumns.of([cpu], [1, 2], [0.5])


def test_columns_append_matches_sample_append_and_reuses_ids(tmp_path: Path) -> None:
    series = tuple(Series.of("m", i=str(i)) for i in range(300))
    with SqliteSeriesStore(tmp_path / "a.db") as a, SqliteSeriesStore(tmp_path / "b.db") as b:
        for k in range(5):
            ts = np.full(300, 1000 * k, dtype=np.int64)
            vals = np.arange(300, dtype=np.float64) * k
            a.append(SampleColumns(series, ts, vals))  # the same tuple object every time
            b.append([Sample(s, 1000 * k, float(v)) for s, v in zip(series, vals, strict=True)])
        assert len(a._id_cache) == 1  # resolved once, then served from the cache
        for s in (series[0], series[299]):
            assert a.read(s, 0, 10**9).values.tolist() == b.read(s, 0, 10**9).values.tolist()
        a.fold()
        assert a.read(series[7], 0, 10**9).values.tolist() == [7.0 * k for k in range(5)]


def test_fold_threshold_adapts_to_the_number_of_series(tmp_path: Path) -> None:
    with SqliteSeriesStore(tmp_path / "f.db", fold_points=10, fold_min_samples=100,
                           fold_max_samples=5_000) as st_:
        assert st_.fold_threshold == 100
        st_.append([Sample(Series.of("m", i=str(i)), 0, 1.0) for i in range(50)])
        assert st_.fold_threshold == 500  # 50 series x 10 points
        st_.append([Sample(Series.of("m", i=str(i)), 0, 1.0) for i in range(50, 2_000)])
        assert st_.fold_threshold == 5_000  # capped
        for k in range(1, 9):  # 50 series, one point per append, until the head folds
            st_.append([Sample(Series.of("m", i=str(i)), k * 1000, float(k)) for i in range(50)])
        n, points = st_._reader().execute("SELECT count(*), sum(n) FROM chunks").fetchone()
        assert n == 0  # 2,000 + 8 x 50 samples < 5,000: nothing folded yet
        for k in range(9, 70):
            st_.append([Sample(Series.of("m", i=str(i)), k * 1000, float(k)) for i in range(50)])
        n, points = st_._reader().execute("SELECT count(*), sum(n) FROM chunks").fetchone()
        assert n > 0 and points / n > 2  # chunks hold many points, not one or two
    with SqliteSeriesStore(tmp_path / "g.db", fold_samples=7) as fixed:
        fixed.append([Sample(Series.of("m", i=str(i)), 0, 1.0) for i in range(1000)])
        assert fixed.fold_threshold == 7


def test_compaction_runs_in_batches_of_many_series(tmp_path: Path) -> None:
    st_ = SqliteSeriesStore(tmp_path / "c.db", fold_samples=10**9)
    series = [Series.of("m", i=str(i)) for i in range(2_500)]
    for k in range(10):  # ten folds: ten one-point chunks per series
        st_.append(SampleColumns.of(series, [k * 1000] * len(series), [float(k)] * len(series)))
        st_.fold()
    begins: list[str] = []
    st_._writer.set_trace_callback(lambda sql: begins.append(sql) if sql.startswith("BEGIN") else None)
    assert st_.compact() == 25_000
    st_._writer.set_trace_callback(None)
    assert len(begins) <= 3  # the fold, then 2,000 series per transaction: not 2,500 transactions
    assert st_.read(series[2_499], 0, 10**9).values.tolist() == [float(k) for k in range(10)]
    assert st_._reader().execute("SELECT count(*) FROM chunks").fetchone()[0] == 2_500
    st_.close()


def test_incremental_vacuum_shrinks_the_file_after_retention(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    st_ = SqliteSeriesStore(path, rollup_step_ms=60_000, fold_samples=10**9)
    rng = np.random.default_rng(0)
    series = [Series.of("m", i=str(i)) for i in range(100)]
    for k in range(0, 2_000, 10):  # 2,000 noisy points per series, 1 s apart
        st_.append(SampleColumns.of([s for _ in range(10) for s in series],
                                    [(k + j) * 1000 for j in range(10) for _ in series], rng.random(1000)))
    st_.fold()
    st_.vacuum()
    full = path.stat().st_size
    st_.apply_retention(now_ms=2_000_000, raw_retention_ms=200_000, rollup_retention_ms=10**12)
    assert st_._reader().execute("PRAGMA freelist_count").fetchone()[0] > 0
    assert st_.vacuum() > 0
    assert path.stat().st_size < full * 0.6
    assert st_._reader().execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    assert st_.integrity_ok() and len(st_.read(series[0], 0, 10**12)) == 200
    st_.close()


def _old_format_file(path: Path) -> None:
    """A store file as the previous version wrote it: no series_blocks, raw/zlib chunks, head rows."""
    import zlib

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript("""
        CREATE TABLE series (id INTEGER PRIMARY KEY, name TEXT NOT NULL, labels TEXT NOT NULL, UNIQUE (name, labels));
        CREATE TABLE chunks (series_id INTEGER NOT NULL, start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL,
            n INTEGER NOT NULL, codec INTEGER NOT NULL DEFAULT 0, ts BLOB NOT NULL, vals BLOB NOT NULL);
        CREATE INDEX chunks_by_series ON chunks (series_id, end_ms);
        CREATE TABLE rollups (series_id INTEGER NOT NULL, step_ms INTEGER NOT NULL, bucket_ms INTEGER NOT NULL,
            count INTEGER NOT NULL, sum REAL, min REAL, max REAL, last REAL, last_ts INTEGER NOT NULL,
            PRIMARY KEY (series_id, step_ms, bucket_ms)) WITHOUT ROWID;
        CREATE TABLE head (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, sids BLOB NOT NULL, ts BLOB NOT NULL,
            vals BLOB NOT NULL);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """)
    for sid, host in ((1, "a"), (2, "b")):
        labels = json.dumps([["host", host]], separators=(",", ":"))
        conn.execute("INSERT INTO series VALUES (?, 'cpu', ?)", (sid, labels))
    t = np.array([0, 1000, 2000], dtype="<i8")
    v = np.array([1.0, math.nan, math.inf], dtype="<f8")
    conn.execute("INSERT INTO chunks VALUES (1, 0, 2000, 3, 0, ?, ?)", (t.tobytes(), v.tobytes()))
    conn.execute("INSERT INTO chunks VALUES (2, 0, 2000, 3, 1, ?, ?)",
                 (zlib.compress(t.tobytes()), zlib.compress((v * -1).tobytes())))
    conn.execute("INSERT INTO head (n, sids, ts, vals) VALUES (1, ?, ?, ?)",
                 (np.array([1], "<i8").tobytes(), np.array([3000], "<i8").tobytes(), np.array([4.0], "<f8").tobytes()))
    conn.close()


def test_a_file_of_the_previous_version_opens_and_keeps_working(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_format_file(path)
    st_ = SqliteSeriesStore(path, rollup_step_ms=1000, fold_samples=10**9)
    a, b = Series.of("cpu", host="a"), Series.of("cpu", host="b")
    assert st_.select(parse_selector("cpu")) == [a, b]
    got = st_.read(a, 0, 10_000)
    assert got.ts_ms.tolist() == [0, 1000, 2000, 3000]
    assert bits(got.values) == bits(np.array([1, math.nan, math.inf, 4]))
    assert st_.read(b, 0, 10_000).values[2] == -math.inf
    c = Series.of("cpu", host="c")  # a new series gets an id after the old ones
    st_.append([Sample(c, 5000, 7.0), Sample(a, 5000, 5.0)])
    st_.fold()
    for k in range(10):
        st_.append([Sample(a, 6000 + k, float(k))])
        st_.fold()
    assert st_.compact() > 0
    st_.apply_retention(now_ms=10**9, raw_retention_ms=10**9 - 3000, rollup_retention_ms=10**12)
    assert st_.vacuum() == 0  # no incremental vacuum on an old file: nothing happens, nothing breaks
    st_.close()
    again = SqliteSeriesStore(path, read_only=True)
    assert again.select(parse_selector("cpu")) == [a, b, c]
    assert again.read(a, 0, 10**6).ts_ms.tolist() == [3000, 5000, *range(6000, 6010)]
    assert again.read(c, 0, 10**6).values.tolist() == [7.0]
    again.close()
    conv = SqliteSeriesStore(path)
    conv.vacuum(full=True)  # converts it: incremental vacuum from now on
    conv.close()
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
