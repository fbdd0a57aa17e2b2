"""Log lines to counts: by level, by configured pattern, by mined template, and the bad ones.

Every log collector (files, Kafka) feeds raw lines (bytes) to one :class:`LogCounter` per
source; ``samples(now_ms)`` turns the running totals into series, Prometheus counters so that a
lost collection loses no count (the next total includes it):

- ``aiops_log_lines_total{source, level}``: lines by level (``debug``, ``info``, ``warning``,
  ``error``, ``critical``, ``unknown``);
- ``aiops_log_pattern_lines_total{source, pattern}``: lines matching each configured regex;
- ``aiops_log_template_lines_total{source, template}``: lines per drain3 template (the first
  ``max_templates`` templates; later ones count as ``template="other"``);
- ``aiops_log_bad_lines_total{source, reason}``: ``invalid_utf8``, ``binary`` (NUL bytes),
  ``too_long``: counted, never parsed, never fatal.

Counters need a rate to alert on, and the rules take plain series, so the same counts also come
as per-second gauges over the last collection: ``aiops_log_lines_per_second{source, level}``
and ``aiops_log_pattern_lines_per_second{source, pattern}`` (an error burst is a threshold rule
or a detector on these).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiops.model import Sample, Series
from collectors.logsettings import LogParsing

__all__ = ["LogCounter", "LEVELS", "normalise_level"]

LEVELS = ("debug", "info", "warning", "error", "critical", "unknown")
_LEVEL_ALIASES = {
    "trace": "debug", "debug": "debug", "dbg": "debug", "verbose": "debug",
    "info": "info", "information": "info", "notice": "info", "informational": "info",
    "warn": "warning", "warning": "warning",
    "error": "error", "err": "error",
    "crit": "critical", "critical": "critical", "fatal": "critical", "panic": "critical",
    "alert": "critical", "emerg": "critical", "emergency": "critical",
}
_MAX_TEMPLATE_LABEL = 120  # a label value people can read in a legend; the template id keeps it unique


def normalise_level(text: object) -> str:
    """One of :data:`LEVELS` for a level word or a syslog/bunyan number.

    Examples:
        >>> normalise_level("WARN"), normalise_level(50), normalise_level("Sev")
        ('warning', 'error', 'unknown')
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        n = int(text)
        if n >= 10:  # bunyan / pino: 10 trace ... 60 fatal
            return ("debug", "debug", "info", "warning", "error", "critical")[min(max(n // 10 - 1, 0), 5)]
        return ("critical", "critical", "critical", "error", "warning", "info", "info", "debug")[min(max(n, 0), 7)]
    return _LEVEL_ALIASES.get(str(text).strip().lower(), "unknown")


def _lookup(obj: Mapping[str, Any], dotted: str) -> Any:
    if dotted in obj:
        return obj[dotted]
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


@dataclass(slots=True)
class _Totals:
    lines: dict[str, int] = field(default_factory=dict)
    patterns: dict[str, int] = field(default_factory=dict)
    templates: dict[str, int] = field(default_factory=dict)
    bad: dict[str, int] = field(default_factory=dict)


class LogCounter:
    """Counts the lines of one source.

    Args:
        source: the ``source`` label.
        parsing: level, patterns and template settings.
        labels: extra labels on every series.
        totals: totals restored from a previous run (``state()``), so counters continue.

    Examples:
        >>> c = LogCounter("api", LogParsing(templates=False, patterns={"timeout": "timed out"}))
        >>> c.feed([b'{"level": "error", "msg": "db timed out"}', b"INFO ok", b"\\xff\\xfe"])
        >>> c.totals.lines, c.totals.patterns, c.totals.bad
        ({'error': 1, 'info': 1}, {'timeout': 1}, {'invalid_utf8': 1})
    """

    def __init__(self, source: str, parsing: LogParsing, labels: Mapping[str, str] | None = None,
                 totals: Mapping[str, Any] | None = None) -> None:
        self.source = source
        self.parsing = parsing
        self.labels = dict(labels or {})
        self._level_rx = re.compile(parsing.level_regex, re.IGNORECASE)
        self._patterns = [(name, re.compile(rx)) for name, rx in parsing.patterns.items()]
        self.totals = _Totals()
        self._template_names: dict[int, str] = {}
        if totals:
            self.restore(totals)
        self._miner: Any = None
        if parsing.templates:
            from drain3 import TemplateMiner  # imported when used: the mining state is per source
            from drain3.template_miner_config import TemplateMinerConfig

            cfg = TemplateMinerConfig()
            cfg.profiling_enabled = False
            cfg.drain_max_clusters = max(parsing.max_templates * 4, 256)
            self._miner = TemplateMiner(config=cfg)
        self._last_ms: int | None = None
        self._last_lines: dict[str, int] = dict(self.totals.lines)
        self._last_patterns: dict[str, int] = dict(self.totals.patterns)

    # --- counting ----------------------------------------------------------------------------

    def feed(self, lines: Iterable[bytes]) -> None:
        """Count raw lines (without their newline)."""
        for raw in lines:
            self.feed_one(raw)

    def feed_one(self, raw: bytes) -> None:
        """Count one raw line; never raises."""
        if len(raw) > self.parsing.max_line_bytes:
            self.count_bad("too_long")
            return
        if b"\x00" in raw:
            self.count_bad("binary")
            return
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.count_bad("invalid_utf8")
            return
        text = text.rstrip("\r")
        if not text.strip():
            return
        level, message = self._classify(text)
        t = self.totals
        t.lines[level] = t.lines.get(level, 0) + 1
        for name, rx in self._patterns:
            if rx.search(message):
                t.patterns[name] = t.patterns.get(name, 0) + 1
        if self._miner is not None:
            name = self._template(message)
            t.templates[name] = t.templates.get(name, 0) + 1

    def count_bad(self, reason: str) -> None:
        """Count a line that could not be read (``too_long`` from a tailer that skipped it, ...)."""
        self.totals.bad[reason] = self.totals.bad.get(reason, 0) + 1

    def _classify(self, text: str) -> tuple[str, str]:
        fmt = self.parsing.format
        if fmt != "plain" and text.lstrip().startswith("{"):
            try:
                obj = json.loads(text)
            except ValueError:
                obj = None
            if isinstance(obj, dict):
                level = "unknown"
                for key in self.parsing.level_fields:
                    v = _lookup(obj, key)
                    if v is not None:
                        level = normalise_level(v)
                        break
                message = next((str(m) for k in self.parsing.message_fields
                                if (m := _lookup(obj, k)) is not None), text)
                return level, message
        m = self._level_rx.search(text)
        return (normalise_level(m.group(1)) if m else "unknown"), text

    def _template(self, message: str) -> str:
        result = self._miner.add_log_message(message[:2048])
        cid = int(result["cluster_id"])
        name = self._template_names.get(cid)
        if name is None:
            if len(self._template_names) >= self.parsing.max_templates:
                return "other"
            template = str(result["template_mined"])
            name = template if len(template) <= _MAX_TEMPLATE_LABEL else template[:_MAX_TEMPLATE_LABEL - 1] + "…"
            if name in self._template_names.values() or name == "other":
                name = f"{name} #{cid}"
            self._template_names[cid] = name
        return name

    # --- output ------------------------------------------------------------------------------

    def samples(self, now_ms: int) -> list[Sample]:
        """The totals as counters, plus per-second gauges since the previous call."""
        base = {"source": self.source, **self.labels}
        out: list[Sample] = []
        t = self.totals
        for level in LEVELS:
            if level in t.lines or level in ("error", "warning"):  # error/warning always exist: 0 is data
                out.append(Sample(Series.of("aiops_log_lines_total", {**base, "level": level}), now_ms,
                                  float(t.lines.get(level, 0))))
        for name, _rx in self._patterns:
            out.append(Sample(Series.of("aiops_log_pattern_lines_total", {**base, "pattern": name}), now_ms,
                              float(t.patterns.get(name, 0))))
        for name, n in t.templates.items():
            out.append(Sample(Series.of("aiops_log_template_lines_total", {**base, "template": name}), now_ms,
                              float(n)))
        for reason, n in t.bad.items():
            out.append(Sample(Series.of("aiops_log_bad_lines_total", {**base, "reason": reason}), now_ms, float(n)))
        if self._last_ms is not None and now_ms > self._last_ms:
            dt_s = (now_ms - self._last_ms) / 1000
            for level in LEVELS:
                if level in t.lines or level in ("error", "warning"):
                    d = t.lines.get(level, 0) - self._last_lines.get(level, 0)
                    out.append(Sample(Series.of("aiops_log_lines_per_second", {**base, "level": level}), now_ms,
                                      d / dt_s))
            for name, _rx in self._patterns:
                d = t.patterns.get(name, 0) - self._last_patterns.get(name, 0)
                out.append(Sample(Series.of("aiops_log_pattern_lines_per_second", {**base, "pattern": name}),
                                  now_ms, d / dt_s))
        self._last_ms = now_ms
        self._last_lines = dict(t.lines)
        self._last_patterns = dict(t.patterns)
        return out

    def state(self) -> dict[str, Any]:
        """Totals and template names, JSON-able, for :meth:`restore` after a restart."""
        t = self.totals
        return {"lines": dict(t.lines), "patterns": dict(t.patterns), "templates": dict(t.templates),
                "bad": dict(t.bad)}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from totals saved by :meth:`state` (ignores malformed entries)."""
        def ints(key: str) -> dict[str, int]:
            raw = state.get(key)
            if not isinstance(raw, Mapping):
                return {}
            return {str(k): int(v) for k, v in raw.items() if isinstance(v, int) and not isinstance(v, bool)}

        self.totals = _Totals(ints("lines"), ints("patterns"), ints("templates"), ints("bad"))
