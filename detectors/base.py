"""The detector pipeline: one base class owns it, each model supplies only its hooks.

Every detector here follows ``aiops.detector.Detector``. :class:`BaseDetector` runs, for the
batch ``score`` and the streaming ``update`` alike (like pyod's ``BaseDetector``, whose models
supply ``fit`` and ``decision_function`` only)::

    values -> NaN/+-Inf rule -> smoothing -> model hook (raw deviation) -> calibration -> score
                                                                  score >= threshold -> refractory -> decision

* NaN/+-Inf rule: a non-finite point scores 0.0 and never reaches the model (a ``positional``
  model sees it as a gap that keeps its slot, e.g. a seasonal phase, and still scores it 0.0).
* smoothing (``smooth``): :class:`~detectors.alarms.TrailingMean`.
* model hook: ``_raw_batch(x)`` (vectorised) and/or ``_raw_one(x)`` (one point): the raw
  deviation of each point against the state before it, then learn it; NaN where the model is
  not warm yet (scores 0.0). ``_reset()`` gives a fresh state; ``_learn(x)`` (default: score and
  drop) learns a history in ``fit``.
* calibration: ``calibrator_`` (:mod:`detectors.calibration`) maps raw deviations to scores in
  [0, 1] that keep their ranking.
* refractory (``refractory``): :class:`~detectors.alarms.Refractory`, on decisions only.

``detect(values)`` returns scores and decisions; ``score`` and ``update`` are its projections, so
whichever verb is called, the state (refractory included) advances the same way.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from aiops.errors import DetectorError

from .alarms import BoolArray, Refractory, TrailingMean
from .calibration import Calibrator, Identity
from .params import FloatArray, as_values, check_int

__all__ = ["BaseDetector", "FloatArray"]


class BaseDetector:
    """Common verbs and the pipeline (see the module docstring); subclasses supply the hooks."""

    name: ClassVar[str] = ""
    positional: ClassVar[bool] = False  # the model hook sees gaps (as NaN) in their slots
    multivariate: ClassVar[bool] = False  # score takes rows of k values, shape (n, k)
    threshold: float
    smooth: int = 1
    refractory: int = 0
    calibrator_: Calibrator = Identity()
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

    @property
    def warmup_points(self) -> int:
        """Finite points the model needs before its scores mean anything (earlier ones score 0)."""
        return 0

    # --- the verbs ---------------------------------------------------------------------------

    def fit(self, history: Sequence[float] | FloatArray) -> BaseDetector:
        """Start from a fresh state and learn ``history`` (no alarm running afterwards)."""
        self._reset()
        self._reset_alarm_options()
        x = self._input(history)
        finite = self._finite(x)
        x = self._smoothed(x)
        self._learn(x if self.positional else x[finite])
        if self._refr is not None:
            self._refr.reset()
        return self

    def score(self, values: Sequence[float] | FloatArray) -> FloatArray:
        """One score in [0, 1] per point, causally; advances the state past ``values``."""
        return self.detect(values)[0]

    def update(self, value: Any) -> float:
        """Score one new point against the state before it, then learn it."""
        return self.detect_one(value)[0]

    def is_anomaly(self, score: float) -> bool:
        """The threshold part of the decision: ``score >= threshold`` (before the refractory)."""
        return score >= self.threshold

    def detect(self, values: Sequence[float] | FloatArray) -> tuple[FloatArray, BoolArray]:
        """Scores in [0, 1] and the detector's own decisions (threshold, then refractory)."""
        x = self._input(values)
        n = x.shape[0]
        finite = self._finite(x)
        x = self._smoothed(x)
        every = bool(finite.all())
        if self.positional or every:
            s = self._scores(x) if n else np.zeros(0)
            if not every:
                s[~finite] = 0.0
        else:
            s = np.zeros(n, dtype=np.float64)
            if finite.any():
                s[finite] = self._scores(x[finite])
        s[~(s >= 0.0)] = 0.0  # NaN from a model that slipped: the protocol promises [0, 1]
        flags = s >= self.threshold
        if self._refr is not None:
            flags = self._refr.batch(flags)
        return s, flags

    def detect_one(self, value: Any) -> tuple[float, bool]:
        """Streaming twin of :meth:`detect` for one point."""
        if self.multivariate:
            scores, flags = self.detect(self._row(value))
            return float(scores[0]), bool(flags[0])
        try:
            x = float(value)
        except (TypeError, ValueError) as exc:
            raise DetectorError(f"{self.name}: value must be a number, got: {value!r}") from exc
        finite = math.isfinite(x)
        if self._smoother is not None:
            x = self._smoother.one(x)
        score = 0.0
        if finite or self.positional:
            score = self._score_one(x)
            if not (finite and score >= 0.0):
                score = 0.0
        flag = score >= self.threshold
        if self._refr is not None:
            flag = self._refr.one(flag)
        return score, flag

    # --- pipeline stages -----------------------------------------------------------------------

    def _input(self, values: Any) -> FloatArray:
        return as_values(values, self.name, ndim=(1, 2) if self.multivariate else (1,))

    def _row(self, value: Any) -> FloatArray:
        try:
            row = np.asarray(value, dtype=np.float64).reshape(1, -1)
        except (TypeError, ValueError) as exc:
            raise DetectorError(f"{self.name}: value must be a number or a row of numbers, got: {value!r}") from exc
        return row

    @staticmethod
    def _finite(x: FloatArray) -> BoolArray:
        m: BoolArray = np.isfinite(x)
        if m.ndim == 1:
            return m
        out: BoolArray = np.asarray(m.all(axis=1), dtype=np.bool_)
        return out

    def _smoothed(self, x: FloatArray) -> FloatArray:
        """``x`` through the trailing mean if ``smooth`` > 1 (positions kept, gaps NaN)."""
        if self._smoother is None:
            return x
        if x.ndim == 2:
            if x.shape[1] != 1:
                raise DetectorError(f"{self.name}: smooth needs one value per point, got rows of {x.shape[1]}")
            return self._smoother.batch(x[:, 0]).reshape(-1, 1)
        return self._smoother.batch(x)

    def _scores(self, x: FloatArray) -> FloatArray:
        """Model hook, then calibration (a refitting model calibrates per segment here)."""
        return self.calibrator_.transform(self._raw_batch(x))

    def _score_one(self, x: float) -> float:
        return self.calibrator_.transform_one(self._raw_one(x))

    # the shared alarm options ----------------------------------------------------------------

    def _init_alarm_options(self, smooth: Any, refractory: Any) -> None:
        """Check and set ``smooth`` / ``refractory`` (after ``threshold``)."""
        self.smooth = check_int(self.name, "smooth", smooth, 1)
        self.refractory = check_int(self.name, "refractory", refractory, 0)
        self._reset_alarm_options()

    def _reset_alarm_options(self) -> None:
        """Fresh smoothing and refractory state (no values averaged, no alarm running)."""
        self._smoother = TrailingMean(self.smooth) if self.smooth > 1 else None
        self._refr = Refractory(self.refractory) if self.refractory else None

    # model hooks --------------------------------------------------------------------------------

    def _reset(self) -> None:
        """A fresh model state (default: nothing to reset)."""

    def _learn(self, x: FloatArray) -> None:
        """Learn a history (default: score it and drop the scores)."""
        if x.shape[0]:
            self._scores(x)

    def _raw_batch(self, x: FloatArray) -> FloatArray:
        """Raw deviations of points, in order (default: the streaming hook in a loop)."""
        return np.fromiter((self._raw_one(float(v)) for v in x), dtype=np.float64, count=x.shape[0])

    def _raw_one(self, x: float) -> float:
        """Raw deviation of one point (default: the batch hook on one point).

        A subclass overrides at least one of ``_raw_batch`` and ``_raw_one``.
        """
        return float(self._raw_batch(np.array([x]))[0])
