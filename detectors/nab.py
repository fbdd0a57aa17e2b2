"""NAB scoring: windows, the scaled sigmoid, cost profiles and the corpus-wide threshold sweep.

A re-implementation of the Numenta Anomaly Benchmark's scorer (``nab/sweeper.py`` in NAB v1.1;
Lavin & Ahmad, "Evaluating Real-time Anomaly Detection Algorithms", 2015), vectorised with
numpy. The rules, as NAB applies them:

- Each point gets a *sweep weight*. Inside a labelled window ``[a, b]`` (width ``w`` points)
  point ``i`` sits at relative position ``p = -(b - i + 1) / w`` (-1 at the left edge, close to
  0 at the right edge) and weighs ``A_TP * S(p) / S(-1)`` where ``S(p) = 2 / (1 + e^(5p)) - 1``:
  exactly ``A_TP`` for a detection at the left edge, close to 0 at the right edge.
- Outside windows a detection is a false positive weighing ``A_FP * S(q)``: ``q`` is the distance
  to the right edge of the preceding window in units of that window's width minus one (so FPs
  just after a window cost little), or ``S = -1`` when no window precedes it or ``q >= 3``.
- A window is worth the weight of its *first* (highest weighted) detection, or ``-A_FN`` when
  nothing fires inside it; later detections in the same window count neither way.
- The first 15% of each file (at most 750 points) is a probationary period: not scored.
- Scores are normalised over a corpus as ``100 * (raw - null) / (perfect - null)``: ``null``
  is the detector that never fires (``-A_FN`` per window), ``perfect`` fires at the left edge of
  every window and nowhere else (``A_TP`` per window).

Examples:
    >>> import numpy as np
    >>> ts = np.arange(20, dtype=np.int64) * 60_000
    >>> f = prepare_file("a.csv", ts, [(ts[10], ts[13])], probation_percent=0.0)
    >>> hits = np.zeros(20, dtype=bool)
    >>> raw_score(f, hits), null_score([f]), perfect_score([f])
    (-1.0, -1.0, 1.0)
    >>> hits[10] = True
    >>> round(raw_score(f, hits), 6)
    1.0
    >>> hits[2] = True   # one false positive before any window costs A_FP
    >>> round(raw_score(f, hits), 6)
    0.89
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "CostProfile",
    "PROFILES",
    "NabFile",
    "scaled_sigmoid",
    "probationary_length",
    "prepare_file",
    "raw_score",
    "null_score",
    "perfect_score",
    "normalised_score",
    "sweep_thresholds",
    "best_threshold",
]

FloatArray = npt.NDArray[np.float64]
PROBATION_PERCENT = 0.15  # NAB's default; with the 5000-row cap this is at most 750 points


@dataclass(frozen=True, slots=True)
class CostProfile:
    """NAB application profile: weights of a true positive, a false positive and a miss."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


PROFILES: dict[str, CostProfile] = {
    "standard": CostProfile("standard", 1.0, 0.11, 1.0),
    "reward_low_fp": CostProfile("reward_low_fp", 1.0, 0.22, 1.0),
    "reward_low_fn": CostProfile("reward_low_fn", 1.0, 0.11, 2.0),
}


