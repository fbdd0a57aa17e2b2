"""Builds the agent's parts from the settings: the one place that imports every package.

Each package owns its section below and exposes one builder; the packages themselves never
import each other (they meet in the kernel's types and the bus).
"""

from __future__ import annotations

from aiops.config import Settings
from aiops.protocols import Collector, Component

__all__ = ["build_collectors", "build_components"]


def build_collectors(settings: Settings) -> list[Collector]:
    """Collectors for every enabled source in ``settings.collect``."""
    from collectors import build_collectors as build

    return build(settings.collect, instance=settings.agent.instance or None)


def build_components(settings: Settings) -> list[Component]:
    """Live components: detection, alerting, remediation (each only when configured)."""
    components: list[Component] = []
    # --- detectors (live detection) ---
    # --- alerting (rules, grouping, notifications) ---
    # --- remediation (playbooks, dispatch) ---
    rs = settings.remediation
    if rs.playbooks:
        from remediation import RemediationComponent

        components.append(RemediationComponent(settings))  # loads and validates the playbooks now
    # --- end remediation ---
    return components
