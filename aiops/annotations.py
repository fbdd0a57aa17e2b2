"""Extra annotations on alerts, computed by a feature package, read by another.

A contract of the ground floor so that packages meet here and never import each other: a
package that knows more about an alert (root-cause localisation: the likely causes) registers an
:class:`AlertAnnotator`; a package that shows or acts on alerts (notifications, playbook
templates) asks :func:`extra_annotations`. The application registers annotators at start
(``app/wiring.py``) and removes them at stop.

Annotations are strings, like Alertmanager's; the alert's own annotations win over extra ones.
An annotator that fails or is slow costs only its own keys: failures are logged and skipped.

Examples:
    >>> from aiops.model import Alert
    >>> def cause(alert: Alert) -> dict[str, str]:
    ...     return {"rca_top_component": "deployment/inference/llm"}
    >>> register_annotator(cause)
    >>> extra_annotations(Alert.of({"alertname": "Slow"}))["rca_top_component"]
    'deployment/inference/llm'
    >>> unregister_annotator(cause)
    >>> extra_annotations(Alert.of({"alertname": "Slow"}))
    {}
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Protocol

from aiops.logs import get_logger
from aiops.model import Alert

__all__ = ["AlertAnnotator", "register_annotator", "unregister_annotator", "extra_annotations"]

log = get_logger("aiops.annotations")


class AlertAnnotator(Protocol):
    """Returns annotations for ``alert`` (may be empty); must return within a few seconds."""

    def __call__(self, alert: Alert) -> Mapping[str, str]: ...


_lock = threading.Lock()
_annotators: list[AlertAnnotator] = []


def register_annotator(annotator: AlertAnnotator) -> None:
    """Add ``annotator`` (once)."""
    with _lock:
        if annotator not in _annotators:
            _annotators.append(annotator)


def unregister_annotator(annotator: AlertAnnotator) -> None:
    """Remove ``annotator`` if registered."""
    with _lock:
        if annotator in _annotators:
            _annotators.remove(annotator)


def extra_annotations(alert: Alert) -> dict[str, str]:
    """What every registered annotator adds to ``alert`` (keys the alert already has are left out)."""
    with _lock:
        annotators = list(_annotators)
    own = alert.annotation_dict
    out: dict[str, str] = {}
    for a in annotators:
        try:
            extra = a(alert)
        except Exception as exc:  # one broken annotator must not break a notification
            log.warning("annotator_failed", fingerprint=alert.fingerprint, error=str(exc)[:200])
            continue
        for k, v in extra.items():
            if k not in own and k not in out:
                out[str(k)] = str(v)
    return out
