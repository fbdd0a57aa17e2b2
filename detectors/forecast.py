"""Time to limit: when will this metric cross its limit at its current trend?

A least-squares line through the last ``window`` points (positional: a NaN keeps its slot, so
a gap is time that passed) gives the level now and the slope per point; with the sampling step
``step_s`` that is a predicted time until the level reaches ``limit`` going ``direction``.
The score rises from 0, when the crossing is ``horizon_s`` or more away, to 1 when it is
``alarm_fraction * horizon_s`` or less away (1 also when the level is already past the limit).

Calibration: this score is not a false-alarm probability like the others' but a fixed map of
the predicted time to limit, so the default threshold 0.99 means "crossing predicted within
about ``alarm_fraction * horizon_s``" on any series.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from aiops.errors import DetectorError

from .base import BaseDetector, FloatArray
from .params import as_values, check_choice, check_float, check_int, check_optional_int
from .registry import register

__all__ = ["ForecastDetector"]

_ROWS = 65536


@register
class ForecastDetector(BaseDetector):
    """Linear trend on a trailing window, scored by predicted time to ``limit``.

    Args:
        limit: the value that must not be crossed (required), in the metric's unit.
        direction: ``"up"`` (alarm when rising towards the limit) or ``"down"``.
        horizon_s: seconds ahead that matter; a crossing further away scores 0.
        step_s: seconds between two points of the series.
        window: points in the trend fit.
        threshold: score at or above which a point is an anomaly.
        alarm_fraction: the score is 1 when the crossing is within this fraction of horizon_s.
        min_points: finite points the fit needs in its window (default: half the window, >= 3).

    Examples:
        >>> det = ForecastDetector(limit=100.0, horizon_s=3600, step_s=60, window=10)
        >>> s = det.score(np.arange(0.0, 90.0, 1.0))  # +1 per minute, 100 is 10 minutes away
        >>> round(det.time_to_limit_s()), float(s[-1])
        (660, 1.0)
    """

    name = "forecast"

    def __init__(self, limit: float | None = None, direction: str = "up", horizon_s: float = 3600.0,
                 step_s: float = 60.0, window: int = 30, threshold: float = 0.99, alarm_fraction: float = 0.5,
                 min_points: int | None = None) -> None:
        if limit is None:
            raise DetectorError("forecast: limit is required (the value the metric must not cross), got: None")
        self.limit = check_float(self.name, "limit", limit, -math.inf, math.inf, low_open=True, high_open=True)
        self.direction = check_choice(self.name, "direction", direction, ["up", "down"])
        self.horizon_s = check_float(self.name, "horizon_s", horizon_s, 0.0, math.inf, low_open=True, high_open=True)
        self.step_s = check_float(self.name, "step_s", step_s, 0.0, math.inf, low_open=True, high_open=True)
        self.window = check_int(self.name, "window", window, 2)
        self.threshold = check_float(self.name, "threshold", threshold, 0.0, 1.0)
        self.alarm_fraction = check_float(self.name, "alarm_fraction", alarm_fraction, 0.0, 1.0, high_open=True)
        self.min_points = check_optional_int(self.name, "min_points", min_points, 2)
        w = int(window)
        if min_points is not None and min_points > w:
            raise DetectorError(f"forecast: min_points must be <= window ({w}), got: {min_points!r}")
        self._w = w
        self._min = int(min_points) if min_points is not None else max(3, w // 2)
        self._min = min(self._min, w)
        self._u = np.arange(-w + 1, 1, dtype=np.float64)  # position relative to now
        self._reset()

    def _reset(self) -> None:
        self._hist = np.full(self._w, np.nan)  # the last `window` raw values, oldest first

    positional = True  # a gap is time that passed: it keeps its slot in the trend window

    @property
    def warmup_points(self) -> int:
        return self._min

    # --- model hook ----------------------------------------------------------------------

    def _raw_batch(self, x: FloatArray) -> FloatArray:
        """Scores by predicted time to limit (already in [0, 1]: the calibration is the identity)."""
        ext = np.concatenate([self._hist, x])
        ttl = self._ttl(ext)
        self._hist = ext[-self._w:]
        return self._score_from_ttl(ttl)

    def time_to_limit_s(self, values: Any = None) -> float:
        """Predicted seconds until the limit is crossed (0: already past; inf: not heading there).

        Args:
            values: a series ending now (only its last ``window`` points matter); None: the
                detector's own state after the points it has seen. The state is not changed.
        """
        if values is None:
            win = self._hist
        else:
            v = as_values(values, self.name)
            win = np.concatenate([np.full(self._w, np.nan), v])[-self._w:]
        return float(self._ttl_rows(win[None, :])[0])

    def time_to_limit_series_s(self, values: Any) -> FloatArray:
        """Predicted seconds to the limit at every point of ``values`` (causal; state unchanged)."""
        v = as_values(values, self.name)
        return self._ttl(np.concatenate([self._hist, v])) if v.size else np.zeros(0)

    # --- internals -------------------------------------------------------------------------

    def _score_from_ttl(self, ttl: FloatArray) -> FloatArray:
        h = float(self.horizon_s)
        span = (1.0 - float(self.alarm_fraction)) * h
        with np.errstate(invalid="ignore"):
            s = (h - ttl) / span
        out: FloatArray = np.clip(np.nan_to_num(s, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
        return out

    def _ttl(self, ext: FloatArray) -> FloatArray:
        """Time to limit at each point after the first ``window`` of ``ext`` (the history),
        each fitted on the ``window`` points ending at it."""
        w = self._w
        view = sliding_window_view(ext, w)[1:]
        out = np.empty(view.shape[0])
        for lo in range(0, view.shape[0], _ROWS):
            out[lo: lo + _ROWS] = self._ttl_rows(view[lo: lo + _ROWS])
        return out

    def _ttl_rows(self, win: FloatArray) -> FloatArray:
        u = self._u
        mask = np.isfinite(win)
        m = mask.astype(np.float64)
        n = m.sum(axis=1)
        with np.errstate(all="ignore"):
            y0 = np.where(mask, win, 0.0)
            ref = y0.sum(axis=1) / n  # centre y: keeps the sums small whatever the level
            yc = np.where(mask, win - ref[:, None], 0.0)
            su = (m * u).sum(axis=1)
            suu = (m * (u * u)).sum(axis=1)
            sy = yc.sum(axis=1)
            suy = (yc * u).sum(axis=1)
            den = n * suu - su * su
            slope = (n * suy - su * sy) / den
            level = ref + (sy - slope * su) / n  # the line's value at u = 0 (now)
            if self.direction == "up":
                gap, rate = self.limit - level, slope
            else:
                gap, rate = level - self.limit, -slope
            ttl = np.where(gap <= 0.0, 0.0, np.where(rate > 0.0, gap / rate * self.step_s, np.inf))
        ttl[(n < self._min) | ~np.isfinite(ttl) & ~np.isinf(ttl)] = np.inf
        ttl[~(den > 0.0)] = np.inf
        return ttl
