"""Reference windows of the z-score: how far a point lies from the ``window`` finite points before it.

Two strategies with one interface (``one(x)`` and its vectorised twin ``batch(xs)``: the
deviation of each point against the window before it, in normal units, then learn it; NaN
until ``min_periods`` points were seen; ``reset()``):

* :class:`MeanStdWindow`: mean and standard deviation, O(1) per point from running sums
  (re-centred and rebuilt exactly whenever cancellation could eat the digits). The statistic
  ``t = (x - mean) / (std * sqrt(1 + 1/n))`` of a point against ``n`` Gaussian points is a
  Student t with ``n - 1`` degrees of freedom; it is returned as the normal deviate of the same
  tail probability (:func:`detectors.calibration.t_to_z`), so one calibration fits every ``n``.
* :class:`MedianMadWindow`: median and ``1.4826 * MAD`` (``1.2533 * mean absolute deviation``
  when the MAD is 0): outliers inside the window do not widen it; O(window log window) a point.

And the seasonal pre-stage :class:`SeasonalDifference`: subtract the mean (or median) of the
values at the same phase of the previous ``seasons`` periods (positional: a gap keeps its slot).
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .calibration import t_to_z, t_to_z_one
from .params import FloatArray

__all__ = ["MeanStdWindow", "MedianMadWindow", "SeasonalDifference"]

_FLOOR_REL = 1e-6  # a flat window's std counts as 1e-6 * |mean|: rounding never scores, a real step does
_FLOOR_ABS = 1e-300
_CHUNK = 128  # outputs per row of the chunked cumulative sums (re-centred per row)
_ROBUST_ROWS = 65536


class _Window(ABC):
    """What both strategies share: the buffer of the last ``window`` finite values."""

    def __init__(self, window: int, min_periods: int) -> None:
        self.w = window
        self.mp = min_periods
        # Per window size n: 1 / sqrt(1 + 1/n) (the new point's own variance).
        self._inv_infl = [0.0] + [1.0 / math.sqrt(1.0 + 1.0 / n) for n in range(1, window + 1)]
        self.reset()

    def reset(self) -> None:
        self._buf: list[float] = []  # last <= window finite inputs; when full, _pos is the oldest
        self._pos = 0

    def _ordered(self) -> list[float]:
        b = self._buf
        return b[self._pos:] + b[: self._pos]

    def _z_one(self, x: float, center: float, scale: float, n: int) -> float:
        scale = max(scale, _FLOOR_REL * abs(center) + _FLOOR_ABS)
        t = (x - center) / scale * self._inv_infl[n]
        if not math.isfinite(t):
            return math.inf if t == t else math.nan
        return t_to_z_one(t, n - 1.0)

    def _z_batch(self, dev: FloatArray, scale: FloatArray, floor: FloatArray) -> FloatArray:
        np.maximum(scale, floor, out=scale)
        with np.errstate(all="ignore"):
            t = np.divide(dev, scale, out=np.asarray(dev, dtype=np.float64))
            t *= self._inv_infl[self.w]
            inf = np.isinf(t)
            z = t_to_z(t, self.w - 1.0)
        if inf.any():
            z[inf] = math.inf
        return z

    def batch(self, xs: FloatArray) -> FloatArray:
        """Deviation of each of ``xs`` (finite) against the window before it; learns them."""
        w, mp = self.w, self.mp
        buf = np.asarray(self._ordered(), dtype=np.float64)
        ext = np.concatenate([buf, xs])
        start = buf.size
        out = np.full(xs.size, np.nan)
        warm_end = min(w, ext.size)  # fewer than `window` points before (at most `window` of them)
        for i in range(start, warm_end):
            if i >= mp:
                out[i - start] = self._warm(ext[:i], float(ext[i]))
        first = max(start, w)
        if first < ext.size:
            z = self._full(ext, first)
            if first == start:
                out = z
            else:
                out[first - start:] = z
        self._carry(ext[-w:].tolist())
        return out

    # strategies ---------------------------------------------------------------------------
    @abstractmethod
    def one(self, x: float) -> float:
        """The z-score of one new point against the window; the point then joins the window."""

    @abstractmethod
    def _warm(self, prev: FloatArray, x: float) -> float:
        """The z-score of ``x`` against ``prev``, the fewer than ``window`` points before it (warm-up)."""

    @abstractmethod
    def _full(self, ext: FloatArray, first: int) -> FloatArray:
        """The z-scores of ``ext[first:]``, each against its full trailing window, vectorised."""

    def _carry(self, tail: list[float]) -> None:
        self._buf, self._pos = tail, 0


class MeanStdWindow(_Window):
    """Mean / standard deviation over the last ``window`` finite points (O(1) per point)."""

    def __init__(self, window: int, min_periods: int) -> None:
        self._inv_nm1 = [0.0, 0.0] + [1.0 / (n - 1) for n in range(2, window + 1)]
        super().__init__(window, min_periods)

    def reset(self) -> None:
        super().reset()
        self._k = 0.0  # shift of the running sums (sums of x - k keep cancellation small)
        self._s1 = 0.0
        self._s2 = 0.0
        self._peak = 0.0  # largest s2 since the last rebuild: bounds the rounding error
        self._since = 0

    def one(self, x: float) -> float:
        buf = self._buf
        n = len(buf)
        k = self._k
        z = math.nan
        if n >= self.mp:
            m = self._s1 / n
            var_num = self._s2 - self._s1 * m
            if var_num < 1e-4 * self._peak:  # cancellation ate the digits: rebuild exactly
                self._rebuild()
                k = self._k
                m = self._s1 / n
                var_num = self._s2 - self._s1 * m
            sd2 = var_num * self._inv_nm1[n]
            sd = math.sqrt(sd2) if sd2 > 0.0 else 0.0
            floor = _FLOOR_REL * abs(k + m) + _FLOOR_ABS  # relative to the mean, not the shifted one
            if sd < floor:
                sd = floor
            t = ((x - k) - m) / sd * self._inv_infl[n]
            z = t_to_z_one(t, n - 1.0) if math.isfinite(t) else (math.inf if t == t else math.nan)
        d = x - k
        if n < self.w:
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
        if self._since >= self.w:
            self._rebuild()
        return z

    def _rebuild(self) -> None:
        """Exact sums around the newest value; run every ``window`` points and on cancellation."""
        buf = self._buf
        self._since = 0
        if not buf:
            self._k = self._s1 = self._s2 = self._peak = 0.0
            return
        k = buf[self._pos - 1] if len(buf) == self.w else buf[-1]
        self._k = k
        self._s1 = math.fsum(v - k for v in buf)
        self._s2 = self._peak = math.fsum((v - k) * (v - k) for v in buf)

    def _carry(self, tail: list[float]) -> None:
        super()._carry(tail)
        self._rebuild()

    def _warm(self, prev: FloatArray, x: float) -> float:
        n = prev.size
        center = float(prev.mean())
        scale = math.sqrt(float(((prev - center) ** 2).sum()) / (n - 1))
        return self._z_one(x, center, scale, n)

    def _full(self, ext: FloatArray, first: int) -> FloatArray:
        w = self.w
        mean, var_num, dev = _window_stats(ext, first, w)
        # in place: on 1,000,000 points every temporary costs page faults
        scale = np.maximum(var_num, 0.0, out=var_num)
        scale *= 1.0 / (w - 1)
        np.sqrt(scale, out=scale)
        floor = np.abs(mean, out=mean)
        floor *= _FLOOR_REL
        floor += _FLOOR_ABS
        return self._z_batch(dev, scale, floor)


class MedianMadWindow(_Window):
    """Median / robust sigma over the last ``window`` finite points (outliers do not widen it)."""

    def one(self, x: float) -> float:
        buf = self._buf
        n = len(buf)
        z = math.nan
        if n >= self.mp:
            med, sigma = _median_scale(sorted(buf))
            z = self._z_one(x, med, sigma, n)
        if n < self.w:
            buf.append(x)
        else:
            buf[self._pos] = x
            self._pos = (self._pos + 1) % n
        return z

    def _warm(self, prev: FloatArray, x: float) -> float:
        center, scale = _median_scale(sorted(prev.tolist()))
        return self._z_one(x, center, scale, prev.size)

    def _full(self, ext: FloatArray, first: int) -> FloatArray:
        center, scale = _robust_windows(ext, first, self.w)
        dev = ext[first:] - center
        floor = _FLOOR_REL * np.abs(center) + _FLOOR_ABS
        return self._z_batch(dev, scale, floor)


class SeasonalDifference:
    """``x`` minus the mean (``center="median"``: median) of the values one, two, ... ``seasons``
    periods before it; NaN where no finite reference exists yet. Positional: gaps keep their slot."""

    def __init__(self, period: int, seasons: int, center: str = "mean") -> None:
        self.period = period
        self.seasons = seasons
        self.center = center
        self._hlen = period * seasons
        self.reset()

    def reset(self) -> None:
        self._hist: list[float] = []  # last seasons * period raw values, positional (NaN kept)
        self._hpos = 0

    @property
    def points(self) -> int:
        """Points of history the first reference needs."""
        return self.period

    def one(self, x: float) -> float:
        hist, p, hlen = self._hist, self.period, self._hlen
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
        base = float(np.median(refs)) if self.center == "median" else math.fsum(refs) / len(refs)
        return x - base

    def batch(self, v: FloatArray) -> FloatArray:
        p, hlen = self.period, self._hlen
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
            base = np.nanmedian(refs, axis=0) if self.center == "median" else _nanmean_seq(refs)
        tail = ext[-hlen:] if ext.size >= hlen else ext
        self._hist, self._hpos = tail.tolist(), 0
        result: FloatArray = v - base
        return result


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
