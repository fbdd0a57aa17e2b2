"""Alert rules as evaluated: threshold, anomaly, forecast and absent-data rules.

Each rule turns what it watches into *elements*: a label set (the series' labels, the rule's
labels and ``alertname``), whether the condition holds, and the triggering value. The
lifecycle (:mod:`alerting.lifecycle`) turns elements into pending / firing / resolved alerts.
Rules are frozen values built by :mod:`alerting.config`; what they remember between
evaluations (last values, score windows) lives in the engine.

Examples:
    >>> from aiops.model import Series, parse_selector
    >>> r = ThresholdRule(name="HighCPU", matchers=tuple(parse_selector("cpu")), op=">", threshold=0.8)
    >>> r.breaks(0.93), r.breaks(float("nan"))
    (True, False)
    >>> dict(r.element_labels(Series.of("cpu", instance="a")))
    {'alertname': 'HighCPU', 'instance': 'a'}
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from aiops.model import Labels, Matcher, MatchOp, Series
from alerting.templates import Template

__all__ = [
    "Rule",
    "RuleBase",
    "ThresholdRule",
    "AnomalyRule",
    "ForecastRule",
    "AbsentRule",
    "OPS",
    "time_to_limit_s",
]

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}


@dataclass(frozen=True, slots=True)
class RuleBase:
    """What every rule has: name, ``for``, ``keep_firing_for``, labels and annotation templates."""

    name: str
    matchers: tuple[Matcher, ...] = ()
    for_s: float = 0.0
    keep_firing_for_s: float = 0.0
    labels: Labels = ()
    annotations: tuple[tuple[str, Template], ...] = ()

    @property
    def key(self) -> tuple[str, Labels]:
        """Identity of the rule: name plus labels (two rules may share a name, e.g. per severity)."""
        return (self.name, self.labels)

    def selects(self, series: Series) -> bool:
        return all(m.matches(series) for m in self.matchers)

    def element_labels(self, series: Series | None, **extra: str) -> Labels:
        """Series labels (without the metric name), then the rule's labels, then ``alertname``."""
        merged: dict[str, str] = dict(series.labels) if series is not None else {}
        merged.update(extra)
        merged.update(self.labels)
        merged["alertname"] = self.name
        return tuple(sorted(merged.items()))

    def render(self, labels: Labels, value: float | None) -> Labels:
        """The annotations with ``value`` and ``labels`` substituted."""
        lab = dict(labels)
        return tuple(sorted((k, t.render(value, lab, self.name)) for k, t in self.annotations))

    @property
    def kind(self) -> str:
        return "rule"


@dataclass(frozen=True, slots=True)
class ThresholdRule(RuleBase):
    """``value op threshold`` on every series the selector matches (NaN never breaks a rule)."""

    op: str = ">"
    threshold: float = 0.0

    def breaks(self, value: float) -> bool:
        return not math.isnan(value) and OPS[self.op](value, self.threshold)

    @property
    def kind(self) -> str:
        return "threshold"


@dataclass(frozen=True, slots=True)
class AnomalyRule(RuleBase):
    """A detector's score at or over ``score`` for at least ``points`` of the last ``of`` points.

    ``matchers`` (may be empty) select series; ``detector`` (may be empty) names the detector.
    A point is a sample of a selected series or an anomaly on it; a point without an anomaly
    scores 0, so detectors that publish only anomalous points work as well as those that
    publish every score.
    """

    detector: str = ""
    score: float = 0.5
    points: int = 1
    of: int = 1

    def wants(self, series: Series, detector: str | None) -> bool:
        if detector is not None and self.detector and detector != self.detector:
            return False
        return self.selects(series)

    @property
    def kind(self) -> str:
        return "anomaly"


@dataclass(frozen=True, slots=True)
class ForecastRule(RuleBase):
    """Fires when a linear trend fitted on the last ``window_s`` reaches ``limit`` within ``horizon_s``.

    ``direction`` is ``above`` (the value rises to the limit) or ``below`` (falls to it).
    ``value`` of the alert is the predicted time to the limit in seconds (0 if already past).
    """

    window_s: float = 3600.0
    limit: float = 1.0
    horizon_s: float = 3600.0
    min_points: int = 5
    direction: str = "above"

    @property
    def kind(self) -> str:
        return "forecast"


@dataclass(frozen=True, slots=True)
class AbsentRule(RuleBase):
    """Fires for a series (or, if none ever matched, for the selector) silent for ``silent_for_s``.

    ``value`` of the alert is the number of seconds since the last sample.
    """

    silent_for_s: float = 300.0

    def absent_labels(self) -> dict[str, str]:
        """Labels of the ``absent()`` element: the selector's equality matchers, as in PromQL."""
        return {m.label: m.value for m in self.matchers if m.op is MatchOp.EQ and m.label != "__name__"}

    @property
    def kind(self) -> str:
        return "absent"


Rule = ThresholdRule | AnomalyRule | ForecastRule | AbsentRule


def time_to_limit_s(ts_ms: npt.NDArray[np.int64], values: npt.NDArray[np.float64], limit: float,
                    now_ms: int, direction: str = "above") -> float | None:
    """Seconds from ``now_ms`` until a least-squares line through the points crosses ``limit``.

    ``direction`` ``above`` watches for the line rising to ``limit`` (disk usage), ``below``
    for it falling to ``limit`` (free bytes). Returns 0.0 when the fitted line is already past
    the limit, ``None`` when the trend is flat or moves away from the limit, or there are
    fewer than two finite points.

    Examples:
        >>> ts = np.array([0, 60_000, 120_000], dtype=np.int64)
        >>> time_to_limit_s(ts, np.array([0.5, 0.6, 0.7]), 1.0, 120_000)
        180.0
        >>> time_to_limit_s(ts, np.array([0.7, 0.6, 0.5]), 1.0, 120_000) is None
        True
    """
    ok = np.isfinite(values)
    if int(ok.sum()) < 2:
        return None
    t = (ts_ms[ok] - now_ms).astype(np.float64) / 1000.0
    v = values[ok]
    if float(np.ptp(t)) == 0.0:
        return None
    slope, intercept = np.polyfit(t, v, 1)
    slope, now_value = float(slope), float(intercept)  # t == 0 is now
    rising = direction == "above"
    if (now_value >= limit) if rising else (now_value <= limit):
        return 0.0
    if not math.isfinite(slope) or (slope <= 0 if rising else slope >= 0):
        return None
    return round((limit - now_value) / slope, 6)


def summarise(rules: Sequence[Rule]) -> Mapping[str, int]:
    """Count rules per kind, for the start-up log."""
    out: dict[str, int] = {}
    for r in rules:
        out[r.kind] = out.get(r.kind, 0) + 1
    return out
