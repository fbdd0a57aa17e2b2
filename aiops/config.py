"""One configuration model for the whole platform.

Order of precedence: defaults < ``aiops.yaml`` < ``AIOPS_*`` environment variables
(``AIOPS_STORE__PATH``, nested with ``__``) < CLI flags. A bad value fails at start with one
:class:`~aiops.errors.ConfigError` naming the file (or variable), the key and what was expected.
Secrets (tokens, webhook URLs) are ``SecretStr`` and render masked.

Only this module reads the environment; code takes what it needs as arguments.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from aiops.errors import ConfigError
from aiops.httpauth import ApiTokenSettings, UserSettings

__all__ = [
    "Settings",
    "Duration",
    "parse_duration_s",
    "load_settings",
    "format_validation_error",
    "EXAMPLE_CONFIG",
    "CollectSettings",
    "HostCollectorSettings",
    "GpuCollectorSettings",
    "ScrapeTarget",
    "ProbeTarget",
    "PrometheusSource",
    "StoreSettings",
    "AgentSettings",
    "DetectSettings",
    "AlertingSettings",
    "RemediationSettings",
    "DashboardSettings",
]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration_s(value: Any) -> float:
    """Parse a Prometheus-style duration (``"90s"``, ``"5m"``, ``"1h30m"``) or a number of seconds.

    Examples:
        >>> parse_duration_s("1h30m")
        5400.0
        >>> parse_duration_s(2.5)
        2.5
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '5m', got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"expected a finite non-negative duration, got {value!r}")
        return float(value)
    text = str(value).strip()
    try:
        return parse_duration_s(float(text))
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"expected a duration like '5m', got {value!r}")
    return total


