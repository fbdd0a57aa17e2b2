"""The detector protocol (a contract of the map): ``fit``, causal ``score``, streaming ``update``.

Every detector, whatever its model, offers these verbs. Scores are in [0, 1], higher is more
anomalous, calibrated so that one threshold means roughly the same false-alarm rate across
detectors and series. Invariant, tested for every detector: ``score(values)`` on a fresh
detector equals feeding the same values one by one through ``update`` — which is what makes a
replay a faithful rehearsal of the live agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = ["Detector"]


@runtime_checkable
class Detector(Protocol):
    """What every detector offers. Parameters are keyword constructor arguments."""

    name: ClassVar[str]
    threshold: float  # a score >= threshold is the detector's own "is anomaly" decision

    def fit(self, history: Sequence[float] | npt.NDArray[np.float64]) -> Detector:
        """Learn from past values (a no-op for detectors that need no training); returns self."""
        ...

    def score(self, values: Sequence[float] | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """One score in [0, 1] per point, causally; advances the state past ``values``."""
        ...

    def update(self, value: float) -> float:
        """Score one new point against the state before it, then learn it."""
        ...

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters by name, as scikit-learn's ``get_params``."""
        ...
