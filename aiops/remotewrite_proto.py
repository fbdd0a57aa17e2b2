"""Prometheus remote-write 1.0 wire format: a protobuf ``WriteRequest``, snappy block-compressed.

The messages (``prompb/remote.proto`` and ``types.proto`` of Prometheus) are small enough to
encode by hand, which keeps protobuf's runtime and generated code out of the kernel::

    message WriteRequest { repeated TimeSeries timeseries = 1; }
    message TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
    message Label        { string name = 1; string value = 2; }
    message Sample       { double value = 1; int64 timestamp = 2; }

Labels are sorted by name with ``__name__`` among them, as the specification requires. Values
are packed bit for bit (``<d``), so NaN, ±Inf and Prometheus' staleness marker survive.

Examples:
    >>> from aiops.model import Series
    >>> body = encode_write_request({Series.of("up", job="a"): [(1000, 1.0)]})
    >>> decode_write_request(body)
    [('up', (('job', 'a'),), [(1000, 1.0)])]
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

import cramjam

from aiops.model import Labels, Series

__all__ = ["encode_write_request", "decode_write_request", "compress", "decompress", "encode_labels"]

_DOUBLE = struct.Struct("<d")


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64 on the wire: two's complement in 10 bytes
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(tag << 3 | 2) + _varint(len(payload)) + payload


def encode_labels(series: Series, extra: Labels = ()) -> bytes:
    """The ``labels`` fields of one TimeSeries: ``__name__`` plus the series' labels plus ``extra``, sorted.

    A series' own label wins over an ``extra`` (external) label of the same name, as in Prometheus.
    """
    merged = dict(extra)
    merged.update(series.labels)
    merged["__name__"] = series.name
    parts = []
    for name in sorted(merged):
        key, value = name.encode(), merged[name].encode()
        pair = b"\x0a" + _varint(len(key)) + key + b"\x12" + _varint(len(value)) + value
        parts.append(b"\x0a" + _varint(len(pair)) + pair)  # TimeSeries.labels: field 1
    return b"".join(parts)


def encode_write_request(batch: Mapping[Series, Iterable[tuple[int, float]]], extra: Labels = (),
                         label_cache: dict[Series, bytes] | None = None) -> bytes:
    """The uncompressed protobuf WriteRequest of ``batch`` (series -> (ts_ms, value) in time order).

    Args:
        batch: samples per series; each series' samples must be in time order.
        extra: external labels added to every series (``node``, ``cluster``).
        label_cache: encoded labels per series, kept by the caller between batches: the same
            series come back every collection, and their labels are most of the encoding work.
    """
    pack = _DOUBLE.pack
    stamps: dict[int, bytes] = {}  # one collection stamps many series with the same ts_ms
    parts: list[bytes] = []
    for series, points in batch.items():
        labels = label_cache.get(series) if label_cache is not None else None
        if labels is None:
            labels = encode_labels(series, extra)
            if label_cache is not None:
                label_cache[series] = labels
        chunks = [labels]
        for ts_ms, value in points:
            stamp = stamps.get(ts_ms)
            if stamp is None:
                stamp = stamps[ts_ms] = b"\x10" + _varint(ts_ms)  # Sample.timestamp: field 2, varint
            # Sample.value: field 1, fixed64 (tag 0x09); the Sample is TimeSeries field 2 (tag 0x12),
            # at most 1 + 8 + 1 + 10 = 20 bytes, so its length is one varint byte
            sample = b"\x09" + pack(value) + stamp
            chunks.append(b"\x12" + bytes((len(sample),)) + sample)
        body = b"".join(chunks)
        parts.append(b"\x0a" + _varint(len(body)) + body)  # WriteRequest.timeseries: field 1
    return b"".join(parts)


def compress(data: bytes) -> bytes:
    """Snappy block format (not the framed stream format), as remote-write requires."""
    return bytes(cramjam.snappy.compress_raw(data))


def decompress(data: bytes) -> bytes:
    return bytes(cramjam.snappy.decompress_raw(data))


# --- decoding: for tests and for reading a queue segment back ------------------------------


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = n = 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, pos
        shift += 7


def _fields(buf: bytes) -> Iterable[tuple[int, int, bytes | int]]:
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        tag, wire = key >> 3, key & 7
        if wire == 2:
            size, pos = _read_varint(buf, pos)
            yield tag, wire, buf[pos:pos + size]
            pos += size
        elif wire == 1:
            yield tag, wire, buf[pos:pos + 8]
            pos += 8
        elif wire == 0:
            value, pos = _read_varint(buf, pos)
            yield tag, wire, value
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} at byte {pos}")


def decode_write_request(data: bytes) -> list[tuple[str, Labels, list[tuple[int, float]]]]:
    """The (name, labels without ``__name__``, samples) of each TimeSeries of an uncompressed WriteRequest."""
    out = []
    for tag, _, ts in _fields(data):
        if tag != 1 or not isinstance(ts, bytes):
            continue
        labels: dict[str, str] = {}
        points: list[tuple[int, float]] = []
        for ftag, _, body in _fields(ts):
            assert isinstance(body, bytes)
            if ftag == 1:
                parts = {t: v for t, _, v in _fields(body)}
                key, value = parts.get(1, b""), parts.get(2, b"")
                assert isinstance(key, bytes) and isinstance(value, bytes)
                labels[key.decode()] = value.decode()
            elif ftag == 2:
                value_f, ts_ms = 0.0, 0
                for stag, _, v in _fields(body):
                    if stag == 1 and isinstance(v, bytes):
                        value_f = _DOUBLE.unpack(v)[0]
                    elif stag == 2 and isinstance(v, int):
                        ts_ms = v - (1 << 64) if v >= 1 << 63 else v
                points.append((ts_ms, value_f))
        name = labels.pop("__name__", "")
        out.append((name, tuple(sorted(labels.items())), points))
    return out
