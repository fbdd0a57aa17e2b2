"""The alarm options every detector shares: input smoothing and one decision per incident.

* ``smooth``: :class:`TrailingMean`, a causal moving average of the input, so sustained changes
  stand out and lone noisy points fade.
* ``refractory``: :class:`Refractory`, after a positive decision the next points are not
  decided positive again. It mutes *decisions*, never scores: a sustained shift keeps scoring
  high for as long as it lasts (dashboards and root-cause ranking read the scores), while the
  operator is paged once.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from .params import FloatArray

__all__ = ["BoolArray", "Refractory", "TrailingMean"]

BoolArray = npt.NDArray[np.bool_]


class TrailingMean:
    """Causal moving average: each finite value becomes the mean of the last ``points`` finite
    values (itself included; fewer at the start). Non-finite values pass through as NaN and are
    not remembered, so a gap neither resets nor enters the average.

    A level shift of ``d`` standard deviations of white noise becomes ``d * sqrt(points)``
    standard deviations of the averaged noise once the window is full, while a single-point blip
    of ``d`` becomes ``d / sqrt(points)``: sustained changes stand out, lone noisy points fade.
    Batch and streaming agree to rounding (a few ulps): streaming sums with ``math.fsum``, batch
    with numpy row sums.

    Examples:
        >>> TrailingMean(3).batch(np.array([3.0, np.nan, 6.0, 9.0, 0.0])).tolist()
        [3.0, nan, 4.5, 6.0, 5.0]
    """

    __slots__ = ("points", "_recent")

    def __init__(self, points: int) -> None:
        self.points = points
        self._recent: list[float] = []  # the last <= points finite inputs, oldest first

    def one(self, x: float) -> float:
        """The average after ``x`` (NaN if ``x`` is not finite)."""
        if not math.isfinite(x):
            return math.nan
        recent = self._recent
        recent.append(x)
        if len(recent) > self.points:
            del recent[0]
        return math.fsum(recent) / len(recent)

    def batch(self, values: FloatArray) -> FloatArray:
        """Vectorised twin of :meth:`one` over ``values``; advances the state past them."""
        mask = np.isfinite(values)
        xs = values if mask.all() else values[mask]
        k = self.points
        ext = np.concatenate([np.asarray(self._recent, dtype=np.float64), xs])
        start = len(self._recent)
        means = np.empty(xs.size, dtype=np.float64)
        full = max(start, k - 1)  # first index of ext with k values up to it
        for i in range(start, min(full, ext.size)):  # the first k - 1 values ever: partial means
            means[i - start] = math.fsum(ext[: i + 1].tolist()) / (i + 1)
        if full < ext.size:
            means[full - start:] = sliding_window_view(ext[full - k + 1:], k).sum(axis=1) / k
        self._recent = ext[-k:].tolist()
        if xs is values:
            return means
        out = np.full(values.shape[0], np.nan)
        out[mask] = means
        return out


class Refractory:
    """One alarm per incident: after a positive decision, the next ``points`` points (gaps
    included) are decided negative, whatever their score.

    An operator wants one page per incident, not one per point of it; NAB counts only the first
    detection in a window and charges every extra alarm outside it. The cost: a second incident
    starting within ``points`` of the first alarm is not reported.

    Examples:
        >>> Refractory(2).batch(np.array([True, True, True, False, True])).tolist()
        [True, False, False, False, True]
    """

    __slots__ = ("points", "_left")

    def __init__(self, points: int) -> None:
        self.points = points
        self._left = 0  # points still muted after the last alarm

    def reset(self) -> None:
        """Forget a running refractory period."""
        self._left = 0

    def one(self, decision: bool) -> bool:
        """The decision to report for the next point."""
        if self._left:
            self._left -= 1
            return False
        if decision:
            self._left = self.points
        return decision

    def batch(self, decisions: BoolArray) -> BoolArray:
        """Vectorised twin of :meth:`one` (overwrites and returns ``decisions``)."""
        n = decisions.shape[0]
        i = min(self._left, n)
        decisions[:i] = False
        self._left -= i
        hits = np.flatnonzero(decisions[i:]) + i  # candidate alarms, before muting
        j = 0
        while j < hits.size:
            alarm = int(hits[j])
            stop = min(alarm + 1 + self.points, n)
            decisions[alarm + 1: stop] = False
            self._left = self.points - (stop - alarm - 1)
            j = int(np.searchsorted(hits, stop))  # the next candidate past the muted stretch
        return decisions
