"""Ensemble: several detectors' calibrated scores combined into one, with alarm suppression.

Each member is a registered detector (built through :mod:`detectors.registry`), optionally fed
a causal moving average of the last ``smooth`` values instead of the raw values (a level
shift of ``d`` sigma then shows as ``d * sqrt(smooth)`` on white noise, so sustained changes are
found earlier and single noisy points less often). A member's calibrated score ``s`` (``1 - s`` is
about the probability of a point that unusual under normal data) becomes a *surprise*
``-log10(1 - s)``, capped at ``cap`` decimal digits and divided by ``cap``; the ensemble combines the
members' surprises by weighted ``max`` or weighted ``mean``.

Score in [0, 1], linear in surprise: 0.5 with ``cap=12`` means "as unusual as a one in a million
point" for the most (``max``) or the average (``mean``) member. After an alarm (score at or above
``threshold``) the next ``suppress`` finite points score 0, as an operator wants one alert per
incident rather than one per point; the NAB benchmark rewards the same (later alarms in a window
earn nothing, alarms just after it cost).

Batch and streaming agree because every member's do, smoothing uses exactly rounded sums
(``math.fsum``) on both paths, and the combination and suppression are the same per-point code.

Examples:
    >>> import numpy as np
    >>> det = EnsembleDetector(members=[{"detector": "zscore", "params": {"window": 50}}], suppress=10)
    >>> x = np.random.default_rng(0).normal(size=300)
    >>> x[200:] += 6.0
    >>> s = det.score(x)
    >>> int(np.argmax(s >= det.threshold)), bool((s[201:211] == 0).all())
    (200, True)
"""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from aiops.detector import Detector
from aiops.errors import DetectorError

from .base import BaseDetector, FloatArray, check_choice, check_float, check_int
from .registry import create, register

__all__ = ["EnsembleDetector", "DEFAULT_MEMBERS"]

# Chosen on the NAB development subset (benchmarks/detect_quality.py; docs/detectors/ensemble.md):
# z-scores against a long window (6400 points: three weeks at 5-minute steps) of short (5) and
# longer (40) moving averages, and of the 40-point average's deviation from the same time on the
# previous days (at 5- and 30-minute steps), which catches a broken daily pattern at a normal level.
_LONG = {"window": 6400, "min_periods": 100}
DEFAULT_MEMBERS: tuple[dict[str, Any], ...] = (
    {"detector": "zscore", "params": _LONG, "smooth": 5, "weight": 1.0},
    {"detector": "zscore", "params": _LONG, "smooth": 40, "weight": 1.0},
    {"detector": "zscore", "params": {**_LONG, "seasonal_period": 288, "seasons": 3}, "smooth": 40, "weight": 0.8},
    {"detector": "zscore", "params": {**_LONG, "seasonal_period": 48, "seasons": 3}, "smooth": 40, "weight": 0.8},
)


def _normalise_members(members: Sequence[Any]) -> list[dict[str, Any]]:
    if isinstance(members, (str, Mapping)) or not isinstance(members, Sequence) or not members:
        raise DetectorError(f"ensemble: members must be a non-empty list of detector names or "
                            f"{{detector, params, weight, smooth}} objects, got: {members!r}")
    out = []
    for j, m in enumerate(members):
        spec = {"detector": m} if isinstance(m, str) else dict(m) if isinstance(m, Mapping) else None
        if spec is None or not isinstance(spec.get("detector"), str):
            raise DetectorError(f"ensemble: members[{j}] must name a detector, got: {m!r}")
        unknown = set(spec) - {"detector", "params", "weight", "smooth"}
        if unknown:
            raise DetectorError(f"ensemble: members[{j}] has unknown key(s) {sorted(unknown)}")
        if spec["detector"] == "ensemble":
            raise DetectorError(f"ensemble: members[{j}] cannot be an ensemble")
        params = spec.get("params") or {}
        if not isinstance(params, Mapping):
            raise DetectorError(f"ensemble: members[{j}].params must be an object, got: {params!r}")
        out.append({
            "detector": spec["detector"],
            "params": dict(params),
            "weight": check_float("ensemble", f"members[{j}].weight", spec.get("weight", 1.0), 0.0, 1e6,
                                  low_open=True),
            "smooth": check_int("ensemble", f"members[{j}].smooth", spec.get("smooth", 1), 1),
        })
    return out


