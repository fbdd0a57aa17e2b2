"""The store's maintenance: compaction, retention with rollups, incremental vacuum.

:class:`StoreMaintenance` is a mixin of :class:`aiops.store.SqliteSeriesStore`. Every operation
works on ``_BATCH_SERIES`` series per write transaction, decoding and encoding each batch in a
few vectorised passes (:mod:`aiops.storechunks`), so the agent's appends interleave with it and a
store of 100,000 series is maintained in 50 transactions, not 100,000.
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import numpy.typing as npt

from aiops.errors import StoreError
from aiops.storeagg import partial_groups
from aiops.storechunks import CODEC_DOD_XOR, INSERT_CHUNK, decode_rows, encode_rows, last_write_wins

__all__ = ["StoreMaintenance"]

_COMPACT_TARGET_POINTS = 4096  # a few KiB per chunk: one page-run read, cheap to decode
_SMALL_CHUNK_POINTS = 512
_BATCH_SERIES = 2_000  # series per maintenance transaction: appends interleave, few commits


class StoreMaintenance(ABC):
    """Compaction, retention and vacuum over the store's connections (a mixin)."""

    path: Path
    read_only: bool
    rollup_step_ms: int
    _write_lock: threading.Lock
    _writer: sqlite3.Connection

    @abstractmethod
    def _reader(self) -> sqlite3.Connection:
        """A read connection (the store provides it)."""

    @abstractmethod
    def fold(self) -> int:
        """Move the head into chunks (the store provides it)."""

    def _series_batches(self, sql: str, params: tuple[int, ...], max_series: int | None) -> list[list[int]]:
        sids = sorted(r[0] for r in self._reader().execute(sql, params).fetchall())
        sids = sids[: max_series or len(sids)]
        return [sids[i:i + _BATCH_SERIES] for i in range(0, len(sids), _BATCH_SERIES)]

    def compact(self, max_series: int | None = None) -> int:
        """Encode folded (raw) chunks and merge each series' small chunks into chunks of up to 4,096 points.

        A series is rewritten when it has a raw chunk (what a fold writes, or a file of an
        older version) or more than 8 small ones; its raw and small chunks become delta-of-delta
        / XOR chunks, zlib-compressed where that is smaller. Returns the number of chunks
        rewritten. Runs in one transaction per 2,000 series, decoding and encoding each batch in
        a few vectorised passes, so the agent's appends interleave with it.
        """
        self.fold()
        rewritten = 0
        batches = self._series_batches(
            "SELECT series_id FROM chunks WHERE n < ? OR codec < ? GROUP BY series_id "
            "HAVING count(*) > 8 OR min(codec) < ?",
            (_SMALL_CHUNK_POINTS, CODEC_DOD_XOR, CODEC_DOD_XOR), max_series)
        for batch in batches:
            with self._write_lock:
                cur = self._writer.cursor()
                cur.execute("BEGIN IMMEDIATE")
                try:
                    rows, sids, ts, vals = _batch_points(cur, batch, "(n < ? OR codec < ?)",
                                                         (_SMALL_CHUNK_POINTS, CODEC_DOD_XOR))
                    cur.executemany("DELETE FROM chunks WHERE rowid = ?", [(r[0],) for r in rows])
                    cur.executemany(INSERT_CHUNK, encode_rows(sids, ts, vals, _COMPACT_TARGET_POINTS))
                    cur.execute("COMMIT")
                except BaseException:
                    self._writer.execute("ROLLBACK")
                    raise
            rewritten += len(rows)
        return rewritten

    def apply_retention(self, now_ms: int, raw_retention_ms: int, rollup_retention_ms: int) -> dict[str, int]:
        """Roll up raw data older than the raw retention, drop it, and drop expired rollups.

        The cut is aligned to the rollup step, so each rollup bucket is built from all of its
        raw points at once. Runs in one transaction per 2,000 series; :meth:`vacuum` then
        gives the freed pages back. Returns counts of what was rolled up and deleted.
        """
        self.fold()
        step = self.rollup_step_ms
        cutoff = ((now_ms - raw_retention_ms) // step) * step
        stats = {"rolled_up_points": 0, "deleted_chunks": 0, "deleted_rollups": 0}
        batches = self._series_batches("SELECT DISTINCT series_id FROM chunks WHERE start_ms < ?", (cutoff,), None)
        for batch in batches:
            with self._write_lock:
                cur = self._writer.cursor()
                cur.execute("BEGIN IMMEDIATE")
                try:
                    rows, sids, ts, vals = _batch_points(cur, batch, "start_ms < ?", (cutoff,))
                    old = ts < cutoff
                    bucket_sids, part = partial_groups(sids[old], ts[old], vals[old], step)
                    cur.executemany(
                        "INSERT INTO rollups (series_id, step_ms, bucket_ms, count, sum, min, max, last, last_ts) "
                        "VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (series_id, step_ms, bucket_ms) DO UPDATE SET "
                        "count = count + excluded.count, sum = coalesce(sum, 0) + coalesce(excluded.sum, 0), "
                        "min = min(coalesce(min, excluded.min), coalesce(excluded.min, min)), "
                        "max = max(coalesce(max, excluded.max), coalesce(excluded.max, max)), "
                        "last = CASE WHEN excluded.last_ts > last_ts THEN excluded.last ELSE last END, "
                        "last_ts = max(last_ts, excluded.last_ts)",
                        [
                            (sid, step, b, int(c), s if c else None, lo if c else None, hi if c else None,
                             la if la == la and abs(la) != float("inf") else None, lt)
                            for sid, b, c, s, lo, hi, la, lt in zip(
                                bucket_sids.tolist(), part.buckets.tolist(), part.count.tolist(),
                                part.total.tolist(), part.low.tolist(), part.high.tolist(), part.last.tolist(),
                                part.last_ts.tolist(), strict=True)
                        ],
                    )
                    cur.executemany("DELETE FROM chunks WHERE rowid = ?", [(r[0],) for r in rows])
                    cur.executemany(INSERT_CHUNK, encode_rows(sids[~old], ts[~old], vals[~old],
                                                               _COMPACT_TARGET_POINTS))
                    cur.execute("COMMIT")
                except BaseException:
                    self._writer.execute("ROLLBACK")
                    raise
            stats["rolled_up_points"] += int(old.sum())
            stats["deleted_chunks"] += len(rows)
        with self._write_lock:
            cur = self._writer.execute(
                "DELETE FROM rollups WHERE bucket_ms < ?", (now_ms - rollup_retention_ms,)
            )
            stats["deleted_rollups"] = cur.rowcount
        return stats

    def vacuum(self, step_pages: int = 4096, full: bool = False, truncate_wal: bool = True) -> int:
        """Give free pages back to the file system; returns how many pages the file lost
        (a conversion may add a few: incremental vacuum keeps pointer-map pages).

        Files created by this version use ``auto_vacuum=INCREMENTAL``: this runs
        ``PRAGMA incremental_vacuum`` in transactions of ``step_pages`` pages (the write lock
        is released between them, so appends interleave) and then checkpoints the WAL
        (``truncate_wal``: also shrink it to zero bytes, waiting for readers). Older files have
        no incremental vacuum; ``full=True`` converts one with a full ``VACUUM`` (rewrites the
        whole file and blocks writers meanwhile; run it while the agent is stopped).
        """
        if self.read_only:
            raise StoreError(f"store {self.path} is open read-only")
        conn = self._writer
        try:
            with self._write_lock:
                before = int(conn.execute("PRAGMA page_count").fetchone()[0])
                incremental = int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) == 2
                if full:
                    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
                    conn.execute("VACUUM")
            while incremental and not full:
                with self._write_lock:
                    if int(conn.execute("PRAGMA freelist_count").fetchone()[0]) == 0:
                        break
                    conn.execute(f"PRAGMA incremental_vacuum({max(1, int(step_pages))})").fetchall()
            with self._write_lock:
                mode = "TRUNCATE" if truncate_wal else "PASSIVE"
                conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
                after = int(conn.execute("PRAGMA page_count").fetchone()[0])
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.path}: vacuum failed: {exc}") from exc
        return before - after


def _batch_points(cur: sqlite3.Cursor, batch: list[int], where: str, params: tuple[int, ...]) -> tuple[
    list[tuple[int, ...]], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]
]:
    """The chunk rows of the series in ``batch`` that match ``where``, and their points (series id,
    time, value) sorted by series then time, the last write of a repeated time winning."""
    wanted = set(batch)
    rows = [r for r in cur.execute(
        "SELECT rowid, series_id, codec, ts, vals, n, start_ms FROM chunks "
        f"WHERE series_id BETWEEN ? AND ? AND {where} ORDER BY series_id, rowid",  # nosec B608 - fixed fragments
        (batch[0], batch[-1], *params)).fetchall() if r[1] in wanted]
    ts, vals, bounds = decode_rows([r[2:] for r in rows])
    sids = np.repeat(np.array([r[1] for r in rows], dtype=np.int64), np.diff(bounds))
    sids, ts, vals = last_write_wins(sids, ts, vals)
    return rows, sids, ts, vals
