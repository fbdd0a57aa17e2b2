"""Chunk rows of the store: encoding many series' points into rows and decoding rows back.

Every function here works on many series at once (points sorted or grouped by series id),
so folding the head, compacting and applying retention cost a few numpy passes per batch
instead of a Python loop per series. Codecs, by the row's ``codec`` column:

* ``0`` raw little-endian int64 timestamps and float64 values: what a fold writes (the cheapest
  encoding, so appends stay fast) until compaction re-encodes it, and files from before codec 2;
* ``1`` the same, zlib-compressed (compaction before codec 2);
* ``2`` :mod:`aiops.chunkcodec` (delta-of-delta timestamps, byte-trimmed XOR values) in
  ``vals``, ``ts`` empty;
* ``3`` codec 2, zlib-compressed, when that is smaller (long chunks of noisy gauges).

Examples:
    >>> import numpy as np
    >>> sids = np.array([7, 7, 9]); ts = np.array([1000, 2000, 1000]); vals = np.array([1.0, 2.0, 3.0])
    >>> rows = encode_rows(sids, ts, vals)
    >>> [(r[0], r[1], r[2], r[3]) for r in rows]
    [(7, 1000, 2000, 2), (9, 1000, 1000, 1)]
    >>> t, v, bounds = decode_rows([(r[4], r[5], r[6], r[3], r[1]) for r in rows])
    >>> t.tolist(), v.tolist(), bounds.tolist()
    ([1000, 2000, 1000], [1.0, 2.0, 3.0], [0, 2, 3])
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from aiops.chunkcodec import decode_many, encode_groups

__all__ = ["CODEC_DOD_XOR", "CODEC_DOD_XOR_ZLIB", "CODEC_RAW", "CODEC_ZLIB", "INSERT_CHUNK", "ChunkRow",
           "decode_rows", "encode_raw_rows", "encode_rows", "last_write_wins"]

CODEC_RAW = 0
CODEC_ZLIB = 1
CODEC_DOD_XOR = 2
CODEC_DOD_XOR_ZLIB = 3

_ZLIB_MIN_POINTS = 64  # below this zlib's own overhead (~10 bytes) eats what it saves
_ENCODE_SLICE_POINTS = 262_144  # bounds the temporaries of one encode pass (~20 MiB)

# (series_id, start_ms, end_ms, n, codec, ts, vals): the insert order of the chunks table
ChunkRow = tuple[int, int, int, int, int, bytes, bytes]
INSERT_CHUNK = "INSERT INTO chunks (series_id, start_ms, end_ms, n, codec, ts, vals) VALUES (?, ?, ?, ?, ?, ?, ?)"


def encode_rows(
    sids: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    vals: npt.NDArray[np.float64],
    max_points: int = 0,
) -> list[ChunkRow]:
    """Chunk rows for points grouped by series id (each series' points contiguous).

    Args:
        sids: series id of every point; equal ids must be adjacent.
        ts: timestamps (UTC ms), parallel; need not be sorted inside a series.
        vals: values, parallel.
        max_points: split a series' run into chunks of at most this many points (0: no limit).
    """
    n = int(sids.size)
    if n == 0:
        return []
    starts = np.flatnonzero(np.diff(sids, prepend=sids[0] - 1))
    if max_points > 0:
        lengths = np.diff(np.append(starts, n))
        extra = [np.arange(s + max_points, s + length, max_points) for s, length in
                 zip(starts.tolist(), lengths.tolist(), strict=True) if length > max_points]
        if extra:
            starts = np.sort(np.concatenate([starts, *extra]))
    bounds = np.append(starts, n).astype(np.int64)
    start_ms = np.minimum.reduceat(ts, starts)
    end_ms = np.maximum.reduceat(ts, starts)
    counts = np.diff(bounds)
    blobs: list[bytes] = []
    # encode in slices of whole groups so that temporaries stay small at 100,000 series
    g = 0
    groups = int(starts.size)
    while g < groups:
        limit = int(bounds[g]) + _ENCODE_SLICE_POINTS
        h = max(g + 1, int(np.searchsorted(bounds, limit, side="right")) - 1)
        h = min(h, groups)
        lo, hi = int(bounds[g]), int(bounds[h])
        blobs.extend(encode_groups(ts[lo:hi], vals[lo:hi], bounds[g:h + 1] - lo, start_ms[g:h]))
        g = h
    codecs = [CODEC_DOD_XOR] * groups
    for i in np.flatnonzero(counts >= _ZLIB_MIN_POINTS).tolist():
        packed = zlib.compress(blobs[i], 6)
        if len(packed) < len(blobs[i]):
            blobs[i] = packed
            codecs[i] = CODEC_DOD_XOR_ZLIB
    return list(zip(sids[starts].tolist(), start_ms.tolist(), end_ms.tolist(), counts.tolist(), codecs,
                    [b""] * groups, blobs, strict=True))


def encode_raw_rows(
    sids: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    vals: npt.NDArray[np.float64],
) -> list[ChunkRow]:
    """Codec-0 chunk rows (raw arrays) for points grouped by series id: the fold's encoding.

    Costs a slice per series and no compression; :meth:`~aiops.storemaint.StoreMaintenance.compact`
    re-encodes these rows with :func:`encode_rows` later, off the append path.
    """
    n = int(sids.size)
    if n == 0:
        return []
    starts = np.flatnonzero(np.diff(sids, prepend=sids[0] - 1))
    bounds = np.append(starts, n).tolist()
    start_ms = np.minimum.reduceat(ts, starts).tolist()
    end_ms = np.maximum.reduceat(ts, starts).tolist()
    ts_bytes, val_bytes = ts.astype("<i8").tobytes(), vals.astype("<f8").tobytes()
    return [(sid, lo_ms, hi_ms, hi - lo, CODEC_RAW, ts_bytes[8 * lo:8 * hi], val_bytes[8 * lo:8 * hi])
            for sid, lo_ms, hi_ms, lo, hi in zip(sids[starts].tolist(), start_ms, end_ms, bounds[:-1], bounds[1:],
                                                 strict=True)]


def decode_rows(
    rows: Sequence[tuple[int, bytes, bytes, int, int]],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Points of chunk rows ``(codec, ts, vals, n, start_ms)``, back to back in row order.

    Returns:
        ``(ts, values, bounds)``: row ``r``'s points are ``[bounds[r]:bounds[r + 1]]``.
    """
    new_rows = [i for i, r in enumerate(rows) if r[0] >= CODEC_DOD_XOR]
    pieces_t: list[npt.NDArray[np.int64]] = [np.zeros(0, dtype=np.int64)] * len(rows)
    pieces_v: list[npt.NDArray[np.float64]] = [np.zeros(0, dtype=np.float64)] * len(rows)
    if new_rows:
        blobs = [zlib.decompress(rows[i][2]) if rows[i][0] == CODEC_DOD_XOR_ZLIB else rows[i][2] for i in new_rows]
        t, v, b = decode_many(blobs, [rows[i][3] for i in new_rows], [rows[i][4] for i in new_rows])
        if len(new_rows) == len(rows):
            return t, v, b
        edges = b.tolist()
        for k, i in enumerate(new_rows):
            pieces_t[i], pieces_v[i] = t[edges[k]:edges[k + 1]], v[edges[k]:edges[k + 1]]
    raw = [i for i, r in enumerate(rows) if r[0] == CODEC_RAW]
    if len(raw) > 1:  # one pass for all raw rows (a compaction reads thousands of folded chunks)
        t = np.frombuffer(b"".join(rows[i][1] for i in raw), dtype="<i8").astype(np.int64)
        v = np.frombuffer(b"".join(rows[i][2] for i in raw), dtype="<f8").astype(np.float64)
        edges = np.cumsum([0] + [len(rows[i][1]) // 8 for i in raw]).tolist()
        for k, i in enumerate(raw):
            pieces_t[i], pieces_v[i] = t[edges[k]:edges[k + 1]], v[edges[k]:edges[k + 1]]
        raw_done = set(raw)
    else:
        raw_done = set()
    for i, (codec, ts_blob, vals_blob, _, _) in enumerate(rows):
        if codec < CODEC_DOD_XOR and i not in raw_done:
            if codec == CODEC_ZLIB:
                ts_blob, vals_blob = zlib.decompress(ts_blob), zlib.decompress(vals_blob)
            pieces_t[i] = np.frombuffer(ts_blob, dtype="<i8").astype(np.int64)
            pieces_v[i] = np.frombuffer(vals_blob, dtype="<f8").astype(np.float64)
    bounds = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([p.size for p in pieces_t], out=bounds[1:])
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64), bounds
    return np.concatenate(pieces_t), np.concatenate(pieces_v), bounds


def last_write_wins(
    sids: npt.NDArray[np.int64], ts: npt.NDArray[np.int64], vals: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Sort points by series then time; of equal (series, time) the one given last wins."""
    if sids.size == 0:
        return sids, ts, vals
    order = np.lexsort((ts, sids))  # stable: equal keys keep their arrival order
    sids, ts, vals = sids[order], ts[order], vals[order]
    keep = np.ones(ts.size, dtype=bool)
    keep[:-1] = (ts[1:] != ts[:-1]) | (sids[1:] != sids[:-1])
    return sids[keep], ts[keep], vals[keep]
