"""Several value columns at once: per-column scores and one combined score and decision.

A multivariate detector (``multivariate = True``, e.g. iforest) sees the rows of all columns
together; its per-column contributions are the scores of a :class:`~detectors.profile.ProfileDetector`
per column (the column's own distance from its learned profile), which root-cause ranking
reads. A univariate detector runs once per column; the combined score is the largest column
score (the most unusual column decides), and the decision is that score against the threshold,
then the detector's refractory (one alarm per incident across all columns).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from aiops.detector import Detector

from .alarms import BoolArray, Refractory
from .params import FloatArray

__all__ = ["ColumnSet"]


class ColumnSet:
    """``k`` columns scored together (see the module docstring).

    Args:
        make: builds a fresh configured detector (the same parameters each call).
        columns: the number of value columns.
    """

    def __init__(self, make: Callable[[], Detector], columns: int) -> None:
        first = make()
        self.threshold = float(first.threshold)
        self.multivariate = bool(getattr(first, "multivariate", False)) and columns > 1
        self.columns = columns
        if self.multivariate:
            from .registry import create

            self._joint: Detector | None = first
            self._cols = [create("profile") for _ in range(columns)]
            self._refr = None
        else:
            self._joint = None
            self._cols = [first] + [make() for _ in range(columns - 1)]
            points = int(getattr(first, "refractory", 0) or 0)
            self._refr = Refractory(points) if points and columns > 1 else None

    @property
    def warmup_points(self) -> int:
        det = self._joint if self._joint is not None else self._cols[0]
        return int(getattr(det, "warmup_points", 0))

    def fit(self, rows: FloatArray) -> None:
        """Learn a history of rows (n, k)."""
        if self._joint is not None:
            self._joint.fit(rows)
        for j, det in enumerate(self._cols):
            det.fit(rows[:, j])

    def detect(self, rows: FloatArray) -> tuple[FloatArray, BoolArray, FloatArray]:
        """Combined scores, decisions and per-column scores (n, k) of rows (n, k)."""
        n = rows.shape[0]
        per = np.zeros((n, self.columns))
        own: list[BoolArray] = []
        for j, det in enumerate(self._cols):
            per[:, j], f = _detect(det, rows[:, j])
            own.append(f)
        if self._joint is not None:
            return (*_detect(self._joint, rows), per)
        if self.columns == 1:
            return per[:, 0].copy(), own[0], per
        scores = per.max(axis=1) if n else np.zeros(0)
        flags = scores >= self.threshold
        if self._refr is not None:
            flags = self._refr.batch(flags)
        return scores, flags, per


def _detect(det: Detector, values: FloatArray) -> tuple[FloatArray, BoolArray]:
    fn: Any = getattr(det, "detect", None)
    if fn is not None:
        s, f = fn(values)
        return np.asarray(s, dtype=np.float64), np.asarray(f, dtype=bool)
    s = np.asarray(det.score(values), dtype=np.float64)
    return s, s >= det.threshold
