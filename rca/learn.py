"""Edges learned from the data: Granger-style tests between components' metrics.

No source knows every dependency (a call between two services that no label and no manifest
names); their metrics often do: when ``A`` feeds ``B``, ``A``'s past helps predict ``B``
beyond ``B``'s own past. For each ordered pair of components, each pair of their metrics is
tested on first differences (levels trend and shift; differences are closer to stationary):
an autoregression of the effect on its own ``max_lag`` lags (restricted) against one that
adds the cause's lags (unrestricted), compared by the F statistic. A pair becomes a
``learned`` cause→effect relation when its smallest p-value, Bonferroni-corrected over every
test made, is under ``alpha`` and smaller than the reverse direction's (feedback loops give both
directions; the stronger one is kept).

These are correlational edges (Granger causality is predictability, not intervention): the
localiser uses them like declared ones, and ``aiops topology`` marks them ``learned`` (dashed in
``--format dot``) so people can check them before declaring them in ``topology.edges``.

Examples:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=300).cumsum()
    >>> b = np.roll(a, 2) + rng.normal(scale=0.3, size=300)  # b follows a, two steps late
    >>> [(r.src, r.dst) for r in learn_relations({"svc/a": {"rps": a}, "svc/b": {"rps": b}})]
    [('svc/a', 'svc/b')]
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy import stats

from rca.topology import Relation

__all__ = ["granger_p", "learn_relations"]


def granger_p(cause: np.ndarray, effect: np.ndarray, max_lag: int = 3) -> float:
    """p-value that ``cause``'s past adds nothing to predicting ``effect`` (1.0 when untestable).

    Both series are differenced once, then ``effect[t]`` is regressed on ``effect[t-1..t-L]``
    with and without ``cause[t-1..t-L]`` (an intercept in both); ``F = ((RSS_r - RSS_u) / L) /
    (RSS_u / (n - 2L - 1))``.
    """
    x, y = np.diff(np.asarray(cause, dtype=float)), np.diff(np.asarray(effect, dtype=float))
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    lag = int(max_lag)
    n = len(y) - lag
    dof = n - 2 * lag - 1
    if lag < 1 or dof < 10 or np.std(x) == 0 or np.std(y) == 0:
        return 1.0
    own = np.column_stack([y[lag - k:len(y) - k] for k in range(1, lag + 1)])
    other = np.column_stack([x[lag - k:len(x) - k] for k in range(1, lag + 1)])
    target = y[lag:]
    ones = np.ones((n, 1))
    rss_r = _rss(np.hstack([ones, own]), target)
    rss_u = _rss(np.hstack([ones, own, other]), target)
    if rss_u <= 0 or not math.isfinite(rss_u):
        return 1.0
    f = max(0.0, (rss_r - rss_u) / lag) / (rss_u / dof)
    return float(stats.f.sf(f, lag, dof))


def _rss(design: np.ndarray, target: np.ndarray) -> float:
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    resid = target - design @ coef
    return float(resid @ resid)


def learn_relations(metrics: Mapping[str, Mapping[str, np.ndarray]], *, max_lag: int = 3, alpha: float = 0.01,
                    max_metrics: int = 4) -> list[Relation]:
    """``learned`` cause→effect relations between the components of ``metrics``.

    Args:
        metrics: component id -> metric name -> values, every array on one time grid.
        max_lag: lags (grid steps) tested.
        alpha: family-wise significance after the Bonferroni correction.
        max_metrics: metrics per component tested (the most variable ones), bounding the work
            at ``(components * max_metrics)**2`` regressions.

    Returns:
        One relation per ordered pair that passed, kind and source ``learned``, strongest first.
    """
    chosen = {c: _most_variable(ms, max_metrics) for c, ms in sorted(metrics.items())}
    chosen = {c: ms for c, ms in chosen.items() if ms}
    comps = list(chosen)
    tests = sum(len(chosen[a]) * len(chosen[b]) for a in comps for b in comps if a != b)
    if not tests:
        return []
    best: dict[tuple[str, str], float] = {}
    for a in comps:
        for b in comps:
            if a != b:
                best[(a, b)] = min(granger_p(x, y, max_lag) for x in chosen[a] for y in chosen[b])
    found = []
    for (a, b), p in best.items():
        corrected = min(1.0, p * tests)
        if corrected < alpha and p < best[(b, a)]:
            found.append((corrected, a, b))
    return [Relation(a, b, "learned", "learned") for _, a, b in sorted(found)]


def _most_variable(series: Mapping[str, np.ndarray], limit: int) -> list[np.ndarray]:
    """Up to ``limit`` of the series that move (a constant or all-NaN metric predicts nothing)."""
    scored = []
    for name, values in sorted(series.items()):
        v = np.asarray(values, dtype=float)
        d = np.diff(v[np.isfinite(v)])
        if len(d) > 10 and np.std(d) > 0:
            scored.append((-float(np.std(d) / (np.mean(np.abs(v[np.isfinite(v)])) + 1e-12)), name, v))
    return [v for _, _, v in sorted(scored)[:limit]]
