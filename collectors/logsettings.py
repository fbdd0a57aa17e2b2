"""Settings of the log collectors: ``collect.logs`` (files, Kafka); ``collect.loki`` is in settings.py.

Every log source shares :class:`LogParsing`: how a line's level is found (a JSON field or a
regex), which named regexes are counted, and whether templates are mined with drain3.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from aiops.config import Duration

__all__ = ["LogParsing", "LogFileSource", "KafkaLogSource", "DEFAULT_LEVEL_REGEX"]

DEFAULT_LEVEL_REGEX = r"\b(TRACE|DEBUG|INFO|NOTICE|WARN(?:ING)?|ERROR|ERR|CRIT(?:ICAL)?|FATAL|PANIC|ALERT|EMERG)\b"
"""Finds the level word of a plain line (case-insensitive): ``2026-12-01 ERROR db down``."""

_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class LogParsing(_Model):
    """How lines become counts."""

    format: Literal["auto", "json", "plain"] = Field(
        "auto", description="'json': each line is a JSON object; 'plain': text; 'auto': JSON when it parses.")
    level_fields: list[str] = Field(
        default_factory=lambda: ["level", "severity", "lvl", "log.level", "levelname"],
        description="JSON keys (dots reach into nested objects) holding the level; the first present wins.")
    level_regex: str = Field(DEFAULT_LEVEL_REGEX, description="Regex whose first group is the level of a "
                             "plain line (case-insensitive).")
    message_fields: list[str] = Field(default_factory=lambda: ["message", "msg", "log", "event"],
                                      description="JSON keys holding the message text (patterns and templates).")
    patterns: dict[str, str] = Field(default_factory=dict, description="Named regexes; each match counts in "
                                     "aiops_log_pattern_lines_total{pattern=NAME}.")
    templates: bool = Field(True, description="Mine message templates with drain3 "
                            "(aiops_log_template_lines_total{template=...}).")
    max_templates: int = Field(50, ge=1, le=10_000, description="Templates exported as their own series; "
                               "the rest count as template='other'.")
    max_line_bytes: int = Field(65_536, ge=64, le=16 * 2**20, description="Longer lines count as bad "
                                "(reason='too_long') and are skipped.")

    @field_validator("level_regex")
    @classmethod
    def _regex_compiles(cls, v: str) -> str:
        try:
            if re.compile(v).groups < 1:
                raise ValueError("needs one group: the level")
        except re.error as exc:
            raise ValueError(f"not a regex: {exc}") from None
        return v

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, v: dict[str, str]) -> dict[str, str]:
        for name, rx in v.items():
            if not _LABEL.fullmatch(name):
                raise ValueError(f"pattern name {name!r} must match [a-zA-Z_][a-zA-Z0-9_]*")
            try:
                re.compile(rx)
            except re.error as exc:
                raise ValueError(f"pattern {name!r}: not a regex: {exc}") from None
        return v


class _LogSource(_Model):
    name: str = Field(min_length=1, description="Value of the 'source' label of this source's series.")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra labels on every series.")
    parsing: LogParsing = Field(default_factory=LogParsing)  # type: ignore[arg-type]
    interval_s: Duration = Field(10.0, gt=0, description="Seconds between two collections.")
    timeout_s: Duration = Field(5.0, gt=0, description="Seconds one collection may take.")
    jitter_s: Duration = Field(0.5, ge=0, description="Random delay added to each interval.")


class LogFileSource(_LogSource):
    """Files tailed like ``tail -F``: rotation (rename or copy-truncate) and truncation handled."""

    type: Literal["file"] = "file"
    paths: list[str] = Field(min_length=1, description="Files or glob patterns (re-expanded every collection).")
    state_dir: Path = Field(Path("aiops-data/logs"), description="Where read offsets and totals are kept "
                            "across restarts.")
    start_at: Literal["beginning", "end"] = Field(
        "end", description="Where a file seen for the first time is read from.")
    max_bytes_per_collection: int = Field(8 * 2**20, ge=4096, description="Read at most this much per file "
                                          "and collection; the rest comes next time.")


class KafkaLogSource(_LogSource):
    """A consumer group on topics of log records (Fluentd / Fluent Bit / Vector output)."""

    type: Literal["kafka"] = "kafka"
    bootstrap_servers: str = Field(min_length=1, description="host:port[,host:port...] of the brokers.")
    topics: list[str] = Field(min_length=1, description="Topics to consume.")
    group_id: str = Field("aiops-logs", min_length=1, description="Consumer group id.")
    record_field: str | None = Field("log", description="With JSON records, the field holding the line "
                                     "(Fluent Bit's 'log'); the whole record is the line when absent.")
    max_messages_per_collection: int = Field(50_000, ge=1, description="Messages consumed per collection.")
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
