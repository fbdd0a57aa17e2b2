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
    detector: str = Field("profile", description="Registry name: profile (the fleet-scale default: ~1 KiB and "
                          "a few microseconds per series), zscore, iforest, lstm, seasonal, ensemble, forecast.")
    selector: str = Field(description="PromQL selector of the series it watches.")
    params: dict[str, Any] = Field(default_factory=dict, description="Constructor parameters; counts of points "
                                   "may be durations ('6h'), converted with the series' sampling interval.")
    threshold: float | None = Field(None, ge=0, le=1, description="Score at or above which a point is an anomaly "
                                    "(default: the detector's own).")


class DetectSettings(Section):
    detectors: list[DetectorSpec] = Field(default_factory=list, description="Detectors run live on new samples.")
    checkpoint_interval_s: Duration = Field(
        60.0, gt=0, description="Seconds between two saves of changed detector state into the state database "
        "(also saved on stop), so a restart does not re-learn from scratch.")
    fit_history_s: Duration = Field(
        7 * 86400.0, ge=0, description="A new detector (no checkpoint) is fitted on this much of its series' "
        "stored history first, so it is useful at once instead of after its warm-up (0: off).")
    fit_history_points: int = Field(20000, ge=0, description="At most this many stored points are fitted on.")
    catchup_s: Duration = Field(
        600.0, ge=0, description="A detector restored from its checkpoint (a restart, a shard handover) first "
        "scores the stored samples since the checkpoint, of at most this long before its first new sample: "
        "those a dead owner learned after its last checkpoint and those of a handover, which nobody scored. Their "
        "anomalies are recorded unless the previous owner recorded them already (0: off).")
    catchup_points: int = Field(1000, ge=0, description="At most this many stored points per detector are "
                                "caught up on.")
    write_scores: bool = Field(True, description="Write every live score to the store as the series "
                               "aiops_anomaly_score{detector=..., <the series' labels>} and, where the detector "
                               "has one, its expected band as aiops_expected_lower / aiops_expected_upper.")
    sharding: bool = Field(False, description="Share live detection with the other agents on the same state "
                           "database: each scores only its slots of the series (docs/scale-out.md).")
    shard_slots: int = Field(256, ge=1, le=65536, description="Slots the series hash into; the same on every agent.")
    shard_heartbeat_s: Duration = Field(3.0, gt=0, description="Seconds between two membership heartbeats "
                                       "(at most shard_ttl_s / 3).")
    shard_ttl_s: Duration = Field(15.0, gt=0, description="An agent silent this long is dead; its slots move.")
