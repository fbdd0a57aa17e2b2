"""Point-wise detection metrics from per-row labels (the SMD convention, see its README).

* :func:`best_f1`: the best F1 over every threshold of the scores, point by point (no adjustment).
* :func:`adjusted_best_f1`: the same with point adjustment (a labelled segment counts wholly
  detected as soon as one of its points is flagged), which papers report and which inflates
  scores: random scores reach about 0.78 on SMD.
* :func:`f1_of`: precision, recall and F1 of given decisions, plain or adjusted.
* :func:`alarm_precision`: alarm runs (consecutive flagged rows) that overlap a labelled
  segment, over all alarm runs: how often a page is worth reading.
* :func:`hit_rate`: HitRate@P% of root-cause ranking (OmniAnomaly's interpretation score).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .params import FloatArray

__all__ = ["adjusted_best_f1", "alarm_precision", "best_f1", "f1_of", "hit_rate", "segments"]

BoolArray = npt.NDArray[np.bool_]


def segments(labels: BoolArray) -> list[tuple[int, int]]:
    """``[start, end)`` row ranges of consecutive positive labels."""
    lab = np.asarray(labels, dtype=np.int8)
    d = np.diff(np.concatenate([[0], lab, [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def best_f1(scores: FloatArray, labels: BoolArray) -> tuple[float, float]:
    """``(best F1, its threshold)`` over every distinct score (flag ``score >= threshold``)."""
    s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
    y = np.asarray(labels, dtype=bool)
    pos = int(y.sum())
    if pos == 0 or s.size == 0:
        return 0.0, math.inf
    order = np.argsort(-s, kind="stable")
    ss, yy = s[order], y[order]
    tp = np.cumsum(yy)
    fp = np.cumsum(~yy)
    last = np.flatnonzero(np.r_[ss[1:] != ss[:-1], True])  # the last row of each distinct score
    tp, fp = tp[last], fp[last]
    f1 = 2 * tp / (tp + fp + pos)
    k = int(np.argmax(f1))
    return float(f1[k]), float(ss[last[k]])


def _adjusted_scores(scores: FloatArray, labels: BoolArray) -> FloatArray:
    """Scores where every labelled segment's rows take the segment's maximum (point adjustment)."""
    out = np.array(scores, dtype=np.float64)
    for a, b in segments(labels):
        out[a:b] = out[a:b].max()
    return out


def adjusted_best_f1(scores: FloatArray, labels: BoolArray) -> float:
    """Best F1 over thresholds with point adjustment."""
    return best_f1(_adjusted_scores(scores, labels), labels)[0]


def f1_of(flags: BoolArray, labels: BoolArray, *, adjusted: bool = False) -> tuple[float, float, float]:
    """``(precision, recall, F1)`` of decisions, point-wise or point-adjusted."""
    f = np.asarray(flags, dtype=bool).copy()
    y = np.asarray(labels, dtype=bool)
    if adjusted:
        for a, b in segments(y):
            if f[a:b].any():
                f[a:b] = True
    tp = int((f & y).sum())
    p = tp / int(f.sum()) if f.any() else 0.0
    r = tp / int(y.sum()) if y.any() else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def alarm_precision(flags: BoolArray, labels: BoolArray) -> float | None:
    """Alarm runs overlapping a labelled segment / all alarm runs (None without alarms)."""
    runs = segments(np.asarray(flags, dtype=bool))
    if not runs:
        return None
    y = np.asarray(labels, dtype=bool)
    return sum(bool(y[a:b].any()) for a, b in runs) / len(runs)


def hit_rate(column_scores: FloatArray, causes: Sequence[tuple[int, int, Sequence[int]]], percent: float,
             how: str = "max") -> float:
    """HitRate@``percent``: per segment ``(start, end, cause columns)``, the share of the cause
    columns among the top ``ceil(percent/100 * |causes|)`` columns ranked by their largest
    (``how="mean"``: mean) score over the segment; the mean over segments."""
    rates = []
    for a, b, cols in causes:
        if not cols or b <= a:
            continue
        seg = column_scores[a:b]
        mean = np.nan_to_num(seg.max(axis=0) if how == "max" else seg.mean(axis=0), nan=0.0)
        top = int(math.ceil(percent / 100.0 * len(cols)))
        ranked = np.argsort(-mean, kind="stable")[:top]
        rates.append(len(set(ranked.tolist()) & set(cols)) / len(cols))
    return float(np.mean(rates)) if rates else 0.0
