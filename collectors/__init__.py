"""Collectors: one module per source, all producing sample batches through one interface.

Every collector implements :class:`aiops.protocols.Collector`; :func:`build_collectors` turns the
``collect`` section of the settings into one collector per enabled source or target.
"""

from __future__ import annotations

from aiops.protocols import Collector
from collectors.exposition import ExpositionParser
from collectors.gpu import GpuCollector
from collectors.host import HostCollector
from collectors.kubernetes import KubernetesStateCollector
from collectors.logfile import LogFileCollector
from collectors.logkafka import KafkaLogCollector
from collectors.logsettings import LogFileSource
from collectors.loki import LokiCollector
from collectors.probe import ProbeCollector
from collectors.prometheus import PrometheusCollector
from collectors.scrape import STALE_NAN, ScrapeCollector, is_stale
from collectors.settings import CollectSettings

__all__ = [
    "build_collectors",
    "HostCollector",
    "GpuCollector",
    "ScrapeCollector",
    "ProbeCollector",
    "PrometheusCollector",
    "LokiCollector",
    "LogFileCollector",
    "KafkaLogCollector",
    "KubernetesStateCollector",
    "ExpositionParser",
    "STALE_NAN",
    "is_stale",
]


def build_collectors(settings: CollectSettings, instance: str | None = None) -> list[Collector]:
    """Collectors for every enabled source in ``settings``.

    Args:
        settings: the ``collect`` section.
        instance: the ``instance`` label of host/GPU series (default: the host name).
    """
    out: list[Collector] = []
    if settings.host.enabled:
        out.append(HostCollector(settings.host, instance=instance))
    if settings.gpu.enabled:
        out.append(GpuCollector(settings.gpu, instance=instance))
    out.extend(ScrapeCollector(t) for t in settings.scrape)
    out.extend(ProbeCollector(t) for t in settings.probe)
    out.extend(PrometheusCollector(s) for s in settings.prometheus)
    out.extend(LokiCollector(s) for s in settings.loki)
    for src in settings.logs:
        out.append(LogFileCollector(src) if isinstance(src, LogFileSource) else KafkaLogCollector(src))
    if settings.kubernetes.enabled:
        out.append(KubernetesStateCollector(settings.kubernetes))
    return out