@register
class EnsembleDetector(BaseDetector):
    """Combines member detectors' calibrated scores; suppresses repeated alarms.

    Args:
        members: detector names or ``{"detector": name, "params": {...}, "weight": w,
            "smooth": k}`` objects (weight > 0, default 1; smooth >= 1 points, default 1).
            Default: :data:`DEFAULT_MEMBERS`.
        combine: ``max`` (the most surprised member, times its weight) or ``mean`` (weighted
            mean of surprises).
        threshold: score at or above which a point is an anomaly.
        suppress: finite points after an alarm that score 0 (0 disables).
        cap: decimal digits of surprise that map to score 1.0 (a member score of
            ``1 - 10**-cap`` or more).
    """

    name = "ensemble"

    def __init__(self, members: Sequence[Any] | None = None, combine: str = "max", threshold: float = 0.25,
                 suppress: int = 120, cap: float = 12.0) -> None:
        if isinstance(members, (str, Mapping)):
            raise DetectorError(f"ensemble: members must be a list, got: {members!r}")
        given = copy.deepcopy(list(members) if members is not None else list(DEFAULT_MEMBERS))
        self._specs = _normalise_members(given)
        self.members = given  # as given, so get_params() round-trips
        self.combine = check_choice(self.name, "combine", combine, ("max", "mean"))
        self.threshold = check_float(self.name, "threshold", threshold, 0.0, 1.0)
        self.suppress: int = check_int(self.name, "suppress", suppress, 0)  # not None: no allow_none
        self.cap = check_float(self.name, "cap", cap, 1.0, 15.0)
        self._detectors: list[Detector] = [create(m["detector"], **m["params"]) for m in self._specs]
        self._weights = np.array([m["weight"] for m in self._specs], dtype=np.float64)
        # last values per smoothing width, shared by the members with the same width
        self._recent: dict[int, deque[float]] = {m["smooth"]: deque(maxlen=m["smooth"]) for m in self._specs}
        self._quiet = 0  # finite points left in the suppression after the last alarm

    # --- one member's input ----------------------------------------------------------------

    def _smoothed_batch(self, x: FloatArray) -> dict[int, FloatArray]:
        """Members' inputs by smoothing width: the mean of the last ``k`` values (``k=1``: ``x``)."""
        out = {}
        for k, recent in self._recent.items():
            if k == 1:
                out[k] = x
                continue
            ext = list(recent) + x.tolist()
            start = len(recent)
            means = np.empty(x.shape[0], dtype=np.float64)
            for i in range(x.shape[0]):
                window = ext[max(0, start + i + 1 - k):start + i + 1]
                means[i] = math.fsum(window) / len(window)
            recent.extend(ext[-k:])
            out[k] = means
        return out

    def _smoothed_one(self, x: float) -> dict[int, float]:
        out = {}
        for k, recent in self._recent.items():
            recent.append(x)
            out[k] = x if k == 1 else math.fsum(recent) / len(recent)
        return out

    # --- combination -------------------------------------------------------------------------

    def _combined(self, member_scores: FloatArray) -> FloatArray:
        """Scores in [0, 1] from member scores of shape (members, points)."""
        floor = 10.0 ** -self.cap
        surprise = -np.log10(np.maximum(1.0 - member_scores, floor)) / self.cap
        weighted = surprise * self._weights[:, None]
        if self.combine == "max":
            combined = weighted.max(axis=0)
        else:
            combined = weighted.sum(axis=0) / self._weights.sum()
        result: FloatArray = np.clip(combined, 0.0, 1.0)
        return result

    def _suppressed(self, combined: FloatArray) -> FloatArray:
        out = combined.copy()
        i, n = 0, out.shape[0]
        if self._quiet:
            stop = min(self._quiet, n)
            out[:stop] = 0.0
            self._quiet -= stop
            i = stop
        if self.suppress == 0:
            return out
        while i < n:
            hits = np.flatnonzero(out[i:] >= self.threshold)
            if not hits.size:
                break
            alarm = i + int(hits[0])
            stop = min(alarm + 1 + self.suppress, n)
            out[alarm + 1:stop] = 0.0
            self._quiet = self.suppress - (stop - alarm - 1)
            i = stop
        return out

    # --- the protocol ------------------------------------------------------------------------

    def _score_finite(self, x: FloatArray) -> FloatArray:
        inputs = self._smoothed_batch(x)
        member_scores = np.vstack([
            np.asarray(det.score(inputs[spec["smooth"]]), dtype=np.float64)
            for spec, det in zip(self._specs, self._detectors, strict=True)
        ])
        return self._suppressed(self._combined(member_scores))

    def _update_finite(self, x: float) -> float:
        inputs = self._smoothed_one(x)
        member_scores = np.array([[det.update(inputs[spec["smooth"]])]
                                  for spec, det in zip(self._specs, self._detectors, strict=True)], dtype=np.float64)
        return float(self._suppressed(self._combined(member_scores))[0])

    def fit(self, history: Any) -> EnsembleDetector:
        """Learn ``history`` through every member (its scores are dropped, suppression reset)."""
        self.score(history)
        self._quiet = 0
        return self
