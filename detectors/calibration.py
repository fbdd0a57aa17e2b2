"""Calibration: a model's raw deviation turned into a score in [0, 1] that keeps its ranking.

A score means "how unusual is this under normal data", so that ``P(score >= 0.999) ~ 0.1 %`` on
normal data whatever the detector. Three calibrators share one interface (``transform`` for
arrays, ``transform_one`` for the streaming path, the same arithmetic):

* :class:`GaussianTail`: for a statistic already in normal units (a z-score; Student t
  statistics are mapped to normal deviates with :func:`t_to_z`): score = 1 - two-sided tail
  probability.
* :class:`TailCalibrator`: for any other raw score (isolation depth, a forecaster's error):
  its empirical CDF on reference data, with an exponential tail above the 90th percentile
  fitted by peaks-over-threshold (Siffer et al., "Anomaly Detection in Streams with Extreme
  Value Theory", KDD 2017, with the shape fixed at 0).
* :class:`Identity`: the model's score is already in [0, 1] (an ensemble's combination).

:class:`RecentRank` is the one stateful stage: a raw score's rank among the series' own last
``window`` raw scores (the ensemble's ``rank_window``), a probability that means the same on a
heavy-tailed series and on a quiet one, so one threshold transfers between them.

Ties at the top are broken by the raw deviation: in float64 the tail probability of a 9-sigma
point and of a 90-sigma point are both exactly 1.0, which would lose the ranking exactly where
it matters (best-F1 thresholds, root-cause ranking). Every calibrator therefore returns
``(1 - 1e-9) * p + 1e-9 * g(r)`` with ``p`` the calibrated probability and ``g`` an increasing map
of the raw excess ``r`` into [0, 1): strictly increasing in the raw deviation, never exactly 1,
and within 1e-9 of ``p``.
"""

from __future__ import annotations

import bisect
import math
from array import array
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy.special import erf, erfc

from .params import FloatArray

__all__ = [
    "Calibrator",
    "GaussianTail",
    "Identity",
    "RecentRank",
    "TailCalibrator",
    "t_to_z",
    "t_to_z_consts",
    "t_to_z_one",
    "t_tail_score",
    "t_tail_score_one",
]

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
TIE = 1e-9  # weight of the raw deviation in a score: breaks ties, moves a score by at most 1e-9


class Calibrator(Protocol):
    """Raw deviation (>= 0, higher is more anomalous; NaN: not scored) to a score in [0, 1]."""

    def transform(self, raw: FloatArray) -> FloatArray: ...

    def transform_one(self, raw: float) -> float: ...


def _tie(p: FloatArray, excess: FloatArray) -> FloatArray:
    """``p`` with ties broken by ``excess`` (>= 0): ``(1 - TIE) p + TIE (1 - 1 / (1 + log1p(excess)))``."""
    with np.errstate(invalid="ignore"):
        e = np.log1p(np.maximum(excess, 0.0))
        out: FloatArray = (1.0 - TIE) * p + TIE * (1.0 - 1.0 / (1.0 + e))
    out[~np.isfinite(out)] = 0.0
    return out


def _tie_one(p: float, excess: float) -> float:
    e = math.log1p(excess) if excess > 0.0 else 0.0
    out = (1.0 - TIE) * p + TIE * (1.0 - 1.0 / (1.0 + e))
    return out if out >= 0.0 else 0.0


# --- Student t to normal ------------------------------------------------------------------


def t_to_z_consts(nu: float) -> tuple[float, float, float]:
    """Constants ``(a, b, inu)`` of Peizer & Pratt's normal approximation of a Student t with
    ``nu`` dof: ``z = a * sqrt(b * log1p(t * t * inu))`` (:func:`t_to_z_one`), for a caller
    that converts many statistics of one ``nu``."""
    return (nu - 2.0 / 3.0 + 1.0 / (10.0 * nu), 1.0 / (nu - 5.0 / 6.0), 1.0 / nu)


def t_to_z(t: FloatArray, nu: float) -> FloatArray:
    """|t| of a Student t with ``nu`` dof as the normal deviate of the same tail probability.

    Peizer & Pratt's approximation (1968), accurate to about 1e-4 in z for nu >= 2, needs one
    log and one sqrt: cheap enough for the streaming path (:func:`t_to_z_one`). Overwrites ``t``.
    """
    a, b, inu = t_to_z_consts(nu)
    np.multiply(t, t, out=t)
    t *= inu
    np.log1p(t, out=t)
    t *= b
    np.sqrt(t, out=t)
    t *= a
    return t


def t_to_z_one(t: float, nu: float) -> float:
    """Scalar twin of :func:`t_to_z`."""
    a, b, inu = t_to_z_consts(nu)
    return a * math.sqrt(b * math.log1p(t * t * inu))


