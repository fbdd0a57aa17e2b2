"""The time-series store: a small interface and its embedded SQLite (WAL) implementation.

Like Prometheus' head block and WAL, an appended batch first lands as **one row** of the
``head`` table: the batch's series ids, timestamps (int64) and values (float64) as packed
little-endian arrays. One row per 5,000 samples, appended at the end of the file, is why the
store ingests faster than a bare ``(series_id, ts, value)`` table, and why NaN and ±Inf survive
(SQLite turns a REAL NaN into NULL; a packed float64 keeps it bit for bit).

Every so often (``fold_samples``) the head is *folded* into per-series ``chunks`` in one
transaction: this is the only write that touches the per-series index, so its random page
writes are paid once per ~200,000 samples instead of on every batch. Reads look at the chunks
and at the head, so data is visible as soon as ``append`` returns.

Every append and every fold is one transaction, so a crash in the middle of a write loses at
most that batch and never corrupts the file (SQLite's WAL guarantees atomic commits).
Maintenance merges small chunks into larger zlib-compressed ones, rolls old raw data up into
per-step count/sum/min/max/last rows, and then drops the raw data past its retention.

Readers in other processes (the dashboard) open the same file; WAL lets them read while the
agent writes.

Examples:
    >>> import tempfile, os
    >>> from aiops.model import Series, Sample, parse_selector
    >>> store = SqliteSeriesStore(os.path.join(tempfile.mkdtemp(), "ts.db"))
    >>> cpu = Series.of("cpu", host="a")
    >>> store.append([Sample(cpu, 1000, 0.5), Sample(cpu, 2000, float("nan"))])
    2
    >>> store.select(parse_selector('cpu{host="a"}')) == [cpu]
    True
    >>> data = store.read(cpu, 0, 5000)
    >>> data.ts_ms.tolist(), str(data.values[1])
    ([1000, 2000], 'nan')
    >>> store.close()
"""

from __future__ import annotations

import json
import sqlite3
import threading
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from aiops.errors import InputError, StoreError
from aiops.model import Matcher, MatchOp, Sample, Series

__all__ = [
    "SeriesData",
    "SeriesStore",
    "SqliteSeriesStore",
    "Aggregation",
    "AGGREGATIONS",
    "open_store",
]

Aggregation = Literal["avg", "min", "max", "last", "sum", "count"]
AGGREGATIONS: tuple[str, ...] = ("avg", "min", "max", "last", "sum", "count")

_CODEC_RAW = 0
_CODEC_ZLIB = 1
_COMPACT_TARGET_POINTS = 4096  # 64 KiB of raw arrays per chunk: one page-run read, cheap to inflate
_SMALL_CHUNK_POINTS = 512

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    UNIQUE (name, labels)
);
CREATE TABLE IF NOT EXISTS chunks (
    series_id INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    n INTEGER NOT NULL,
    codec INTEGER NOT NULL DEFAULT 0,
    ts BLOB NOT NULL,
    vals BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_series ON chunks (series_id, end_ms);
CREATE TABLE IF NOT EXISTS rollups (
    series_id INTEGER NOT NULL,
    step_ms INTEGER NOT NULL,
    bucket_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    sum REAL,
    min REAL,
    max REAL,
    last REAL,
    last_ts INTEGER NOT NULL,
    PRIMARY KEY (series_id, step_ms, bucket_ms)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS head (
    id INTEGER PRIMARY KEY,
    n INTEGER NOT NULL,
    sids BLOB NOT NULL,
    ts BLOB NOT NULL,
    vals BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# The same settings are used by benchmarks/ingest.py for its plain-sqlite baseline.
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # WAL + NORMAL: atomic and never corrupt; a power cut may lose the last commits
    "PRAGMA busy_timeout=10000",
    "PRAGMA cache_size=-65536",
    "PRAGMA temp_store=MEMORY",
)


@dataclass(frozen=True, slots=True)
class SeriesData:
    """Samples of one series in time order: ``ts_ms`` (int64 UTC ms) and ``values`` (float64)."""

    series: Series
    ts_ms: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])


