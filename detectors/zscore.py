"""Sliding-window z-score: how far a point lies from the points just before it.

A composition of strategies (:mod:`detectors.windows`): the reference window is
:class:`~detectors.windows.MeanStdWindow` (mean / std, O(1) a point) or, with ``robust``,
:class:`~detectors.windows.MedianMadWindow` (median / MAD); with ``seasonal_period``, a
:class:`~detectors.windows.SeasonalDifference` first subtracts the usual value at that phase.

Calibration: the window strategies return the deviation in normal units (a Student t against
``n`` points mapped to the normal deviate of the same tail probability), and
:class:`~detectors.calibration.GaussianTail` makes it ``1 - P(|Z| >= |z|)``, so on Gaussian
noise ``P(score >= 0.999) ~ 0.1 %`` whatever the window; ties at the top are broken by ``|z|``.
"""

from __future__ import annotations

import math

import numpy as np

from aiops.errors import DetectorError

from .base import BaseDetector, FloatArray
from .calibration import GaussianTail
from .params import check_float, check_int, check_optional_int
from .registry import register
from .windows import MeanStdWindow, MedianMadWindow, SeasonalDifference

__all__ = ["ZScoreDetector"]


@register
class ZScoreDetector(BaseDetector):
    """Sliding-window z-score over the last ``window`` finite points, optionally seasonal.

    Args:
        window: points in the reference window (>= 3), or a duration (``"1d"``) converted with
            the series' sampling interval by replay and the live agent.
        threshold: score at or above which a point is an anomaly (0.999 ~ 3.3 sigma).
        min_periods: finite points needed before scoring (default ``window``); earlier
            points score 0.0.
        robust: median / MAD instead of mean / std (ignores outliers in the window; slower).
        seasonal_period: if set, first subtract the mean (median if robust) of the values at
            the same phase of the previous ``seasons`` periods (``seasonal_period`` points apart)
            and z-score what is left.
        seasons: how many previous periods form the seasonal baseline.
        smooth: score the trailing mean of the last ``smooth`` finite values instead of the raw
            value (1: off). Sustained shifts grow by ``sqrt(smooth)``, single-point blips shrink.
        refractory: points after a positive decision that are not decided positive (0: off),
            so that one incident raises one alarm; scores are not changed.

    Examples:
        >>> det = ZScoreDetector(window=20)
        >>> x = np.sin(np.arange(100) / 3.0)
        >>> x[80] = 8.0
        >>> s = det.score(x)
        >>> bool(s[80] >= det.threshold), bool((s[:80] < det.threshold).all())
        (True, True)
    """

    name = "zscore"
    positional = True  # the seasonal difference counts gaps as positions
    calibrator_ = GaussianTail()

    def __init__(self, window: int = 30, threshold: float = 0.999, min_periods: int | None = None,
                 robust: bool = False, seasonal_period: int | None = None, seasons: int = 3,
                 smooth: int = 1, refractory: int = 0) -> None:
        self.window = check_int(self.name, "window", window, 3)
        self.threshold = check_float(self.name, "threshold", threshold, 0.0, 1.0)
        self.min_periods = check_optional_int(self.name, "min_periods", min_periods, 3)
        if self.min_periods is not None and self.min_periods > window:
            raise DetectorError(f"zscore: min_periods must be <= window ({window}), got: {min_periods!r}")
        if not isinstance(robust, (bool, np.bool_)):
            raise DetectorError(f"zscore: robust must be true or false, got: {robust!r}")
        self.robust = bool(robust)
        self.seasonal_period = check_optional_int(self.name, "seasonal_period", seasonal_period, 1)
        self.seasons = check_int(self.name, "seasons", seasons, 1)
        self._init_alarm_options(smooth, refractory)
        strategy = MedianMadWindow if self.robust else MeanStdWindow
        self._win = strategy(self.window, self.min_periods or self.window)
        self._deseason = (SeasonalDifference(self.seasonal_period, self.seasons,
                                             "median" if self.robust else "mean")
                          if self.seasonal_period else None)

    @property
    def warmup_points(self) -> int:
        return (self.min_periods or self.window) + (self.seasonal_period or 0)

    def _reset(self) -> None:
        self._win.reset()
        if self._deseason is not None:
            self._deseason.reset()

    def _raw_one(self, x: float) -> float:
        if self._deseason is not None:
            x = self._deseason.one(x)
        return self._win.one(x) if math.isfinite(x) else math.nan

    def _raw_batch(self, x: FloatArray) -> FloatArray:
        d = self._deseason.batch(x) if self._deseason is not None else x
        mask = np.isfinite(d)
        if mask.all():  # the common case: no copy, no masked assignment
            return self._win.batch(d)
        out = np.full(x.shape[0], np.nan)
        if mask.any():
            out[mask] = self._win.batch(d[mask])
        return out