def t_tail_score(t: FloatArray, nu: float) -> FloatArray:
    """Score = 1 - two-sided tail probability of a Student t statistic with ``nu`` dof.

    Examples:
        >>> round(float(t_tail_score(np.array([2.576]), 1e9)[0]), 3)
        0.99
    """
    return GaussianTail().transform(t_to_z(np.array(t, dtype=np.float64), nu))


def t_tail_score_one(t: float, nu: float) -> float:
    """Scalar twin of :func:`t_tail_score`."""
    return GaussianTail().transform_one(t_to_z_one(t, nu))


# --- calibrators -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GaussianTail:
    """``|z|`` in normal units to ``1 - P(|Z| >= |z|)``, ties broken by ``|z|``.

    With ``tests`` > 1, ``|z|`` is the largest of that many normal deviates and the tail
    probability is multiplied by ``tests`` (Bonferroni), so the score stays conservative.

    Examples:
        >>> round(GaussianTail().transform_one(3.2905), 4)
        0.999
        >>> round(GaussianTail(tests=2).transform_one(3.2905), 4)
        0.998
    """

    tests: int = 1

    def transform(self, raw: FloatArray) -> FloatArray:
        z = np.abs(np.asarray(raw, dtype=np.float64))
        with np.errstate(invalid="ignore", over="ignore"):
            if self.tests == 1:
                p: FloatArray = erf(z * _INV_SQRT2)
            else:
                p = np.maximum(1.0 - self.tests * erfc(z * _INV_SQRT2), 0.0)
        return _tie(p, z)

    def transform_one(self, raw: float) -> float:
        z = abs(raw)
        if z != z:
            return 0.0
        if self.tests == 1:
            return _tie_one(math.erf(z * _INV_SQRT2), z)
        p = 1.0 - self.tests * math.erfc(z * _INV_SQRT2)
        return _tie_one(p if p > 0.0 else 0.0, z)


@dataclass(frozen=True, slots=True)
class Identity:
    """The raw score is the score (clipped to [0, 1]; NaN to 0)."""

    def transform(self, raw: FloatArray) -> FloatArray:
        out: FloatArray = np.clip(np.nan_to_num(np.asarray(raw, dtype=np.float64), nan=0.0), 0.0, 1.0)
        return out

    def transform_one(self, raw: float) -> float:
        return min(max(raw, 0.0), 1.0) if raw == raw else 0.0


@dataclass(frozen=True, slots=True)
class TailCalibrator:
    """Maps a raw anomaly score (higher = more anomalous) to its probability under normal data.

    Below the ``tail_q`` quantile of the reference scores: their empirical CDF (interpolated
    between 101 quantiles). Above: ``1 - (1 - tail_q) * exp(-(x - u) / beta_)`` with ``beta_``
    the mean excess over ``u`` (the exponential peaks-over-threshold fit). So a score of 0.99
    is exceeded by about 1 % of normal points, and 0.999 by about 0.1 %. Ties at the top are
    broken by the excess ``(x - u) / beta_``.

    Examples:
        >>> cal = TailCalibrator.fit(np.random.default_rng(0).exponential(size=5000))
        >>> round(float(cal.transform(np.array([np.log(100.0)]))[0]), 2)
        0.99
    """

    probs_: FloatArray
    quantiles_: FloatArray
    u_: float
    beta_: float
    tail_q: float = 0.9
    _ql: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _pl: tuple[float, ...] = field(init=False, repr=False, compare=False)

    @classmethod
    def fit(cls, raw: FloatArray, tail_q: float = 0.9) -> TailCalibrator:
        """Learn the transform from reference raw scores (non-finite ones are ignored)."""
        r = np.asarray(raw, dtype=np.float64)
        r = r[np.isfinite(r)]
        if r.size == 0:
            r = np.zeros(1)
        probs = np.linspace(0.0, tail_q, 101)
        q = np.quantile(r, probs)
        u = float(q[-1])
        excess = r[r > u] - u
        spread = float(np.quantile(r, 0.75) - np.quantile(r, 0.25)) if r.size > 3 else 0.0
        # A floor on beta keeps a degenerate reference (all scores equal) from mapping the
        # tiniest excess straight to 1.0; relative only, so raw scores in tiny units keep working.
        floor = max(1e-3 * spread, 1e-9 * abs(u), 1e-300)
        beta = float(excess.mean()) if excess.size else floor
        return cls(probs_=probs, quantiles_=q, u_=u, beta_=max(beta, floor), tail_q=tail_q)

    def transform(self, raw: FloatArray) -> FloatArray:
        """Calibrated scores in [0, 1] for raw scores (NaN maps to 0)."""
        x = np.asarray(raw, dtype=np.float64)
        out = np.interp(x, self.quantiles_, self.probs_)
        out[x <= self.quantiles_[0]] = 0.0  # also a reference of ties (a flat line) maps to 0
        excess = np.zeros(x.shape)
        hi = x > self.u_
        if hi.any():
            excess[hi] = (x[hi] - self.u_) / self.beta_
            out[hi] = 1.0 - (1.0 - self.tail_q) * np.exp(-excess[hi])
        out[~np.isfinite(x)] = 0.0
        out = _tie(np.clip(out, 0.0, 1.0), excess)
        out[np.isposinf(x)] = 1.0 - TIE + TIE * 0.999  # beyond every finite raw score
        return out

    def transform_one(self, raw: float) -> float:
        """Scalar twin of :meth:`transform` (pure Python, about a microsecond: the streaming path)."""
        x = raw
        if x != x:
            return 0.0
        if x == math.inf:
            return 1.0 - TIE + TIE * 0.999
        ql = self._ql
        if x <= ql[0]:
            return 0.0
        if x > self.u_:
            excess = (x - self.u_) / self.beta_
            return _tie_one(min(max(1.0 - (1.0 - self.tail_q) * math.exp(-excess), 0.0), 1.0), excess)
        j = bisect.bisect_right(ql, x) - 1  # np.interp's interval: the last quantile <= x
        pl = self._pl
        if j >= len(ql) - 1:
            return _tie_one(pl[-1], 0.0)
        slope = (pl[j + 1] - pl[j]) / (ql[j + 1] - ql[j])
        return _tie_one(min(max(slope * (x - ql[j]) + pl[j], 0.0), 1.0), 0.0)

    def __post_init__(self) -> None:
        # Plain-float copies for the scalar path: bisect on a tuple beats numpy on one value.
        object.__setattr__(self, "_ql", tuple(np.asarray(self.quantiles_, dtype=np.float64).tolist()))
        object.__setattr__(self, "_pl", tuple(np.asarray(self.probs_, dtype=np.float64).tolist()))