Duration = Annotated[float, BeforeValidator(parse_duration_s)]
"""Seconds, given as a number or as a Prometheus duration string."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


# --- collect -------------------------------------------------------------------------------


class _Schedule(_Section):
    interval_s: Duration = Field(10.0, gt=0, description="Seconds between two collections.")
    timeout_s: Duration = Field(5.0, gt=0, description="Seconds one collection may take.")
    jitter_s: Duration = Field(0.5, ge=0, description="Random delay added to each interval.")


class HostCollectorSettings(_Schedule):
    enabled: bool = Field(True, description="Collect host metrics via psutil.")
    per_cpu: bool = Field(True, description="Also export per-core CPU times.")


class GpuCollectorSettings(_Schedule):
    enabled: bool = Field(True, description="Collect NVIDIA GPU metrics via NVML when present.")
    per_process: bool = Field(True, description="Export per-process GPU memory.")
    retry_init_s: Duration = Field(300.0, gt=0, description="Seconds between two attempts to initialise NVML "
                                   "on a machine where it failed (no GPU or driver).")


class ScrapeTarget(_Schedule):
    url: str = Field(description="A Prometheus text-format / OpenMetrics endpoint.")
    job: str = Field("scrape", description="Value of the 'job' label on scraped series.")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels on every series.")
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="HTTP headers (bearer tokens).")
    bearer_token: SecretStr | None = Field(None, description="Sent as 'Authorization: Bearer <token>'.")
    verify_tls: bool = Field(True, description="Verify the target's TLS certificate.")
    body_limit_bytes: int = Field(64 * 2**20, gt=0, description="Largest response accepted, in bytes.")


class ProbeTarget(_Schedule):
    url: str = Field(description="HTTP(S) URL to check.")
    name: str = Field("", description="Value of the 'probe' label (default: the URL without query string).")
    method: str = Field("GET", description="HTTP method.")
    expect_status: list[int] = Field(default_factory=lambda: [200], description="Statuses counted as success.")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels on the probe series.")
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="HTTP headers (bearer tokens).")
    follow_redirects: bool = Field(True, description="Follow redirects; the final status counts.")
    verify_tls: bool = Field(True, description="Verify the TLS certificate (a failed check is success=0).")
    ca_file: Path | None = Field(None, description="PEM bundle of CAs to trust instead of the system's.")


class PrometheusSource(_Schedule):
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


class CollectSettings(_Section):
    host: HostCollectorSettings = Field(default_factory=HostCollectorSettings)  # type: ignore[arg-type]
    gpu: GpuCollectorSettings = Field(default_factory=GpuCollectorSettings)  # type: ignore[arg-type]
    scrape: list[ScrapeTarget] = Field(default_factory=list)
    probe: list[ProbeTarget] = Field(default_factory=list)
    prometheus: list[PrometheusSource] = Field(default_factory=list)


# --- store ---------------------------------------------------------------------------------


class RemoteWriteSettings(_Section):
    """Prometheus remote-write of every collected sample (see docs/scale-out.md)."""

    url: str | None = Field(None, description="Remote-write endpoint, e.g. http://prometheus:9090/api/v1/write "
                            "(Prometheus with --web.enable-remote-write-receiver, VictoriaMetrics, Mimir, "
                            "Thanos Receive); none: off.")
    bearer_token: SecretStr | None = Field(None, description="Sent as 'Authorization: Bearer <token>'.")
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="Extra headers (X-Scope-OrgID).")
    external_labels: dict[str, str] = Field(default_factory=dict, description="Labels added to every series "
                                            "written (node, cluster); a series' own label wins.")
    queue_dir: Path | None = Field(None, description="Directory of the on-disk retry queue "
                                   "(default: remote-write/ beside store.path).")
    max_queue_bytes: int = Field(512 * 2**20, gt=0, description="Most bytes the queue holds while the endpoint "
                                 "is down; past it the oldest samples are dropped (and counted).")
    batch_max_samples: int = Field(5000, ge=1, description="Most samples in one request.")
    flush_interval_s: Duration = Field(1.0, gt=0, description="Longest a sample waits before it is queued.")
    timeout_s: Duration = Field(10.0, gt=0, description="Timeout of one request.")
    backoff_max_s: Duration = Field(30.0, gt=0, description="Longest delay between two retries.")


class StoreSettings(_Section):
    path: Path = Field(Path("aiops-data/aiops.db"), description="SQLite file of the embedded time-series store.")
    state_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy URL of the state database (alerts, silences, outbox, actions, audit). "
        "Default: a SQLite file beside the store. Use postgresql+psycopg://... for HA.",
    )
    retention_raw_s: Duration = Field(15 * 86400, gt=0, description="Keep raw samples this long.")
    retention_rollup_s: Duration = Field(400 * 86400, gt=0, description="Keep rollups this long.")
    rollup_step_s: Duration = Field(300, gt=0, description="Rollup bucket width (avg/min/max/last).")
    maintenance_interval_s: Duration = Field(600, gt=0, description="Seconds between retention/compaction runs.")
    remote_write: RemoteWriteSettings = Field(
        default_factory=RemoteWriteSettings,  # type: ignore[arg-type]
        description="Also write every sample to a Prometheus-compatible store.")

    def state_db_url(self) -> str:
        if self.state_url is not None:
            return self.state_url.get_secret_value()
        return f"sqlite:///{self.path.with_name(self.path.stem + '-state.db')}"


# --- agent ---------------------------------------------------------------------------------


class AgentSettings(_Section):
    listen_host: str = Field("127.0.0.1", description="Address of the agent's HTTP server (/metrics, API).")
    listen_port: int = Field(9321, ge=0, le=65535, description="Port of the agent's HTTP server; 0 picks one.")
    api_token: SecretStr | None = Field(None, description="An admin bearer token of the agent's API (shorthand for "
                                        "one agent.tokens entry named api-token with role admin).")
    tokens: list[ApiTokenSettings] = Field(default_factory=list, description="Bearer tokens with a name and a role "
                                           "(intake, viewer, operator, admin).")
    token_file: Path | None = Field(None, description="Where the agent keeps the admin token it generates when no "
                                    "token is configured (mode 0600; default: api-token beside the store).")
    session_secret: SecretStr | None = Field(None, description="HMAC key of dashboard sessions (default: generated "
                                             "into session-key beside the store).")
    session_ttl_s: Duration = Field(43200.0, gt=0, le=30 * 86400, description="How long a dashboard login lasts.")
    read_timeout_s: Duration = Field(10.0, gt=0, le=600, description="A request's head and body must arrive "
                                     "within this long, or the connection is closed.")
    max_connections: int = Field(1000, ge=1, le=100_000, description="Open connections (and requests in "
                                 "flight) above this are answered 503.")
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Larger request bodies are answered 413.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    instance: str = Field("", description="Name of this agent (default: the host name).")


# --- detect / alerting / remediation / dashboard -------------------------------------------


class DetectorSpec(_Section):
    name: str = Field(description="A name for this detector instance.")
    detector: str = Field("zscore", description="Registry name: zscore, iforest, lstm, seasonal, ensemble.")
    selector: str = Field(description="PromQL selector of the series it watches.")
    params: dict[str, Any] = Field(default_factory=dict, description="Constructor parameters.")
    threshold: float | None = Field(None, ge=0, le=1, description="Score at or above which a point is an anomaly "
                                    "(default: the detector's own).")


class DetectSettings(_Section):
    detectors: list[DetectorSpec] = Field(default_factory=list, description="Detectors run live on new samples.")
    checkpoint_interval_s: Duration = Field(
        60.0, gt=0, description="Seconds between two saves of changed detector state into the state database "
        "(also saved on stop), so a restart does not re-learn from scratch.")


class AlertingSettings(_Section):
    """Alert rules, routing, inhibition and silences (see docs/alerting.md).

    ``rules``, ``route`` and ``inhibit_rules`` keep their YAML shape here; ``alerting.config``
    validates them when the agent starts and names rule and field in its ConfigError.
    ``receivers`` belong to delivery (``alerting.notifiers``); routes refer to them by name.
    """

    model_config = ConfigDict(extra="allow")

    rules: list[dict[str, Any]] = Field(default_factory=list, description="Alert rules (see docs/alerting.md).")
    rule_files: list[Path] = Field(default_factory=list, description="Extra YAML files of rules "
                                   "(a list, or a mapping with 'rules:').")
    receivers: list[dict[str, Any]] = Field(default_factory=list, description="Chat receivers.")
    delivery: dict[str, Any] = Field(default_factory=dict, description="Outbox retries, backoff and leases "
                                     "(see docs/notifications.md).")
    route: dict[str, Any] = Field(default_factory=dict, description="Routing tree, Alertmanager-shaped.")
    inhibit_rules: list[dict[str, Any]] = Field(
        default_factory=list, description="Alertmanager-shaped: source_matchers, target_matchers, equal.")
    evaluation_interval_s: Duration = Field(15, gt=0, description="Seconds between two rule evaluations.")
    stale_after_s: Duration = Field(300, gt=0, description="A series without samples this long no longer "
                                    "breaks threshold rules (Prometheus' staleness).")
    resolved_retention_s: Duration = Field(900, ge=0, description="Keep resolved alerts in memory and in "
                                           "GET /api/v1/alerts this long.")
    max_alerts_per_notification: int = Field(100, ge=1, description="Alerts listed in one notification; "
                                             "the rest are counted as truncated.")
    silence_receiver: str | None = Field(None, description="Receiver told when a silence is created or expired.")
    alertmanager_urls: list[str] = Field(default_factory=list, description="Alertmanagers our alerts are "
                                         "pushed to (POST /api/v2/alerts).")
    external_url: str = Field("", description="Link back to us in notifications (default: the agent's URL).")
    max_alerts_per_request: int = Field(10_000, ge=1, le=1_000_000, description="Alerts in one webhook "
                                        "request; more are refused with 413.")
    max_external_alerts: int = Field(50_000, ge=1, description="Active alerts received from outside; a "
                                     "webhook request that would exceed it is refused with 429.")


class RemediationSettings(_Section):
    """Playbooks, guards and the Celery execution of remediation actions (see docs/remediation.md)."""

    broker_url: SecretStr | None = Field(
        None, description="Celery broker (redis://... or amqp://...); none runs tasks in-process in the agent.")
    result_backend: SecretStr | None = Field(
        None, description="Celery result backend; default: the broker when it is Redis, else none.")
    queue: str = Field("aiops-remediation", min_length=1, description="Celery queue the actions travel on.")
    playbooks: list[Path] = Field(default_factory=list, description="Playbook YAML files or folders.")
    dry_run: bool = Field(False, description="Plan and record actions, change nothing.")
    kill_switch: bool = Field(False, description="Refuse every action (also switchable at run time via the API).")
    allow_commands: bool = Field(False, description="Allow playbooks to run local commands.")
    kubeconfig: Path | None = Field(
        None, description="kubeconfig file for Kubernetes actions; none: in-cluster, else ~/.kube/config.")
    kube_context: str | None = Field(None, description="kubeconfig context to use (default: the current one).")
    request_timeout_s: Duration = Field(10.0, gt=0, description="Timeout of one Kubernetes or HTTP call.")
    max_retries: int = Field(5, ge=0, le=100, description="Retries of a transient failure before the run fails.")
    retry_backoff_s: Duration = Field(1.0, gt=0, description="First retry delay; doubles per retry, jittered.")
    retry_backoff_max_s: Duration = Field(60.0, gt=0, description="Longest delay between two retries.")
    visibility_timeout_s: Duration = Field(
        3600.0, gt=0, description="Redis broker: an unacknowledged task is redelivered after this long "
        "(a killed worker's task). Longer than the longest action, verification included.")
    approval_timeout_s: Duration = Field(3600.0, gt=0, description="A pending approval expires after this long.")
    sweep_interval_s: Duration = Field(
        1.0, gt=0, description="How often the agent dispatches approved runs and expires stale approvals.")
    executor_threads: int = Field(4, ge=1, le=64, description="Threads of the in-process executor (no broker).")


class DashboardSettings(_Section):
    port: int = Field(8501, ge=1, le=65535, description="Port of the Streamlit dashboard.")
    base_url: str = Field("http://127.0.0.1:8501", description="Public URL, used in links from alerts.")
    users: list[UserSettings] = Field(default_factory=list, description="Dashboard logins: name, role (viewer or "
                                      "operator) and an argon2/bcrypt password_hash (`aiops hash-password`).")


# --- root ----------------------------------------------------------------------------------


class Settings(BaseSettings):
    """The whole configuration. Load it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="AIOPS_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    collect: CollectSettings = Field(default_factory=CollectSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)  # type: ignore[arg-type]
    agent: AgentSettings = Field(default_factory=AgentSettings)  # type: ignore[arg-type]
    detect: DetectSettings = Field(default_factory=DetectSettings)  # type: ignore[arg-type]
    alerting: AlertingSettings = Field(default_factory=AlertingSettings)  # type: ignore[arg-type]
    remediation: RemediationSettings = Field(default_factory=RemediationSettings)  # type: ignore[arg-type]
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)  # type: ignore[arg-type]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = settings_cls.model_config.get("yaml_file")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if yaml_file:
            sources.append(YamlConfigSettingsSource(settings_cls))
        return tuple(sources)


