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

from .base import BaseDetector, FloatArray
from .calibration import Identity, TailCalibrator
from .params import as_values

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
    and implement the model hooks ``_fit_model(train) -> reference raw scores`` (the raw scores
    of normal rows, which calibrate the model: a :class:`~detectors.calibration.TailCalibrator`
    is fitted on them here) and ``_raw_score(context, new) -> raw scores`` (NaN: not scored),
    where ``context`` holds the finite rows just before ``new`` (up to ``_context`` of them).
    """

    train_size: int
    refit_every: int | None
    train_window: int
    _context = 0  # rows of history a score needs before the point itself

    @property
    def warmup_points(self) -> int:
        return int(self.train_size)

    def _reset(self) -> None:
        self._width: int | None = None
        self._tail: Tail | None = None
        self._count = 0
        self._next_fit: float = self.train_size
        self._fitted = False
        self.calibrator_ = Identity()

    # --- pipeline hooks -------------------------------------------------------------------

    def _input(self, values: Any) -> FloatArray:
        arr = as_values(values, self.name, ndim=(1, 2) if self.multivariate else (1,))
        return arr.reshape(-1, 1) if arr.ndim == 1 else arr

    def _learn(self, rows: FloatArray) -> None:
        """``fit``: fit the model on the last ``train_window`` finite rows of the history now.

        The refit clock restarts: the next refit comes ``refit_every`` points later. A history
        too short to fit on is learned as context, and the warm-up goes on until ``train_size``.
        """
        if rows.shape[0] == 0:
            return
        self._ensure_width(rows.shape[1])
        self._add(rows)
        if rows.shape[0] >= self._min_train():
            self._refit()

    def _scores(self, fin: FloatArray) -> FloatArray:
        """Scores of finite rows: cut at refit boundaries, each segment scored by the model
        and calibration of that moment."""
        self._ensure_width(fin.shape[1])
        parts = []
        p = 0
        while p < fin.shape[0]:
            stop = fin.shape[0]
            if math.isfinite(self._next_fit):
                stop = min(stop, p + int(self._next_fit) - self._count)
            seg = fin[p:stop]
            parts.append(self._score_segment(seg))
            self._add(seg)
            if self._count >= self._next_fit:
                self._refit()
            p = stop
        return np.concatenate(parts) if parts else np.zeros(0)

    def _score_one(self, x: float) -> float:
        return float(self._scores(np.array([[x]]))[0])

    # --- internals -------------------------------------------------------------------------

    def _ensure_width(self, width: int) -> None:
        if self._width is None:
            self._width = width
            self._tail = Tail(max(self.train_window, self._context, 1), width)
        elif width != self._width:
            raise DetectorError(f"{self.name}: values have {width} columns, the detector was started "
                                f"with {self._width}")

    def _min_train(self) -> int:
        return self._context + 2

    def _add(self, rows: FloatArray) -> None:
        assert self._tail is not None
        self._tail.extend(rows)
        self._count += rows.shape[0]

    def _score_segment(self, seg: FloatArray) -> FloatArray:
        if not self._fitted:
            return np.zeros(seg.shape[0])
        assert self._tail is not None
        return self.calibrator_.transform(self._raw_score(self._tail.last(self._context), seg))

    def _refit(self) -> None:
        assert self._tail is not None
        reference = self._fit_model(self._tail.last(self.train_window).copy())
        self.calibrator_ = TailCalibrator.fit(reference)
        self._fitted = True
        self._count = 0
        self._next_fit = self.refit_every if self.refit_every else math.inf

    # model hooks ----------------------------------------------------------------------------

    def _fit_model(self, train: FloatArray) -> FloatArray:
        """Fit the model on ``train`` (rows, oldest first); return raw scores of normal rows."""
        raise DetectorError(f"{self.name}: _fit_model is not implemented")

    def _raw_score(self, context: FloatArray, new: FloatArray) -> FloatArray:
        """Raw scores of ``new`` rows given the ``context`` rows before them."""
        raise DetectorError(f"{self.name}: _raw_score is not implemented")
