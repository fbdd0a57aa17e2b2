"""The kernel data model: series, samples, anomalies, alerts and action runs.

Prometheus' data model, so that everything we read and export interoperates:
a series is a metric name plus a set of string labels (order never matters); a sample is
(series, timestamp in integer UTC milliseconds, float value), NaN and ±Inf included.
Alerts are shaped like Alertmanager's so one object can be sent to and received from
Alertmanager-style webhooks.

Examples:
    >>> s = Series.of("node_load1", instance="a:9100", job="node")
    >>> s.key
    'node_load1{instance="a:9100",job="node"}'
    >>> Series.of("x", b="2", a="1") == Series.of("x", a="1", b="2")
    True
    >>> parse_series(s.key) == s
    True
"""

from __future__ import annotations

import enum
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, NewType

from aiops.errors import InputError

__all__ = [
    "Labels",
    "Series",
    "Sample",
    "Anomaly",
    "AlertState",
    "Alert",
    "ActionStatus",
    "ActionRun",
    "Fingerprint",
    "ActionRunId",
    "Matcher",
    "MatchOp",
    "fingerprint_of",
    "parse_series",
    "parse_selector",
    "now_ms",
    "is_finite",
]

Fingerprint = NewType("Fingerprint", str)
ActionRunId = NewType("ActionRunId", str)
Labels = tuple[tuple[str, str], ...]

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def now_ms() -> int:
    """Current UTC time in integer milliseconds."""
    return time.time_ns() // 1_000_000


def is_finite(value: float) -> bool:
    """True unless ``value`` is NaN or ±Inf."""
    return math.isfinite(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _unescape(value: str) -> str:
    out: list[str] = []
    it = iter(value)
    for ch in it:
        if ch == "\\":
            nxt = next(it, "")
            out.append({"n": "\n", "\\": "\\", '"': '"'}.get(nxt, "\\" + nxt))
        else:
            out.append(ch)
    return "".join(out)


class Series(NamedTuple):
    """A metric name plus a sorted tuple of (label, value) pairs; its identity is that pair.

    A NamedTuple rather than a dataclass: series are dict keys on every hot path (ingest,
    detection, rule evaluation) and a tuple hashes and compares in C.
    """

    name: str
    labels: Labels = ()

    @classmethod
    def of(cls, name: str, labels: Mapping[str, str] | None = None, /, **more: str) -> Series:
        """Build a series from a name and labels given as a mapping and/or keywords."""
        merged = dict(labels or {})
        merged.update(more)
        return cls(name, tuple(sorted((str(k), str(v)) for k, v in merged.items())))

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)

    def get(self, label: str, default: str = "") -> str:
        """The value of ``label`` (``__name__`` gives the metric name), or ``default``."""
        if label == "__name__":
            return self.name
        for k, v in self.labels:
            if k == label:
                return v
        return default

    @property
    def key(self) -> str:
        """The canonical text form, as Prometheus prints it: ``name{a="1",b="2"}``."""
        if not self.labels:
            return self.name
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in self.labels)
        return f"{self.name}{{{inner}}}"

    def with_labels(self, **labels: str) -> Series:
        merged = dict(self.labels)
        merged.update(labels)
        return Series.of(self.name, merged)

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True, slots=True)
class Sample:
    """One observation: ``value`` of ``series`` at ``ts_ms`` (UTC ms). NaN/±Inf are legal."""

    series: Series
    ts_ms: int
    value: float


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A point a detector found unusual. ``score`` is in [0, 1], higher is more anomalous."""

    series: Series
    ts_ms: int
    value: float
    score: float
    detector: str
    threshold: float
    expected: float | None = None
    lower: float | None = None
    upper: float | None = None


class AlertState(str, enum.Enum):
    """Alert lifecycle, Prometheus-shaped."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


