"""Ensemble: several detectors' calibrated scores combined into one, with alarm suppression.

Each member is a registered detector (built through :mod:`detectors.registry`), optionally fed
a causal moving average of the last ``smooth`` values instead of the raw values (a level
shift of ``d`` sigma then shows as ``d * sqrt(smooth)`` on white noise, so sustained changes are
found earlier and single noisy points less often). A member's calibrated score ``s`` (``1 - s`` is
about the probability of a point that unusual under normal data) becomes a *surprise*
``-log10(1 - s)``, capped at ``cap`` decimal digits and divided by ``cap``; the ensemble combines the
members' surprises by weighted ``max`` or weighted ``mean``.

With ``rank_window`` > 0 (the default) the combined surprise is then ranked among the series'
own last ``rank_window`` surprises (:class:`~detectors.calibration.RecentRank`): the score is the
share of them it exceeds, so ``0.99`` means "more surprising than 99 % of this series' recent
points" on a heavy-tailed series and on a quiet one alike. A threshold on the raw surprise does
not transfer between such series: on NAB, held out by category, the threshold chosen on the other
five categories missed most of realKnownCause's windows (NAB 19.5; leave one category out 54.4
overall), where the rank's threshold transfers (``benchmarks/detect_quality.py``;
docs/detectors/ensemble.md). With ``rank_window=0`` the score is the combined surprise itself,
linear in digits: 0.5 with ``cap=12`` means "as unusual as a one in a million point" for the
most (``max``) or the average (``mean``) member. After an alarm (score at or above
``threshold``) the next ``suppress`` points are not decided anomalous (the shared refractory of
:mod:`detectors.alarms`; scores keep their values), as an operator wants one alert per incident
rather than one per point; the NAB benchmark rewards the same (later alarms in a window earn
nothing, alarms just after it cost).

Batch and streaming agree because every member's do, smoothing uses exactly rounded sums
the same trailing means (:class:`~detectors.alarms.TrailingMean`) on both paths, and the
combination and suppression are the same per-point code.

Examples:
    >>> import numpy as np
    >>> det = EnsembleDetector(members=[{"detector": "zscore", "params": {"window": 50}}], suppress=10)
    >>> x = np.random.default_rng(0).normal(size=300)
    >>> x[200:] += 6.0
    >>> s, alarms = det.detect(x)
    >>> bool(alarms[200]), bool(s[201] >= det.threshold), int(alarms[201:211].sum())
    (True, True, 0)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from aiops.detector import Detector
from aiops.errors import DetectorError

from .alarms import TrailingMean
from .base import BaseDetector, FloatArray
from .calibration import RecentRank
from .params import check_choice, check_float, check_int
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
        suppress: points after an alarm that are not decided anomalous (0 disables); scores
            are not changed.
        cap: decimal digits of surprise that map to score 1.0 (a member score of
            ``1 - 10**-cap`` or more).
        rank_window: points (or a duration) of the series' own recent surprises the score is
            ranked among (0: the surprise itself is the score).
        rank_min: surprises seen before the rank scores (earlier points score 0).
    """

    name = "ensemble"

    def __init__(self, members: Sequence[Any] | None = None, combine: str = "max", threshold: float = 0.99,
                 suppress: int = 120, cap: float = 12.0, rank_window: int = 10000, rank_min: int = 100) -> None:
        if isinstance(members, (str, Mapping)):
            raise DetectorError(f"ensemble: members must be a list, got: {members!r}")
        given = copy.deepcopy(list(members) if members is not None else list(DEFAULT_MEMBERS))
        self._specs = _normalise_members(given)
        self.members = given  # as given, so get_params() round-trips
        self.combine = check_choice(self.name, "combine", combine, ("max", "mean"))
        self.threshold = check_float(self.name, "threshold", threshold, 0.0, 1.0)
        self.suppress: int = check_int(self.name, "suppress", suppress, 0)  # not None: no allow_none
        self.cap = check_float(self.name, "cap", cap, 1.0, 15.0)
        self.rank_window = check_int(self.name, "rank_window", rank_window, 0)
        self.rank_min = check_int(self.name, "rank_min", rank_min, 1)
        self.refractory = self.suppress  # suppression is the shared refractory: on decisions, not scores
        self._reset_alarm_options()
        self._weights = np.array([m["weight"] for m in self._specs], dtype=np.float64)
        self._reset()

    @property
    def warmup_points(self) -> int:
        members = max((int(getattr(d, "warmup_points", 0)) for d in self._detectors), default=0)
        return members + (self.rank_min if self.rank_window else 0)

    def _reset(self) -> None:
        self._rank = RecentRank(self.rank_window, self.rank_min) if self.rank_window else None

        self._detectors: list[Detector] = [create(m["detector"], **m["params"]) for m in self._specs]
        # one trailing mean per smoothing width, shared by the members with the same width
        self._means = {k: TrailingMean(k) for k in {m["smooth"] for m in self._specs} if k > 1}

    # --- combination -------------------------------------------------------------------------

    def _combined(self, member_scores: FloatArray) -> FloatArray:
        """Scores in [0, 1] from member scores of shape (members, points); ranked
        (``rank_window``), the surprise is not capped (``cap`` only scales it), so the rank
        still orders points beyond ``cap`` digits."""
        floor = 10.0 ** -self.cap if self._rank is None else 1e-300
        surprise = -np.log10(np.maximum(1.0 - member_scores, floor)) / self.cap
        weighted = surprise * self._weights[:, None]
        if self.combine == "max":
            combined = weighted.max(axis=0)
        else:
            combined = weighted.sum(axis=0) / self._weights.sum()
        result: FloatArray = np.clip(combined, 0.0, 1.0 if self._rank is None else np.inf)
        return result

    # --- the protocol ------------------------------------------------------------------------

    def _scores(self, x: FloatArray) -> FloatArray:
        if self._rank is None:
            return super()._scores(x)
        return self._rank.batch(self._raw_batch(x))

    def _score_one(self, x: float) -> float:
        if self._rank is None:
            return super()._score_one(x)
        return self._rank.one(self._raw_one(x))

    def _raw_batch(self, x: FloatArray) -> FloatArray:
        inputs = {k: m.batch(x) for k, m in self._means.items()}
        inputs[1] = x
        member_scores = np.vstack([
            np.asarray(det.score(inputs[spec["smooth"]]), dtype=np.float64)
            for spec, det in zip(self._specs, self._detectors, strict=True)
        ])
        return self._combined(member_scores)

    def _raw_one(self, x: float) -> float:
        inputs = {k: m.one(x) for k, m in self._means.items()}
        inputs[1] = x
        member_scores = np.array([[det.update(inputs[spec["smooth"]])]
                                  for spec, det in zip(self._specs, self._detectors, strict=True)], dtype=np.float64)
        return float(self._combined(member_scores)[0])
