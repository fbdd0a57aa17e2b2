"""Plug points of the agent, as Protocols: collectors and agent components.

The detector protocol lives in :mod:`aiops.detector`; notifiers and actions are internal
to their packages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from aiops.model import Sample

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from aiops.bus import Bus
    from aiops.config import CoreSettings
    from aiops.httpapi import HttpApi
    from aiops.state import StateDB
    from aiops.store import SqliteSeriesStore

__all__ = ["Collector", "Component", "AgentContext"]


@runtime_checkable
class Collector(Protocol):
    """A source of samples, collected on its own schedule by the agent.

    ``collect`` returns the samples of one collection; it raises
    :class:`~aiops.errors.CollectError` when the source cannot be read (the agent then
    records ``up=0`` and the error, and keeps going). It must honour ``timeout_s`` itself.
    """

    name: str  # collector kind: host, gpu, scrape, probe, prometheus
    target: str  # what it reads, safe to log and to use as a label (no secrets)
    interval_s: float
    timeout_s: float
    jitter_s: float

    def collect(self, now_ms: int) -> Sequence[Sample]: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class AgentContext:
    """What the agent hands each component at start."""

    settings: CoreSettings  # the application's Settings: ground-floor sections plus each package's
    store: SqliteSeriesStore
    state: StateDB
    bus: Bus
    registry: CollectorRegistry
    api: HttpApi
    extra: dict[str, Any]


class Component(Protocol):
    """A long-lived part of the agent (live detection, rule evaluation, remediation dispatch).

    ``start`` subscribes to the bus, registers HTTP routes and metrics, and may start
    threads; ``stop`` flushes and joins them. Both must return promptly.
    """

    name: str

    def start(self, ctx: AgentContext) -> None: ...

    def stop(self) -> None: ...