def fingerprint_of(labels: Mapping[str, str] | Iterable[tuple[str, str]]) -> Fingerprint:
    """Alertmanager's label-set fingerprint: FNV-1a 64 over sorted names and values.

    Label order never matters; the result is 16 lowercase hex digits, as Alertmanager
    prints it, so fingerprints agree across the two systems.

    Examples:
        >>> fingerprint_of({"alertname": "HighCPU", "instance": "a"}) == fingerprint_of(
        ...     [("instance", "a"), ("alertname", "HighCPU")])
        True
        >>> fingerprint_of({})
        'cbf29ce484222325'
    """
    pairs = sorted(labels.items() if isinstance(labels, Mapping) else labels)
    h = 0xCBF29CE484222325
    prime = 0x100000001B3
    for name, value in pairs:
        for chunk in (name.encode(), b"\xff", value.encode(), b"\xff"):
            for byte in chunk:
                h ^= byte
                h = (h * prime) & 0xFFFFFFFFFFFFFFFF
    return Fingerprint(f"{h:016x}")


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert, shaped like Alertmanager's (labels, annotations, startsAt, endsAt, ...).

    Times are UTC ms; ``ends_at_ms`` is 0 while the alert is open.
    """

    labels: Labels
    annotations: Labels = ()
    state: AlertState = AlertState.FIRING
    starts_at_ms: int = 0
    ends_at_ms: int = 0
    value: float | None = None
    generator_url: str = ""

    @classmethod
    def of(
        cls,
        labels: Mapping[str, str],
        annotations: Mapping[str, str] | None = None,
        **kw: Any,
    ) -> Alert:
        return cls(
            labels=tuple(sorted(labels.items())),
            annotations=tuple(sorted((annotations or {}).items())),
            **kw,
        )

    @property
    def fingerprint(self) -> Fingerprint:
        return fingerprint_of(self.labels)

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def annotation_dict(self) -> dict[str, str]:
        return dict(self.annotations)

    @property
    def name(self) -> str:
        return self.label_dict.get("alertname", "")


class ActionStatus(str, enum.Enum):
    """Where an action run stands; every transition is audited."""

    PLANNED = "planned"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    REFUSED = "refused"
    QUEUED = "queued"
    RUNNING = "running"
    APPLIED = "applied"
    VERIFIED = "verified"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    DRY_RUN = "dry_run"
    SKIPPED = "skipped"  # a later step of a playbook whose earlier step did not succeed


@dataclass(frozen=True, slots=True)
class ActionRun:
    """One run of one playbook step, as recorded in the audit log."""

    id: ActionRunId
    playbook: str
    action: str
    params: Mapping[str, Any]
    alert_fingerprint: Fingerprint
    idempotency_key: str
    status: ActionStatus = ActionStatus.PLANNED
    created_ms: int = 0
    started_ms: int | None = None
    finished_ms: int | None = None
    result: Mapping[str, Any] | None = None
    error: str | None = None
    approved_by: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


# --- selectors ------------------------------------------------------------------------


class MatchOp(str, enum.Enum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


@dataclass(frozen=True, slots=True)
class Matcher:
    """A label matcher as in PromQL: ``label op value``; ``__name__`` matches the metric name.

    Regexes are fully anchored, as in Prometheus.

    Examples:
        >>> Matcher("mode", MatchOp.RE, "user|system").matches(Series.of("cpu", mode="user"))
        True
    """

    label: str
    op: MatchOp
    value: str

    def __post_init__(self) -> None:
        if self.op in (MatchOp.RE, MatchOp.NRE):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise InputError(f"matcher {self.label}{self.op.value}{self.value!r}: bad regex: {exc}") from exc

    def matches(self, series: Series) -> bool:
        actual = series.get(self.label)
        if self.op is MatchOp.EQ:
            return actual == self.value
        if self.op is MatchOp.NE:
            return actual != self.value
        hit = _compiled(self.value).fullmatch(actual) is not None
        return hit if self.op is MatchOp.RE else not hit


_RE_CACHE: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    rx = _RE_CACHE.get(pattern)
    if rx is None:
        rx = _RE_CACHE[pattern] = re.compile(pattern)
    return rx


_SELECTOR = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(?:\{(.*)\})?\s*$", re.S)
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)', re.S)


def parse_selector(text: str) -> list[Matcher]:
    """Parse a PromQL instant-vector selector such as ``cpu_seconds_total{mode!="idle"}``.

    Raises:
        InputError: naming the selector and what was wrong.

    Examples:
        >>> [(m.label, m.op.value, m.value) for m in parse_selector('up{job=~"node.*"}')]
        [('__name__', '=', 'up'), ('job', '=~', 'node.*')]
    """
    m = _SELECTOR.match(text)
    if not m or (m.group(1) is None and m.group(2) is None):
        raise InputError(f"selector {text!r}: expected name{{label=\"value\",...}}")
    matchers: list[Matcher] = []
    if m.group(1):
        matchers.append(Matcher("__name__", MatchOp.EQ, m.group(1)))
    body = (m.group(2) or "").strip()
    pos = 0
    while pos < len(body):
        mm = _MATCHER.match(body, pos)
        if not mm:
            raise InputError(f"selector {text!r}: cannot parse matchers at {body[pos:]!r}")
        matchers.append(Matcher(mm.group(1), MatchOp(mm.group(2)), _unescape(mm.group(3))))
        pos = mm.end()
    if not matchers:
        raise InputError(f"selector {text!r}: matches everything; give a name or a matcher")
    return matchers


def parse_series(text: str) -> Series:
    """Parse the canonical form ``name{a="1"}`` back into a :class:`Series`."""
    matchers = parse_selector(text)
    names = [m.value for m in matchers if m.label == "__name__"]
    if len(names) != 1 or any(m.op is not MatchOp.EQ for m in matchers):
        raise InputError(f"series {text!r}: expected name{{label=\"value\",...}} with '=' only")
    return Series.of(names[0], {m.label: m.value for m in matchers if m.label != "__name__"})
