"""A fast parser of the Prometheus text format (0.0.4) and OpenMetrics 1.0, with a series cache.

``prometheus_client.parser`` builds a Metric object per family and a Sample per line, parsing
every label set again on every scrape: about 80 ms of CPU for 10,000 series. A scrape target
exports the same lines scrape after scrape, so this parser keys a cache on the text before the
value (``name{labels}``) and, on a hit, only parses the value and the timestamp; the label
parsing, validation and relabelling run once per new series. The cache keeps exactly the
series of the last scrape, so it never grows beyond one target's size.

What the formats require and this parser enforces (each failure raises
:class:`~aiops.errors.InputError` naming the line): a valid metric name, well-formed and unique
label names, quoted label values with ``\\\\``, ``\\"`` and ``\\n`` escapes, a float value
(``NaN``, ``+Inf`` and ``-Inf`` included and kept), an optional integer timestamp in ms
(text format) or float seconds (OpenMetrics), known ``# TYPE`` values, an ``le`` label on
histogram buckets and a ``quantile`` label on summary quantiles. OpenMetrics exemplars
(``# {trace_id="..."} 1``) are ignored, as are the ``_created`` series of OpenMetrics counters,
histograms and summaries (Prometheus ignores them too). Labels with empty values are dropped,
as Prometheus treats them as absent.

Examples:
    >>> p = ExpositionParser(target_labels={"job": "node", "instance": "a:9100"})
    >>> text = '# TYPE up gauge\\nup{instance="x"} 1\\nrequests_total 5 1700000000000\\n'
    >>> [(s.series.key, s.ts_ms, s.value) for s in p.parse(text, 42)]
    [('up{exported_instance="x",instance="a:9100",job="node"}', 42, 1.0), \
('requests_total{instance="a:9100",job="node"}', 1700000000000, 5.0)]
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from aiops.columns import SampleColumns
from aiops.errors import InputError
from aiops.model import LABEL_NAME, METRIC_NAME, Sample, Series

__all__ = ["ExpositionParser", "METRIC_TYPES"]

METRIC_TYPES = frozenset({"counter", "gauge", "histogram", "summary", "untyped", "unknown", "gaugehistogram",
                          "stateset", "info"})

_LABELS_END = re.compile(r'\{(?:\s*[^\s=,{}"]+\s*=\s*"(?:[^"\\]|\\.)*"\s*,?)*\s*\}')
_LABEL = re.compile(r'\s*([^\s=,{}"]+)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created", "_gcount", "_gsum", "_info")


class ExpositionParser:
    """Parses one target's scrapes into samples, caching series between scrapes.

    Args:
        target_labels: labels the scraper attaches (``job``, ``instance``, configured ones).
            As with Prometheus' ``honor_labels: false``, they win over scraped labels of the
            same name, and the scraped value is kept as ``exported_<name>``.
    """

    def __init__(self, target_labels: Mapping[str, str] | None = None) -> None:
        self.target_labels = dict(target_labels or {})
        self._cache: dict[str, Series | None] = {}  # None: a series deliberately skipped
        self._last_series: tuple[Series, ...] = ()
        self.gone: list[Series] = []
        """Series of the scrape before the last one that the last one no longer exports."""
        self.types: dict[str, str] = {}
        """Metric family -> type, from the ``# TYPE`` lines of the last scrape."""

    def parse(self, text: str, default_ts_ms: int, openmetrics: bool = False) -> list[Sample]:
        """All samples of one exposition; samples without a timestamp get ``default_ts_ms``.

        Raises:
            InputError: naming the line number and what is wrong with it.
        """
        return list(self.parse_columns(text, default_ts_ms, openmetrics))

    def parse_columns(self, text: str, default_ts_ms: int, openmetrics: bool = False) -> SampleColumns:
        """:meth:`parse` as columns; the ``series`` tuple is the previous scrape's object when
        the target exported the same series in the same order (the store caches ids by it).

        Raises:
            InputError: naming the line number and what is wrong with it.
        """
        old = self._cache
        old_get = old.get
        cache: dict[str, Series | None] = {}
        types: dict[str, str] = {}
        series_out: list[Series] = []
        values: list[float] = []
        stamped: list[tuple[int, int]] = []  # (sample index, explicit timestamp)
        add_series = series_out.append
        add_value = values.append
        keys = 0  # keys seen; len(cache) < keys means a duplicate series
        hits = 0  # keys found in the previous scrape's cache
        lines = text.split("\n")
        for lineno, line in enumerate(lines, 1):
            # fast path: a known series without a timestamp, "<key> <value>"
            head, _, tail = line.rpartition(" ")
            series = old_get(head, _MISSING)
            if series is not _MISSING and tail:
                try:
                    value = float(tail)
                except ValueError:
                    pass  # the full path below names the problem
                else:
                    cache[head] = series  # type: ignore[assignment]
                    keys += 1
                    hits += 1
                    if series is not None:
                        add_series(series)  # type: ignore[arg-type]
                        add_value(value)
                    continue
            parsed = self._parse_line(line, lineno, types, openmetrics)
            if parsed is True:
                break
            if parsed is False:
                continue
            key, rest = parsed
            keys += 1
            if key in cache:
                raise InputError(f"line {lineno}: duplicate series {_show(key)}")
            series = old_get(key, _MISSING)
            if series is _MISSING:
                series = self._new_series(key, lineno, types, openmetrics)
            else:
                hits += 1
            cache[key] = series  # type: ignore[assignment]
            if series is None:
                continue
            if not rest:
                raise InputError(f"line {lineno}: no value after {_show(key)}")
            try:
                value = float(rest[0])
            except ValueError:
                raise InputError(f"line {lineno}: value {_show(rest[0])} of {_show(key)} is not a number") from None
            if len(rest) > 1 and rest[1] != "#":
                stamped.append((len(values), _timestamp(rest[1], openmetrics, lineno)))
                if len(rest) > 2 and rest[2] != "#":
                    raise InputError(f"line {lineno}: unexpected text after the timestamp: {_show(line)}")
            add_series(series)  # type: ignore[arg-type]
            add_value(value)
        if len(cache) != keys:
            self._find_duplicate(lines)
        series_t = tuple(series_out)
        if series_t == self._last_series:
            series_t = self._last_series  # same object: the store's id cache hits
        ts = np.full(len(values), default_ts_ms, dtype=np.int64)
        for i, t in stamped:
            ts[i] = t
        self.gone = [] if hits == len(old) else [s for k, s in old.items() if s is not None and k not in cache]
        self._cache = cache
        self._last_series = series_t
        self.types = types
        return SampleColumns(series_t, ts, np.array(values, dtype=np.float64))

    def _parse_line(self, line: str, lineno: int, types: dict[str, str],
                    openmetrics: bool) -> tuple[str, list[str]] | bool:
        """``(key, [value, timestamp?, ...])``; False for a comment or blank line, True at EOF."""
        if not line:
            return False
        first = line[0]
        if first == "#":
            return self._comment(line, lineno, types, openmetrics)
        if first in " \t\r":
            line = line.strip()
            if not line:
                return False
            if line[0] == "#":
                return self._comment(line, lineno, types, openmetrics)
        # --- split the series text (cache key) from the value and timestamp ---
        brace = line.find("{")
        space = _first_space(line)
        if brace != -1 and (space == -1 or brace < space or not line[space:brace].strip()):
            end = line.find("}", brace)
            if end == -1 or "\\" in line[brace:end] or line.count('"', brace, end) % 2:
                m = _LABELS_END.match(line, brace)
                if m is None:
                    raise InputError(f"line {lineno}: malformed label set in {_show(line)}")
                end = m.end() - 1
            return line[: end + 1], line[end + 1:].split()
        parts = line.split()
        return parts[0], parts[1:]

    def _find_duplicate(self, lines: list[str]) -> None:
        """Raise the duplicate-series error with its line number (rare: a broken target)."""
        seen: set[str] = set()
        types: dict[str, str] = {}
        for lineno, line in enumerate(lines, 1):
            parsed = self._parse_line(line, lineno, types, False)
            if parsed is True:
                break
            if parsed is False:
                continue
            key = parsed[0]
            if key in seen:
                raise InputError(f"line {lineno}: duplicate series {_show(key)}")
            seen.add(key)
        raise InputError("duplicate series in the exposition")  # pragma: no cover - keys differ only in form

    @property
    def series(self) -> set[Series]:
        """The series of the last successful scrape."""
        return {s for s in self._cache.values() if s is not None}

    def forget(self) -> None:
        """Drop the cache (after a failed scrape every series is stale)."""
        self._cache = {}
        self._last_series = ()
        self.gone = []

    # --- slow path: once per new series -------------------------------------------------

    def _comment(self, line: str, lineno: int, types: dict[str, str], openmetrics: bool) -> bool:
        """Handle a ``#`` line; True at OpenMetrics' ``# EOF``."""
        parts = line.split(None, 3)
        if len(parts) >= 2 and parts[1] == "EOF":
            return True
        if len(parts) >= 3 and parts[1] == "TYPE":
            if len(parts) < 4:
                raise InputError(f"line {lineno}: # TYPE without a type: {_show(line)}")
            family, kind = parts[2], parts[3].strip().lower()
            if kind not in METRIC_TYPES:
                raise InputError(f"line {lineno}: unknown metric type {kind!r} for {family}")
            if not METRIC_NAME.match(family):
                raise InputError(f"line {lineno}: invalid metric name {_show(family)} in # TYPE")
            types[family] = kind
        return False

    def _new_series(self, key: str, lineno: int, types: Mapping[str, str], openmetrics: bool) -> Series | None:
        brace = key.find("{")
        name = (key if brace == -1 else key[:brace]).strip()
        if not METRIC_NAME.match(name):
            raise InputError(f"line {lineno}: invalid metric name {_show(name)}")
        labels: dict[str, str] = {}
        if brace != -1:
            body = key[brace + 1: -1]
            pos = 0
            while pos < len(body) and body[pos:].strip():
                m = _LABEL.match(body, pos)
                if m is None:
                    raise InputError(f"line {lineno}: malformed labels {_show(body[pos:])} of {name}")
                label, value = m.group(1), m.group(2)
                if not LABEL_NAME.match(label):
                    raise InputError(f"line {lineno}: invalid label name {_show(label)} on {name}")
                if label in labels:
                    raise InputError(f"line {lineno}: label {label} given twice on {name}")
                labels[label] = _unescape_value(value) if "\\" in value else value
                pos = m.end()
        kind, family = _family(name, types)
        if kind in ("histogram", "gaugehistogram") and name == family + "_bucket" and "le" not in labels:
            raise InputError(f"line {lineno}: histogram bucket {name} has no 'le' label")
        if kind == "summary" and name == family and "quantile" not in labels:
            raise InputError(f"line {lineno}: summary {name} has no 'quantile' label")
        for bound in ("le", "quantile"):
            if bound in labels and kind in ("histogram", "gaugehistogram", "summary"):
                try:
                    float(labels[bound])
                except ValueError:
                    raise InputError(f"line {lineno}: {bound}={labels[bound]!r} of {name} is not a number") from None
        if openmetrics and name == family + "_created" and kind in ("counter", "histogram", "summary"):
            return None
        merged = {k: v for k, v in labels.items() if v != ""}
        for k, v in self.target_labels.items():
            if k in merged:
                exported = "exported_" + k
                while exported in merged:  # as Prometheus: exported_exported_job, ...
                    exported = "exported_" + exported
                merged[exported] = merged.pop(k)
            merged[k] = v
        return Series.of(name, merged)


_MISSING: object = object()


def _family(name: str, types: Mapping[str, str]) -> tuple[str, str]:
    """(type, family) of a sample name: ``http_seconds_bucket`` belongs to ``http_seconds``."""
    kind = types.get(name)
    if kind is not None:
        return kind, name
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            family = name[: -len(suffix)]
            kind = types.get(family)
            if kind is not None:
                return kind, family
    return "untyped", name


def _first_space(line: str) -> int:
    sp = line.find(" ")
    tab = line.find("\t")
    if tab != -1 and (sp == -1 or tab < sp):
        return tab
    return sp


def _timestamp(text: str, openmetrics: bool, lineno: int) -> int:
    try:
        if openmetrics:  # OpenMetrics: float seconds
            return round(float(text) * 1000)
        return int(text)  # text format 0.0.4: integer milliseconds
    except ValueError:
        raise InputError(f"line {lineno}: timestamp {_show(text)} is not a number") from None


_ESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"n": "\n", "\\": "\\", '"': '"'}


def _unescape_value(value: str) -> str:
    """Undo the text format's escapes in a label value; unknown escapes stay as written."""
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), value)


def _show(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
