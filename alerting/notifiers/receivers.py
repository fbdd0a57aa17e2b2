"""Receivers configuration: ``alerting.receivers`` parsed into typed models, then notifiers.

Each entry is a mapping with ``name``, ``type`` and the type's own fields; ``type`` is the
discriminator. Webhook URLs, tokens, secrets and passwords are :class:`~pydantic.SecretStr`:
they render masked and never appear in an error message. A bad entry raises one
:class:`~aiops.errors.ConfigError` naming ``alerting.receivers[i].field``.

Every receiver also takes delivery knobs: ``rate_limit_per_min`` (0: unlimited), ``burst``
(messages allowed at once, default: the per-minute rate), ``timeout_s`` and
``retry_client_errors_for_s`` (how long a 404 or other 4xx is retried; 401/403 never are).

Examples:
    >>> cfgs = parse_receivers([{"name": "ops", "type": "slack",
    ...                          "webhook_url": "https://hooks.slack.com/services/T/B/X"}])
    >>> cfgs[0].type, cfgs[0].webhook_url
    ('slack', SecretStr('**********'))
    >>> parse_receivers([{"name": "x", "type": "carrier-pigeon"}])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    aiops.errors.ConfigError: alerting.receivers[0].type: unknown receiver type 'carrier-pigeon'; expected one of ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, ValidationError, field_validator

from aiops.config import Duration
from aiops.errors import ConfigError
from aiops.validation import format_validation_error
from alerting.notifiers.base import Notifier

__all__ = ["ReceiverConfig", "parse_receivers", "build_notifier", "RECEIVER_TYPES"]


def _http_url(value: SecretStr) -> SecretStr:
    text = value.get_secret_value().strip()
    if not text.startswith(("http://", "https://")) or len(text) < 10:
        raise ValueError("expected an http(s):// URL")  # never echo the URL: it is a secret
    return SecretStr(text)


class _Receiver(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="Unique name; routes refer to it.")
    send_resolved: bool = Field(True, description="Also notify when alerts resolve.")
    rate_limit_per_min: float = Field(20.0, ge=0, description="Messages per minute at most (0: unlimited).")
    burst: int | None = Field(None, ge=1, description="Messages allowed at once (default: the per-minute rate).")
    timeout_s: Duration = Field(10.0, gt=0, le=300, description="Seconds one delivery attempt may take.")
    retry_client_errors_for_s: Duration = Field(
        600.0, ge=0, description="Keep retrying a 4xx other than 401/403 (404 while a webhook is re-created) "
                                 "this long after the message was queued; 0: fail at the first one.")


class _WebhookReceiver(_Receiver):
    webhook_url: SecretStr = Field(description="The service's incoming webhook URL (secret).")

    _check_url = field_validator("webhook_url")(_http_url)


class SlackReceiver(_WebhookReceiver):
    type: Literal["slack"]
    channel: str = ""
    username: str = ""


class TeamsReceiver(_WebhookReceiver):
    type: Literal["teams"]


class DiscordReceiver(_WebhookReceiver):
    type: Literal["discord"]
    username: str = ""


class MattermostReceiver(_WebhookReceiver):
    type: Literal["mattermost"]
    channel: str = ""
    username: str = ""


class FeishuReceiver(_WebhookReceiver):
    type: Literal["feishu"]
    secret: SecretStr | None = Field(None, description="Signing secret of the bot (secret).")


class DingTalkReceiver(_WebhookReceiver):
    type: Literal["dingtalk"]
    secret: SecretStr | None = Field(None, description="SEC... signing secret of the robot (secret).")
    at_mobiles: list[str] = Field(default_factory=list, description="Phone numbers @-mentioned on firing alerts.")


class WeComReceiver(_WebhookReceiver):
    type: Literal["wecom"]


class WebhookReceiver(_Receiver):
    type: Literal["webhook"]
    url: SecretStr = Field(description="Endpoint receiving Alertmanager-format JSON (secret).")
    headers: dict[str, SecretStr] = Field(default_factory=dict, description="Extra headers (values secret).")
    max_alerts: int = Field(0, ge=0, description="Truncate alerts to this many (0: all).")

    _check_url = field_validator("url")(_http_url)


class EmailReceiver(_Receiver):
    type: Literal["email"]
    to: list[str] = Field(min_length=1, description="Recipient addresses.")
    sender: str = Field(alias="from", min_length=3, description="From address.")
    smarthost: str = Field(description="SMTP server as host:port.")
    username: str = ""
    password: SecretStr | None = None
    starttls: bool = False
    use_ssl: bool = False
    subject_prefix: str = "[aiops] "

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("smarthost")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port, got {value!r}")
        return value

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for addr in value:
            if "@" not in addr:
                raise ValueError(f"expected e-mail addresses, got {addr!r}")
        return value


class AppriseReceiver(_Receiver):
    type: Literal["apprise"]
    url: SecretStr = Field(description="An Apprise URL, e.g. tgram://token/chat (secret).")

    @field_validator("url")
    @classmethod
    def _apprise_url(cls, value: SecretStr) -> SecretStr:
        if "://" not in value.get_secret_value():
            raise ValueError("expected an Apprise URL like 'tgram://...'")
        return value


ReceiverConfig = Annotated[
    SlackReceiver | TeamsReceiver | DiscordReceiver | MattermostReceiver | FeishuReceiver | DingTalkReceiver
    | WeComReceiver | WebhookReceiver | EmailReceiver | AppriseReceiver,
    Field(discriminator="type"),
]
RECEIVER_TYPES = ("apprise", "dingtalk", "discord", "email", "feishu", "mattermost", "slack", "teams",
                  "webhook", "wecom")
_ADAPTER: TypeAdapter[Any] = TypeAdapter(ReceiverConfig)
_SECRET_FIELDS = {"webhook_url", "url", "secret", "password", "headers"}


def _message(i: int, exc: ValidationError) -> str:
    return format_validation_error(exc, prefix=f"alerting.receivers[{i}]", skip_loc=RECEIVER_TYPES, missing="required",
                                   secret_keys=_SECRET_FIELDS)


def parse_receivers(entries: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Validate ``alerting.receivers`` into typed receiver models.

    Raises:
        ConfigError: naming ``alerting.receivers[i].field``; secret values are never echoed.
    """
    out: list[Any] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"alerting.receivers[{i}]: expected a mapping with name and type, "
                              f"got {type(entry).__name__}")
        kind = entry.get("type")
        if kind not in RECEIVER_TYPES:
            hint = "required" if kind is None else f"unknown receiver type {kind!r}"
            raise ConfigError(f"alerting.receivers[{i}].type: {hint}; expected one of {', '.join(RECEIVER_TYPES)}")
        try:
            cfg = _ADAPTER.validate_python(dict(entry))
        except ValidationError as exc:
            raise ConfigError(_message(i, exc)) from None  # the pydantic error holds the raw input (secrets)
        if cfg.name in seen:
            raise ConfigError(f"alerting.receivers[{i}].name: {cfg.name!r} is already used by "
                              f"alerting.receivers[{seen[cfg.name]}]")
        seen[cfg.name] = i
        out.append(cfg)
    return out


