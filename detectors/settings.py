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
    sharding: bool = Field(False, description="Share live detection with the other agents on the same state "
                           "database: each scores only its slots of the series (docs/scale-out.md).")
    shard_slots: int = Field(256, ge=1, le=65536, description="Slots the series hash into; the same on every agent.")
    shard_heartbeat_s: Duration = Field(5.0, gt=0, description="Seconds between two membership heartbeats.")
    shard_ttl_s: Duration = Field(15.0, gt=0, description="An agent silent this long is dead; its slots move.")
