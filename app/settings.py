"""The one settings model of the platform, assembled from the sections the packages declare.

The mechanism (YAML < ``AIOPS_*`` environment < CLI flags, error messages, durations) is the
ground floor's :mod:`aiops.config`; each section belongs to its package:

| section | declared in |
|---|---|
| ``store``, ``agent`` | ``aiops/config.py`` (the ground floor) |
| ``collect`` | ``collectors/settings.py`` |
| ``detect`` | ``detectors/settings.py`` |
| ``alerting`` | ``alerting/settings.py`` |
| ``remediation`` | ``remediation/settings.py`` |
| ``dashboard`` | ``dashboard/settings.py`` |
| ``topology``, ``rca`` | ``rca/settings.py`` |

A new package adds its section here: one field.

Examples:
    >>> s = load_settings(remediation={"dry_run": True})
    >>> s.remediation.dry_run, s.store.path.name
    (True, 'aiops.db')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from aiops.config import CoreSettings
from aiops.config import load_settings as _load
from alerting.settings import AlertingSettings
from collectors.settings import CollectSettings
from dashboard.settings import DashboardSettings
from detectors.settings import DetectSettings
from rca.settings import RcaSettings, TopologySettings
from remediation.settings import RemediationSettings

__all__ = ["Settings", "load_settings", "EXAMPLE_CONFIG"]


class Settings(CoreSettings):
    """The whole configuration: the ground floor's sections plus one per package. Load it with :func:`load_settings`."""

    collect: CollectSettings = Field(default_factory=CollectSettings)
    detect: DetectSettings = Field(default_factory=DetectSettings)  # type: ignore[arg-type]
    alerting: AlertingSettings = Field(default_factory=AlertingSettings)  # type: ignore[arg-type]
    remediation: RemediationSettings = Field(default_factory=RemediationSettings)  # type: ignore[arg-type]
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)  # type: ignore[arg-type]
    topology: TopologySettings = Field(default_factory=TopologySettings)  # type: ignore[arg-type]
    rca: RcaSettings = Field(default_factory=RcaSettings)  # type: ignore[arg-type]


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load :class:`Settings` from an optional YAML file, the environment and keyword overrides.

    Args:
        path: a YAML file; ``None`` uses embedded defaults plus the environment.
        overrides: section dicts that win over file and environment (CLI flags).

    Raises:
        ConfigError: naming the file or variable, the key and what was expected.
    """
    return _load(path, model=Settings, **overrides)


EXAMPLE_CONFIG = """\
# aiops.yaml: configuration of the AIOps agent (aiops run), worker and dashboard.
# Every key can also be set from the environment: AIOPS_<SECTION>__<KEY>, e.g.
#   AIOPS_STORE__PATH=/var/lib/aiops/aiops.db  AIOPS_AGENT__LISTEN_PORT=9321
# Durations take seconds or Prometheus forms such as 30s, 5m, 1h30m.

collect:
  host:                       # this machine, via psutil
    enabled: true
    interval_s: 10s
  gpu:                        # NVIDIA GPUs via NVML; quiet on machines without one
    enabled: true
    interval_s: 10s
  scrape: []                  # Prometheus /metrics endpoints
  #  - url: http://127.0.0.1:9100/metrics
  #    job: node
  #    interval_s: 15s
  #    timeout_s: 5s
  #    labels: {env: prod}       # added to every series (scraped clashes become exported_<name>)
  #    bearer_token: change-me   # or headers: {X-Scope-OrgID: team-a}
  probe: []                   # HTTP checks for services without metrics
  #  - url: https://inference.example.internal/healthz
  #    expect_status: [200]    # exports success, status code, duration, TLS expiry (https)
  prometheus: []              # read-only import from an existing Prometheus
  #  - url: http://prometheus:9090
  #    queries: ['rate(http_requests_total[5m])']
  #    step_s: 15s
  #    lookback_s: 5m            # how far back the first import reaches

store:
  path: aiops-data/aiops.db   # embedded SQLite (WAL) time-series store
  # state_url: postgresql+psycopg://aiops@db/aiops   # shared state for several agents (HA)
  retention_raw_s: 15d
  retention_rollup_s: 400d
  rollup_step_s: 5m
  # remote_write:              # also write every sample to Prometheus / VictoriaMetrics / Mimir
  #   url: http://prometheus:9090/api/v1/write
  #   external_labels: {cluster: prod}
  #   max_queue_bytes: 536870912   # on-disk retry queue while the endpoint is down

agent:
  listen_host: 127.0.0.1      # /metrics and the HTTP API
  listen_port: 9321
  # api_token: change-me      # required by the write API (silences, approvals, webhooks)
  log_level: INFO

detect:
  detectors: []
  #  - name: cpu-zscore
  #    detector: zscore
  #    selector: 'aiops_host_cpu_utilisation_ratio'
  #    params: {window: 30}

alerting:                     # rules, routing, silences: docs/alerting.md; receivers: docs/notifications.md
  rules: []
  #  - alert: HighCPU             # busy over 80% (idle under 20%) for 5 minutes
  #    expr: 'aiops_host_cpu_utilisation_ratio{cpu="total",mode="idle"}'
  #    op: "<"
  #    threshold: 0.2
  #    for: 5m
  #    labels: {severity: warning}
  #    annotations:
  #      summary: "CPU idle {{ $value | humanizePercentage }} on {{ $labels.instance }}"
  #  - alert: NodeSilent
  #    type: absent
  #    expr: 'up{job="node"}'
  #    silent_for: 2m
  receivers: []
  #  - name: ops-slack
  #    type: slack
  #    webhook_url: https://hooks.slack.com/services/T000/B000/XXXX
  route: {}
  #  receiver: ops-slack
  #  group_by: [alertname, instance]
  #  group_wait: 30s
  #  group_interval: 5m
  #  repeat_interval: 4h
  # inhibit_rules:                # a firing critical mutes warnings of the same instance
  #   - {source_matchers: ['severity="critical"'], target_matchers: ['severity="warning"'], equal: [instance]}
  # alertmanager_urls: [http://127.0.0.1:9093]   # push our alerts to an Alertmanager too

remediation:
  # broker_url: redis://127.0.0.1:6379/0   # none: actions run in-process
  playbooks: []
  dry_run: true               # plan and record, change nothing, until you trust it
  kill_switch: false

dashboard:
  port: 8501
  base_url: http://127.0.0.1:8501
"""
