"""Anomaly onset by Bayesian online change-point detection.

Adams & MacKay, "Bayesian Online Changepoint Detection" (2007), with a Normal-Gamma prior
(Student-t predictive) and a constant hazard, as BARO (Pham et al., FSE 2024) uses it to find
where the anomalous period starts before scoring metrics against the normal period. The run
length is truncated at ``max_run`` so that one pass costs O(T * max_run).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["changepoint_probs", "find_onset"]


def changepoint_probs(
    x: npt.NDArray[np.float64], *, hazard_points: float = 250.0, max_run: int = 256, delay: int = 3
) -> npt.NDArray[np.float64]:
    """Probability that a new segment starts at each point, seen ``delay`` points later.

    Args:
        x: the series (standardised is best: the prior is zero mean, unit scale); NaN points
            leave the posterior unchanged.
        hazard_points: expected segment length in points (hazard = 1 / hazard_points).
        max_run: longest run length tracked; longer runs are merged into the last slot.
        delay: points after ``t`` the posterior may use to decide about ``t``.

    Returns:
        ``p[t] = P(segment starts at t | x[: t + delay + 1])`` (the last ``delay`` points use
        what data there is), in [0, 1].

    Examples:
        >>> x = np.r_[np.zeros(50), np.full(20, 8.0)] + np.tile([0.1, -0.1], 35)
        >>> int(np.argmax(changepoint_probs(x)))
        50
    """
    n = len(x)
    hazard = 1.0 / max(hazard_points, 1.0)
    mu0, kappa0, alpha0, beta0 = 0.0, 1.0, 1.0, 1.0
    mu = np.array([mu0])
    kappa = np.array([kappa0])
    alpha = np.array([alpha0])
    beta = np.array([beta0])
    r = np.array([1.0])
    history: list[npt.NDArray[np.float64]] = []
    for t in range(n):
        v = float(x[t])
        if math.isfinite(v):
            scale2 = beta * (kappa + 1.0) / (alpha * kappa)
            dof = 2.0 * alpha
            z2 = (v - mu) ** 2 / scale2
            logpred = (
                _lgamma((dof + 1.0) / 2.0)
                - _lgamma(dof / 2.0)
                - 0.5 * np.log(np.pi * dof * scale2)
                - (dof + 1.0) / 2.0 * np.log1p(z2 / dof)
            )
            pred = np.exp(logpred - logpred.max())
            growth = r * pred * (1.0 - hazard)
            cp = float((r * pred * hazard).sum())
            r = np.concatenate(([cp], growth))
            mu_new = (kappa * mu + v) / (kappa + 1.0)
            beta_new = beta + kappa * (v - mu) ** 2 / (2.0 * (kappa + 1.0))
            mu = np.concatenate(([mu0], mu_new))
            kappa = np.concatenate(([kappa0], kappa + 1.0))
            alpha = np.concatenate(([alpha0], alpha + 0.5))
            beta = np.concatenate(([beta0], beta_new))
            if len(r) > max_run:
                # fold the oldest run into the one before it: a bounded state, nearly no loss
                r[-2] += r[-1]
                r, mu, kappa, alpha, beta = r[:-1], mu[:-1], kappa[:-1], alpha[:-1], beta[:-1]
            total = r.sum()
            r = r / total if total > 0 and math.isfinite(total) else np.full(len(r), 1.0 / len(r))
        history.append(r)
    out = np.zeros(n)
    for t in range(1, n):  # the first point always starts a segment: no evidence of change
        d = min(delay, n - 1 - t)
        post = history[t + d]
        # run length r at time u means the segment holds x[u - r + 1 : u + 1] (the new
        # run's slot 0 has not absorbed its first point yet), so a start at t is slot d + 1
        out[t] = float(post[d + 1]) if d + 1 < len(post) else 0.0
    return out


def _lgamma(a: npt.NDArray[np.float64] | float) -> npt.NDArray[np.float64]:
    from scipy.special import gammaln

    return np.asarray(gammaln(a), dtype=np.float64)


def find_onset(
    symptom: npt.NDArray[np.float64],
    alert_idx: int,
    *,
    lookback_points: int = 60,
    reference_points: int = 1440,
    hazard_points: float = 250.0,
    min_prob: float = 0.3,
) -> int:
    """Index of the anomaly onset at or before ``alert_idx`` (``alert_idx`` if none is clear).

    The symptom is standardised by the median and IQR of the points before the search range,
    then :func:`changepoint_probs` runs over the search range and the window after it; the most
    probable change point in ``[alert_idx - lookback_points, alert_idx]`` wins if its
    probability reaches ``min_prob``.
    """
    lo = max(0, alert_idx - lookback_points)
    ref = symptom[max(0, lo - reference_points) : lo]
    ref = ref[np.isfinite(ref)]
    if len(ref) < 5:
        return alert_idx
    med = float(np.median(ref))
    q1, q3 = np.percentile(ref, [25, 75])
    scale = max(float(q3 - q1) / 1.349, float(np.std(ref)), 1e-9)
    # bounded: the search range and as many points after the alert (enough to see a change settle)
    seg = (symptom[lo : alert_idx + lookback_points + 4] - med) / scale
    probs = changepoint_probs(seg, hazard_points=hazard_points)
    cand = probs[: alert_idx - lo + 1]
    best = int(np.argmax(cand))
    return lo + best if cand[best] >= min_prob else alert_idx
