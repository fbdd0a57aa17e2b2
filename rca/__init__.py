"""Root-cause localisation over a service topology.

Imports only the ground floor :mod:`aiops`. See docs/rca.md.
"""

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
