"""The ``topology`` and ``rca`` sections of the settings.

Declared here, assembled into the one settings model by the application (``app/settings.py``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ConfigDict, Field

from aiops.config import Duration, Section

__all__ = ["DeclaredEdge", "LearnSettings", "TopologySettings", "RcaSettings"]


class DeclaredEdge(Section):
    """An edge no source knows, e.g. a call between services: ``{from: api, to: feature-store}``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(..., alias="from", min_length=1, description="Component id or bare name (the caller).")
    to: str = Field(..., min_length=1, description="Component id or bare name (the callee).")
    kind: str = Field("calls", description="calls (faults flow from 'to' to 'from'), causes (from 'from' to "
                      "'to'), or a Kubernetes relation kind.")


class LearnSettings(Section):
    """Edges learned from the data (Granger-style tests, :mod:`rca.learn`), marked ``learned``."""

    enabled: bool = Field(False, description="Add learned cause->effect edges between the candidate components "
                          "of each localisation (and to `aiops topology --learn`).")
    max_lag: int = Field(3, ge=1, le=30, description="Lags tested, in grid steps.")
    alpha: float = Field(0.01, gt=0, lt=1, description="Family-wise significance (Bonferroni over every test).")
    max_metrics: int = Field(4, ge=1, le=50, description="Metrics per component tested (the most variable).")
    max_components: int = Field(30, ge=2, le=200, description="Components tested together (the nearest first); "
                                "bounds the work at (components x metrics)^2 regressions.")


class TopologySettings(Section):
    """Where the topology comes from (see docs/rca.md)."""

    edges: list[DeclaredEdge] = Field(default_factory=list, description="Declared edges.")
    kubernetes: bool = Field(False, description="Read workloads, pods, services and nodes from the Kubernetes API.")
    kubeconfig: Path | None = Field(None, description="kubeconfig file; none: in-cluster, else ~/.kube/config.")
    kube_context: str | None = Field(None, description="kubeconfig context (default: the current one).")
    namespaces: list[str] = Field(default_factory=list, description="Namespaces to read; empty: all.")
    labels: bool = Field(True, description="Derive components and relations from the stored series' labels.")
    request_timeout_s: Duration = Field(10.0, gt=0, description="Timeout of one Kubernetes request.")
    learn: LearnSettings = Field(default_factory=LearnSettings)  # type: ignore[arg-type]


class RcaSettings(Section):
    """Root-cause localisation on firing alerts."""

    enabled: bool = Field(False, description="Rank causes when an alert fires (and store them with the alert).")
    max_hops: int = Field(3, ge=0, le=20, description="Candidates within this many relations of the alerting "
                          "component.")
    lookback_s: Duration = Field(3600.0, gt=0, description="History read before the alert (the normal period).")
    window_s: Duration = Field(900.0, gt=0, description="Data after the alert time used (the anomaly window), "
                               "never past now.")
    step_s: Duration = Field(0.0, ge=0, description="Resampling step; 0: the median scrape interval.")
    timeout_s: Duration = Field(5.0, gt=0, description="Time budget of one localisation.")
    top_k: int = Field(3, ge=1, le=20, description="Causes shown in the notification.")
