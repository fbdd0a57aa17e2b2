"""Isolation forest over window features: points that are easy to isolate are anomalous.

Liu, Ting & Zhou, "Isolation Forest", ICDM 2008 (scikit-learn's ``IsolationForest``). Each
point becomes a feature row: its first difference, its distance from the mean of the
``window`` points before it (as is and in units of their standard deviation) and the standard
deviation of the window ending at it, per series (several series of one host are scored
together from a 2-D input). Features are standardised with the training rows' mean and
deviation, so the metric's unit does not matter.

Calibration: the raw score is the inverse normalised mean path length ``c(n) / E[h(x)]``
(the forest's ``2 ** (-E[h] / c(n))`` mapped through ``-1 / log2``, which unbends its upper
end). At each (re)fit it is calibrated by a :class:`~detectors.calibration.TailCalibrator` on the raw
scores of the last 4,000 training rows, so a score of 0.99 is exceeded by about 1 % of points
like the training window. The forest's raw score is bounded (a point cannot be isolated in
fewer than one split), so its far tail is lighter than the exponential the calibrator assumes:
on Gaussian noise ``P(score > 0.99) ~ 0.7 %`` but ``P(score > 0.999)`` is near 0, and a
6-sigma spike scores about 0.997-0.9995. Hence the default threshold 0.995, not 0.999.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.ensemble import IsolationForest

from aiops.errors import DetectorError

from .params import FloatArray, check_float, check_int, check_optional_int
from .refit import RefitDetector
from .registry import register

__all__ = ["IForestDetector", "window_features"]

_CALIBRATION_ROWS = 4000  # enough for a 1 % tail, cheap enough to refit often


def window_features(context: FloatArray, new: FloatArray, window: int,
                    sd_floor: FloatArray | None = None) -> FloatArray:
    """Feature rows of ``new`` (n, k) given at least ``window`` ``context`` rows before them.

    Per column: first difference, value minus the mean of the ``window`` previous values, that
    distance in units of their standard deviation, and the standard deviation of the ``window``
    values ending at the point. No feature holds the level itself, so a series that drifts or
    wanders out of its training range is not an outlier for that alone. Shape (n, 4k).

    ``sd_floor`` (per column) bounds the deviation a window's spread counts as: a mostly-zero
    counter has windows of exact zeros, and dividing by their zero spread gave 1e300 (whose
    square overflowed, making the feature's scale infinite and the feature silently 0). The
    floor is a fraction of the column's spread over the training rows; the ratio is clipped
    to +-1e6 as well, so no feature can reach float overflow.
    """
    ext = np.concatenate([context[-window:], new]) if context.shape[0] else new
    c = ext.shape[0] - new.shape[0]
    if c < window:  # not enough history: pad with the first value (used only for training rows)
        ext = np.concatenate([np.repeat(ext[:1], window - c, axis=0), ext])
    floors = np.zeros(ext.shape[1]) if sd_floor is None else sd_floor
    feats = []
    for j in range(ext.shape[1]):
        col = np.ascontiguousarray(ext[:, j])
        win = sliding_window_view(col, window + 1)  # previous `window` values, then the point
        prev = win[:, :window]
        prev_mean = prev.mean(axis=1)
        x = col[window:]
        dev = x - prev_mean
        prev_sd = np.maximum(prev.std(axis=1), np.maximum(1e-12 * np.abs(prev_mean), floors[j]) + 1e-300)
        ratio = np.clip(dev / prev_sd, -1e6, 1e6)
        feats += [x - col[window - 1: -1], dev, ratio, win[:, 1:].std(axis=1)]
    return np.stack(feats, axis=1)


def sd_floors(train: FloatArray) -> FloatArray:
    """Per column: 1 % of the training rows' standard deviation (0 for a constant column)."""
    out: FloatArray = 0.01 * np.nan_to_num(train.std(axis=0), nan=0.0, posinf=0.0)
    return out


@register
class IForestDetector(RefitDetector):
    """Isolation forest on window features, refitted on a schedule; uni- or multivariate.

    Args:
        window: points in the feature window (mean and std features).
        threshold: score at or above which a point is an anomaly.
        n_estimators: trees in the forest.
        max_samples: rows drawn to grow each tree.
        train_size: finite points learned before the first fit (they score 0.0).
        refit_every: refit after this many further points (None or 0: never).
        train_window: trailing points a (re)fit learns from.
        seed: seed of the forest (the same at every refit, so batch and streaming agree).
        smooth: score the trailing mean of the last ``smooth`` finite values (1: off; univariate
            input only); see :class:`detectors.alarms.TrailingMean`.
        refractory: points after a positive decision that are not decided positive (0: off;
            scores are not changed); see :class:`detectors.alarms.Refractory`.

    ``score`` accepts shape (n,) or (n, k): k series of one host scored together (a row with
    any non-finite value scores 0.0); ``update`` then takes a row of k numbers.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=600)
        >>> x[550] = 12.0
        >>> det = IForestDetector(train_size=300, n_estimators=20, seed=1)
        >>> s = det.score(x)
        >>> bool(s[550] >= det.threshold), float(s[:300].max())
        (True, 0.0)
    """

    name = "iforest"
    multivariate = True

    def __init__(self, window: int = 16, threshold: float = 0.995, n_estimators: int = 50,
                 max_samples: int = 256, train_size: int = 1000, refit_every: int | None = 20_000,
                 train_window: int = 5000, seed: int = 0, smooth: int = 1, refractory: int = 0) -> None:
        self.window = check_int(self.name, "window", window, 2)
        self.threshold = check_float(self.name, "threshold", threshold, 0.0, 1.0)
        self.n_estimators = check_int(self.name, "n_estimators", n_estimators, 1)
        self.max_samples = check_int(self.name, "max_samples", max_samples, 2)
        self.train_size = check_int(self.name, "train_size", train_size, 1)
        self.refit_every = check_optional_int(self.name, "refit_every", refit_every, 0)
        self.train_window = check_int(self.name, "train_window", train_window, 1)
        self.seed = check_int(self.name, "seed", seed, 0)
        self._init_alarm_options(smooth, refractory)
        self._context = int(window)
        if train_size < self._min_train():
            raise DetectorError(f"iforest: train_size must be >= window + 2 ({self._min_train()}), "
                                f"got: {train_size!r}")
        if train_window < self._min_train():
            raise DetectorError(f"iforest: train_window must be >= window + 2 ({self._min_train()}), "
                                f"got: {train_window!r}")
        self._forest: IsolationForest | None = None
        self._floor: FloatArray = np.zeros(0)
        self._center: FloatArray = np.zeros(0)
        self._spread: FloatArray = np.ones(0)
        self._reset()

    def _fit_model(self, train: FloatArray) -> FloatArray:
        w = self._context
        self._floor = sd_floors(train)
        feats = window_features(train[:w], train[w:], w, self._floor)
        # Standardise the features: the forest works in float32 and treats a feature whose
        # range is under 1e-7 as constant, so raw values at 1e9 or 1e-12 would lose the noise.
        self._center = feats.mean(axis=0)
        spread = feats.std(axis=0)
        self._spread = np.where(spread > 1e-12 * np.abs(self._center), spread, 1.0)
        feats = self._standardise(feats)
        forest = IsolationForest(n_estimators=self.n_estimators, max_samples=min(self.max_samples, feats.shape[0]),
                                 random_state=self.seed)
        forest.fit(feats)
        self._forest = forest
        return _raw(forest, feats[-_CALIBRATION_ROWS:])

    def _standardise(self, feats: FloatArray) -> FloatArray:
        # Clipped at 1e6 deviations: any value past the training range isolates alike, and the
        # forest's float32 must never see an overflowing value.
        out: FloatArray = np.clip((feats - self._center) / self._spread, -1e6, 1e6)
        return out

    def _raw_score(self, context: FloatArray, new: FloatArray) -> FloatArray:
        assert self._forest is not None
        feats = self._standardise(window_features(context, new, self._context, self._floor))
        return _raw(self._forest, feats)


def _raw(forest: IsolationForest, feats: FloatArray) -> FloatArray:
    """Inverse normalised path length c(n) / E[h]: higher is more anomalous, unbounded above."""
    with np.errstate(divide="ignore"):
        out: FloatArray = -1.0 / np.log2(-forest.score_samples(feats))
    return out
