"""Units read off metric names, the Prometheus way (``_bytes``, ``_seconds``, ``_ratio``, ...).

The explorer draws one y axis per unit, titled with the unit, and formats ticks and tooltips
with it, so ``inference_latency_p99_seconds`` and ``aiops_gpu_memory_used_bytes`` never share
an axis.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Unit", "unit_of", "format_value"]


@dataclass(frozen=True, slots=True)
class Unit:
    """How values of one unit are titled and formatted (d3-format specs for Vega-Lite)."""

    key: str
    title: str
    fmt: str


_RATIO = Unit("ratio", "ratio (0–1, as %)", ".0%")
_PLAIN = Unit("", "value", "~s")
# Longest suffix first: "_joules_total" before "_total".
_SUFFIXES: tuple[tuple[str, Unit], ...] = (
    ("_bytes_total", Unit("bytes", "bytes", "~s")),
    ("_seconds_total", Unit("seconds", "seconds", "~s")),
    ("_joules_total", Unit("joules", "joules", "~s")),
    ("_bytes", Unit("bytes", "bytes", "~s")),
    ("_seconds", Unit("seconds", "seconds", "~s")),
    ("_ratio", _RATIO),
    ("_percent", Unit("percent", "percent", ".1f")),
    ("_celsius", Unit("celsius", "°C", ".1f")),
    ("_watts", Unit("watts", "watts", "~s")),
    ("_hertz", Unit("hertz", "hertz", "~s")),
    ("_rps", Unit("rps", "requests / s", "~s")),
    ("_total", Unit("count", "count (counter)", "~s")),
)
_SYMBOLS = {"bytes": "B", "seconds": "s", "joules": "J", "watts": "W", "hertz": "Hz", "celsius": "°C",
            "percent": "%", "rps": "/s"}


def unit_of(metric: str) -> Unit:
    """The unit of ``metric`` from its suffix; anomaly scores are ratios.

    Examples:
        >>> unit_of("inference_latency_p99_seconds").key
        'seconds'
        >>> unit_of("aiops_anomaly_score").key
        'ratio'
        >>> unit_of("inference_queue_depth").key
        ''
    """
    if metric in ("aiops_anomaly_score",):
        return _RATIO
    for suffix, unit in _SUFFIXES:
        if metric.endswith(suffix):
            return unit
    return _PLAIN


def format_value(value: float | None, unit: Unit) -> str:
    """A short human form of ``value`` in ``unit`` for tiles and tables.

    Examples:
        >>> format_value(0.4567, unit_of("x_ratio"))
        '45.7%'
        >>> format_value(3_500_000_000, unit_of("x_bytes"))
        '3.5 GB'
        >>> format_value(0.0123, unit_of("x_seconds"))
        '12.3 ms'
    """
    if value is None or value != value:
        return "–"
    if unit.key == "ratio":
        return f"{value * 100:.1f}%"
    symbol = _SYMBOLS.get(unit.key, "")
    if unit.key in ("celsius", "percent"):
        return f"{value:.1f} {symbol}"
    mag = abs(value)
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if mag >= factor:
            return f"{value / factor:.3g} {prefix}{symbol}".rstrip()
    if unit.key == "seconds" and 0 < mag < 1:
        return f"{value * 1000:.3g} ms"
    return f"{value:.3g} {symbol}".rstrip()