class SeriesStore(Protocol):
    """What the platform needs of a time-series store; a Prometheus-backed reader offers the read half."""

    def append(self, samples: Sequence[Sample]) -> int: ...

    def select(self, matchers: Sequence[Matcher]) -> list[Series]: ...

    def read(self, series: Series, start_ms: int, end_ms: int) -> SeriesData: ...

    def downsample(
        self, series: Series, start_ms: int, end_ms: int, step_ms: int, agg: Aggregation = "avg"
    ) -> SeriesData: ...

    def close(self) -> None: ...


def _labels_text(series: Series) -> str:
    return json.dumps(series.labels, separators=(",", ":"))


def _decode(codec: int, ts: bytes, vals: bytes) -> tuple[bytes, bytes]:
    if codec == _CODEC_ZLIB:
        return zlib.decompress(ts), zlib.decompress(vals)
    return ts, vals


def _sorted_unique(ts: npt.NDArray[np.int64], vals: npt.NDArray[np.float64]) -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.float64]
]:
    """Sort by time; for a repeated timestamp the value written last wins."""
    if ts.size > 1 and not bool(np.all(ts[1:] > ts[:-1])):
        order = np.argsort(ts, kind="stable")
        ts, vals = ts[order], vals[order]
        keep = np.ones(ts.size, dtype=bool)
        keep[:-1] = ts[1:] != ts[:-1]
        ts, vals = ts[keep], vals[keep]
    return ts, vals


@dataclass(slots=True)
class _Partial:
    """Partial aggregates per bucket, mergeable across raw data and rollups."""

    buckets: npt.NDArray[np.int64]
    count: npt.NDArray[np.float64]
    total: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    last: npt.NDArray[np.float64]
    last_ts: npt.NDArray[np.int64]


