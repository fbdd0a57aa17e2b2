"""The refit schedule shared by the model-based detectors (iforest, lstm, seasonal).

A model is fitted on the first ``train_size`` finite points (or by ``fit(history)``), then
refitted every ``refit_every`` points on the trailing ``train_window`` points. The schedule
counts finite points, so batch and streaming refit at exactly the same points: ``score``
cuts its input at refit boundaries and scores each segment in one vectorised call with the
model of that moment; ``update`` is the same call on one point. Until the first fit, points
score 0.0 (the warm-up).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from aiops.errors import DetectorError

from .base import BaseDetector, FloatArray, as_values

__all__ = ["RefitDetector", "Tail"]


class Tail:
    """The last ``size`` rows of a growing 2-D array; amortised O(1) append."""

    def __init__(self, size: int, width: int) -> None:
        self.size = size
        self._buf = np.empty((2 * size + 1, width), dtype=np.float64)
        self._end = 0

    def extend(self, rows: FloatArray) -> None:
        n = rows.shape[0]
        if n >= self.size:
            self._buf[: self.size] = rows[-self.size:]
            self._end = self.size
            return
        if self._end + n > self._buf.shape[0]:
            keep = self.size - n
            self._buf[:keep] = self._buf[self._end - keep: self._end]
            self._end = keep
        self._buf[self._end: self._end + n] = rows
        self._end += n

    def last(self, n: int) -> FloatArray:
        """The last ``min(n, stored)`` rows (a view)."""
        lo = max(0, self._end - min(n, self.size))
        out: FloatArray = self._buf[lo: self._end]
        return out


class RefitDetector(BaseDetector):
    """Base of detectors whose model is (re)fitted on a schedule.

    Subclasses set ``train_size``, ``refit_every`` (None or 0: never refit), ``train_window``
    and implement ``_fit_model(train)`` and ``_raw_score(context, new) -> scores in [0, 1]``,
    where ``context`` holds the finite rows just before ``new`` (up to ``_context`` of them).
    """

    train_size: int
    refit_every: int | None
    train_window: int
    _multivariate = False
    _context = 0  # rows of history a score needs before the point itself

    def _reset(self) -> None:
        self._width: int | None = None
        self._tail: Tail | None = None
        self._count = 0
        self._next_fit: float = self.train_size
        self._fitted = False
        self._reset_alarm_options()

    # --- verbs ---------------------------------------------------------------------------

    def fit(self, history: Any) -> RefitDetector:
        """Fit the model on the last ``train_window`` finite points of ``history`` now.

        The refit clock restarts: the next refit comes ``refit_every`` points later. A history
        too short to fit on is learned as context, and the warm-up goes on until ``train_size``.
        """
        rows = self._rows(history)
        self._reset()
        rows = self._smoothed_rows(rows)
        rows = rows[np.isfinite(rows).all(axis=1)]
        if rows.shape[0] == 0:
            return self
        self._ensure_width(rows.shape[1])
        self._learn(rows)
        if rows.shape[0] >= self._min_train():
            self._refit()
        return self

    def score(self, values: Any) -> FloatArray:
        """One score in [0, 1] per point (row), causally; advances the state past ``values``."""
        rows = self._smoothed_rows(self._rows(values))
        out = np.zeros(rows.shape[0], dtype=np.float64)
        mask = np.isfinite(rows).all(axis=1)
        fin = rows[mask]
        if fin.shape[0] == 0:
            return self._muted(out)
        self._ensure_width(fin.shape[1])
        parts = []
        p = 0
        while p < fin.shape[0]:
            stop = fin.shape[0]
            if math.isfinite(self._next_fit):
                stop = min(stop, p + int(self._next_fit) - self._count)
            seg = fin[p:stop]
            parts.append(self._score_segment(seg))
            self._learn(seg)
            if self._count >= self._next_fit:
                self._refit()
            p = stop
        out[mask] = np.concatenate(parts)
        return self._muted(out)

    def update(self, value: Any) -> float:
        """Score one new point (a number, or a row of numbers for a multivariate detector)."""
        try:
            row = np.asarray(value, dtype=np.float64).reshape(1, -1)
        except (TypeError, ValueError) as exc:
            raise DetectorError(f"{self.name}: value must be a number, got: {value!r}") from exc
        if not self._multivariate and row.shape[1] != 1:
            raise DetectorError(f"{self.name}: value must be one number, got: {value!r}")
        if not np.isfinite(row).all():
            return 0.0 if self._refr is None else self._refr.one(0.0)  # a gap counts as a muted point
        return float(self.score(row if self._multivariate else row[0])[0])

    # --- internals -------------------------------------------------------------------------

    def _smoothed_rows(self, rows: FloatArray) -> FloatArray:
        if self._smoother is None:
            return rows
        if rows.shape[1] != 1:
            raise DetectorError(f"{self.name}: smooth needs one value per point, got rows of {rows.shape[1]}")
        return self._smoother.batch(rows[:, 0]).reshape(-1, 1)

    def _rows(self, values: Any) -> FloatArray:
        arr = as_values(values, self.name, ndim=(1, 2) if self._multivariate else (1,))
        return arr.reshape(-1, 1) if arr.ndim == 1 else arr

    def _ensure_width(self, width: int) -> None:
        if self._width is None:
            self._width = width
            self._tail = Tail(max(self.train_window, self._context, 1), width)
        elif width != self._width:
            raise DetectorError(f"{self.name}: values have {width} columns, the detector was started "
                                f"with {self._width}")

    def _min_train(self) -> int:
        return self._context + 2

    def _learn(self, rows: FloatArray) -> None:
        assert self._tail is not None
        self._tail.extend(rows)
        self._count += rows.shape[0]

    def _score_segment(self, seg: FloatArray) -> FloatArray:
        if not self._fitted:
            return np.zeros(seg.shape[0])
        assert self._tail is not None
        s = self._raw_score(self._tail.last(self._context), seg)
        s[~np.isfinite(s)] = 0.0
        out: FloatArray = np.clip(s, 0.0, 1.0)
        return out

    def _refit(self) -> None:
        assert self._tail is not None
        self._fit_model(self._tail.last(self.train_window).copy())
        self._fitted = True
        self._count = 0
        self._next_fit = self.refit_every if self.refit_every else math.inf

    # subclasses ---------------------------------------------------------------------------

    def _fit_model(self, train: FloatArray) -> None:
        """Fit model and calibration on ``train`` (rows, oldest first)."""
        raise DetectorError(f"{self.name}: _fit_model is not implemented")

    def _raw_score(self, context: FloatArray, new: FloatArray) -> FloatArray:
        """Calibrated scores of ``new`` rows given the ``context`` rows before them."""
        raise DetectorError(f"{self.name}: _raw_score is not implemented")
