"""Detector test helpers: small, fast parameters per registered detector (imported by the tests)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

# Small parameters so the slow models train in well under a second. A detector registered
# later (``ensemble``) adds its entry here; without one it is tested with its defaults.
FAST_CASES: dict[str, list[dict[str, Any]]] = {
    "zscore": [{"window": 20}, {"window": 15, "robust": True},
               {"window": 10, "seasonal_period": 12, "seasons": 2}, {"window": 8, "min_periods": 4},
               {"window": 20, "smooth": 4, "refractory": 7},
               {"window": 12, "robust": True, "smooth": 3, "refractory": 5, "threshold": 0.99},
               {"window": 10, "seasonal_period": 12, "seasons": 2, "smooth": 5, "refractory": 3}],
    "iforest": [{"train_size": 64, "refit_every": 50, "train_window": 100, "n_estimators": 10, "seed": 3},
                {"train_size": 64, "refit_every": 50, "train_window": 100, "n_estimators": 10, "seed": 3,
                 "smooth": 3, "refractory": 6, "threshold": 0.98}],
    "lstm": [{"train_size": 60, "window": 8, "hidden": 4, "epochs": 2, "seed": 3},
             {"train_size": 60, "window": 8, "hidden": 4, "epochs": 2, "seed": 3, "smooth": 4, "refractory": 5,
              "threshold": 0.99}],
    "seasonal": [{"period": 12, "train_periods": 3, "refit_every": 20},
                 {"period": 10, "train_periods": 2, "method": "stl", "alpha": 0.3},
                 {"period": 12, "train_periods": 3, "refit_every": 20, "smooth": 3, "refractory": 8,
                  "threshold": 0.99}],
    "profile": [{"halflife": 40, "min_periods": 10}, {"halflife": 200, "clip": 2.0, "smooth": 3, "refractory": 6},
                {"halflife": 30, "min_periods": 5, "calibrate_min": 50, "threshold": 0.99}],
    "forecast": [{"limit": 100.0, "window": 10, "horizon_s": 600, "step_s": 60}],
    "ensemble": [{"members": [{"detector": "zscore", "params": {"window": 20}, "smooth": 3}, "zscore"],
                  "suppress": 5},
                 {"members": [{"detector": "zscore", "params": {"window": 10}, "weight": 0.5}], "combine": "mean",
                  "suppress": 0}],
}


def cases(names: list[str]) -> list[Any]:
    """pytest params (name, params) for every registered detector and its fast variants."""
    out = []
    for name in names:
        for i, params in enumerate(FAST_CASES.get(name, [{}])):
            out.append(pytest.param(name, params, id=f"{name}-{i}"))
    return out


def noise(n: int, seed: int = 0, loc: float = 10.0, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc, scale, size=n)