def _partial_from_raw(ts: npt.NDArray[np.int64], vals: npt.NDArray[np.float64], step_ms: int) -> _Partial:
    buckets_all = (ts // step_ms) * step_ms
    buckets, start = np.unique(buckets_all, return_index=True)
    finite = np.isfinite(vals)
    fv = np.where(finite, vals, 0.0)
    count = np.add.reduceat(finite.astype(np.float64), start) if ts.size else np.zeros(0)
    total = np.add.reduceat(fv, start) if ts.size else np.zeros(0)
    low = np.minimum.reduceat(np.where(finite, vals, np.inf), start) if ts.size else np.zeros(0)
    high = np.maximum.reduceat(np.where(finite, vals, -np.inf), start) if ts.size else np.zeros(0)
    # last finite value of each bucket: index of the greatest finite position per bucket
    positions = np.where(finite, np.arange(ts.size), -1)
    last_pos = np.maximum.reduceat(positions, start) if ts.size else np.zeros(0, dtype=np.int64)
    has = last_pos >= 0
    last = np.where(has, vals[np.maximum(last_pos, 0)], np.nan) if ts.size else np.zeros(0)
    last_ts = np.where(has, ts[np.maximum(last_pos, 0)], -1) if ts.size else np.zeros(0, dtype=np.int64)
    return _Partial(buckets, count, total, low, high, last, last_ts.astype(np.int64))


def _finish(series: Series, part: _Partial, agg: str) -> SeriesData:
    with np.errstate(invalid="ignore", divide="ignore"):
        empty = part.count == 0
        if agg == "avg":
            out = np.where(empty, np.nan, part.total / np.where(empty, 1, part.count))
        elif agg == "min":
            out = np.where(empty, np.nan, part.low)
        elif agg == "max":
            out = np.where(empty, np.nan, part.high)
        elif agg == "sum":
            out = np.where(empty, np.nan, part.total)
        elif agg == "count":
            out = part.count.astype(np.float64)
        elif agg == "last":
            out = part.last
        else:
            raise InputError(f"aggregation {agg!r}: expected one of {', '.join(AGGREGATIONS)}")
    return SeriesData(series, part.buckets.astype(np.int64), np.asarray(out, dtype=np.float64))


def _merge_partials(a: _Partial, b: _Partial) -> _Partial:
    buckets = np.union1d(a.buckets, b.buckets)
    n = buckets.size
    count = np.zeros(n)
    total = np.zeros(n)
    low = np.full(n, np.inf)
    high = np.full(n, -np.inf)
    last = np.full(n, np.nan)
    last_ts = np.full(n, -1, dtype=np.int64)
    for p in (a, b):
        idx = np.searchsorted(buckets, p.buckets)
        count[idx] += p.count
        total[idx] += p.total
        low[idx] = np.minimum(low[idx], p.low)
        high[idx] = np.maximum(high[idx], p.high)
        newer = p.last_ts > last_ts[idx]
        last[idx[newer]] = p.last[newer]
        last_ts[idx[newer]] = p.last_ts[newer]
    return _Partial(buckets, count, total, low, high, last, last_ts)


class SqliteSeriesStore:
    """Embedded time-series store on one SQLite file in WAL mode.

    Args:
        path: the database file (created with its folder if missing).
        rollup_step_ms: width of the rollup buckets kept after raw data expires.
        read_only: open for reading only (the dashboard).
        fold_samples: fold the head into per-series chunks once it holds this many samples.

    Safe for use from several threads (one writer lock; one reader connection per thread)
    and several processes (SQLite WAL locking).
    """

    def __init__(
        self,
        path: str | Path,
        rollup_step_ms: int = 300_000,
        read_only: bool = False,
        fold_samples: int = 200_000,
    ) -> None:
        self.path = Path(path)
        self.fold_samples = int(fold_samples)
        self._head_cache: dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}
        self._head_pending: int | None = None
        self.rollup_step_ms = int(rollup_step_ms)
        self.read_only = read_only
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise StoreError(f"store {self.path} does not exist")
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._ids: dict[Series, int] = {}
        self._by_id: dict[int, Series] = {}
        self._max_id = 0
        self._closed = False
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        try:
            self._writer = self._connect()
            if not read_only:
                self._writer.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: cannot open: {exc}") from exc
        self._refresh_series()

    # --- connections ---------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False,
                                   isolation_level=None, timeout=10)
        else:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        for pragma in PRAGMAS:
            if self.read_only and "journal_mode" in pragma:
                continue
            conn.execute(pragma)
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"store {self.path} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def close(self) -> None:
        """Close every connection (a checkpoint folds the WAL back into the file)."""
        if self._closed:
            return
        self._closed = True
        with self._conns_lock:
            for conn in self._conns:
                try:
                    conn.close()
                except sqlite3.Error:
                    pass
            self._conns.clear()

    def __enter__(self) -> SqliteSeriesStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- series ----------------------------------------------------------------------------

    def _refresh_series(self) -> None:
        """Learn series created since the last look (also by other processes)."""
        rows = self._reader().execute(
            "SELECT id, name, labels FROM series WHERE id > ? ORDER BY id", (self._max_id,)
        ).fetchall()
        for sid, name, labels in rows:
            series = Series(name, tuple((k, v) for k, v in json.loads(labels)))
            self._ids[series] = sid
            self._by_id[sid] = series
            self._max_id = max(self._max_id, sid)

    def _series_id(self, series: Series, cur: sqlite3.Cursor, created: dict[Series, int]) -> int:
        """The id of ``series``, creating its row inside the caller's transaction if new."""
        sid = self._ids.get(series) or created.get(series)
        if sid is not None:
            return sid
        labels = _labels_text(series)
        cur.execute("INSERT OR IGNORE INTO series (name, labels) VALUES (?, ?)", (series.name, labels))
        row = cur.execute("SELECT id FROM series WHERE name = ? AND labels = ?", (series.name, labels)).fetchone()
        sid = created[series] = int(row[0])
        return sid

    def select(self, matchers: Sequence[Matcher]) -> list[Series]:
        """Every known series that all ``matchers`` match, sorted by their text form."""
        self._refresh_series()
        name = next((m.value for m in matchers if m.label == "__name__" and m.op is MatchOp.EQ), None)
        candidates: Iterable[Series] = self._ids
        if name is not None:
            candidates = [s for s in self._ids if s.name == name]
        found = [s for s in candidates if all(m.matches(s) for m in matchers)]
        return sorted(found, key=lambda s: s.key)

    def series_count(self) -> int:
        self._refresh_series()
        return len(self._ids)

    # --- write -------------------------------------------------------------------------

    def append(self, samples: Sequence[Sample]) -> int:
        """Write a batch of samples in one transaction; returns how many were written.

        Timestamps may arrive out of order or repeat: reads sort them and the later write of
        a timestamp wins.
        """
        if not samples:
            return 0
        if self.read_only:
            raise StoreError(f"store {self.path} is open read-only")
        created: dict[Series, int] = {}
        with self._write_lock:
            conn = self._writer
            try:
                cur = conn.cursor()
                cur.execute("BEGIN IMMEDIATE")
                ids_get = self._ids.get
                sids = np.array(
                    [ids_get(s.series) or self._series_id(s.series, cur, created) for s in samples], dtype="<i8"
                )
                ts = np.array([s.ts_ms for s in samples], dtype="<i8")
                vals = np.array([s.value for s in samples], dtype="<f8")
                cur.execute(
                    "INSERT INTO head (n, sids, ts, vals) VALUES (?, ?, ?, ?)",
                    (len(samples), sids.tobytes(), ts.tobytes(), vals.tobytes()),
                )
                cur.execute("COMMIT")
            except (sqlite3.Error, TypeError, ValueError, OverflowError) as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"store {self.path}: append failed: {exc}") from exc
                raise InputError(f"store append: bad sample value or timestamp: {exc}") from exc
            # only ids of a committed transaction become known
            for series, sid in created.items():
                self._ids[series] = sid
                self._by_id[sid] = series
            if self._head_pending is None:
                row = conn.execute("SELECT coalesce(sum(n), 0) FROM head").fetchone()
                self._head_pending = int(row[0])
            else:
                self._head_pending += len(samples)
            if self._head_pending >= self.fold_samples:
                self._fold_locked()
        return len(samples)

    def fold(self) -> int:
        """Move every head batch into per-series chunks; returns how many samples moved."""
        with self._write_lock:
            return self._fold_locked()

    def _fold_locked(self) -> int:
        conn = self._writer
        try:
            cur = conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            rows = cur.execute("SELECT id, sids, ts, vals FROM head ORDER BY id").fetchall()
            if not rows:
                cur.execute("COMMIT")
                self._head_pending = 0
                return 0
            sid_arr = np.frombuffer(b"".join(r[1] for r in rows), dtype="<i8")
            ts = np.frombuffer(b"".join(r[2] for r in rows), dtype="<i8")
            vals = np.frombuffer(b"".join(r[3] for r in rows), dtype="<f8")
            # group by series, keeping arrival order inside each group (stable sort)
            order = np.argsort(sid_arr, kind="stable")
            sid_arr, ts, vals = sid_arr[order], ts[order], vals[order]
            starts = np.flatnonzero(np.diff(sid_arr, prepend=-1))
            bounds = np.append(starts, sid_arr.size).tolist()
            ts_bytes, val_bytes = ts.tobytes(), vals.tobytes()
            pairs = list(zip(bounds[:-1], bounds[1:], strict=True))
            cur.executemany(
                "INSERT INTO chunks (series_id, start_ms, end_ms, n, ts, vals) VALUES (?, ?, ?, ?, ?, ?)",
                zip(
                    sid_arr[starts].tolist(),
                    np.minimum.reduceat(ts, starts).tolist(),
                    np.maximum.reduceat(ts, starts).tolist(),
                    np.diff(bounds).tolist(),
                    [ts_bytes[8 * i:8 * j] for i, j in pairs],
                    [val_bytes[8 * i:8 * j] for i, j in pairs],
                    strict=True,
                ),
            )
            cur.execute("DELETE FROM head WHERE id <= ?", (rows[-1][0],))
            cur.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"store {self.path}: fold failed: {exc}") from exc
        self._head_pending = 0
        return int(ts.size)

    def _head_for(
        self, sid: int, conn: sqlite3.Connection
    ) -> tuple[list[npt.NDArray[np.int64]], list[npt.NDArray[np.float64]]]:
        """The samples of series ``sid`` still in the head, in arrival order."""
        ids = [r[0] for r in conn.execute("SELECT id FROM head ORDER BY id").fetchall()]
        cache = self._head_cache
        missing = [i for i in ids if i not in cache]
        if missing:
            marks = ",".join("?" * len(missing))
            for hid, sids, ts, vals in conn.execute(
                f"SELECT id, sids, ts, vals FROM head WHERE id IN ({marks})", missing
            ).fetchall():
                cache[hid] = (np.frombuffer(sids, dtype="<i8"), np.frombuffer(ts, dtype="<i8"),
                              np.frombuffer(vals, dtype="<f8"))
        live = set(ids)
        for gone in [i for i in cache if i not in live]:
            del cache[gone]
        out_t: list[npt.NDArray[np.int64]] = []
        out_v: list[npt.NDArray[np.float64]] = []
        for i in ids:
            entry = cache.get(i)
            if entry is None:  # folded between the two queries; the chunks read already hold it
                continue
            mask = entry[0] == sid
            if mask.any():
                out_t.append(entry[1][mask])
                out_v.append(entry[2][mask])
        return out_t, out_v

    # --- read --------------------------------------------------------------------------

    def _id_of(self, series: Series) -> int | None:
        sid = self._ids.get(series)
        if sid is None:
            self._refresh_series()
            sid = self._ids.get(series)
        return sid

    def read(self, series: Series, start_ms: int, end_ms: int) -> SeriesData:
        """Raw samples of ``series`` with ``start_ms <= ts <= end_ms``, in time order."""
        sid = self._id_of(series)
        empty = SeriesData(series, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))
        if sid is None:
            return empty
        conn = self._reader()
        # one read transaction: a fold cannot move samples between the two queries
        conn.execute("BEGIN")
        try:
            rows = conn.execute(
                "SELECT codec, ts, vals FROM chunks WHERE series_id = ? AND end_ms >= ? AND start_ms <= ? "
                "ORDER BY rowid",
                (sid, int(start_ms), int(end_ms)),
            ).fetchall()
            with self._conns_lock:
                head_t, head_v = self._head_for(sid, conn)
        finally:
            conn.execute("COMMIT")
        if not rows and not head_t:
            return empty
        decoded = [_decode(codec, t, v) for codec, t, v in rows]
        ts = np.concatenate([np.frombuffer(b"".join(t for t, _ in decoded), dtype="<i8"), *head_t]).astype(np.int64)
        vals = np.concatenate([np.frombuffer(b"".join(v for _, v in decoded), dtype="<f8"), *head_v]).astype(np.float64)
        ts, vals = _sorted_unique(ts, vals)
        lo = int(np.searchsorted(ts, start_ms, side="left"))
        hi = int(np.searchsorted(ts, end_ms, side="right"))
        return SeriesData(series, ts[lo:hi].copy(), vals[lo:hi].copy())

    def latest(self, series: Series, since_ms: int = 0) -> Sample | None:
        """The newest sample of ``series`` at or after ``since_ms``, if any."""
        sid = self._id_of(series)
        if sid is None:
            return None
        data = self.read(series, since_ms, 2**62)
        if not len(data):
            return None
        return Sample(series, int(data.ts_ms[-1]), float(data.values[-1]))

    def _rollup_partial(self, sid: int, start_ms: int, end_ms: int, step_ms: int) -> _Partial | None:
        if step_ms % self.rollup_step_ms != 0:
            return None
        rows = self._reader().execute(
            "SELECT bucket_ms, count, sum, min, max, last, last_ts FROM rollups "
            "WHERE series_id = ? AND step_ms = ? AND bucket_ms >= ? AND bucket_ms <= ? ORDER BY bucket_ms",
            (sid, self.rollup_step_ms, (start_ms // step_ms) * step_ms, end_ms),
        ).fetchall()
        if not rows:
            return None
        arr = np.array([[r[0], r[1], r[2] if r[2] is not None else 0.0,
                         r[3] if r[3] is not None else np.inf, r[4] if r[4] is not None else -np.inf,
                         r[5] if r[5] is not None else np.nan, r[6]] for r in rows], dtype=np.float64)
        coarse = (arr[:, 0].astype(np.int64) // step_ms) * step_ms
        buckets, start = np.unique(coarse, return_index=True)
        last_idx = np.append(start[1:], len(arr)) - 1  # rows are sorted: the bucket's last row is newest
        return _Partial(
            buckets,
            np.add.reduceat(arr[:, 1], start),
            np.add.reduceat(arr[:, 2], start),
            np.minimum.reduceat(arr[:, 3], start),
            np.maximum.reduceat(arr[:, 4], start),
            arr[last_idx, 5],
            arr[last_idx, 6].astype(np.int64),
        )

    def downsample(
        self, series: Series, start_ms: int, end_ms: int, step_ms: int, agg: Aggregation = "avg"
    ) -> SeriesData:
        """One value per ``step_ms`` bucket (bucket start as timestamp), NaN-ignoring.

        Where raw data has expired, rollups answer (when ``step_ms`` is a multiple of the
        rollup step). Buckets with no finite value give NaN (``count`` gives 0).
        """
        if step_ms <= 0:
            raise InputError(f"downsample step_ms must be > 0, got {step_ms}")
        if agg not in AGGREGATIONS:
            raise InputError(f"aggregation {agg!r}: expected one of {', '.join(AGGREGATIONS)}")
        raw = self.read(series, start_ms, end_ms)
        part = _partial_from_raw(raw.ts_ms, raw.values, step_ms)
        sid = self._id_of(series)
        if sid is not None:
            rolled = self._rollup_partial(sid, start_ms, end_ms, step_ms)
            if rolled is not None:
                part = _merge_partials(rolled, part)
        return _finish(series, part, agg)

    # --- maintenance -----------------------------------------------------------------------

    def compact(self, max_series: int | None = None) -> int:
        """Merge each series' small chunks into compressed chunks of ~4,096 points.

        Returns the number of chunks rewritten. Runs in one transaction per series, so the
        agent's appends interleave with it.
        """
        self.fold()
        rows = self._reader().execute(
            "SELECT series_id FROM chunks WHERE n < ? GROUP BY series_id HAVING count(*) > 8",
            (_SMALL_CHUNK_POINTS,),
        ).fetchall()
        rewritten = 0
        for (sid,) in rows[: max_series or len(rows)]:
            with self._write_lock:
                cur = self._writer.cursor()
                cur.execute("BEGIN IMMEDIATE")
                try:
                    chunk_rows = cur.execute(
                        "SELECT rowid, codec, ts, vals FROM chunks WHERE series_id = ? AND n < ? ORDER BY rowid",
                        (sid, _SMALL_CHUNK_POINTS),
                    ).fetchall()
                    decoded = [_decode(c, t, v) for _, c, t, v in chunk_rows]
                    ts = np.frombuffer(b"".join(t for t, _ in decoded), dtype="<i8")
                    vals = np.frombuffer(b"".join(v for _, v in decoded), dtype="<f8")
                    ts, vals = _sorted_unique(ts, vals)
                    cur.executemany("DELETE FROM chunks WHERE rowid = ?", [(r[0],) for r in chunk_rows])
                    new_rows = []
                    for i in range(0, ts.size, _COMPACT_TARGET_POINTS):
                        t, v = ts[i:i + _COMPACT_TARGET_POINTS], vals[i:i + _COMPACT_TARGET_POINTS]
                        new_rows.append((sid, int(t[0]), int(t[-1]), int(t.size), _CODEC_ZLIB,
                                         zlib.compress(t.astype("<i8").tobytes(), 1),
                                         zlib.compress(v.astype("<f8").tobytes(), 1)))
                    cur.executemany(
                        "INSERT INTO chunks (series_id, start_ms, end_ms, n, codec, ts, vals) VALUES (?,?,?,?,?,?,?)",
                        new_rows,
                    )
                    cur.execute("COMMIT")
                    rewritten += len(chunk_rows)
                except BaseException:
                    self._writer.execute("ROLLBACK")
                    raise
        return rewritten

    def apply_retention(self, now_ms: int, raw_retention_ms: int, rollup_retention_ms: int) -> dict[str, int]:
        """Roll up raw data older than the raw retention, drop it, and drop expired rollups.

        The cut is aligned to the rollup step, so each rollup bucket is built from all of its
        raw points at once. Returns counts of what was rolled up and deleted.
        """
        self.fold()
        step = self.rollup_step_ms
        cutoff = ((now_ms - raw_retention_ms) // step) * step
        stats = {"rolled_up_points": 0, "deleted_chunks": 0, "deleted_rollups": 0}
        sids = [r[0] for r in self._reader().execute(
            "SELECT DISTINCT series_id FROM chunks WHERE start_ms < ?", (cutoff,)).fetchall()]
        for sid in sids:
            with self._write_lock:
                cur = self._writer.cursor()
                cur.execute("BEGIN IMMEDIATE")
                try:
                    chunk_rows = cur.execute(
                        "SELECT rowid, codec, ts, vals FROM chunks WHERE series_id = ? AND start_ms < ?",
                        (sid, cutoff),
                    ).fetchall()
                    decoded = [_decode(c, t, v) for _, c, t, v in chunk_rows]
                    ts = np.frombuffer(b"".join(t for t, _ in decoded), dtype="<i8")
                    vals = np.frombuffer(b"".join(v for _, v in decoded), dtype="<f8")
                    ts, vals = _sorted_unique(ts, vals)
                    old = ts < cutoff
                    part = _partial_from_raw(ts[old], vals[old], step)
                    cur.executemany(
                        "INSERT INTO rollups (series_id, step_ms, bucket_ms, count, sum, min, max, last, last_ts) "
                        "VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (series_id, step_ms, bucket_ms) DO UPDATE SET "
                        "count = count + excluded.count, sum = coalesce(sum, 0) + coalesce(excluded.sum, 0), "
                        "min = min(coalesce(min, excluded.min), coalesce(excluded.min, min)), "
                        "max = max(coalesce(max, excluded.max), coalesce(excluded.max, max)), "
                        "last = CASE WHEN excluded.last_ts > last_ts THEN excluded.last ELSE last END, "
                        "last_ts = max(last_ts, excluded.last_ts)",
                        [
                            (sid, step, int(b), int(c), float(s) if c else None,
                             float(lo) if c else None, float(hi) if c else None,
                             float(la) if np.isfinite(la) else None, int(lt))
                            for b, c, s, lo, hi, la, lt in zip(part.buckets, part.count, part.total, part.low,
                                                               part.high, part.last, part.last_ts, strict=True)
                        ],
                    )
                    cur.executemany("DELETE FROM chunks WHERE rowid = ?", [(r[0],) for r in chunk_rows])
                    keep_t, keep_v = ts[~old], vals[~old]
                    if keep_t.size:
                        cur.execute(
                            "INSERT INTO chunks (series_id, start_ms, end_ms, n, codec, ts, vals) "
                            "VALUES (?,?,?,?,?,?,?)",
                            (sid, int(keep_t[0]), int(keep_t[-1]), int(keep_t.size), _CODEC_RAW,
                             keep_t.astype("<i8").tobytes(), keep_v.astype("<f8").tobytes()),
                        )
                    cur.execute("COMMIT")
                except BaseException:
                    self._writer.execute("ROLLBACK")
                    raise
            stats["rolled_up_points"] += int(old.sum())
            stats["deleted_chunks"] += len(chunk_rows)
        with self._write_lock:
            cur = self._writer.execute(
                "DELETE FROM rollups WHERE bucket_ms < ?", (now_ms - rollup_retention_ms,)
            )
            stats["deleted_rollups"] = cur.rowcount
        return stats

    def size_bytes(self) -> int:
        """Bytes on disk: the database file plus its write-ahead log."""
        total = 0
        for suffix in ("", "-wal"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                total += p.stat().st_size
        return total

    def integrity_ok(self) -> bool:
        row = self._reader().execute("PRAGMA integrity_check").fetchone()
        return bool(row and row[0] == "ok")


def open_store(path: str | Path, rollup_step_ms: int = 300_000, read_only: bool = False) -> SqliteSeriesStore:
    """Open the embedded store at ``path``."""
    return SqliteSeriesStore(path, rollup_step_ms=rollup_step_ms, read_only=read_only)
