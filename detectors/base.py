"""Shared machinery of the detectors: parameters, input cleaning and score calibration.

Every detector here follows ``aiops.detector.Detector``. :class:`BaseDetector` gives them
``get_params`` (read from the constructor's signature, as scikit-learn and pyod do), the NaN
rule (a non-finite point scores 0.0 and never reaches the model's state) and a ``score`` that
runs a vectorised ``_score_finite`` over the finite points only.

Calibration: a detector's raw statistic is turned into a probability-like score in [0, 1],
"how unusual is this under normal data", so that ``P(score > 0.99) ~ 1 %`` on normal data
whatever the detector. Two transforms are offered:

* :func:`t_tail_score`: for a statistic that is Student-t (a z-score against a window
  estimated from ``n`` points): score = 1 - two-sided tail probability.
* :class:`TailCalibrator`: for any other raw score (isolation depth, a forecaster's error):
  its empirical CDF on reference data, with an exponential tail above the 90th percentile
  fitted by peaks-over-threshold (Siffer et al., "Anomaly Detection in Streams with Extreme
  Value Theory", KDD 2017, with the shape fixed at 0), so scores beyond the reference's
  largest value still rise smoothly towards 1 instead of saturating.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import erf

from aiops.errors import DetectorError

__all__ = [
    "BaseDetector",
    "Refractory",
    "TailCalibrator",
    "TrailingMean",
    "as_values",
    "check_choice",
    "check_float",
    "check_int",
    "check_optional_int",
    "t_tail_score",
    "t_tail_score_inplace",
    "t_tail_score_one",
]

FloatArray = npt.NDArray[np.float64]
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


# --- parameter validation --------------------------------------------------------------


def check_optional_int(owner: str, name: str, value: Any, minimum: int) -> int | None:
    """``None``, or ``value`` checked as by :func:`check_int`."""
    return None if value is None else check_int(owner, name, value, minimum)


def check_int(owner: str, name: str, value: Any, minimum: int) -> int:
    """Return ``value`` if it is an integer >= ``minimum``; raise a DetectorError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DetectorError(f"{owner}: {name} must be an integer >= {minimum}, got: {value!r}")
    return int(value)