def _secret(value: SecretStr | None) -> str:
    return "" if value is None else value.get_secret_value()


def build_notifier(cfg: Any, base_url: str = "") -> Notifier:
    """The notifier for one parsed receiver config; ``base_url`` is the dashboard for links."""
    from alerting.notifiers.apprise_url import AppriseNotifier
    from alerting.notifiers.dingtalk import DingTalkNotifier
    from alerting.notifiers.discord import DiscordNotifier
    from alerting.notifiers.feishu import FeishuNotifier
    from alerting.notifiers.mattermost import MattermostNotifier
    from alerting.notifiers.slack import SlackNotifier
    from alerting.notifiers.smtp import SmtpNotifier
    from alerting.notifiers.teams import TeamsNotifier
    from alerting.notifiers.webhook import WebhookNotifier
    from alerting.notifiers.wecom import WeComNotifier

    common = {"base_url": base_url, "timeout_s": cfg.timeout_s}
    if isinstance(cfg, SlackReceiver):
        return SlackNotifier(cfg.name, _secret(cfg.webhook_url), channel=cfg.channel, username=cfg.username, **common)
    if isinstance(cfg, TeamsReceiver):
        return TeamsNotifier(cfg.name, _secret(cfg.webhook_url), **common)
    if isinstance(cfg, DiscordReceiver):
        return DiscordNotifier(cfg.name, _secret(cfg.webhook_url), username=cfg.username, **common)
    if isinstance(cfg, MattermostReceiver):
        return MattermostNotifier(cfg.name, _secret(cfg.webhook_url), channel=cfg.channel, username=cfg.username,
                                  **common)
    if isinstance(cfg, FeishuReceiver):
        return FeishuNotifier(cfg.name, _secret(cfg.webhook_url), secret=_secret(cfg.secret), **common)
    if isinstance(cfg, DingTalkReceiver):
        return DingTalkNotifier(cfg.name, _secret(cfg.webhook_url), secret=_secret(cfg.secret),
                                at_mobiles=tuple(cfg.at_mobiles), **common)
    if isinstance(cfg, WeComReceiver):
        return WeComNotifier(cfg.name, _secret(cfg.webhook_url), **common)
    if isinstance(cfg, WebhookReceiver):
        return WebhookNotifier(cfg.name, _secret(cfg.url), headers={k: _secret(v) for k, v in cfg.headers.items()},
                               max_alerts=cfg.max_alerts, **common)
    if isinstance(cfg, EmailReceiver):
        host, _, port = cfg.smarthost.rpartition(":")
        return SmtpNotifier(cfg.name, host=host, port=int(port), sender=cfg.sender, to=tuple(cfg.to),
                            username=cfg.username, password=_secret(cfg.password), starttls=cfg.starttls,
                            use_ssl=cfg.use_ssl, subject_prefix=cfg.subject_prefix, **common)
    if isinstance(cfg, AppriseReceiver):
        return AppriseNotifier(cfg.name, _secret(cfg.url), **common)
    raise ConfigError(f"receiver {cfg.name!r}: unsupported type {getattr(cfg, 'type', '?')!r}")
