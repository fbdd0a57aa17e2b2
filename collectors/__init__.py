"""Collectors: one module per source, all producing sample batches through one interface.

Every collector implements :class:`aiops.protocols.Collector`; :func:`build_collectors` turns the
``collect`` section of the settings into one collector per enabled source or target.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiops.lazy import lazy_exports

# Names load on first use (PEP 562): `import collectors.settings` (every CLI command does) must
# not import the whole package, so that commands that need none of it start fast.
if TYPE_CHECKING:
    from aiops.protocols import Collector
    from collectors.exposition import ExpositionParser
    from collectors.gpu import GpuCollector
    from collectors.host import HostCollector
    from collectors.kubernetes import KubernetesStateCollector
    from collectors.logfile import LogFileCollector
    from collectors.logkafka import KafkaLogCollector
    from collectors.loki import LokiCollector
    from collectors.probe import ProbeCollector
    from collectors.prometheus import PrometheusCollector
    from collectors.scrape import STALE_NAN, ScrapeCollector, is_stale
    from collectors.settings import CollectSettings

_EXPORTS: dict[str, tuple[str, str]] = {
    "Collector": ("aiops.protocols", "Collector"),
    "ExpositionParser": ("collectors.exposition", "ExpositionParser"),
    "GpuCollector": ("collectors.gpu", "GpuCollector"),
    "HostCollector": ("collectors.host", "HostCollector"),
    "KubernetesStateCollector": ("collectors.kubernetes", "KubernetesStateCollector"),
    "LogFileCollector": ("collectors.logfile", "LogFileCollector"),
    "KafkaLogCollector": ("collectors.logkafka", "KafkaLogCollector"),
    "LokiCollector": ("collectors.loki", "LokiCollector"),
    "ProbeCollector": ("collectors.probe", "ProbeCollector"),
    "PrometheusCollector": ("collectors.prometheus", "PrometheusCollector"),
    "STALE_NAN": ("collectors.scrape", "STALE_NAN"),
    "ScrapeCollector": ("collectors.scrape", "ScrapeCollector"),
    "is_stale": ("collectors.scrape", "is_stale"),
    "CollectSettings": ("collectors.settings", "CollectSettings"),
}

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
    from collectors.gpu import GpuCollector
    from collectors.host import HostCollector
    from collectors.kubernetes import KubernetesStateCollector
    from collectors.logfile import LogFileCollector
    from collectors.logkafka import KafkaLogCollector
    from collectors.logsettings import LogFileSource
    from collectors.loki import LokiCollector
    from collectors.probe import ProbeCollector
    from collectors.prometheus import PrometheusCollector
    from collectors.scrape import ScrapeCollector

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


__getattr__ = lazy_exports(__name__, _EXPORTS)
