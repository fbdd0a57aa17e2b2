"""The ``detect`` section of the settings (live detection).

Declared here, assembled into the one settings model by the application (``app/settings.py``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from aiops.config import Duration, Section

__all__ = ["DetectSettings", "DetectorSpec"]


class DetectorSpec(Section):
    name: str = Field(description="A name for this detector instance.")
    detector: str = Field("zscore", description="Registry name: zscore, iforest, lstm, seasonal, ensemble.")
    selector: str = Field(description="PromQL selector of the series it watches.")
    params: dict[str, Any] = Field(default_factory=dict, description="Constructor parameters.")
    threshold: float | None = Field(None, ge=0, le=1, description="Score at or above which a point is an anomaly "
                                    "(default: the detector's own).")


class DetectSettings(Section):
    detectors: list[DetectorSpec] = Field(default_factory=list, description="Detectors run live on new samples.")
    checkpoint_interval_s: Duration = Field(
        60.0, gt=0, description="Seconds between two saves of changed detector state into the state database "
        "(also saved on stop), so a restart does not re-learn from scratch.")
