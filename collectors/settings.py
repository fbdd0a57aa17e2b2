"""The ``collect`` section of the settings (sources the agent collects).

Declared here, assembled into the one settings model by the application (``app/settings.py``);
the mechanism (loading, precedence, errors) is the ground floor's :mod:`aiops.config`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from aiops.config import Duration, Section
from collectors.kubesettings import KubernetesStateSettings
from collectors.logsettings import KafkaLogSource, LogFileSource
from collectors.recording import RecordingRule

__all__ = ["CollectSettings", "HostCollectorSettings", "GpuCollectorSettings", "ScrapeTarget", "ProbeTarget",
           "PrometheusSource", "Schedule", "LokiSource"]


class Schedule(Section):
    interval_s: Duration = Field(10.0, gt=0, description="Seconds between two collections.")
    timeout_s: Duration = Field(5.0, gt=0, description="Seconds one collection may take.")
    jitter_s: Duration = Field(0.5, ge=0, description="Random delay added to each interval.")


class HostCollectorSettings(Schedule):
    enabled: bool = Field(True, description="Collect host metrics via psutil.")
    per_cpu: bool = Field(True, description="Also export per-core CPU times.")


class GpuCollectorSettings(Schedule):
    enabled: bool = Field(True, description="Collect NVIDIA GPU metrics via NVML when present.")
    per_process: bool = Field(True, description="Export per-process GPU memory.")
    retry_init_s: Duration = Field(300.0, gt=0, description="Seconds between two attempts to initialise NVML "
                                   "on a machine where it failed (no GPU or driver).")


class ScrapeTarget(Schedule):
    url: str = Field(description="A Prometheus text-format / OpenMetrics endpoint.")
    job: str = Field("scrape", description="Value of the 'job' label on scraped series.")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels on every series.")
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="HTTP headers (bearer tokens).")
    bearer_token: SecretStr | None = Field(None, description="Sent as 'Authorization: Bearer <token>'.")
    verify_tls: bool = Field(True, description="Verify the target's TLS certificate.")
    body_limit_bytes: int = Field(64 * 2**20, gt=0, description="Largest response accepted, in bytes.")
    preset: list[Literal["vllm", "triton", "dcgm"]] = Field(
        default_factory=list, description="Recording presets of inference servers (collectors/presets/): "
        "tokens/s, TTFT p95, queue time per request, GPU memory ratio, ...")
    recording: list[RecordingRule] = Field(default_factory=list, description="Derived series recorded at "
                                           "each scrape (rate, delta_ratio, ratio, quantile).")


class ProbeTarget(Schedule):
    url: str = Field(description="HTTP(S) URL to check.")
    name: str = Field("", description="Value of the 'probe' label (default: the URL without query string).")
    method: str = Field("GET", description="HTTP method.")
    expect_status: list[int] = Field(default_factory=lambda: [200], description="Statuses counted as success.")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels on the probe series.")
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="HTTP headers (bearer tokens).")
    follow_redirects: bool = Field(True, description="Follow redirects; the final status counts.")
    verify_tls: bool = Field(True, description="Verify the TLS certificate (a failed check is success=0).")
    ca_file: Path | None = Field(None, description="PEM bundle of CAs to trust instead of the system's.")


class PrometheusSource(Schedule):
    url: str = Field(description="Base URL of a Prometheus server (read-only import).")
    queries: list[str] = Field(description="PromQL expressions imported through query_range.")
    step_s: Duration = Field(15.0, gt=0, description="Resolution of imported samples.")
    lookback_s: Duration = Field(300.0, gt=0, description="How far back the first import reaches.")
    interval_s: Duration = Field(60.0, gt=0, description="Seconds between two imports.")
    timeout_s: Duration = Field(10.0, gt=0)
    bearer_token: SecretStr | None = Field(None, description="Token for a protected Prometheus.")
    names: dict[str, str] = Field(default_factory=dict, description="Metric name for results of a query "
                                  "that have no __name__ (query -> name); default: the query made a name.")
    verify_tls: bool = Field(True, description="Verify the server's TLS certificate.")


class LokiSource(PrometheusSource):
    """LogQL metric queries imported through Loki's ``query_range`` (same answer shape as Prometheus)."""

    tenant: str | None = Field(None, description="Sent as X-Scope-OrgID (multi-tenant Loki).")

    @model_validator(mode="after")
    def _metric_queries(self) -> LokiSource:
        for q in self.queries:
            if not re.search(r"\b(count_over_time|rate|bytes_over_time|bytes_rate|sum_over_time|avg_over_time|"
                             r"max_over_time|min_over_time|quantile_over_time|absent_over_time)\s*\(", q):
                raise ValueError(f"query {q!r} is a log query; import metric queries such as "
                                 "sum by (app) (count_over_time({app=\"x\"} |= \"error\" [1m]))")
        return self


class CollectSettings(Section):
    host: HostCollectorSettings = Field(default_factory=HostCollectorSettings)  # type: ignore[arg-type]
    gpu: GpuCollectorSettings = Field(default_factory=GpuCollectorSettings)  # type: ignore[arg-type]
    scrape: list[ScrapeTarget] = Field(default_factory=list)
    probe: list[ProbeTarget] = Field(default_factory=list)
    prometheus: list[PrometheusSource] = Field(default_factory=list)
    loki: list[LokiSource] = Field(default_factory=list, description="LogQL metric queries imported from Loki.")
    logs: list[Annotated[LogFileSource | KafkaLogSource, Field(discriminator="type")]] = Field(
        default_factory=list, description="Log files and Kafka topics counted into series.")
    kubernetes: KubernetesStateSettings = Field(default_factory=KubernetesStateSettings)  # type: ignore[arg-type]
