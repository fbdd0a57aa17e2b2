"""Seasonal residuals: a point far from "the usual value at this time of day (or week)".

At each (re)fit, the last ``train_periods`` periods give a seasonal profile (one value per
phase): by default the per-phase median of the values minus their period's median, robust to
anomalies inside the training data; with ``method="stl"``, the seasonal component of
statsmodels' robust STL (Cleveland et al., "STL: A Seasonal-Trend Decomposition Procedure
Based on Loess", 1990), better for a slowly changing shape but much slower on long periods.
Between refits the level follows the data as Holt-Winters' level does (exponential smoothing
with ``alpha`` of the deseasonalised values) while the profile stays fixed, so the prediction
for point t uses only points before t. Phase is positional: a NaN keeps its slot.

Calibration: the absolute one-step residuals of the fitted profile and level over the training
window fit a :class:`~detectors.calibration.TailCalibrator`, so a score of 0.99 is exceeded by about
1 % of points like the training window.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.signal import lfilter

from .base import BaseDetector, FloatArray
from .calibration import Identity, TailCalibrator
from .params import check_choice, check_float, check_int, check_optional_int
from .refit import Tail
from .registry import register

__all__ = ["SeasonalDetector"]


@register
class SeasonalDetector(BaseDetector):
    """Residual from a seasonal profile plus a smoothed level, refitted every period.

    Args:
        period: points per season (288 = a day at a 5-minute step; 1440 = a day of minutes).
        threshold: score at or above which a point is an anomaly.
        train_periods: periods a (re)fit learns from (>= 2); the first ``train_periods *
            period`` points score 0.0.
        refit_every: points between refits (None: every ``period``; 0: never).
        alpha: level smoothing in (0, 1]: how fast the level follows the data.
        method: ``"median"`` (robust per-phase medians, fast) or ``"stl"`` (statsmodels STL).
        smooth: score the trailing mean of the last ``smooth`` finite values (1: off); see
            :class:`detectors.alarms.TrailingMean`.
        refractory: points after a positive decision that are not decided positive (0: off;
            scores are not changed); see :class:`detectors.alarms.Refractory`.

    Examples:
        >>> t = np.arange(24 * 12)
        >>> x = 10 + 3 * np.sin(2 * np.pi * t / 24) + np.random.default_rng(0).normal(0, 0.2, t.size)
        >>> x[250] += 3.0  # ordinary in range, unusual for its hour
        >>> s = SeasonalDetector(period=24, train_periods=3).score(x)
        >>> bool(s[250] >= 0.999), float(s[:72].max())
        (True, 0.0)
    """

    name = "seasonal"

    def __init__(self, period: int = 288, threshold: float = 0.999, train_periods: int = 3,
                 refit_every: int | None = None, alpha: float = 0.1, method: str = "median",
                 smooth: int = 1, refractory: int = 0) -> None:
        self.period = check_int(self.name, "period", period, 2)
        self.threshold = check_float(self.name, "threshold", threshold, 0.0, 1.0)
        self.train_periods = check_int(self.name, "train_periods", train_periods, 2)
        self.refit_every = check_optional_int(self.name, "refit_every", refit_every, 0)
        self.alpha = check_float(self.name, "alpha", alpha, 0.0, 1.0, low_open=True)
        self.method = check_choice(self.name, "method", method, ["median", "stl"])
        self._init_alarm_options(smooth, refractory)
        self._p = int(period)
        self._window = self._p * int(train_periods)
        self._every = self._p if refit_every is None else int(refit_every)
        self._reset()

    positional = True  # phase is positional: a gap keeps its slot

    @property
    def warmup_points(self) -> int:
        return self._window

    def _reset(self) -> None:
        self._tail = Tail(self._window, 1)
        self._count = 0  # positions since the last (attempted) fit
        self._next_fit: float = self._window
        self._profile: FloatArray | None = None  # by phase; phase 0 = first point after the fit
        self._phase = 0
        self._level = 0.0
        self._fit_level = 0.0  # the level at the last fit: scale of the rounding allowance
        self.calibrator_ = Identity()

    # --- pipeline hooks ----------------------------------------------------------------------

    def _learn(self, x: FloatArray) -> None:
        """``fit``: learn ``history`` (positional, NaN kept) and fit on its last ``train_periods`` periods."""
        self._tail.extend(x.reshape(-1, 1))
        self._count = x.size
        if x.size >= self._window:
            self._refit()

    def _scores(self, x: FloatArray) -> FloatArray:
        """Scores per position, cut at refit boundaries (each segment: the model of that moment)."""
        out = np.zeros(x.size)
        p = 0
        while p < x.size:
            stop = x.size if math.isinf(self._next_fit) else min(x.size, p + int(self._next_fit) - self._count)
            seg = x[p:stop]
            if self._profile is not None:
                out[p:stop] = self.calibrator_.transform(self._raw_segment(seg))
            self._tail.extend(seg.reshape(-1, 1))
            self._count += seg.size
            if self._count >= self._next_fit:
                self._refit()
            p = stop
        return out

    def _score_one(self, x: float) -> float:
        return float(self._scores(np.array([x]))[0])

    # --- internals -------------------------------------------------------------------------

    def _raw_segment(self, seg: FloatArray) -> FloatArray:
        assert self._profile is not None
        phases = (self._phase + np.arange(seg.size)) % self._p
        self._phase = int((self._phase + seg.size) % self._p)
        resid, self._level = _residuals(seg - self._profile[phases], self._level, float(self.alpha))
        out = np.full(seg.size, np.nan)
        ok = np.isfinite(resid)
        out[ok] = _raw(resid[ok], self._fit_level)
        return out

    def _refit(self) -> None:
        self._count = 0
        self._next_fit = self._every if self._every else math.inf
        x = self._tail.last(self._window)[:, 0]
        x = x[x.size % self._p:]  # whole periods; the last column is the phase just before now
        finite = np.isfinite(x)
        x = np.where(finite, x, np.nan)  # +-Inf is a gap too
        if x.size < 2 * self._p or finite.sum() < max(x.size // 2, 2 * 3):
            return  # too little data: keep the model we have (or none) until the next refit
        if self.method == "stl":
            profile = self._profile_stl(x, finite)
            profile -= profile.mean()
            # In-sample: the profile has seen these points, so the residuals run small.
            held_out = np.tile(profile, x.size // self._p)
        else:
            profile, held_out = _profile_median(x, self._p)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN first period
            level0 = float(np.nanmedian((x - held_out)[: self._p]))
            if not math.isfinite(level0):
                level0 = float(np.nanmedian(x - held_out))
        resid, _ = _residuals(x - held_out, level0, float(self.alpha))
        burn = resid[self._p:]  # the first period only settles the level
        _, level = _residuals(x - np.tile(profile, x.size // self._p), level0, float(self.alpha))
        self.calibrator_ = TailCalibrator.fit(_raw(burn[np.isfinite(burn)], level))
        self._profile, self._level, self._fit_level, self._phase = profile, level, level, 0

    def _profile_stl(self, x: FloatArray, finite: FloatArray) -> FloatArray:
        from statsmodels.tsa.seasonal import STL  # slow to import; only this method needs it

        idx = np.arange(x.size)
        filled = np.interp(idx, idx[finite], x[finite])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seasonal = np.asarray(STL(filled, period=self._p, robust=True).fit().seasonal)
        out: FloatArray = seasonal[-self._p:].copy()
        return out


def _profile_median(x: FloatArray, period: int) -> tuple[FloatArray, FloatArray]:
    """Per-phase median of the values minus their period's median (NaN-aware; unseen phase: 0).

    Returns the profile from all periods and, for calibration, the profile each period gets
    from the other periods only (leave one period out), laid end to end: residuals against it
    are honest out-of-sample errors (slightly pessimistic: one period fewer).
    """
    rows = x.reshape(-1, period)
    k = rows.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows / phases
        dev = rows - np.nanmedian(rows, axis=1, keepdims=True)
        profile = _centred(np.nanmedian(dev, axis=0))
        held = [_centred(np.nanmedian(np.delete(dev, m, axis=0), axis=0)) for m in range(k)]
    return profile, np.concatenate(held)


def _centred(profile: FloatArray) -> FloatArray:
    out: FloatArray = np.where(np.isfinite(profile), profile, 0.0)
    centred: FloatArray = out - out.mean()
    return centred


def _raw(resid: FloatArray, level: float) -> FloatArray:
    """Absolute residual, less a rounding allowance: a flat line's 1e-15 wiggles are exactly 0."""
    out: FloatArray = np.maximum(np.abs(resid) - 1e-9 * abs(level), 0.0)
    return out


def _residuals(deseason: FloatArray, level: float, alpha: float) -> tuple[FloatArray, float]:
    """One-step residuals against an exponentially smoothed level (NaN points skip the update).

    ``lfilter`` runs ``L = alpha * d + (1 - alpha) * L`` over the finite points; a one-point
    call is the streaming path with the same arithmetic.
    """
    resid = np.full(deseason.size, np.nan)
    ok = np.isfinite(deseason)
    d = deseason[ok]
    if d.size == 0:
        return resid, level
    levels = lfilter([alpha], [1.0, alpha - 1.0], d, zi=[(1.0 - alpha) * level])[0]
    before = np.concatenate([[level], levels[:-1]])
    resid[ok] = d - before
    return resid, float(levels[-1])