class RecentRank:
    """Causal self-calibration: a raw score becomes its rank among this series' own last
    ``window`` finite raw scores (the share strictly below it), ties broken by the raw score.

    A model's raw score is calibrated for Gaussian data; on a heavy-tailed series (tweet
    volumes) normal points reach surprises that an incident on a smooth series (a machine's
    temperature) never does, so no single threshold on the raw score serves both. The rank in
    the series' recent past does: ``>= 0.99`` means "higher than 99 % of the last ``window``
    points" on every series. Scores are 0 until ``min_points`` raw scores were seen.

    The cost: an incident stays in the window, so within ``window`` points of a long incident a
    second, smaller one ranks lower (winsorising the window at its 99th percentile, as the
    profile's ``clip`` does, was tried: on NAB it fell from 61.9 to 7.8 leave one category out).

    The state is the last ``window`` raw scores twice (in arrival order and sorted, as float64
    arrays): ``16 * window`` bytes; an update is two binary searches and two memmoves. Batch and
    streaming are the same loop.

    Examples:
        >>> r = RecentRank(window=4, min_points=2)
        >>> [round(r.one(v), 3) for v in (0.1, 0.2, 0.3, 0.05, 0.9, 0.4)]
        [0.0, 0.0, 1.0, 0.0, 1.0, 0.75]
    """

    __slots__ = ("window", "min_points", "_ring", "_sorted", "_next")

    def __init__(self, window: int, min_points: int = 100) -> None:
        self.window = window
        self.min_points = min_points
        self._ring = array("d")  # arrival order (a ring once full; _next is the oldest)
        self._sorted = array("d")
        self._next = 0

    def one(self, raw: float) -> float:
        """The score of ``raw`` against the window before it; then ``raw`` joins the window."""
        if raw != raw:
            return 0.0
        srt = self._sorted
        n = len(srt)
        score = 0.0
        if n >= self.min_points:
            p = bisect.bisect_left(srt, raw) / n
            score = (1.0 - TIE) * p + TIE * (raw / (1.0 + raw) if raw > 0.0 else 0.0)
        ring = self._ring
        if n < self.window:
            ring.append(raw)
        else:
            j = self._next
            del srt[bisect.bisect_left(srt, ring[j])]
            ring[j] = raw
            self._next = (j + 1) % self.window
        bisect.insort(srt, raw)
        return score

    def batch(self, raw: FloatArray) -> FloatArray:
        """:meth:`one` over ``raw`` in order (the same arithmetic)."""
        one = self.one
        return np.fromiter((one(v) for v in raw.tolist()), dtype=np.float64, count=raw.shape[0])

    def __getstate__(self) -> tuple[int, int, bytes, bytes, int]:
        return self.window, self.min_points, self._ring.tobytes(), self._sorted.tobytes(), self._next

    def __setstate__(self, state: tuple[int, int, bytes, bytes, int]) -> None:
        self.window, self.min_points, ring, srt, self._next = state
        self._ring = array("d", ring)
        self._sorted = array("d", srt)
