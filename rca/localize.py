"""Rank the root causes of one case.

Three published ideas, combined:

1. **BARO** (Pham, Ha, Zhang: "BARO: Robust Root Cause Analysis for Microservices via
   Multivariate Bayesian Online Change Point Detection", FSE 2024): find the onset by Bayesian
   online change-point detection (:mod:`rca.onset`), then score each metric by how far its values
   after the onset leave the normal period, in robust units (median, IQR).
2. **CIRCA** (Li et al.: "Causal Inference-Based Root Cause Analysis for Online Service Systems
   with Intervention Recognition", KDD 2022): regression-based hypothesis testing: a metric is
   regressed on its parents in the causal graph over the normal period; a metric whose
   *residual* jumps was intervened on, one that its parents explain is only an effect. The
   residual is scored with BARO's robust scale.
3. **Descendant adjustment** (CIRCA's DA): an anomalous node gains the largest score among the
   effects it reaches (through effects that are not anomalous themselves), and ties go to the
   upstream node, so that a downstream symptom does not outrank its upstream cause.

Causal by construction: nothing after ``case.end_ms`` is read. Bounded: the normal period is at
most ``train_points`` rows, regressions take at most ``max_regressors`` parents, and once
``timeout_s`` is spent the remaining metrics are scored without regression.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from aiops.errors import InputError
from rca.graph import CausalGraph, MetricGraph
from rca.model import Cause, RcaCase, RcaResult, split_name
from rca.onset import find_onset

__all__ = ["RcaParams", "localize"]

_IQR_TO_SIGMA = 1.349  # IQR of a standard normal: robust units read as sigmas


@dataclass(frozen=True, slots=True)
class RcaParams:
    """Parameters of :func:`localize` (all keyword, defaulted, checked).

    Args:
        train_points: most rows of normal history before the onset to learn from.
        min_train_points: fewer normal rows than this is an error (nothing to compare with).
        gap_points: rows right before the onset left out of the normal period (a slow onset).
        window_points: most rows from the onset on to score.
        lags: parent lags in the regression (0: parents at the same instant only).
        ridge: ridge penalty of the regression, relative to the number of rows.
        max_regressors: most parents per regression (the most correlated ones are kept).
        std_floor: the scale of a change is ``max(IQR / 1.349, std_floor * std)`` of the
            normal period, so that a heavy-tailed metric is not read as a huge change.
        propagation_threshold: a node at or above this score (sigmas) collects its effects'
            scores (descendant adjustment); below, it passes its effects on to its causes.
        max_hops: only metrics within this many causal hops upstream of the symptom are
            candidates (``None``: all metrics; with no symptom, all metrics).
        onset_lookback_points: how far before the alert the onset is searched.
        hazard_points: expected segment length of the change-point prior.
        timeout_s: time budget; after it the remaining metrics get no regression.
    """

    train_points: int = 1440
    min_train_points: int = 10
    gap_points: int = 0
    window_points: int = 1440
    lags: int = 0
    ridge: float = 1e-3
    max_regressors: int = 32
    std_floor: float = 1.5
    propagation_threshold: float = 3.0
    max_hops: int | None = None
    onset_lookback_points: int = 60
    hazard_points: float = 250.0
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool]] = [
            ("train_points", self.train_points >= 2),
            ("min_train_points", 2 <= self.min_train_points <= self.train_points),
            ("gap_points", self.gap_points >= 0),
            ("window_points", self.window_points >= 1),
            ("lags", 0 <= self.lags <= 5),
            ("ridge", self.ridge >= 0 and math.isfinite(self.ridge)),
            ("max_regressors", self.max_regressors >= 0),
            ("std_floor", self.std_floor >= 0 and math.isfinite(self.std_floor)),
            ("propagation_threshold", math.isfinite(self.propagation_threshold)),
            ("max_hops", self.max_hops is None or self.max_hops >= 0),
            ("onset_lookback_points", self.onset_lookback_points >= 0),
            ("hazard_points", self.hazard_points >= 1),
            ("timeout_s", self.timeout_s > 0),
        ]
        for name, ok in checks:
            if not ok:
                raise InputError(f"rca parameter {name}: out of range, got {getattr(self, name)!r}")


def localize(case: RcaCase, graph: CausalGraph | None = None, params: RcaParams | None = None) -> RcaResult:
    """Rank the ``component:metric`` root causes of ``case``, best first.

    Args:
        case: the data and the alert.
        graph: cause→effect edges over components or metrics; ``None``: no graph (every metric
            is scored alone, BARO's setting).
        params: parameters; ``None``: the defaults.

    Returns:
        every candidate metric, ranked, each with its evidence.

    Raises:
        InputError: too little normal history, or a symptom that is not a column.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> db = rng.normal(size=200); db[150:] += 6
        >>> api = 2 * db + rng.normal(size=200) * 0.5
        >>> case = RcaCase(np.arange(200, dtype=np.int64) * 60_000, np.c_[db, api],
        ...                ("db:cpu", "api:latency"), alert_ms=150 * 60_000, symptom="api:latency")
        >>> [c.name for c in localize(case, CausalGraph.of([("db", "api")])).causes]
        ['db:cpu', 'api:latency']
    """
    p = params or RcaParams()
    started = time.monotonic()
    names = tuple(case.names)
    if case.symptom and case.symptom not in names:
        raise InputError(f"symptom {case.symptom!r} is not one of the metrics")
    ts = np.asarray(case.timestamps_ms, dtype=np.int64)
    vals = np.asarray(case.values, dtype=np.float64)
    if case.end_ms is not None:
        keep = ts <= case.end_ms
        ts, vals = ts[keep], vals[keep]
    if len(ts) == 0:
        raise InputError("no rows at or before the end of the anomaly window")
    alert_idx = int(np.searchsorted(ts, case.alert_ms, side="left"))
    alert_idx = min(alert_idx, len(ts) - 1)

    if case.onset_ms is not None:
        onset = min(int(np.searchsorted(ts, case.onset_ms, side="left")), len(ts) - 1)
    elif case.symptom:
        onset = find_onset(
            vals[:, names.index(case.symptom)],
            alert_idx,
            lookback_points=p.onset_lookback_points,
            reference_points=p.train_points,
            hazard_points=p.hazard_points,
        )
    else:
        onset = alert_idx
    train_end = max(0, onset - p.gap_points)
    train_start = max(0, train_end - p.train_points)
    if train_end - train_start < p.min_train_points:
        raise InputError(
            f"only {train_end - train_start} rows of normal history before the onset; "
            f"need {p.min_train_points} (min_train_points)"
        )
    window_end = min(len(ts), onset + p.window_points)
    data = _fill(vals[train_start:window_end], train_end - train_start)
    n_train = train_end - train_start

    mgraph = (graph or CausalGraph((), ())).expand(names)
    candidates = _candidates(mgraph, case.symptom, p.max_hops)
    col = {n: i for i, n in enumerate(names)}
    marginal = np.zeros(len(names))
    resid_z = np.zeros(len(names))
    onset_of: dict[str, int | None] = {}
    degraded = False
    for i, name in enumerate(names):
        y = data[:, i]
        if not np.isfinite(y).all():
            onset_of[name] = None
            continue
        z_marg = _robust_z(y, n_train, p.std_floor)
        marginal[i] = float(np.max(np.abs(z_marg[n_train:])))
        parents = [col[q] for q in mgraph.parents.get(name, ()) if np.isfinite(data[:, col[q]]).all()]
        z = z_marg
        if parents and time.monotonic() - started < p.timeout_s:
            z = _residual_z(data, i, parents, n_train, p)
        elif parents:
            degraded = True
        resid_z[i] = float(np.max(np.abs(z[n_train:])))
        above = np.nonzero(np.abs(z[n_train:]) >= 3.0)[0]
        first = int(above[0]) if len(above) else int(np.argmax(np.abs(z[n_train:])))
        onset_of[name] = int(ts[train_start + n_train + first])

    scores = _descendant_adjust(mgraph, dict(zip(names, resid_z.tolist(), strict=True)), p.propagation_threshold)
    depth = mgraph.depth()
    ranked = sorted(
        candidates,
        key=lambda n: (-scores[n], depth.get(n, 0), -marginal[col[n]], n),
    )
    causes = tuple(
        Cause(
            component=split_name(n)[0],
            metric=split_name(n)[1],
            score=float(scores[n]),
            z=float(resid_z[col[n]]),
            marginal_z=float(marginal[col[n]]),
            onset_ms=onset_of.get(n),
            path=mgraph.path_to(n, case.symptom) if case.symptom else (),
        )
        for n in ranked
    )
    used = asdict(p)
    used["degraded"] = degraded
    return RcaResult(
        causes=causes,
        onset_ms=int(ts[onset]),
        symptom=case.symptom,
        duration_s=time.monotonic() - started,
        params=used,
    )


def _fill(block: npt.NDArray[np.float64], n_train: int) -> npt.NDArray[np.float64]:
    """Forward-fill gaps (±Inf counts as a gap), then back-fill the head with the train median.

    A column with no finite point in the normal period stays NaN and is not scored.
    """
    out = block.copy()
    out[~np.isfinite(out)] = np.nan
    for j in range(out.shape[1]):
        c = out[:, j]
        good = np.isfinite(c)
        if good.all():
            continue
        head = c[:n_train][good[:n_train]]
        if len(head) == 0:
            continue
        idx = np.where(good, np.arange(len(c)), 0)
        np.maximum.accumulate(idx, out=idx)
        filled = c[idx]
        filled[~np.isfinite(filled)] = float(np.median(head))
        out[:, j] = filled
    return out


def _scale(x: npt.NDArray[np.float64], std_floor: float) -> tuple[float, float]:
    med = float(np.median(x))
    q1, q3 = np.percentile(x, [25, 75])
    spread = max(float(q3 - q1) / _IQR_TO_SIGMA, std_floor * float(np.std(x)))
    # a metric flat during the normal period: any move is news, but in units of its level
    floor = 1e-6 * max(1.0, abs(med))
    return med, max(spread, floor)


def _robust_z(y: npt.NDArray[np.float64], n_train: int, std_floor: float) -> npt.NDArray[np.float64]:
    med, scale = _scale(y[:n_train], std_floor)
    return (y - med) / scale


def _residual_z(
    data: npt.NDArray[np.float64], target: int, parents: list[int], n_train: int, p: RcaParams
) -> npt.NDArray[np.float64]:
    y = data[:, target]
    cols = [data[:, j] for j in parents]
    for lag in range(1, p.lags + 1):
        cols += [np.r_[np.full(lag, data[0, j]), data[:-lag, j]] for j in parents]
    x = np.column_stack(cols)
    xt = x[:n_train]
    mean = xt.mean(axis=0)
    std = xt.std(axis=0)
    keep = std > 1e-12
    if not keep.any():
        return _robust_z(y, n_train, p.std_floor)
    x = (x[:, keep] - mean[keep]) / std[keep]
    xt = x[:n_train]
    yt = y[:n_train]
    y_mean = float(yt.mean())
    if x.shape[1] > p.max_regressors:
        corr = np.abs(xt.T @ (yt - y_mean)) / max(float(np.std(yt)) * n_train, 1e-12)
        x = x[:, np.argsort(-corr)[: p.max_regressors]]
        xt = x[:n_train]
    gram = xt.T @ xt + p.ridge * n_train * np.eye(x.shape[1])
    beta = np.linalg.solve(gram, xt.T @ (yt - y_mean))
    resid = y - y_mean - x @ beta
    return _robust_z(resid, n_train, p.std_floor)


def _descendant_adjust(graph: MetricGraph, z: dict[str, float], threshold: float) -> dict[str, float]:
    """CIRCA's descendant adjustment: an anomalous node adds its largest reachable effect."""
    kids = graph.children()
    out = dict(z)
    for node, score in z.items():
        if score < threshold:
            continue
        best = 0.0
        seen = {node}
        queue: deque[str] = deque(kids.get(node, ()))
        while queue:
            c = queue.popleft()
            if c in seen:
                continue
            seen.add(c)
            best = max(best, z[c])
            if z[c] < threshold:
                queue.extend(kids.get(c, ()))
        out[node] = score + best
    return out


def _candidates(graph: MetricGraph, symptom: str, max_hops: int | None) -> list[str]:
    if not symptom or max_hops is None:
        return list(graph.names)
    return list(graph.ancestors(symptom, max_hops))
