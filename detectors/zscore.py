"""Sliding-window z-score: how far a point lies from the mean of the points just before it.

Calibration: the statistic ``t = (x - mean) / (std * sqrt(1 + 1/n))`` of a point against the
``n`` finite points before it follows a Student t with ``n - 1`` degrees of freedom when the
window is Gaussian noise; the score is ``1 - P(|T| >= |t|)`` (two-sided), so on Gaussian noise
``P(score > 0.99) ~ 1 %`` whatever the window. The robust variant uses the median and
``1.4826 * MAD`` (``1.2533 * mean absolute deviation`` when the MAD is 0) with the same map.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from aiops.errors import DetectorError

from .base import (
    BaseDetector,
    FloatArray,
    as_values,
    check_float,
    check_int,
    check_optional_int,
    t_tail_score_inplace,
    t_tail_score_one,
)
from .registry import register

__all__ = ["ZScoreDetector"]

_FLOOR_REL = 1e-6  # a flat window's std counts as 1e-6 * |mean|: rounding never scores, a real step does
_FLOOR_ABS = 1e-300
_CHUNK = 128  # outputs per row of the chunked cumulative sums (re-centred per row)
_ROBUST_ROWS = 65536


@register
class ZScoreDetector(BaseDetector):
    """Sliding-window z-score over the last ``window`` finite points, optionally seasonal.

    Args:
        window: points in the reference window (>= 3).
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
        refractory: points after a score >= ``threshold`` that score 0 (0: off), so that one
            incident raises one alarm.

    Examples:
        >>> det = ZScoreDetector(window=20)
        >>> x = np.sin(np.arange(100) / 3.0)
        >>> x[80] = 8.0
        >>> s = det.score(x)
        >>> bool(s[80] >= det.threshold), bool((s[:80] < det.threshold).all())
        (True, True)
    """

    name = "zscore"

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
        w: int = self.window
        self._w = w
        self._mp: int = self.min_periods or w
        # Per window size n: 1 / sqrt(1 + 1/n), 1 / (n - 1) and Peizer-Pratt constants for n - 1 dof.
        self._inv_infl = [0.0] + [1.0 / math.sqrt(1.0 + 1.0 / n) for n in range(1, w + 1)]
        self._inv_nm1 = [0.0, 0.0] + [1.0 / (n - 1) for n in range(2, w + 1)]
        self._reset()

    def _reset(self) -> None:
        self._buf: list[float] = []  # last <= window finite inputs; when full, _pos is the oldest
        self._pos = 0
        self._k = 0.0  # shift of the running sums (sums of x - k keep cancellation small)
        self._s1 = 0.0
        self._s2 = 0.0
        self._peak = 0.0  # largest s2 since the last rebuild: bounds the rounding error
        self._since = 0
        p = self.seasonal_period
        self._hist: list[float] = []  # last seasons * period raw values, positional (NaN kept)
        self._hpos = 0
        self._hlen = (p or 0) * self.seasons
        self._reset_alarm_options()

    def fit(self, history: Any) -> ZScoreDetector:
        """Start from a clean state and learn ``history`` (its scores are dropped)."""
        self._reset()
        self.score(history)
        if self._refr is not None:
            self._refr.reset()  # an alarm in the history does not mute the live points
        return self

    # --- streaming -----------------------------------------------------------------------

    def update(self, value: float) -> float:
        """Score one new point against the window before it, then learn it (O(1) unless robust)."""
        try:
            x = float(value)
        except (TypeError, ValueError) as exc:
            raise DetectorError(f"zscore: value must be a number, got: {value!r}") from exc
        if self._smoother is not None:
            x = self._smoother.one(x)
        if self._hlen:
            x = self._deseason_one(x)
        if self._refr is not None:
            return self._refr.one(self._one(x))
        return self._one(x)

    def _one(self, x: float) -> float:
        """Score of one (smoothed, de-seasoned) value, then learn it."""
        if not math.isfinite(x):
            return 0.0
        if self.robust:
            return self._robust_one(x)
        buf = self._buf
        n = len(buf)
        k = self._k
        score = 0.0
        if n >= self._mp:
            m = self._s1 / n
            var_num = self._s2 - self._s1 * m
            if var_num < 1e-4 * self._peak:  # cancellation ate the digits: rebuild exactly
                self._rebuild()
                k = self._k
                m = self._s1 / n
                var_num = self._s2 - self._s1 * m
            mean = k + m
            sd2 = var_num * self._inv_nm1[n]
            sd = math.sqrt(sd2) if sd2 > 0.0 else 0.0
            floor = _FLOOR_REL * abs(mean) + _FLOOR_ABS
            if sd < floor:
                sd = floor
            t = ((x - k) - m) / sd * self._inv_infl[n]
            score = t_tail_score_one(t, n - 1.0)
            if not score >= 0.0:  # overflow to NaN on absurd magnitudes
                score = 0.0
        # learn
        d = x - k
        if n < self._w:
            buf.append(x)
            if n == 0:
                self._k = x
                d = 0.0
        else:
            pos = self._pos
            old = buf[pos] - k
            buf[pos] = x
            self._pos = pos + 1 if pos + 1 < n else 0
            self._s1 -= old
            self._s2 -= old * old
        self._s1 += d
        s2 = self._s2 + d * d
        self._s2 = s2
        if s2 > self._peak:
            self._peak = s2
        self._since += 1
        if self._since >= self._w:
            self._rebuild()
        return score

    def _ordered(self) -> list[float]:
        b = self._buf
        return b[self._pos:] + b[: self._pos]

    def _rebuild(self) -> None:
        """Exact sums around the newest value; run every ``window`` points and on cancellation."""
        buf = self._buf
        self._since = 0
        if not buf:
            self._k = self._s1 = self._s2 = self._peak = 0.0
            return
        k = buf[self._pos - 1] if len(buf) == self._w else buf[-1]
        self._k = k
        self._s1 = math.fsum(v - k for v in buf)
        self._s2 = self._peak = math.fsum((v - k) * (v - k) for v in buf)

    def _robust_one(self, x: float) -> float:
        buf = self._buf
        n = len(buf)
        score = 0.0
        if n >= self._mp:
            med, sigma = _median_scale(sorted(buf))
            floor = _FLOOR_REL * abs(med) + _FLOOR_ABS
            if sigma < floor:
                sigma = floor
            score = t_tail_score_one((x - med) / sigma * self._inv_infl[n], n - 1.0)
            if not score >= 0.0:
                score = 0.0
        if n < self._w:
            buf.append(x)
        else:
            buf[self._pos] = x
            self._pos = (self._pos + 1) % n
        return score

    def _deseason_one(self, x: float) -> float:
        hist, p, hlen = self._hist, self.seasonal_period or 0, self._hlen
        h = len(hist)
        newest = (self._hpos - 1) % h if h else 0  # index of the value one step back
        refs = [hist[(newest - (j * p - 1)) % h] for j in range(1, self.seasons + 1) if j * p <= h]
        refs = [r for r in refs if math.isfinite(r)]
        if h < hlen:
            hist.append(x)
        else:
            hist[self._hpos] = x
            self._hpos = (self._hpos + 1) % hlen
        if not refs or not math.isfinite(x):
            return math.nan
        if self.robust:
            base = float(np.median(refs))
        else:
            base = math.fsum(refs) / len(refs)
        return x - base

    # --- batch -----------------------------------------------------------------------------

    def score(self, values: Any) -> FloatArray:
        """Vectorised twin of ``update`` over ``values``; advances the state past them."""
        v = as_values(values, self.name)
        v = self._smoothed(v)
        d = self._deseason_batch(v) if self._hlen else v
        mask = np.isfinite(d)
        if mask.all():  # the common case: no copy, no masked assignment
            out = self._score_finite(d) if d.size else np.zeros(0)
        else:
            out = np.zeros(v.shape[0], dtype=np.float64)
            xs = d[mask]
            if xs.size:
                out[mask] = self._score_finite(xs)
        return self._muted(out)

    def _deseason_batch(self, v: FloatArray) -> FloatArray:
        p, hlen = self.seasonal_period or 0, self._hlen
        hist = np.asarray(self._hist[self._hpos:] + self._hist[: self._hpos], dtype=np.float64)
        ext = np.concatenate([hist, v])
        h, n = hist.size, v.size
        idx = np.arange(h, h + n)
        refs = np.full((self.seasons, n), np.nan)
        for j in range(1, self.seasons + 1):
            src = idx - j * p
            ok = src >= 0
            refs[j - 1, ok] = ext[src[ok]]
        refs[~np.isfinite(refs)] = np.nan  # +-Inf references are gaps too
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": no reference yet
            base = np.nanmedian(refs, axis=0) if self.robust else _nanmean_seq(refs)
        tail = ext[-hlen:] if ext.size >= hlen else ext
        self._hist, self._hpos = tail.tolist(), 0
        result: FloatArray = v - base
        return result

    def _score_finite(self, xs: FloatArray) -> FloatArray:
        w, mp = self._w, self._mp
        buf = np.asarray(self._ordered(), dtype=np.float64)
        ext = np.concatenate([buf, xs])
        start = buf.size
        out = np.zeros(xs.size)
        # Warm-up: fewer than `window` points before (at most `window` of them).
        warm_end = min(w, ext.size)
        for i in range(start, warm_end):
            if i >= mp:
                out[i - start] = self._warm_score(ext[:i], float(ext[i]))
        first = max(start, w)
        if first < ext.size:
            if self.robust:
                center, scale = _robust_windows(ext, first, w)
                dev = ext[first:] - center
                floor = _FLOOR_REL * np.abs(center) + _FLOOR_ABS
            else:
                mean, var_num, dev = _window_stats(ext, first, w)
                # in place: on 1,000,000 points every temporary costs page faults
                scale = np.maximum(var_num, 0.0, out=var_num)
                scale *= 1.0 / (w - 1)
                np.sqrt(scale, out=scale)
                floor = np.abs(mean, out=mean)
                floor *= _FLOOR_REL
                floor += _FLOOR_ABS
            np.maximum(scale, floor, out=scale)
            with np.errstate(all="ignore"):
                t = np.divide(dev, scale, out=np.asarray(dev, dtype=np.float64))
                t *= self._inv_infl[w]
                s = t_tail_score_inplace(t, w - 1.0)
            s[~(s >= 0.0)] = 0.0
            if first == start:
                out = s
            else:
                out[first - start:] = s
        # carry the window over to the next call, in both representations
        tail = ext[-w:].tolist()
        self._buf, self._pos = tail, 0
        self._rebuild()
        return out

    def _warm_score(self, prev: FloatArray, x: float) -> float:
        n = prev.size
        if self.robust:
            center, scale = _median_scale(sorted(prev.tolist()))
        else:
            center = float(prev.mean())
            scale = math.sqrt(float(((prev - center) ** 2).sum()) / (n - 1))
        scale = max(scale, _FLOOR_REL * abs(center) + _FLOOR_ABS)
        s = t_tail_score_one((x - center) / scale * self._inv_infl[n], n - 1.0)
        return s if s >= 0.0 else 0.0


def _median_scale(srt: list[float]) -> tuple[float, float]:
    """Median and robust sigma (1.4826 MAD, or 1.2533 mean absolute deviation if the MAD is 0)."""
    n = len(srt)
    h = n // 2
    med = srt[h] if n % 2 else (srt[h - 1] + srt[h]) / 2.0
    dev = sorted(abs(v - med) for v in srt)
    mad = dev[h] if n % 2 else (dev[h - 1] + dev[h]) / 2.0
    if mad > 0.0:
        return med, 1.4826 * mad
    return med, 1.2533 * math.fsum(dev) / n


def _robust_windows(ext: FloatArray, first: int, w: int) -> tuple[FloatArray, FloatArray]:
    """Median and robust sigma of ``ext[i-w:i]`` for every i >= first (chunked to bound memory)."""
    view = sliding_window_view(ext[first - w: -1], w)
    centers, scales = [], []
    for lo in range(0, view.shape[0], _ROBUST_ROWS):
        srt = np.sort(view[lo: lo + _ROBUST_ROWS], axis=1)
        h = w // 2
        med = srt[:, h] if w % 2 else (srt[:, h - 1] + srt[:, h]) / 2.0
        dev = np.sort(np.abs(srt - med[:, None]), axis=1)
        mad = dev[:, h] if w % 2 else (dev[:, h - 1] + dev[:, h]) / 2.0
        sc = np.where(mad > 0.0, 1.4826 * mad, 1.2533 * dev.sum(axis=1) / w)
        centers.append(med)
        scales.append(sc)
    return np.concatenate(centers), np.concatenate(scales)


def _window_stats(ext: FloatArray, first: int, w: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """For every i >= first, over the window ``ext[i-w:i]``: its mean, its sum of squared
    deviations, and ``ext[i]`` minus the mean.

    Cumulative sums over rows of ``_CHUNK`` outputs, each re-centred on its first value, keep
    the rounding error local; windows where cancellation still ate the digits (a spike just
    left the window) are recomputed exactly with two passes.
    """
    m = ext.size - first
    rows_n = -(-m // _CHUNK)
    base = ext[first - w:]
    pad = rows_n * _CHUNK - m
    if pad:
        base = np.concatenate([base, np.full(pad, base[-1])])
    rows = sliding_window_view(base, _CHUNK + w)[::_CHUNK]
    k = rows[:, :1]
    d = rows - k
    cs1 = np.zeros((rows_n, _CHUNK + w + 1))
    cs2 = np.zeros((rows_n, _CHUNK + w + 1))
    np.cumsum(d, axis=1, out=cs1[:, 1:])
    np.cumsum(np.square(d), axis=1, out=cs2[:, 1:])
    s1 = np.subtract(cs1[:, w: w + _CHUNK], cs1[:, :_CHUNK])
    s2 = np.subtract(cs2[:, w: w + _CHUNK], cs2[:, :_CHUNK])
    mean_d = s1 / w
    s1 *= mean_d
    var_num = np.subtract(s2, s1, out=s2)  # s2 - s1 * mean, as the streaming path
    dev = d[:, w: w + _CHUNK] - mean_d
    bad = var_num < 1e-4 * cs2[:, w: w + _CHUNK]
    mean = np.add(mean_d, k, out=mean_d)
    mean, var_num, dev = (a.reshape(-1)[:m] for a in (mean, var_num, dev))
    idx = np.flatnonzero(bad.reshape(-1)[:m])
    if idx.size:
        win = sliding_window_view(base, w)[idx]
        shift = win[:, -1:]  # the newest value, as the streaming rebuild: a flat window is exactly flat
        dw = win - shift
        mu = dw.mean(axis=1)
        var_num[idx] = ((dw - mu[:, None]) ** 2).sum(axis=1)
        mean[idx] = shift[:, 0] + mu
        dev[idx] = (base[idx + w] - shift[:, 0]) - mu
    return mean, var_num, dev


def _nanmean_seq(refs: FloatArray) -> FloatArray:
    ok = np.isfinite(refs)
    total = np.where(ok, refs, 0.0).sum(axis=0)
    count = ok.sum(axis=0)
    out: FloatArray = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out
