"""The ``alerting`` section of the settings (rules, routing, receivers, delivery).

Declared here, assembled into the one settings model by the application (``app/settings.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field

from aiops.config import Duration, Section

__all__ = ["AlertingSettings"]


class AlertingSettings(Section):
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
    resolve_timeout_s: Duration = Field(
        300.0, ge=0, description="An alert posted from outside without an endsAt ahead resolves this long "
        "after it was last posted (Alertmanager's resolve_timeout); 0: only when posted resolved.")
    ha_lease_s: Duration = Field(
        6.0, gt=0, description="Agents sharing a state DB: one evaluates the rules, holding a lease of this "
        "length renewed every third of it; a dead leader's rules are taken over this long after it died.")
