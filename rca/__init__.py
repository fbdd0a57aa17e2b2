"""Root-cause localisation over a service topology.

Imports only the ground floor :mod:`aiops`. See docs/rca.md. Names are exported lazily
(PEP 562), so ``import rca.settings`` (every CLI command assembles the settings) does not import
numpy through the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiops.lazy import lazy_exports

if TYPE_CHECKING:
    from rca.graph import CausalGraph, MetricGraph
    from rca.localize import RcaParams, localize
    from rca.model import Cause, RcaCase, RcaResult, split_name
    from rca.onset import changepoint_probs, find_onset

__all__ = [
    "CausalGraph",
    "MetricGraph",
    "RcaParams",
    "localize",
    "Cause",
    "RcaCase",
    "RcaResult",
    "split_name",
    "changepoint_probs",
    "find_onset",
]

_LAZY = {
    "CausalGraph": "rca.graph",
    "MetricGraph": "rca.graph",
    "RcaParams": "rca.localize",
    "localize": "rca.localize",
    "Cause": "rca.model",
    "RcaCase": "rca.model",
    "RcaResult": "rca.model",
    "split_name": "rca.model",
    "changepoint_probs": "rca.onset",
    "find_onset": "rca.onset",
}


__getattr__ = lazy_exports(__name__, _LAZY)
