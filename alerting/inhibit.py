"""Inhibition, Alertmanager's: a firing source alert mutes matching targets with equal labels.

The inhibitor keeps, per rule, an index from the ``equal`` labels' values to the firing
source alerts, updated on each state change, so asking whether an alert is inhibited costs one
dict look-up per rule, not a scan of every firing alert (a storm of 10,000 alerts stays cheap).
An alert never inhibits itself.

Examples:
    >>> from aiops.model import Alert
    >>> from alerting.config import InhibitRule
    >>> from alerting.matchers import parse_matchers
    >>> rule = InhibitRule(tuple(parse_matchers(['severity="critical"'])),
    ...                    tuple(parse_matchers(['severity="warning"'])), ("instance",))
    >>> inh = Inhibitor([rule])
    >>> inh.update(Alert.of({"alertname": "Down", "severity": "critical", "instance": "a"}))
    >>> inh.inhibited(Alert.of({"alertname": "Slow", "severity": "warning", "instance": "a"}))
    True
    >>> inh.inhibited(Alert.of({"alertname": "Slow", "severity": "warning", "instance": "b"}))
    False
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiops.model import Alert, AlertState, Fingerprint
from alerting.matchers import fingerprint, matches_all

if TYPE_CHECKING:
    from alerting.config import InhibitRule

__all__ = ["Inhibitor"]


class Inhibitor:
    """Answers "is this alert inhibited?" from the firing alerts it was told about.

    Not thread-safe: the engine calls it under its lock.
    """

    def __init__(self, rules: Sequence[InhibitRule]) -> None:
        self.rules = list(rules)
        # per rule: equal-label values -> fingerprints of firing source alerts
        self._sources: list[dict[tuple[str, ...], set[Fingerprint]]] = [{} for _ in self.rules]

    def update(self, alert: Alert) -> None:
        """Record ``alert``'s current state (firing adds it as a source, anything else removes it)."""
        fp = fingerprint(alert.labels)
        labels = alert.label_dict
        for rule, index in zip(self.rules, self._sources, strict=True):
            if not matches_all(rule.source, alert.labels):
                continue
            key = tuple(labels.get(k, "") for k in rule.equal)
            if alert.state is AlertState.FIRING:
                index.setdefault(key, set()).add(fp)
            else:
                fps = index.get(key)
                if fps is not None:
                    fps.discard(fp)
                    if not fps:
                        del index[key]

    def inhibited(self, alert: Alert) -> bool:
        """True if a firing source alert (other than ``alert`` itself) mutes ``alert``."""
        if not self.rules:
            return False
        labels = alert.label_dict
        for rule, index in zip(self.rules, self._sources, strict=True):
            if not index or not matches_all(rule.target, alert.labels):
                continue
            sources = index.get(tuple(labels.get(k, "") for k in rule.equal))
            if sources and (len(sources) > 1 or fingerprint(alert.labels) not in sources):
                return True
        return False