def check_float(owner: str, name: str, value: Any, low: float, high: float, *,
                low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as float if it lies in the interval; raise a DetectorError naming it."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    v = float(value) if ok else math.nan
    ok = not math.isnan(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lb, hb = "(" if low_open else "[", ")" if high_open else "]"
        raise DetectorError(f"{owner}: {name} must be a number in {lb}{low}, {high}{hb}, got: {value!r}")
    return v


def check_choice(owner: str, name: str, value: Any, choices: Sequence[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``; raise a DetectorError naming it."""
    if value not in choices:
        raise DetectorError(f"{owner}: {name} must be one of {list(choices)}, got: {value!r}")
    return value


def as_values(values: Any, owner: str, *, ndim: tuple[int, ...] = (1,)) -> FloatArray:
    """Values as a float64 array (a copy is never needed: we only read it)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DetectorError(f"{owner}: values must be numbers, got: {str(exc)[:120]}") from exc
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim not in ndim:
        raise DetectorError(f"{owner}: values must have {' or '.join(map(str, ndim))} dimension(s), "
                            f"got shape {arr.shape}")
    return arr


# --- calibration -----------------------------------------------------------------------


def _pp_consts(nu: float) -> tuple[float, float, float]:
    """Constants of Peizer & Pratt's normal approximation of a Student t with ``nu`` dof."""
    return (nu - 2.0 / 3.0 + 1.0 / (10.0 * nu), 1.0 / (nu - 5.0 / 6.0), 1.0 / nu)


def t_tail_score(t: FloatArray, nu: FloatArray | float) -> FloatArray:
    """Score = 1 - two-sided tail probability of a Student t statistic with ``nu`` dof.

    The t is mapped to a normal deviate with Peizer & Pratt's approximation (1968), accurate
    to about 1e-4 in z for nu >= 2, which needs one log and one sqrt: cheap enough for the
    streaming path, and identical there (:func:`t_tail_score_one`).

    Examples:
        >>> round(float(t_tail_score(np.array([2.576]), 1e9)[0]), 3)
        0.99
    """
    if np.ndim(nu) == 0:
        return t_tail_score_inplace(np.array(t, dtype=np.float64), float(nu))
    nu = np.asarray(nu, dtype=np.float64)
    a = nu - 2.0 / 3.0 + 1.0 / (10.0 * nu)
    b = 1.0 / (nu - 5.0 / 6.0)
    z = a * np.sqrt(b * np.log1p(t * t / nu))
    out: FloatArray = erf(z * _INV_SQRT2)
    return out


def t_tail_score_inplace(t: FloatArray, nu: float) -> FloatArray:
    """:func:`t_tail_score` for one ``nu``, overwriting ``t`` (no temporaries: the hot batch path)."""
    a, b, inu = _pp_consts(nu)
    np.multiply(t, t, out=t)
    t *= inu
    np.log1p(t, out=t)
    t *= b
    np.sqrt(t, out=t)
    t *= a * _INV_SQRT2
    out: FloatArray = erf(t, out=t)
    return out


def t_tail_score_one(t: float, nu: float) -> float:
    """Scalar twin of :func:`t_tail_score` (same arithmetic, for ``update``)."""
    a, b, inu = _pp_consts(nu)
    return math.erf(a * math.sqrt(b * math.log1p(t * t * inu)) * _INV_SQRT2)


@dataclass(frozen=True, slots=True)
class TailCalibrator:
    """Maps a raw anomaly score (higher = more anomalous) to its probability under normal data.

    Below the ``tail_q`` quantile of the reference scores: their empirical CDF (interpolated
    between 101 quantiles). Above: ``1 - (1 - tail_q) * exp(-(x - u) / beta_)`` with ``beta_``
    the mean excess over ``u`` (the exponential peaks-over-threshold fit). So a score of 0.99
    is exceeded by about 1 % of normal points, and 0.999 by about 0.1 %.

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
        hi = x > self.u_
        if hi.any():
            out[hi] = 1.0 - (1.0 - self.tail_q) * np.exp(-(x[hi] - self.u_) / self.beta_)
        out[~np.isfinite(out)] = 0.0
        result: FloatArray = np.clip(out, 0.0, 1.0)
        return result


# --- input smoothing and alarm suppression (shared options) -------------------------------


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
    """One alarm per incident: after a score at or above ``threshold``, the next ``points``
    points (gaps included) score 0.

    An operator wants one page per incident, not one per point of it; NAB counts only the first
    detection in a window and charges every extra alarm outside it. The cost: a second incident
    starting within ``points`` of the first alarm is not reported.

    Examples:
        >>> Refractory(2, 0.9).batch(np.array([0.95, 0.99, 0.97, 0.5, 0.96])).tolist()
        [0.95, 0.0, 0.0, 0.5, 0.96]
    """

    __slots__ = ("points", "threshold", "_left")

    def __init__(self, points: int, threshold: float) -> None:
        self.points = points
        self.threshold = threshold
        self._left = 0  # points still muted after the last alarm

    def reset(self) -> None:
        """Forget a running refractory period."""
        self._left = 0

    def one(self, score: float) -> float:
        """The score to report for the next point."""
        if self._left:
            self._left -= 1
            return 0.0
        if score >= self.threshold:
            self._left = self.points
        return score

    def batch(self, scores: FloatArray) -> FloatArray:
        """Vectorised twin of :meth:`one` (overwrites and returns ``scores``)."""
        n = scores.shape[0]
        i = min(self._left, n)
        scores[:i] = 0.0
        self._left -= i
        hits = np.flatnonzero(scores[i:] >= self.threshold) + i  # candidate alarms, before muting
        j = 0
        while j < hits.size:
            alarm = int(hits[j])
            stop = min(alarm + 1 + self.points, n)
            scores[alarm + 1: stop] = 0.0
            self._left = self.points - (stop - alarm - 1)
            j = int(np.searchsorted(hits, stop))  # the next candidate past the muted stretch
        return scores


# --- the base class ----------------------------------------------------------------------


class BaseDetector:
    """Common verbs; subclasses implement ``_score_finite`` (vectorised) and ``_update_finite``.

    The NaN rule lives here: a non-finite point (NaN, +-Inf, a gap) scores 0.0 and is not
    learned; finite points are passed on in order, so batch and streaming see the same stream.
    """

    name: ClassVar[str] = ""
    threshold: float
    smooth: int = 1
    refractory: int = 0
    _smoother: TrailingMean | None = None
    _refr: Refractory | None = None

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters by name, read from the signature (as scikit-learn does)."""
        sig = inspect.signature(type(self).__init__)
        return {
            p.name: getattr(self, p.name)
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def fit(self, history: Sequence[float] | FloatArray) -> BaseDetector:
        """Learn from past values: by default, run them through the detector and drop the scores."""
        self.score(history)
        return self

    def score(self, values: Sequence[float] | FloatArray) -> FloatArray:
        """One score in [0, 1] per point, causally; advances the state past ``values``."""
        x = as_values(values, self.name)
        out = np.zeros(x.shape[0], dtype=np.float64)
        mask = np.isfinite(x)
        if mask.any():
            out[mask] = self._score_finite(x[mask])
        return out

    def update(self, value: float) -> float:
        """Score one new point against the state before it, then learn it."""
        try:
            x = float(value)
        except (TypeError, ValueError) as exc:
            raise DetectorError(f"{self.name}: value must be a number, got: {value!r}") from exc
        if not math.isfinite(x):
            return 0.0
        return self._update_finite(x)

    def is_anomaly(self, score: float) -> bool:
        """The detector's own decision: ``score >= threshold``."""
        return score >= self.threshold

    # the shared `smooth` and `refractory` options ---------------------------------------

    def _init_alarm_options(self, smooth: Any, refractory: Any) -> None:
        """Check and set ``smooth`` / ``refractory`` (after ``threshold``); state comes from
        :meth:`_reset_alarm_options`, which the subclass's reset calls."""
        self.smooth = check_int(self.name, "smooth", smooth, 1)
        self.refractory = check_int(self.name, "refractory", refractory, 0)
        self._reset_alarm_options()

    def _reset_alarm_options(self) -> None:
        """Fresh smoothing and refractory state (no values averaged, no alarm running)."""
        self._smoother = TrailingMean(self.smooth) if self.smooth > 1 else None
        self._refr = Refractory(self.refractory, self.threshold) if self.refractory else None

    def _smoothed(self, x: FloatArray) -> FloatArray:
        """``x`` through the trailing mean if ``smooth`` > 1 (positions kept, gaps NaN)."""
        return x if self._smoother is None else self._smoother.batch(x)

    def _muted(self, scores: FloatArray) -> FloatArray:
        """``scores`` with the refractory period applied if ``refractory`` > 0."""
        return scores if self._refr is None else self._refr.batch(scores)

    # subclasses -----------------------------------------------------------------------

    def _score_finite(self, x: FloatArray) -> FloatArray:
        """Scores of finite points, in order (default: the streaming loop)."""
        return np.fromiter((self._update_finite(float(v)) for v in x), dtype=np.float64, count=x.shape[0])

    def _update_finite(self, x: float) -> float:
        """Score of one finite point (default: the batch path on one point).

        A subclass overrides at least one of ``_score_finite`` and ``_update_finite``.
        """
        return float(self._score_finite(np.array([x]))[0])
