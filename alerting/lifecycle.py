"""The alert state machine, Prometheus': inactive -> pending -> firing -> resolved.

An element whose condition holds becomes *pending*; once it has held for the rule's ``for``
it is *firing* (at once when ``for`` is 0). When the condition stops holding, a pending alert
goes back to *inactive* and a firing one *resolves* — but not before ``keep_firing_for`` has
passed since the condition last held, so a metric flapping around its threshold does not
page every minute. Resolved alerts are kept ``retention_s`` for the API, then forgotten;
their history stays in the state DB.

Examples:
    >>> from alerting.rules import ThresholdRule
    >>> rule = ThresholdRule(name="HighCPU", for_s=60, op=">", threshold=0.8)
    >>> t = Lifecycle()
    >>> labels = (("alertname", "HighCPU"), ("instance", "a"))
    >>> [c.alert.state.value for c in t.observe(rule, labels, True, 0.9, now_ms=0)]
    ['pending']
    >>> [c.alert.state.value for c in t.observe(rule, labels, True, 0.95, now_ms=60_000)]
    ['firing']
    >>> [c.alert.state.value for c in t.observe(rule, labels, False, 0.5, now_ms=90_000)]
    ['resolved']
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from aiops.model import Alert, AlertState, Fingerprint, Labels
from alerting.matchers import fingerprint
from alerting.rules import Rule

__all__ = ["Lifecycle", "Tracked", "Change", "RuleKey"]

RuleKey = tuple[str, Labels]  # a rule's name and labels; external alerts use ("@source", ())


@dataclass(slots=True)
class Tracked:
    """What the lifecycle remembers of one alert (mutable, owned by :class:`Lifecycle`)."""

    rule: str
    labels: Labels
    fingerprint: Fingerprint
    state: AlertState
    active_at_ms: int  # when the condition started holding
    last_active_ms: int  # when it last held
    fired_at_ms: int = 0
    resolved_at_ms: int = 0
    value: float | None = None
    annotations: Labels = ()
    source: str = "rule"
    generator_url: str = ""
    rule_key: RuleKey = ("", ())
    expires_at_ms: int = 0  # external alerts: resolve at this time unless posted again (0: never)

    def to_alert(self) -> Alert:
        # a firing external alert carries its expected end, as Alertmanager's endsAt does; it is
        # what the history keeps, so a restart knows when the alert expires
        ends = self.resolved_at_ms or (self.expires_at_ms if self.state is AlertState.FIRING else 0)
        return Alert(labels=self.labels, annotations=self.annotations, state=self.state,
                     starts_at_ms=self.active_at_ms, ends_at_ms=ends,
                     value=self.value, generator_url=self.generator_url)


@dataclass(frozen=True, slots=True)
class Change:
    """One state change: the alert as it is now and the state it left."""

    rule: str
    alert: Alert
    previous: AlertState
    source: str = "rule"


class Lifecycle:
    """Alert states of every rule, by fingerprint.

    Not thread-safe: the engine calls it under its lock.

    Args:
        retention_s: how long resolved alerts stay listed before they are dropped.
    """

    def __init__(self, retention_s: float = 900.0) -> None:
        self.retention_ms = int(retention_s * 1000)
        self._alerts: dict[Fingerprint, Tracked] = {}
        self._by_rule: dict[RuleKey, set[Fingerprint]] = {}

    def __len__(self) -> int:
        return len(self._alerts)

    def get(self, fp: Fingerprint) -> Tracked | None:
        return self._alerts.get(fp)

    def all(self) -> Iterator[Tracked]:
        return iter(list(self._alerts.values()))

    def fingerprints(self, rule_key: RuleKey) -> set[Fingerprint]:
        return set(self._by_rule.get(rule_key, ()))

    def observe(self, rule: Rule, labels: Labels, active: bool, value: float | None, now_ms: int,
                generator_url: str = "", series: str = "") -> list[Change]:
        """Apply one evaluation of one element; returns the state changes it caused (0 or 1).

        ``series`` is the text form of the series behind the element, kept as the ``series``
        annotation (unless the rule sets one) so that messages can link to it: alert labels
        drop the metric name.
        """
        fp = fingerprint(labels)
        t = self._alerts.get(fp)
        if active:
            if t is None or t.state is AlertState.RESOLVED:
                previous = AlertState.INACTIVE if t is None else t.state
                t = Tracked(rule.name, labels, fp, AlertState.PENDING, now_ms, now_ms, value=value,
                            generator_url=generator_url, rule_key=rule.key)
                self._alerts[fp] = t
                self._by_rule.setdefault(rule.key, set()).add(fp)
                t.annotations = _with_series(rule.render(labels, value), series)
                if rule.for_s <= 0:
                    return [self._fire(rule, t, now_ms, previous)]
                return [Change(rule.name, t.to_alert(), previous)]
            t.last_active_ms = now_ms
            t.value = value
            if t.state is AlertState.PENDING and now_ms - t.active_at_ms >= rule.for_s * 1000:
                t.annotations = _with_series(rule.render(labels, value), series)
                return [self._fire(rule, t, now_ms, AlertState.PENDING)]
            return []
        if t is None or t.state is AlertState.RESOLVED:
            return []
        if value is not None:
            t.value = value
        if t.state is AlertState.PENDING:
            self._drop(fp)
            t.state = AlertState.INACTIVE
            t.resolved_at_ms = now_ms
            return [Change(rule.name, t.to_alert(), AlertState.PENDING)]
        if now_ms - t.last_active_ms < rule.keep_firing_for_s * 1000:
            return []  # keep_firing_for: hold it up a while longer
        t.state = AlertState.RESOLVED
        t.resolved_at_ms = now_ms
        return [Change(rule.name, t.to_alert(), AlertState.FIRING)]

    def sweep(self, rule: Rule, seen: Iterable[Fingerprint], now_ms: int) -> list[Change]:
        """A full evaluation saw only ``seen``: every other alert of ``rule`` is inactive now."""
        keep = set(seen)
        out: list[Change] = []
        for fp in self.fingerprints(rule.key) - keep:
            t = self._alerts[fp]
            out += self.observe(rule, t.labels, False, None, now_ms)
        return out

    def forget_resolved(self, now_ms: int) -> int:
        """Drop resolved alerts older than the retention; returns how many."""
        old = [fp for fp, t in self._alerts.items()
               if t.state is AlertState.RESOLVED and now_ms - t.resolved_at_ms > self.retention_ms]
        for fp in old:
            self._drop(fp)
        return len(old)

    def restore(self, rule: Rule, alert: Alert, last_active_ms: int) -> Tracked:
        """Take back a pending or firing alert recorded before a restart, without a state change."""
        fp = fingerprint(alert.labels)
        t = Tracked(rule.name, alert.labels, fp, alert.state, alert.starts_at_ms, last_active_ms,
                    fired_at_ms=alert.starts_at_ms if alert.state is AlertState.FIRING else 0, value=alert.value,
                    annotations=alert.annotations, generator_url=alert.generator_url, rule_key=rule.key)
        self._alerts[fp] = t
        self._by_rule.setdefault(rule.key, set()).add(fp)
        return t

    def count_external_active(self) -> int:
        """Alerts from outside (``put_external``) that are not resolved."""
        return sum(1 for key, fps in self._by_rule.items() if key[0].startswith("@") for fp in fps
                   if (t := self._alerts.get(fp)) is not None and t.state is not AlertState.RESOLVED)

    def put_external(self, alert: Alert, source: str, now_ms: int, resolve_timeout_ms: int = 0) -> Change | None:
        """Track an alert that arrived from outside (Alertmanager's webhook); None if nothing changed.

        A firing alert expires at its ``endsAt`` when that lies ahead, else ``resolve_timeout_ms``
        after it was last posted (Alertmanager's ``resolve_timeout``; 0: never): see
        :meth:`expire_external`.
        """
        fp = fingerprint(alert.labels)
        t = self._alerts.get(fp)
        if t is not None and t.source == "rule":
            return None  # one of our own alerts coming back from Alertmanager: no loop
        expires = 0
        if alert.state is AlertState.FIRING:
            expires = alert.ends_at_ms if alert.ends_at_ms > now_ms else (
                now_ms + resolve_timeout_ms if resolve_timeout_ms > 0 else 0)
        previous = t.state if t is not None else AlertState.INACTIVE
        if previous is alert.state and t is not None and t.annotations == alert.annotations:
            t.last_active_ms = now_ms
            t.expires_at_ms = expires
            return None
        name = alert.name or source
        t = Tracked(name, alert.labels, fp, alert.state, alert.starts_at_ms or now_ms, now_ms,
                    fired_at_ms=alert.starts_at_ms or now_ms,
                    resolved_at_ms=alert.ends_at_ms if alert.state is AlertState.RESOLVED else 0,
                    value=alert.value, annotations=alert.annotations, source=source,
                    generator_url=alert.generator_url, rule_key=(f"@{source}", ()), expires_at_ms=expires)
        self._alerts[fp] = t
        self._by_rule.setdefault(t.rule_key, set()).add(fp)
        return Change(name, t.to_alert(), previous, source)

    def restore_external(self, alert: Alert, source: str, last_active_ms: int) -> Tracked:
        """Take back a firing external alert recorded before a restart (its ``ends_at_ms`` is
        when it expires), without a state change."""
        fp = fingerprint(alert.labels)
        t = Tracked(alert.name or source, alert.labels, fp, alert.state, alert.starts_at_ms, last_active_ms,
                    fired_at_ms=alert.starts_at_ms, value=alert.value, annotations=alert.annotations, source=source,
                    generator_url=alert.generator_url, rule_key=(f"@{source}", ()), expires_at_ms=alert.ends_at_ms)
        self._alerts[fp] = t
        self._by_rule.setdefault(t.rule_key, set()).add(fp)
        return t

    def expire_external(self, now_ms: int) -> list[Change]:
        """Resolve the firing external alerts whose expiry passed (not posted again in time)."""
        out: list[Change] = []
        for t in list(self._alerts.values()):
            if t.source != "rule" and t.state is AlertState.FIRING and 0 < t.expires_at_ms <= now_ms:
                t.state = AlertState.RESOLVED
                t.resolved_at_ms = t.expires_at_ms
                out.append(Change(t.rule, t.to_alert(), AlertState.FIRING, t.source))
        return out

    def _fire(self, rule: Rule, t: Tracked, now_ms: int, previous: AlertState) -> Change:
        t.state = AlertState.FIRING
        t.fired_at_ms = now_ms
        return Change(rule.name, t.to_alert(), previous)

    def _drop(self, fp: Fingerprint) -> None:
        t = self._alerts.pop(fp, None)
        if t is not None:
            fps = self._by_rule.get(t.rule_key)
            if fps is not None:
                fps.discard(fp)
                if not fps:
                    del self._by_rule[t.rule_key]


def _with_series(annotations: Labels, series: str) -> Labels:
    """``annotations`` plus ``series`` (the triggering series' text form) when known and not set."""
    if not series or any(k == "series" for k, _ in annotations):
        return annotations
    return tuple(sorted((*annotations, ("series", series))))
