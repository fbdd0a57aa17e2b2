"""Collectors: one module per source, all producing sample batches through one interface."""

from __future__ import annotations

from aiops.config import CollectSettings
from aiops.protocols import Collector

__all__ = ["build_collectors"]


def build_collectors(settings: CollectSettings) -> list[Collector]:
    """Collectors for every enabled source in ``settings``."""
    return []
