"""The settings mechanism, and the ground floor's own sections (``store``, ``agent``).

Each package declares its section in its own module (``collectors/settings.py``,
``detectors/settings.py``, ``alerting/settings.py``, ``remediation/settings.py``,
``dashboard/settings.py``) as a :class:`Section`; the application assembles them into one
model (``app/settings.py``, a subclass of :class:`CoreSettings`), like kopf's ``OperatorSettings``.
This module owns what every section shares: loading, precedence, durations and error messages.

Order of precedence: defaults < ``aiops.yaml`` < ``AIOPS_*`` environment variables
(``AIOPS_STORE__PATH``, nested with ``__``) < CLI flags. A bad value fails at start with one
:class:`~aiops.errors.ConfigError` naming the file (or variable), the key and what was expected;
it never echoes a secret's value. Secrets (tokens, webhook URLs) are ``SecretStr`` and render masked.

Only this module reads the environment; code takes what it needs as arguments.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from aiops.errors import ConfigError
from aiops.httpauth import ApiTokenSettings
from aiops.secretref import resolve_refs
from aiops.validation import format_validation_error

__all__ = [
    "Section",
    "CoreSettings",
    "Duration",
    "parse_duration_s",
    "load_settings",
    "format_validation_error",
    "StoreSettings",
    "AgentSettings",
    "RemoteWriteSettings",
]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def _shown(value: Any) -> str:
    """``value`` for an error message: scalars quoted, containers (which may hold secrets) by type."""
    if isinstance(value, (dict, list, tuple, set)):
        return f"a {type(value).__name__}"
    return repr(value)[:80]


def parse_duration_s(value: Any) -> float:
    """Parse a Prometheus-style duration (``"90s"``, ``"5m"``, ``"1h30m"``) or a number of seconds.

    Examples:
        >>> parse_duration_s("1h30m")
        5400.0
        >>> parse_duration_s(2.5)
        2.5
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '5m', got {_shown(value)}")
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
        raise ValueError(f"expected a duration like '5m', got {_shown(value)}")
    return total


Duration = Annotated[float, BeforeValidator(parse_duration_s)]
"""Seconds, given as a number or as a Prometheus duration string."""




class Section(BaseModel):
    """Base of every settings section: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


# --- store ---------------------------------------------------------------------------------


class RemoteWriteSettings(Section):
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


class SeriesReadSettings(Section):
    """Where series are read by the processes beside the agent (see docs/scale-out.md).

    Remediation ``verify:`` steps and the dashboard's charts read the agent's embedded store
    file by default, which only works on the agent's machine or volume. With ``prometheus_url``
    they read through :class:`~aiops.promstore.PrometheusSeriesStore` from the
    Prometheus-compatible server the agents remote-write to: workers and dashboards in pods of
    their own (the ``ha`` overlay).
    """

    prometheus_url: str | None = Field(None, description="Base URL of a Prometheus-compatible HTTP API "
                                       "(http://prometheus:9090) to read series from instead of the embedded "
                                       "store file; none: read store.path.")
    bearer_token: SecretStr | None = Field(None, description="Sent as 'Authorization: Bearer <token>'.")
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="Extra headers (X-Scope-OrgID).")
    timeout_s: Duration = Field(10.0, gt=0, description="Timeout of one query.")

    @field_validator("prometheus_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        return value


class StoreSettings(Section):
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
    read: SeriesReadSettings = Field(
        default_factory=SeriesReadSettings,  # type: ignore[arg-type]
        description="Where workers (verify steps) and the dashboard read series: the store file or Prometheus.")

    def state_db_url(self) -> str:
        if self.state_url is not None:
            return self.state_url.get_secret_value()
        return f"sqlite:///{self.path.with_name(self.path.stem + '-state.db')}"


# --- agent ---------------------------------------------------------------------------------


class AgentSettings(Section):
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


# --- root ----------------------------------------------------------------------------------


class CoreSettings(BaseSettings):
    """The root of the settings: the mechanism and the ground floor's sections.

    The application's ``Settings`` (``app/settings.py``) adds one field per package section;
    a process that needs only some sections (the dashboard) may load a smaller subclass that
    sets ``extra="ignore"``.
    """

    model_config = SettingsConfigDict(
        env_prefix="AIOPS_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    store: StoreSettings = Field(default_factory=StoreSettings)  # type: ignore[arg-type]
    agent: AgentSettings = Field(default_factory=AgentSettings)  # type: ignore[arg-type]

    @model_validator(mode="before")
    @classmethod
    def _resolve_secret_refs(cls, data: Any) -> Any:
        """``${env:NAME}`` / ``${file:/path}`` anywhere in the file or environment become their values."""
        return resolve_refs(data) if isinstance(data, dict) else data

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


S = TypeVar("S", bound=CoreSettings)


def load_settings(path: str | Path | None = None, *, model: type[S], **overrides: Any) -> S:
    """Load ``model`` from an optional YAML file, the environment and keyword overrides.

    Args:
        path: a YAML file; ``None`` uses embedded defaults plus the environment.
        model: the settings model (the application's ``Settings``, or a subclass of
            :class:`CoreSettings` with the sections a process needs).
        overrides: section dicts that win over file and environment (CLI flags).

    Raises:
        ConfigError: naming the file or variable, the key and what was expected.

    Examples:
        >>> load_settings(model=CoreSettings, store={"path": "x.db"}).store.path.name
        'x.db'
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
    cls = type(f"File{model.__name__}", (model,), {"model_config": {**model.model_config, **config}})
    try:
        return cls(**overrides)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source=source, env_prefix="AIOPS_")) from exc
