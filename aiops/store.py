"""The time-series store: a small interface and its embedded SQLite (WAL) implementation.

Like Prometheus' head block and WAL, an appended batch first lands as **one row** of the
``head`` table: the batch's series ids, timestamps (int64) and values (float64) as packed
little-endian arrays. One row per batch, appended at the end of the file, is why the store
ingests faster than a bare ``(series_id, ts, value)`` table, and why NaN and ±Inf survive
(SQLite turns a REAL NaN into NULL; a packed float64 keeps it bit for bit). A scrape arrives as
:class:`~aiops.columns.SampleColumns` and goes in as its arrays; its series ids come from a
cache keyed by the scrape's series tuple, so the cost per sample stays flat as series grow.

Once the head holds enough samples it is *folded* into per-series ``chunks`` in one
transaction: this is the only write that touches the per-series index. The threshold adapts to
the number of series (``fold_points`` per series, between ``fold_samples`` and
``fold_max_samples``), so a chunk holds enough points to compress well whether the store has
100 series or 100,000. A fold writes each series' points as raw arrays (codec 0: a slice per
series, no compression, so appends stay cheap); compaction, off the append path, re-encodes them
with :mod:`aiops.chunkcodec` (delta-of-delta timestamps, XOR values, zlib where smaller; see
:mod:`aiops.storechunks` for the codecs), as Prometheus compacts its head into blocks. Reads look
at the chunks and at the head, so data is visible as soon as ``append`` returns.

Every append and every fold is one transaction, so a crash in the middle of a write loses at
most that batch and never corrupts the file (SQLite's WAL guarantees atomic commits).
Maintenance, in transactions of many series each, merges small chunks into chunks of up to
4,096 points, rolls old raw data up into per-step count/sum/min/max/last rows, drops the raw
data past its retention, and gives freed pages back to the file system (files created by this
version use ``auto_vacuum=INCREMENTAL``; older files keep working and can be converted with
:meth:`SqliteSeriesStore.vacuum`). New series are written as zlib-compressed blocks of many
series (``series_blocks``), a few bytes per series instead of a row plus a unique index entry;
the ``series`` table of older files is still read.

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
from itertools import repeat
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from aiops.columns import SampleColumns
from aiops.errors import InputError, StoreError
from aiops.model import Matcher, MatchOp, Sample, Series
from aiops.storeagg import AGGREGATIONS, Partial, SeriesData, finish, merge_partials, partial_from_raw
from aiops.storechunks import INSERT_CHUNK, decode_rows, encode_raw_rows
from aiops.storemaint import StoreMaintenance

__all__ = [
    "SeriesData",
    "SeriesStore",
    "SqliteSeriesStore",
    "Aggregation",
    "AGGREGATIONS",
    "open_store",
]

Aggregation = Literal["avg", "min", "max", "last", "sum", "count"]

_ID_CACHE_SIZE = 256  # scrape series tuples whose ids are cached (one per target is enough)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    labels TEXT NOT NULL,
    UNIQUE (name, labels)
);
CREATE TABLE IF NOT EXISTS series_blocks (
    first_id INTEGER PRIMARY KEY,
    last_id INTEGER NOT NULL,
    data BLOB NOT NULL
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
# a fold of 100,000 series writes tens of MiB to the WAL; past a checkpoint it shrinks back
_WAL_LIMIT = "PRAGMA journal_size_limit=16777216"

class SeriesStore(Protocol):
    """What the platform needs of a time-series store; a Prometheus-backed reader offers the read half."""

    def append(self, samples: Sequence[Sample]) -> int: ...

    def select(self, matchers: Sequence[Matcher]) -> list[Series]: ...

    def read(self, series: Series, start_ms: int, end_ms: int) -> SeriesData: ...

    def downsample(
        self, series: Series, start_ms: int, end_ms: int, step_ms: int, agg: Aggregation = "avg"
    ) -> SeriesData: ...

    def close(self) -> None: ...


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


def _series_of(name: str, labels: list[list[str]]) -> Series:
    return Series(name, tuple((k, v) for k, v in labels))


class SqliteSeriesStore(StoreMaintenance):
    """Embedded time-series store on one SQLite file in WAL mode.

    Args:
        path: the database file (created with its folder if missing).
        rollup_step_ms: width of the rollup buckets kept after raw data expires.
        read_only: open for reading only (the dashboard).
        fold_samples: fold the head into per-series chunks once it holds this many samples;
            None (the default) adapts it to the number of series (see ``fold_points``).
        fold_points: with adaptive folding, the points per series a fold aims at (a chunk of
            120 points, Prometheus' chunk size, compresses to about a third of one of 2).
        fold_min_samples: with adaptive folding, never fold fewer samples than this.
        fold_max_samples: with adaptive folding, never let the head grow past this (it bounds
            the fold's memory: about 60 bytes per sample while it runs).

    Safe for use from several threads (one writer lock; one reader connection per thread)
    and several processes (SQLite WAL locking).
    """

    def __init__(
        self,
        path: str | Path,
        rollup_step_ms: int = 300_000,
        read_only: bool = False,
        fold_samples: int | None = None,
        *,
        fold_points: int = 120,
        fold_min_samples: int = 200_000,
        fold_max_samples: int = 2_000_000,
    ) -> None:
        self.path = Path(path)
        self.fold_samples = None if fold_samples is None else int(fold_samples)
        self.fold_points = int(fold_points)
        self.fold_min_samples = int(fold_min_samples)
        self.fold_max_samples = int(fold_max_samples)
        self._head_cache: dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}
        self._head_pending: int | None = None
        self.rollup_step_ms = int(rollup_step_ms)
        self.read_only = read_only
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise StoreError(f"store {self.path} does not exist (the agent creates it: run 'aiops run', "
                             "or point store.path / --config at an existing store)")
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._ids: dict[Series, int] = {}
        self._by_id: dict[int, Series] = {}
        self._max_id = 0
        self._catalog_lock = threading.Lock()
        self._id_cache: dict[int, tuple[tuple[Series, ...], npt.NDArray[np.int64]]] = {}
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

    @property
    def fold_threshold(self) -> int:
        """Samples in the head that trigger a fold, now."""
        if self.fold_samples is not None:
            return self.fold_samples
        wanted = len(self._ids) * self.fold_points
        return max(self.fold_min_samples, min(self.fold_max_samples, wanted))

    # --- connections ---------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False,
                                   isolation_level=None, timeout=10)
        else:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
                # only an empty file takes this without a full VACUUM, and only before WAL mode
                # writes the header; older files keep auto_vacuum=NONE
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        for pragma in PRAGMAS:
            if self.read_only and "journal_mode" in pragma:
                continue
            conn.execute(pragma)
        if not self.read_only:
            conn.execute(_WAL_LIMIT)
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

    def _refresh_series(self, conn: sqlite3.Connection | None = None) -> None:
        """Learn series created since the last look (also by other processes)."""
        conn = conn or self._reader()
        with self._catalog_lock:
            since = self._max_id
            rows = conn.execute(
                "SELECT id, name, labels FROM series WHERE id > ? ORDER BY id", (since,)
            ).fetchall()
            blocks = conn.execute(
                "SELECT first_id, data FROM series_blocks WHERE last_id > ? ORDER BY first_id", (since,)
            ).fetchall()
            found = [(sid, _series_of(name, json.loads(labels))) for sid, name, labels in rows]
            for first_id, data in blocks:
                items = json.loads(zlib.decompress(data))
                found.extend((first_id + i, _series_of(name, labels)) for i, (name, labels) in enumerate(items))
            for sid, series in found:
                if sid > since:
                    self._ids[series] = sid
                    self._by_id[sid] = series
                    self._max_id = max(self._max_id, sid)

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

        ``samples`` may be a plain sequence of :class:`Sample` or a
        :class:`~aiops.columns.SampleColumns` (the cheap path). Timestamps may arrive out of
        order or repeat: reads sort them and the later write of a timestamp wins.
        """
        return self.append_batches([samples])

    def append_batches(self, batches: Sequence[Sequence[Sample]]) -> int:
        """Write several batches (for example one per scrape) in one transaction."""
        batches = [b for b in batches if len(b)]
        if not batches:
            return 0
        if self.read_only:
            raise StoreError(f"store {self.path} is open read-only")
        with self._write_lock:
            conn = self._writer
            created: dict[Series, int] = {}
            cache_after: list[tuple[tuple[Series, ...], npt.NDArray[np.int64]]] = []
            try:
                cur = conn.cursor()
                cur.execute("BEGIN IMMEDIATE")
                sid_parts: list[npt.NDArray[np.int64]] = []
                ts_parts: list[npt.NDArray[np.int64]] = []
                val_parts: list[npt.NDArray[np.float64]] = []
                for batch in batches:
                    if isinstance(batch, SampleColumns):
                        hit = self._id_cache.get(id(batch.series))
                        if hit is not None and hit[0] is batch.series:
                            sids = hit[1]
                        else:
                            sids = self._resolve(batch.series, conn, created)
                            cache_after.append((batch.series, sids))
                        ts = np.asarray(batch.ts_ms, dtype="<i8")
                        vals = np.asarray(batch.values, dtype="<f8")
                    else:
                        sids = self._resolve([s.series for s in batch], conn, created)
                        ts = np.array([s.ts_ms for s in batch], dtype="<i8")
                        vals = np.array([s.value for s in batch], dtype="<f8")
                    sid_parts.append(sids)
                    ts_parts.append(ts)
                    val_parts.append(vals)
                sid_arr = np.concatenate(sid_parts).astype("<i8")
                if created:
                    ordered = sorted(created.items(), key=lambda kv: kv[1])
                    data = zlib.compress(json.dumps([[s.name, s.labels] for s, _ in ordered],
                                                    separators=(",", ":")).encode(), 6)
                    cur.execute("INSERT INTO series_blocks (first_id, last_id, data) VALUES (?, ?, ?)",
                                (ordered[0][1], ordered[-1][1], data))
                cur.execute(
                    "INSERT INTO head (n, sids, ts, vals) VALUES (?, ?, ?, ?)",
                    (int(sid_arr.size), sid_arr.tobytes(), np.concatenate(ts_parts).astype("<i8").tobytes(),
                     np.concatenate(val_parts).astype("<f8").tobytes()),
                )
                cur.execute("COMMIT")
            except (sqlite3.Error, TypeError, ValueError, OverflowError) as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"store {self.path}: append failed: {exc}") from exc
                raise InputError(f"store append: bad sample value or timestamp: {exc}") from exc
            # only ids of a committed transaction become known
            with self._catalog_lock:
                for series, sid in created.items():
                    self._ids[series] = sid
                    self._by_id[sid] = series
                    self._max_id = max(self._max_id, sid)
            for series_t, sids in cache_after:
                if len(self._id_cache) >= _ID_CACHE_SIZE:
                    self._id_cache.pop(next(iter(self._id_cache)))
                self._id_cache[id(series_t)] = (series_t, sids)
            total = int(sid_arr.size)
            if self._head_pending is None:
                row = conn.execute("SELECT coalesce(sum(n), 0) FROM head").fetchone()
                self._head_pending = int(row[0])
            else:
                self._head_pending += total
            if self._head_pending >= self.fold_threshold:
                self._fold_locked()
        return total

    def _resolve(self, series: Sequence[Series], conn: sqlite3.Connection,
                 created: dict[Series, int]) -> npt.NDArray[np.int64]:
        """Ids of ``series``; unknown ones get new ids inside the caller's write transaction."""
        # one C-level pass over the known ids (0: not known yet); the few others are numbered below
        out = np.array(list(map(self._ids.get, series, repeat(0, len(series)))), dtype=np.int64)
        missing = np.flatnonzero(out == 0)
        if missing.size:
            # we hold the write lock: learn what other processes created, then number the rest
            self._refresh_series(conn)
            next_id = max(self._max_id, max(created.values(), default=0)) + 1
            for i in missing.tolist():
                s = series[i]
                if not isinstance(s, Series):
                    raise TypeError(f"sample {i}: series must be a Series, got {type(s).__name__}")
                sid = self._ids.get(s) or created.get(s)
                if sid is None:
                    sid = created[s] = next_id
                    next_id += 1
                out[i] = sid
        return out

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
            last_id = rows[-1][0]
            del rows
            # group by series, keeping arrival order inside each group (stable sort)
            order = np.argsort(sid_arr, kind="stable")
            moved = int(ts.size)
            # raw arrays: cheap here, re-encoded (delta-of-delta, XOR, zlib) by compaction off this path
            cur.executemany(INSERT_CHUNK, encode_raw_rows(sid_arr[order], ts[order], vals[order]))
            cur.execute("DELETE FROM head WHERE id <= ?", (last_id,))
            cur.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"store {self.path}: fold failed: {exc}") from exc
        self._head_pending = 0
        return moved

    # --- read --------------------------------------------------------------------------

    def _head_entries(
        self, conn: sqlite3.Connection
    ) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
        """Every batch still in the head, ``(series ids, timestamps, values)``, in arrival order.

        The caller holds ``_conns_lock`` (the decoded batches are cached across reads).
        """
        ids = [r[0] for r in conn.execute("SELECT id FROM head ORDER BY id").fetchall()]
        cache = self._head_cache
        missing = [i for i in ids if i not in cache]
        if missing:
            marks = ",".join("?" * len(missing))
            for hid, sids, ts, vals in conn.execute(
                f"SELECT id, sids, ts, vals FROM head WHERE id IN ({marks})", missing  # nosec B608 - only '?' placeholders are formatted in
            ).fetchall():
                cache[hid] = (np.frombuffer(sids, dtype="<i8"), np.frombuffer(ts, dtype="<i8"),
                              np.frombuffer(vals, dtype="<f8"))
        live = set(ids)
        for gone in [i for i in cache if i not in live]:
            del cache[gone]
        # a batch folded between the two queries is missing: the chunks read already hold it
        return [cache[i] for i in ids if i in cache]

    def _head_for(
        self, sid: int, conn: sqlite3.Connection
    ) -> tuple[list[npt.NDArray[np.int64]], list[npt.NDArray[np.float64]]]:
        """The samples of series ``sid`` still in the head, in arrival order."""
        out_t: list[npt.NDArray[np.int64]] = []
        out_v: list[npt.NDArray[np.float64]] = []
        for sids, ts, vals in self._head_entries(conn):
            mask = sids == sid
            if mask.any():
                out_t.append(ts[mask])
                out_v.append(vals[mask])
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
                "SELECT codec, ts, vals, n, start_ms FROM chunks WHERE series_id = ? AND end_ms >= ? "
                "AND start_ms <= ? ORDER BY rowid",
                (sid, int(start_ms), int(end_ms)),
            ).fetchall()
            with self._conns_lock:
                head_t, head_v = self._head_for(sid, conn)
        finally:
            conn.execute("COMMIT")
        if not rows and not head_t:
            return empty
        chunk_t, chunk_v, _ = decode_rows(rows)
        ts = np.concatenate([chunk_t, *head_t]).astype(np.int64)
        vals = np.concatenate([chunk_v, *head_v]).astype(np.float64)
        ts, vals = _sorted_unique(ts, vals)
        lo = int(np.searchsorted(ts, start_ms, side="left"))
        hi = int(np.searchsorted(ts, end_ms, side="right"))
        return SeriesData(series, ts[lo:hi].copy(), vals[lo:hi].copy())

    def read_many(self, series: Sequence[Series], start_ms: int, end_ms: int) -> dict[Series, SeriesData]:
        """:meth:`read` of every series of ``series`` over one time range, in one read transaction.

        The same samples as one :meth:`read` each, for a fraction of the cost: the chunks come in
        one query per 500 series and the head is scanned once, not once per series (a restore of
        thousands of detectors reads them all at once: ``detectors/live.py``). Unknown series map
        to empty data.
        """
        empty_t, empty_v = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
        out = {s: SeriesData(s, empty_t, empty_v) for s in series}
        if any(s not in self._ids for s in out):
            self._refresh_series()  # once: series another process created since
        sids = {sid: s for s in out if (sid := self._ids.get(s)) is not None}
        if not sids:
            return out
        wanted = sorted(sids)
        lo, hi = int(start_ms), int(end_ms)
        conn = self._reader()
        rows: list[tuple[int, int, bytes, bytes, int, int]] = []
        conn.execute("BEGIN")  # one read transaction: a fold cannot move samples between the queries
        try:
            for i in range(0, len(wanted), 500):
                part = wanted[i:i + 500]
                marks = ",".join("?" * len(part))
                rows += conn.execute(
                    f"SELECT series_id, codec, ts, vals, n, start_ms FROM chunks WHERE series_id IN ({marks}) "  # nosec B608 - only '?' placeholders are formatted in
                    "AND end_ms >= ? AND start_ms <= ? ORDER BY rowid",
                    (*part, lo, hi),
                ).fetchall()
            with self._conns_lock:
                head = self._head_entries(conn)
        finally:
            conn.execute("COMMIT")
        parts_t: dict[int, list[npt.NDArray[np.int64]]] = {}
        parts_v: dict[int, list[npt.NDArray[np.float64]]] = {}
        if rows:
            rows.sort(key=lambda r: r[0])  # stable: each series' chunks stay in rowid (write) order
            chunk_t, chunk_v, bounds = decode_rows([r[1:] for r in rows])
            edges = bounds.tolist()
            for k, row in enumerate(rows):
                parts_t.setdefault(row[0], []).append(chunk_t[edges[k]:edges[k + 1]])
                parts_v.setdefault(row[0], []).append(chunk_v[edges[k]:edges[k + 1]])
        if head:
            h_sid = np.concatenate([e[0] for e in head])
            h_ts = np.concatenate([e[1] for e in head])
            h_val = np.concatenate([e[2] for e in head])
            keep = np.flatnonzero(np.isin(h_sid, np.asarray(wanted, dtype=np.int64)) & (h_ts >= lo) & (h_ts <= hi))
            if keep.size:
                keep = keep[np.argsort(h_sid[keep], kind="stable")]  # by series, arrival order inside
                k_sid = h_sid[keep]
                cuts = np.flatnonzero(k_sid[1:] != k_sid[:-1]) + 1
                for idx in np.split(keep, cuts):
                    sid = int(h_sid[idx[0]])
                    parts_t.setdefault(sid, []).append(h_ts[idx])
                    parts_v.setdefault(sid, []).append(h_val[idx])
        for sid, pieces in parts_t.items():
            ts = np.concatenate(pieces).astype(np.int64)
            vals = np.concatenate(parts_v[sid]).astype(np.float64)
            ts, vals = _sorted_unique(ts, vals)
            a = int(np.searchsorted(ts, lo, side="left"))
            b = int(np.searchsorted(ts, hi, side="right"))
            out[sids[sid]] = SeriesData(sids[sid], ts[a:b].copy(), vals[a:b].copy())
        return out

    def latest(self, series: Series, since_ms: int = 0) -> Sample | None:
        """The newest sample of ``series`` at or after ``since_ms``, if any."""
        sid = self._id_of(series)
        if sid is None:
            return None
        data = self.read(series, since_ms, 2**62)
        if not len(data):
            return None
        return Sample(series, int(data.ts_ms[-1]), float(data.values[-1]))

    def _rollup_partial(self, sid: int, start_ms: int, end_ms: int, step_ms: int) -> Partial | None:
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
        return Partial(
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
        part = partial_from_raw(raw.ts_ms, raw.values, step_ms)
        sid = self._id_of(series)
        if sid is not None:
            rolled = self._rollup_partial(sid, start_ms, end_ms, step_ms)
            if rolled is not None:
                part = merge_partials(rolled, part)
        return finish(series, part, agg)

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
