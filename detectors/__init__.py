"""Anomaly detectors: one module per model, all on the ``aiops.detector.Detector`` protocol.

Create them by name with :func:`create` (``zscore``, ``iforest``, ``lstm``, ``seasonal``,
``forecast``, ``ensemble``, ``profile``). Classes are exported lazily, so ``import detectors`` does not
import torch or statsmodels until a detector that needs them is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiops.lazy import lazy_exports

if TYPE_CHECKING:
    from .base import BaseDetector
    from .calibration import TailCalibrator
    from .registry import available, create, get, register

__all__ = [
    "BaseDetector",
    "ForecastDetector",
    "IForestDetector",
    "LSTMDetector",
    "ProfileDetector",
    "SeasonalDetector",
    "TailCalibrator",
    "ZScoreDetector",
    "available",
    "create",
    "get",
    "register",
]

# Everything loads on first use (PEP 562): `import detectors.settings` (every CLI command does)
# must not import scipy through the calibrator.
_LAZY = {
    "BaseDetector": "detectors.base",
    "TailCalibrator": "detectors.calibration",
    "available": "detectors.registry",
    "create": "detectors.registry",
    "get": "detectors.registry",
    "register": "detectors.registry",
    "ZScoreDetector": "detectors.zscore",
    "IForestDetector": "detectors.iforest",
    "LSTMDetector": "detectors.lstm",
    "SeasonalDetector": "detectors.seasonal",
    "ForecastDetector": "detectors.forecast",
    "ProfileDetector": "detectors.profile",
}


__getattr__ = lazy_exports(__name__, _LAZY)
