"""Builds the agent's parts from the settings: the one place that imports every package.

Each package owns its section below and exposes one builder; the packages themselves never
import each other (they meet in the kernel's types and the bus).
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from aiops.protocols import AgentContext, Collector, Component
from app.settings import Settings

if TYPE_CHECKING:
    from aiops.notification import NotificationSink

__all__ = ["build_collectors", "build_components", "provide_contracts"]


def provide_contracts() -> None:
    """Import the packages that implement the kernel's read contracts (:mod:`aiops.contracts`).

    Alerting answers :class:`~aiops.contracts.AlertStates` for remediation; the agent and every
    worker call this before remediation runs, whichever components are configured.
    """
    import alerting.history  # noqa: F401  (registers AlertHistory as the AlertStates provider)


def build_collectors(settings: Settings) -> list[Collector]:
    """Collectors for every enabled source in ``settings.collect``."""
    from collectors import build_collectors as build

    out = build(settings.collect, instance=settings.agent.instance or None)
    quota = settings.remediation.gpu_quota
    if quota.enabled and quota.classes:  # use versus share per class, read from the cluster
        from aiops.state import StateDB
        from remediation.kube import Kube
        from remediation.quota import GpuQuotaCollector

        rs = settings.remediation
        out.append(GpuQuotaCollector(quota, Kube(rs.kubeconfig, rs.kube_context, rs.request_timeout_s),
                                     StateDB(settings.store.state_db_url())))
    return out


def build_components(settings: Settings) -> list[Component]:
    """Live components: detection, alerting, remediation, rca (each only when configured)."""
    provide_contracts()
    components: list[Component] = []
    # --- remote-write (every sample also to a Prometheus-compatible store) ---
    if settings.store.remote_write.url:
        from aiops.remotewrite import RemoteWriteComponent

        components.append(RemoteWriteComponent(settings.store.remote_write, settings.store.path))
    # --- detectors (live detection) ---
    if settings.detect.detectors:
        from detectors.live import DetectionComponent

        d = settings.detect
        member = (settings.agent.instance or socket.gethostname()) if d.sharding else None
        components.append(DetectionComponent(d.detectors, d.checkpoint_interval_s, shard_member=member,
                                             shard_slots=d.shard_slots, shard_heartbeat_s=d.shard_heartbeat_s,
                                             shard_ttl_s=d.shard_ttl_s, fit_history_s=d.fit_history_s,
                                             fit_history_points=d.fit_history_points, catchup_s=d.catchup_s,
                                             catchup_points=d.catchup_points, write_scores=d.write_scores))
    # --- end detectors ---
    # --- alerting (rules, grouping, notifications) ---
    components += _alerting(settings)
    # --- remediation (playbooks, dispatch) ---
    rs = settings.remediation
    if rs.playbooks:
        from remediation import RemediationComponent

        receivers = [str(r.get("name")) for r in settings.alerting.receivers if isinstance(r, dict)]
        # loads and validates the playbooks now, the receivers they name included
        components.append(RemediationComponent(settings, receivers=receivers))
    # --- end remediation ---
    # --- rca (root causes of firing alerts, stored and shown in notifications) ---
    if settings.rca.enabled:
        from rca.live import RcaComponent

        components.append(RcaComponent(settings.rca, settings.topology))
    # --- end rca ---
    return components


def _check_receivers(receivers: list[dict[str, object]], source: str) -> None:
    """Validate ``alerting.receivers`` now, naming the file, rather than when the outbox starts."""
    from aiops.errors import ConfigError
    from alerting.notifiers import parse_receivers

    try:
        parse_receivers(receivers)
    except ConfigError as exc:
        raise ConfigError(f"{exc} ({source})") from None


def _alerting(settings: Settings) -> list[Component]:
    """The alerting core (alertcore) delivering through the persistent outbox (alertnotify)."""
    a = settings.alerting
    if not (a.rules or a.rule_files or a.receivers or a.route or a.alertmanager_urls):
        return []
    from alerting.component import AlertingComponent
    from alerting.config import load_alerting

    source = str(settings.model_config.get("yaml_file") or "config")
    config = load_alerting(a, source, check_receivers=bool(a.receivers))
    _check_receivers(a.receivers, source)

    def outbox(ctx: AgentContext) -> NotificationSink:
        from alerting.outbox import build_outbox  # alertnotify's delivery: notifiers, retries, rate limits

        return build_outbox(a, ctx.state, ctx.registry,
                            base_url=settings.dashboard.base_url)  # series links go to the dashboard

    return [AlertingComponent(config, outbox)]