def scaled_sigmoid(position: float) -> float:
    """NAB's ``scaledSigmoid``: 0.987 at -1 (window's left edge), 0 at 0, -1 from 3 on."""
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def _scaled_sigmoid_array(position: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    with np.errstate(over="ignore"):
        out = 2.0 / (1.0 + np.exp(5.0 * position)) - 1.0
    return np.where(position >= 3.0, -1.0, out)


def probationary_length(n_rows: int, percent: float = PROBATION_PERCENT) -> int:
    """Points at the start of a file that NAB does not score: ``min(floor(p*n), p*5000)``."""
    return int(min(math.floor(percent * n_rows), percent * 5000))


@dataclass(frozen=True, slots=True)
class NabFile:
    """One file prepared for scoring; independent of any detector's output.

    Attributes:
        path: the file's key (relative path, as in the labels file).
        ts_ms: timestamps of all points, UTC ms.
        windows: ``(first, last)`` point indices of each labelled window (inclusive).
        window_of: per point, the index into ``windows`` of the window it lies in, else -1.
        scorable: per point, False inside the probationary period.
        tp_position: per point inside a window, the scaled sigmoid of its position divided by
            its value at the left edge (1.0 at the left edge); 0 elsewhere.
        fp_sigmoid: per point outside windows, the (negative) scaled sigmoid of its distance
            past the preceding window; 0 inside windows.
        counted: indices of the windows that have at least one scorable point (NAB's windows).
    """

    path: str
    ts_ms: npt.NDArray[np.int64]
    windows: tuple[tuple[int, int], ...]
    window_of: npt.NDArray[np.int64]
    scorable: npt.NDArray[np.bool_]
    tp_position: npt.NDArray[np.float64]
    fp_sigmoid: npt.NDArray[np.float64]
    counted: tuple[int, ...]

    @property
    def n_windows(self) -> int:
        """Windows that are scored (at least partly after the probationary period)."""
        return len(self.counted)

    def weights(self, profile: CostProfile) -> npt.NDArray[np.float64]:
        """NAB's per-point sweep score under ``profile``."""
        return np.where(self.window_of >= 0, self.tp_position * profile.tp_weight,
                        self.fp_sigmoid * profile.fp_weight)


def prepare_file(path: str, ts_ms: npt.ArrayLike, windows_ms: Sequence[tuple[int, int]],
                 probation_percent: float = PROBATION_PERCENT) -> NabFile:
    """Locate the labelled windows of one file among its timestamps and weigh every point.

    A window covers the points whose timestamps lie in ``[start, end]`` (both inclusive), so
    windows given as timestamps that occur in the file behave exactly as in NAB. A window that
    covers no point is ignored.

    Args:
        path: the file's key, used in reports.
        ts_ms: the file's timestamps (UTC ms), in file order (normally increasing).
        windows_ms: ``(start_ms, end_ms)`` of each labelled window.
        probation_percent: NAB's probationary fraction (0.15).
    """
    ts = np.asarray(ts_ms, dtype=np.int64)
    n = len(ts)
    idx = np.arange(n)
    located: list[tuple[int, int]] = []
    for start_ms, end_ms in sorted(windows_ms):
        # Not a binary search: real files have rows out of order (NAB's machine_temperature
        # steps back 55 minutes once). Edges that occur in the file are found as NAB finds
        # them (the first row with that timestamp); otherwise the first row at or after the
        # start and the last row at or before the end.
        after, before = ts >= start_ms, ts <= end_ms
        if not (after.any() and before.any()):
            continue
        exact_start, exact_end = np.flatnonzero(ts == start_ms), np.flatnonzero(ts == end_ms)
        first = int(exact_start[0]) if exact_start.size else int(np.argmax(after))
        last = int(exact_end[0]) if exact_end.size else n - 1 - int(np.argmax(before[::-1]))
        if first <= last:
            located.append((first, last))
    window_of = np.full(n, -1, dtype=np.int64)
    tp_position = np.zeros(n, dtype=np.float64)
    # Outside windows: distance past the preceding window's right edge (3+ = "far", -1 weight).
    past = np.full(n, 3.0, dtype=np.float64)
    max_tp = scaled_sigmoid(-1.0)
    for k, (first, last) in enumerate(located):
        width = last - first + 1
        window_of[first:last + 1] = k
        position = -(last - idx[first:last + 1] + 1) / width
        tp_position[first:last + 1] = _scaled_sigmoid_array(position) / max_tp
        nxt = located[k + 1][0] if k + 1 < len(located) else n
        following = idx[last + 1:nxt]
        past[last + 1:nxt] = np.abs(last - following) / max(width - 1, 1)
    fp_sigmoid = np.where(window_of >= 0, 0.0, _scaled_sigmoid_array(past))
    scorable = idx >= probationary_length(n, probation_percent)
    counted = tuple(sorted({int(w) for w in np.unique(window_of[scorable]) if w >= 0}))
    return NabFile(path, ts, tuple(located), window_of, scorable, tp_position, fp_sigmoid, counted)


def raw_score(f: NabFile, detected: npt.NDArray[np.bool_], profile: CostProfile = PROFILES["standard"]) -> float:
    """NAB's raw score of one file for the given per-point detections."""
    weights = f.weights(profile)
    hit = detected & f.scorable
    total = float(weights[hit & (f.window_of < 0)].sum())
    for k in f.counted:
        in_window = hit & (f.window_of == k)
        total += float(weights[in_window].max()) if in_window.any() else -profile.fn_weight
    return total


def null_score(files: Sequence[NabFile], profile: CostProfile = PROFILES["standard"]) -> float:
    """Raw score of the detector that never fires: every window is a miss."""
    return -profile.fn_weight * sum(f.n_windows for f in files)


def perfect_score(files: Sequence[NabFile], profile: CostProfile = PROFILES["standard"]) -> float:
    """Raw score of the detector that fires at each window's left edge and nowhere else."""
    return profile.tp_weight * sum(f.n_windows for f in files)


def normalised_score(raw: float, files: Sequence[NabFile], profile: CostProfile = PROFILES["standard"]) -> float | None:
    """``100 * (raw - null) / (perfect - null)``; None where no window is scored (no scale)."""
    null, perfect = null_score(files, profile), perfect_score(files, profile)
    if perfect == null:
        return None
    return 100.0 * (raw - null) / (perfect - null)


def sweep_thresholds(files: Sequence[NabFile], scores: Sequence[npt.NDArray[np.float64]],
                     profile: CostProfile = PROFILES["standard"]) -> tuple[FloatArray, FloatArray]:
    """Corpus raw score at every distinct threshold, as NAB's ``calcScoreByThreshold`` over all files.

    Returns:
        ``(thresholds, raw)``, thresholds descending; ``raw[j]`` is the summed raw score when a
        point counts as detected iff its score ``>= thresholds[j]``. The first entry is
        ``+inf`` (nothing detected: the null score).
    """
    all_scores: list[npt.NDArray[np.float64]] = []
    all_deltas: list[npt.NDArray[np.float64]] = []
    for f, s in zip(files, scores, strict=True):
        s = np.nan_to_num(np.asarray(s, dtype=np.float64), nan=0.0)
        weights = f.weights(profile)
        outside = f.scorable & (f.window_of < 0)
        all_scores.append(s[outside])
        all_deltas.append(weights[outside])
        for k in f.counted:
            members = np.flatnonzero(f.scorable & (f.window_of == k))
            order = members[np.argsort(-s[members], kind="stable")]
            # A window's worth is its best detection so far: each point adds the rise in the
            # running maximum (from -A_FN, a miss) when the threshold sweeps down to its score.
            best = np.maximum.accumulate(np.maximum(weights[order], -profile.fn_weight))
            all_scores.append(s[order])
            all_deltas.append(np.diff(best, prepend=-profile.fn_weight))
    base = null_score(files, profile)
    if not all_scores:
        return np.array([np.inf]), np.array([base])
    s_all = np.concatenate(all_scores)
    d_all = np.concatenate(all_deltas)
    order = np.argsort(-s_all, kind="stable")
    s_sorted = s_all[order]
    cum = np.cumsum(d_all[order])
    # The score at threshold T counts every point with score >= T: the end of each tie group.
    last_of_group = np.flatnonzero(np.append(s_sorted[1:] != s_sorted[:-1], True))
    thresholds = np.concatenate([[np.inf], s_sorted[last_of_group]])
    raw = np.concatenate([[base], base + cum[last_of_group]])
    return thresholds, raw


def best_threshold(files: Sequence[NabFile], scores: Sequence[npt.NDArray[np.float64]],
                   profile: CostProfile = PROFILES["standard"]) -> tuple[float, float]:
    """The single threshold over the whole corpus that maximises the raw NAB score.

    Returns:
        ``(threshold, raw score)``; among equal scores, the highest threshold (fewest alarms).
    """
    thresholds, raw = sweep_thresholds(files, scores, profile)
    j = int(np.argmax(raw))
    return float(thresholds[j]), float(raw[j])