def _env_name(loc: tuple[Any, ...]) -> str:
    return "AIOPS_" + "__".join(str(p).upper() for p in loc)


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One readable message from a pydantic error: ``key: expected ..., got ... (file)``."""
    parts = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        key = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
        where = source
        env = _env_name(tuple(p for p in loc if not isinstance(p, int)))
        if env in os.environ:
            where = f"environment {env}"
        got = err.get("input")
        got_text = "" if err.get("type") == "missing" else f", got {got!r}"[:120]
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        if "got " in msg:
            got_text = ""
        if err.get("type") == "extra_forbidden":
            msg = "unknown key"
            got_text = ""
        parts.append(f"{key or '<root>'}: {msg}{got_text} ({where})")
    return "; ".join(parts)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings from an optional YAML file, the environment and keyword overrides.

    Args:
        path: a YAML file; ``None`` uses embedded defaults plus the environment.
        overrides: section dicts that win over file and environment (CLI flags).

    Raises:
        ConfigError: naming the file or variable, the key and what was expected.
    """
    source = "defaults/environment"
    config: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist (create one with 'aiops init')")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{p}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping of sections at the top, got {type(loaded).__name__}")
        config["yaml_file"] = str(p)
    cls = type("FileSettings", (Settings,), {"model_config": {**Settings.model_config, **config}})
    try:
        return cls(**overrides)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from exc


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
