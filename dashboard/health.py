"""Health at a glance, computed from the store and the state database (the overview's tiles)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from aiops.model import Matcher, MatchOp, Series, now_ms
from aiops.store import SqliteSeriesStore
from dashboard.records import to_time

__all__ = ["TargetHealth", "AgentHealth", "targets", "agents", "gpu_table", "latest_by"]

GPU_METRICS = {
    "aiops_gpu_utilisation_ratio": "util",
    "aiops_gpu_memory_used_bytes": "mem_used",
    "aiops_gpu_memory_total_bytes": "mem_total",
    "aiops_gpu_temperature_celsius": "temp_c",
    "aiops_gpu_power_watts": "power_w",
    "aiops_gpu_xid_errors_total": "xid",
    "aiops_gpu_ecc_errors_total": "ecc",
}
POD_GPU_METRICS = {"inference_gpu_utilization_ratio": "util", "inference_gpu_memory_used_bytes": "mem_used"}
FRESH_MS = 10 * 60_000


@dataclass(frozen=True, slots=True)
class TargetHealth:
    collector: str
    target: str
    instance: str
    up: bool
    last_seen: pd.Timestamp | None
    down_since: pd.Timestamp | None


@dataclass(frozen=True, slots=True)
class AgentHealth:
    instance: str
    last_seen: pd.Timestamp | None
    targets_up: int
    targets_down: int
    samples_per_s: float
    extra: dict[str, Any] = field(default_factory=dict)


def latest_by(store: SqliteSeriesStore, metric: str, since_ms: int) -> list[tuple[Series, int, float]]:
    """(series, ts_ms, value) of the newest sample of each series of ``metric`` since ``since_ms``.

    A series whose newest sample is not finite (the staleness marker of a pod that went away)
    is left out: it has no reading now.
    """
    out = []
    for s in store.select([Matcher("__name__", MatchOp.EQ, metric)]):
        got = store.latest(s, since_ms)
        if got is not None and np.isfinite(got.value):
            out.append((s, got.ts_ms, got.value))
    return out


def targets(store: SqliteSeriesStore, now: int | None = None) -> list[TargetHealth]:
    """Every collector target with its last ``aiops_collector_up`` and, when down, since when."""
    now = now_ms() if now is None else now
    out = []
    for s in store.select([Matcher("__name__", MatchOp.EQ, "aiops_collector_up")]):
        data = store.read(s, now - 24 * 3_600_000, now + 60_000)
        if not len(data):
            continue
        up = bool(data.values[-1] >= 1)
        down_since = None
        if not up:
            ups = np.flatnonzero(data.values >= 1)
            first_down = int(ups[-1]) + 1 if len(ups) else 0
            down_since = to_time(int(data.ts_ms[first_down]))
        out.append(TargetHealth(s.get("collector"), s.get("target"), s.get("instance"), up,
                                to_time(int(data.ts_ms[-1])), down_since))
    return sorted(out, key=lambda t: (t.up, t.collector, t.target))


def agents(store: SqliteSeriesStore, found: list[TargetHealth], now: int | None = None,
           window_ms: int = 300_000) -> list[AgentHealth]:
    """Agents (``instance`` of their health series): last sample, targets up/down, ingest rate."""
    now = now_ms() if now is None else now
    by: dict[str, list[TargetHealth]] = {}
    for t in found:
        by.setdefault(t.instance, []).append(t)
    rate: dict[str, float] = {}
    for s in store.select([Matcher("__name__", MatchOp.EQ, "aiops_collector_samples")]):
        data = store.read(s, now - window_ms, now)
        if len(data):
            span_ms = max(window_ms if data.ts_ms[-1] - data.ts_ms[0] > window_ms / 2 else
                          int(data.ts_ms[-1] - data.ts_ms[0]), 1000)
            rate[s.get("instance")] = rate.get(s.get("instance"), 0.0) + float(np.nansum(data.values)) * 1000 / span_ms
    out = []
    for inst, ts in sorted(by.items()):
        seen = [t.last_seen for t in ts if t.last_seen is not None]
        out.append(AgentHealth(inst or "(unnamed)", max(seen) if seen else None, sum(t.up for t in ts),
                               sum(not t.up for t in ts), rate.get(inst, 0.0)))
    return out


def gpu_table(store: SqliteSeriesStore, now: int | None = None) -> pd.DataFrame:
    """One row per node and GPU (NVML) or per pod (inference services): the latest readings."""
    now = now_ms() if now is None else now
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for metric, col in GPU_METRICS.items():
        for s, _, v in latest_by(store, metric, now - FRESH_MS):
            row = rows.setdefault((s.get("instance") or s.get("node"), s.get("gpu")),
                                  {"node": s.get("instance") or s.get("node"), "gpu": s.get("gpu"),
                                   "model": s.get("name"), "source": "nvml"})
            row[col] = row.get(col, 0.0) + v if col in ("xid", "ecc") else v
    for metric, col in POD_GPU_METRICS.items():
        for s, _, v in latest_by(store, metric, now - FRESH_MS):
            key = (s.get("pod"), "")
            row = rows.setdefault(key, {"node": s.get("node") or s.get("instance"), "gpu": s.get("pod"),
                                        "model": s.get("deployment"), "source": "service"})
            row[col] = v
    frame = pd.DataFrame(list(rows.values()))
    if frame.empty:
        return frame
    if "mem_used" in frame and "mem_total" in frame:
        frame["mem_ratio"] = frame["mem_used"] / frame["mem_total"]
    return frame.sort_values(["node", "gpu"]).reset_index(drop=True)
