"""Values the localiser works on: one case, a causal graph, ranked causes.

Names of metrics are ``component:metric`` (split at the first colon, so a Prometheus
recording-rule name such as ``job:rate5m`` stays whole as the metric part).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["RcaCase", "Cause", "RcaResult", "split_name"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def split_name(name: str) -> tuple[str, str]:
    """Split ``component:metric`` at its first colon; a bare name is its own component.

    Examples:
        >>> split_name("db:cpu")
        ('db', 'cpu')
        >>> split_name("api:job:rate5m")
        ('api', 'job:rate5m')
        >>> split_name("api")
        ('api', '')
    """
    component, sep, metric = name.partition(":")
    return (component, metric) if sep else (name, "")


@dataclass(frozen=True, slots=True, eq=False)
class RcaCase:
    """One incident to localise.

    Args:
        timestamps_ms: UTC ms per row, increasing, shape ``(T,)``.
        values: shape ``(T, N)``; NaN marks a missing point.
        names: ``component:metric`` per column, ``N`` of them.
        alert_ms: when the alert fired (the onset is searched at or before it).
        symptom: the alerting ``component:metric`` (one of ``names``), or ``""``.
        end_ms: last instant of the anomaly window the localiser may look at; rows after it
            are ignored, so the analysis stays causal. ``None``: the last row.
        onset_ms: the anomaly onset when it is known (a labelled segment, a detector's first
            anomaly); ``None``: found by change-point detection on the symptom.
    """

    timestamps_ms: IntArray
    values: FloatArray
    names: tuple[str, ...]
    alert_ms: int
    symptom: str = ""
    end_ms: int | None = None
    onset_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Cause:
    """A ranked candidate root cause and its evidence.

    Attributes:
        component: the component the metric belongs to.
        metric: the metric name within the component.
        score: ranking score (higher first): the regression-residual change score plus, for
            a node that is itself anomalous, the largest score among the effects it explains.
        z: robust change score of the metric given its parents (residual, in sigmas).
        marginal_z: robust change score of the metric alone (BARO), in sigmas.
        onset_ms: first point of the analysed window where the residual left its normal band.
        path: the causal path from this metric to the symptom (names), empty if none.
    """

    component: str
    metric: str
    score: float
    z: float
    marginal_z: float
    onset_ms: int | None
    path: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """``component:metric``."""
        return f"{self.component}:{self.metric}" if self.metric else self.component

    def to_json(self) -> dict[str, object]:
        """The CLI's output record plus the evidence."""
        return {
            "component": self.component,
            "metric": self.metric,
            "score": round(self.score, 6),
            "z": round(self.z, 6),
            "marginal_z": round(self.marginal_z, 6),
            "onset_ms": self.onset_ms,
            "path": list(self.path),
        }


@dataclass(frozen=True, slots=True)
class RcaResult:
    """Ranked causes of one case, best first, with the onset used and the time it took."""

    causes: tuple[Cause, ...]
    onset_ms: int
    symptom: str
    duration_s: float
    params: dict[str, object] = field(default_factory=dict)

    def top(self, k: int = 3) -> tuple[Cause, ...]:
        """The ``k`` best causes."""
        return self.causes[:k]
