"""Learned normal profile: how far a point lies from what this series normally looks like.

The profile is a level and a scale that adapt slowly (exponentially weighted, half-life
``halflife`` points or a duration). ``fit`` learns a history as normal (replay's ``--train``, the
live agent's stored history); from the stream, a point further than ``clip`` scales from the
level moves the level only as a point at ``clip`` would (Huber's M-estimator step) and leaves
the scale alone, so an incident neither drags the level along nor widens the scale: a sustained shift keeps
scoring high for as long as it lasts (hours on a one-minute series), where a sliding window
absorbs it after a few points, and a lasting change of level (a deploy) is still learned, at
``clip`` scales a point times the learning rate.

With ``smooth`` > 1 the trailing mean of the last ``smooth`` values is scored (sustained shifts
stand out) and, with ``score_point`` (the default), the raw point too, against its own scale: the
larger deviate counts, its tail probability doubled (Bonferroni), so a lone spike keeps its full
size and the largest per-column score of an incident names the metric that moved most at either
time scale (on SMD: HitRate@150 % 0.858 -> 0.874, docs/detectors/profile.md).

The state is a handful of floats and the last ``smooth`` values (no buffer): about 2 KiB of
memory and about a microsecond per update, the fleet-scale default of the live agent.

Calibration: :class:`~detectors.calibration.GaussianTail` on the deviation in scales (a
Gaussian series scores >= 0.999 on about 0.1 % of points; ties at the top broken by the
deviation, so scores of different metrics rank like their deviations). With ``calibrate_min``
> 0, ``fit`` on that many points replaces it by a :class:`~detectors.calibration.TailCalibrator`
of the history's own deviations; off by default: on SMD's development machines it lowered the
point-wise F1 from 0.37 to 0.16 on machine-1-2 (spiky metrics' own tails hid the incidents).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import erfinv

from aiops.errors import DetectorError

from .base import BaseDetector, FloatArray
from .calibration import GaussianTail, TailCalibrator, t_to_z_consts, t_to_z_one
from .params import check_float, check_int
from .registry import register

__all__ = ["ProfileDetector"]

_FLOOR_REL = 1e-6  # a flat history's scale counts as 1e-6 * |level|: rounding never scores
_FLOOR_ABS = 1e-300


@register
class ProfileDetector(BaseDetector):
    """Distance from a slowly adapting, winsorised level and scale (see the module docstring).

    Args:
        halflife: points (or a duration such as ``"2d"``) after which the profile has half
            forgotten a point.
        threshold: score at or above which a point is an anomaly.
        min_periods: points learned before scoring starts (when not fitted on a history).
        clip: deviations beyond this many scales are learned as if they were this far.
        calibrate_min: history points ``fit`` needs to calibrate on the series' own deviations
            (0: never; the default, chosen on SMD, where the series' own tails hid the incidents).
        smooth: score the trailing mean of the last ``smooth`` finite values (1: off; default 5,
            chosen leave one machine out on SMD: point-wise F1 0.42 -> 0.47).
        refractory: points after a positive decision that are not decided positive (0: off).
        score_point: with ``smooth`` > 1, also score the raw point against its own scale.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> det = ProfileDetector(halflife=500).fit(rng.normal(10, 1, 2000))
        >>> x = rng.normal(10, 1, 400)
        >>> x[100:300] += 6.0  # a sustained shift of six standard deviations
        >>> s = det.score(x)
        >>> bool((s[100:300] >= 0.999).mean() > 0.9), bool((s[:100] < 0.999).all())
        (True, True)
    """

    name = "profile"
    calibrator_: GaussianTail | TailCalibrator = GaussianTail()

    def __init__(self, halflife: int = 20000, threshold: float = 0.999, min_periods: int = 30, clip: float = 3.0,
                 calibrate_min: int = 0, smooth: int = 5, refractory: int = 0, score_point: bool = True) -> None:
        self.halflife = check_int(self.name, "halflife", halflife, 1)
        self.threshold = check_float(self.name, "threshold", threshold, 0.0, 1.0)
        self.min_periods = check_int(self.name, "min_periods", min_periods, 2)
        self.clip = check_float(self.name, "clip", clip, 0.0, math.inf, low_open=True)
        self.calibrate_min = check_int(self.name, "calibrate_min", calibrate_min, 0)
        self._init_alarm_options(smooth, refractory)
        if not isinstance(score_point, bool):
            raise DetectorError(f"{self.name}: score_point must be true or false, got: {score_point!r}")
        self.score_point = score_point
        self._two = score_point and self.smooth > 1  # the point itself is scored beside its trailing mean
        self._alpha = 1.0 - 0.5 ** (1.0 / self.halflife)
        self._n_eff = max((2.0 - self._alpha) / self._alpha, 3.0)
        # Smoothed input is autocorrelated: a variance estimated from n trailing means of k points
        # has the degrees of freedom of n / ((2k^2 + 1) / 3k) independent points (the sum of the
        # squared autocorrelations of a k-point moving average). Counting every point put 0.106 %
        # of a Gaussian series' points at >= 0.999 while the profile learns (halflife 300;
        # 0.094 % now), tests/detectors/test_calibration_ranking.py.
        k = float(self.smooth)
        self._dof_per_point = 3.0 * k / (2.0 * k * k + 1.0)
        # once n_eff points were learned the t's dof stop changing: its constants, computed once
        dof = self._n_eff * self._dof_per_point - 1.0
        self._steady_from = max(self._n_eff, float(self.min_periods))
        self._steady = (math.sqrt(1.0 + 1.0 / self._n_eff), t_to_z_consts(dof if dof > 2.0 else 2.0),
                        t_to_z_consts(self._n_eff - 1.0))
        # From the stream, deviations beyond `clip` leave the scale alone, so it estimates the
        # variance of a Gaussian truncated at `clip`: E[Z^2; |Z| <= c] / P(|Z| <= c); undo that.
        c = self.clip
        inside = math.erf(c / math.sqrt(2.0))
        self._consistency = inside / (inside - 2.0 * c * math.exp(-c * c / 2.0) / math.sqrt(2.0 * math.pi))
        self._fitting = False
        self._reset()

    @property
    def warmup_points(self) -> int:
        return self.min_periods

    def _reset(self) -> None:
        self._z_thr: float | None = None
        self._n = 0
        self._level = 0.0
        self._var = 0.0
        self._var_pt = 0.0  # the raw points' deviations from the level (score_point)
        self._point = math.nan  # the raw value behind the smoothed one being scored (streaming)
        self._points: FloatArray | None = None  # the same for a batch (set by _smoothed)
        self.calibrator_ = GaussianTail(tests=2 if self._two else 1)

    def expected_band(self) -> tuple[float, float] | None:
        """The range the next raw value is expected in: the values whose score (after smoothing)
        stays below ``threshold`` (None while warming up)."""
        if self._n < self.min_periods or not isinstance(self.calibrator_, GaussianTail):
            return None
        var = self._var
        scale = max(math.sqrt(var) if var > 0.0 else 0.0, _FLOOR_REL * abs(self._level) + _FLOOR_ABS)
        if self._z_thr is None:
            # the deviate whose (Bonferroni-multiplied) two-sided tail is 1 - threshold
            tail = (1.0 - min(self.threshold, 1.0 - 1e-15)) / (2.0 if self._two else 1.0)
            self._z_thr = float(math.sqrt(2.0) * erfinv(1.0 - tail))
        half = self._z_thr * scale
        lo, hi = self._level - half, self._level + half
        sm = self._smoother
        if sm is None:
            return lo, hi
        # the model sees the trailing mean of the new value and the last smooth - 1 values:
        # the band of the raw value is the band of that mean, solved for the new value
        prev = sm._recent[-(sm.points - 1):] if sm.points > 1 else []
        k = len(prev) + 1
        rest = math.fsum(prev)
        lo, hi = lo * k - rest, hi * k - rest
        if self._two:  # and the raw value's own band
            var_pt = self._var_pt
            half_pt = self._z_thr * max(math.sqrt(var_pt) if var_pt > 0.0 else 0.0,
                                        _FLOOR_REL * abs(self._level) + _FLOOR_ABS)
            lo, hi = max(lo, self._level - half_pt), min(hi, self._level + half_pt)
            if lo > hi:  # the two bands do not overlap (the recent values are far out): the raw one
                lo, hi = self._level - half_pt, self._level + half_pt
        return lo, hi

    def detect_one(self, value: Any) -> tuple[float, bool]:
        """:meth:`BaseDetector.detect_one`, the same steps, inlined for a finite value (the live
        agent's hot path: one call per sample of every series)."""
        try:
            x = float(value)
        except (TypeError, ValueError):
            return super().detect_one(value)  # which names the bad value
        if x - x != 0.0:  # NaN or +-Inf: the base class's rule
            return super().detect_one(value)
        self._point = x
        sm = self._smoother
        score = self.calibrator_.transform_one(self._step(sm.one(x) if sm is not None else x, x))
        if not score >= 0.0:
            score = 0.0
        flag = score >= self.threshold
        if self._refr is not None:
            flag = self._refr.one(flag)
        return score, flag

    def _smoothed(self, x: FloatArray) -> FloatArray:
        if self._two:
            self._points = x
        return super()._smoothed(x)

    def _learn(self, x: FloatArray) -> None:
        """``fit``: learn the history as normal (no winsorising), then calibrate on its deviations
        if asked to."""
        self._fitting = True
        try:
            z = self._raw_batch(x)
        finally:
            self._fitting = False
        z = z[np.isfinite(z)]
        if self.calibrate_min and z.size >= self.calibrate_min:
            self.calibrator_ = TailCalibrator.fit(z)

    def _raw_one(self, x: float) -> float:
        return self._step(x, self._point)

    def _step(self, x: float, point: float) -> float:
        """Score the (smoothed) value ``x`` (and, with ``score_point``, the raw ``point``
        behind it), then learn it."""
        n = self._n
        level = self._level
        var = self._var
        z = math.nan
        scale = math.sqrt(var) if var > 0.0 else 0.0
        floor = _FLOOR_REL * abs(level) + _FLOOR_ABS
        if scale < floor:
            scale = floor
        dev = x - level
        two = self._two
        if two:
            var_pt = self._var_pt
            scale_pt = math.sqrt(var_pt) if var_pt > 0.0 else 0.0
            if scale_pt < floor:
                scale_pt = floor
            dev_pt = point - level
        if n >= self._steady_from:  # the same arithmetic as below, with the constants computed once
            inflate, (ca, cb, cinu), (pa, pb, pinu) = self._steady
            t = abs(dev) / scale / inflate
            z = ca * math.sqrt(cb * math.log1p(t * t * cinu))
            if two:
                t = abs(dev_pt) / scale_pt / inflate
                z_pt = pa * math.sqrt(pb * math.log1p(t * t * pinu))
                if z_pt > z:
                    z = z_pt
        elif n >= self.min_periods:
            # The deviation of a new point from a level estimated from n_eff points is a
            # Student t with n_eff - 1 dof (n_eff: the weights' effective sample size),
            # returned as the normal deviate of the same tail probability.
            n_eff = n
            dof = n_eff * self._dof_per_point - 1.0
            inflate = math.sqrt(1.0 + 1.0 / n_eff)
            z = t_to_z_one(abs(dev) / scale / inflate, dof if dof > 2.0 else 2.0)
            if two:  # the larger of the two deviates (GaussianTail(tests=2) doubles its tail)
                z_pt = t_to_z_one(abs(dev_pt) / scale_pt / inflate, n_eff - 1.0)
                if z_pt > z:
                    z = z_pt
        # learn: expanding mean until 1 / alpha points, then the exponential weights
        n += 1
        a = 1.0 / n if n * self._alpha < 1.0 else self._alpha
        if two and n > 1:  # the raw points' scale, learned (and winsorised) as the trailing mean's
            lim_pt = self.clip * scale_pt
            if self._fitting or n <= self.min_periods or -lim_pt <= dev_pt <= lim_pt:
                d2 = dev_pt * dev_pt if self._fitting else dev_pt * dev_pt * self._consistency
                v = var_pt + a * (d2 - var_pt) if n > 2 else d2
                if v < math.inf:
                    self._var_pt = v
        if n == 1:
            self._level = x
        else:
            lim = self.clip * scale
            if not self._fitting and n > self.min_periods and (dev > lim or dev < -lim):
                # Streaming, beyond `clip` scales: the level moves as for a point at `clip`, the
                # scale not at all. A history given to fit() is normal by definition and learned
                # as it is.
                dev = lim if dev > 0.0 else -lim
            else:
                d2 = dev * dev if self._fitting else dev * dev * self._consistency
                v = var + a * (d2 - var) if n > 2 else d2
                if v < math.inf:
                    self._var = v
            self._level = level + a * dev
        self._n = n
        return z

    def _raw_batch(self, x: FloatArray) -> FloatArray:
        if not self._two:
            return np.fromiter(map(self._raw_one, x.tolist()), dtype=np.float64, count=x.shape[0])
        pts = self._points
        assert pts is not None  # set by _smoothed, which every batch path calls first
        if pts.shape[0] != x.shape[0]:
            pts = pts[np.isfinite(pts)]  # the model sees the finite points only, as x
        return np.fromiter(map(self._step, x.tolist(), pts.tolist()), dtype=np.float64, count=x.shape[0])
