"""Settings of the Kubernetes state collector: ``collect.kubernetes``."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from aiops.config import Duration

__all__ = ["KubernetesStateSettings"]


class KubernetesStateSettings(BaseModel):
    """Where the cluster is and what to watch (off by default: it needs a cluster)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    enabled: bool = Field(False, description="Watch pods, deployments, nodes and warning events.")
    kubeconfig: Path | None = Field(None, description="kubeconfig file (default: in-cluster, then ~/.kube/config).")
    context: str | None = Field(None, description="kubeconfig context (default: the current one).")
    namespaces: list[str] = Field(default_factory=list, description="Namespaces to watch (default: all).")
    events: bool = Field(True, description="Count Warning events per reason and object.")
    resync_s: Duration = Field(300.0, gt=0, description="Re-list everything at least this often.")
    watch_timeout_s: Duration = Field(120.0, gt=0, description="Server-side timeout of one watch request.")
    interval_s: Duration = Field(15.0, gt=0, description="Seconds between two renderings of the caches.")
    timeout_s: Duration = Field(5.0, gt=0, description="Seconds one collection may take.")
    jitter_s: Duration = Field(0.5, ge=0, description="Random delay added to each interval.")
