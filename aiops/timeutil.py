"""Time parsing and formatting shared by the CLI, replay and the dashboard.

Examples:
    >>> parse_time_ms("2024-01-01 00:00:00")
    1704067200000
    >>> parse_time_ms("2024-01-01T01:00:00+01:00")
    1704067200000
    >>> parse_time_ms("-5m", now=1_000_000)
    700000
    >>> parse_timestamp_ms("1704067200")
    1704067200000
    >>> format_ts_ms(1704067200000)
    '2024-01-01T00:00:00Z'
"""

from __future__ import annotations

import datetime as dt

from aiops.config import parse_duration_s
from aiops.errors import InputError
from aiops.model import now_ms

__all__ = ["parse_time_ms", "parse_timestamp_ms", "format_ts_ms"]


def parse_time_ms(text: str | int | float, now: int | None = None) -> int:
    """Parse a time into UTC ms.

    Accepts ``now``, a relative ``-1h`` / ``-30m`` (before ``now``), ISO-8601 with or without
    a zone (none means UTC), ``YYYY-MM-DD HH:MM:SS``, or epoch seconds (10 digits) / ms (13).

    Raises:
        InputError: naming the text.
    """
    if isinstance(text, (int, float)):
        return _bounded(text, float(text))
    s = text.strip()
    base = now_ms() if now is None else now
    if s == "now":
        return base
    if s.startswith("-"):
        try:
            return base - int(parse_duration_s(s[1:]) * 1000)
        except (ValueError, OverflowError) as exc:
            raise InputError(f"time {text!r}: expected -<duration> like -1h") from exc
    if s.replace(".", "", 1).isdigit():
        return _bounded(text, float(s))
    try:
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"time {text!r}: expected 'now', a relative time like -1h, "
                         "ISO-8601 ('2024-01-01T00:00:00Z' or 'YYYY-MM-DD HH:MM:SS') or epoch seconds") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(round(t.timestamp() * 1000))


def parse_timestamp_ms(text: str | int | float) -> int:
    """Parse a timestamp *read from a data file* into UTC ms.

    As :func:`parse_time_ms`, but only absolute times: ISO-8601 (no zone means UTC),
    ``YYYY-MM-DD HH:MM:SS`` or epoch seconds / ms. ``now`` and ``-1h`` mean the moment a file
    is read, never a time written in it, so they are refused.

    Raises:
        InputError: naming the text.
    """
    expected = f"time {str(text)[:40]!r}: expected ISO-8601, 'YYYY-MM-DD HH:MM:SS' or epoch seconds"
    if isinstance(text, str) and (text.strip() == "now" or text.strip().startswith("-")):
        raise InputError(expected)
    try:
        return parse_time_ms(text)
    except InputError as exc:
        if "out of range" in str(exc):
            raise
        raise InputError(expected) from None  # not parse_time_ms's list, which offers 'now' and -1h


_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last time ISO-8601 can write


def _bounded(text: object, v: float) -> int:
    ms = v if v > 1e11 else v * 1000
    if not 0 <= ms <= _MAX_MS:  # also false for NaN
        raise InputError(f"time {str(text)[:40]!r}: out of range (1970 to 9999)")
    return int(ms)


def format_ts_ms(ts_ms: int) -> str:
    """ISO-8601 in UTC with a ``Z``, milliseconds only where non-zero."""
    t = dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC)
    if ts_ms % 1000:
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")
