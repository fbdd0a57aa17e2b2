"""Reads ``settings.alerting`` into rules, the routing tree and inhibition rules.

The YAML keeps Prometheus' and Alertmanager's shapes (``alert``, ``expr``, ``for``,
``keep_firing_for``, ``labels``, ``annotations``; ``route`` with ``receiver``, ``group_by``,
``matchers``, ``continue``, ``routes``; ``inhibit_rules`` with ``source_matchers``,
``target_matchers``, ``equal``). Everything is checked here, at start: a bad rule raises one
:class:`~aiops.errors.ConfigError` naming the rule, the field and the file.

Examples:
    >>> rules = parse_rules([{"alert": "HighCPU", "expr": "cpu", "op": ">", "threshold": 0.8, "for": "5m",
    ...                       "annotations": {"summary": "CPU {{ $value }}"}}], "aiops.yaml")
    >>> rules[0].name, rules[0].for_s
    ('HighCPU', 300.0)
    >>> parse_rules([{"alert": "X", "expr": "cpu", "threshold": 1,
    ...               "annotations": {"summary": "{{ $valeu }}"}}], "aiops.yaml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    alerting.templates.TemplateError: alerting.rules[0] (X).annotations.summary: '{{ $valeu }}': unknown ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aiops.config import Duration
from aiops.errors import ConfigError, InputError
from aiops.model import LABEL_NAME, Matcher, parse_selector
from aiops.validation import format_validation_error
from alerting.matchers import parse_matchers
from alerting.routing import GROUP_BY_ALL, Route
from alerting.rules import OPS, AbsentRule, AnomalyRule, ForecastRule, Rule, ThresholdRule
from alerting.settings import AlertingSettings
from alerting.templates import Template, TemplateError

__all__ = ["AlertingConfig", "InhibitRule", "load_alerting", "parse_rules", "parse_route", "parse_inhibit_rules"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _RuleSpec(_Spec):
    name: str = Field(alias="alert", min_length=1)
    type: str = "threshold"
    expr: str | None = Field(None, alias="selector")
    for_s: Duration = Field(0.0, alias="for")
    keep_firing_for_s: Duration = Field(0.0, alias="keep_firing_for")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _label_names(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not LABEL_NAME.match(k)]
        if bad:
            raise ValueError(f"label names must match [a-zA-Z_][a-zA-Z0-9_]*, got {bad}")
        return v


class _ThresholdSpec(_RuleSpec):
    type: Literal["threshold"] = "threshold"
    expr: str = Field(alias="selector")
    op: str = ">"
    threshold: float

    @field_validator("op")
    @classmethod
    def _op(cls, v: str) -> str:
        if v not in OPS:
            raise ValueError(f"expected one of {' '.join(OPS)}, got {v!r}")
        return v


class _AnomalySpec(_RuleSpec):
    type: Literal["anomaly"]
    detector: str = ""
    score: float = Field(0.5, ge=0, le=1)
    points: int = Field(1, ge=1)
    of: int = Field(1, ge=1)


class _ForecastSpec(_RuleSpec):
    type: Literal["forecast"]
    expr: str = Field(alias="selector")
    window_s: Duration = Field(3600.0, gt=0, alias="window")
    limit: float
    horizon_s: Duration = Field(alias="horizon", gt=0)
    min_points: int = Field(5, ge=2)
    direction: Literal["above", "below"] = "above"


class _AbsentSpec(_RuleSpec):
    type: Literal["absent"]
    expr: str = Field(alias="selector")
    silent_for_s: Duration = Field(300.0, gt=0, alias="silent_for")


_SPECS: dict[str, type[_RuleSpec]] = {
    "threshold": _ThresholdSpec, "anomaly": _AnomalySpec, "forecast": _ForecastSpec, "absent": _AbsentSpec,
}


@dataclass(frozen=True, slots=True)
class InhibitRule:
    """A firing alert matching ``source`` mutes alerts matching ``target`` with equal ``equal`` labels."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AlertingConfig:
    """Everything the alerting core needs, checked."""

    rules: tuple[Rule, ...]
    route: Route
    inhibit_rules: tuple[InhibitRule, ...]
    settings: AlertingSettings


def _prefixed(exc: ValidationError, label: str, source: str) -> str:
    """pydantic's errors as ``label.field: message (source)``, aliases (``for``) as written."""
    return format_validation_error(exc, prefix=label, source=source)


def _rule_from(raw: Any, where: str, source: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__} ({source})")
    label = f"{where} ({raw.get('alert', raw.get('name', '?'))})"
    kind = raw.get("type", "threshold")
    spec_cls = _SPECS.get(str(kind))
    if spec_cls is None:
        raise ConfigError(f"{label}.type: expected one of {', '.join(_SPECS)}, got {kind!r} ({source})")
    data = dict(raw)
    if "name" in data and "alert" not in data:
        data["alert"] = data.pop("name")
    try:
        spec = spec_cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_prefixed(exc, label, source)) from exc
    try:
        matchers = tuple(parse_selector(spec.expr)) if spec.expr else ()
    except InputError as exc:
        raise ConfigError(f"{label}.expr: {exc} ({source})") from exc
    annotations = []
    for key, text in spec.annotations.items():
        try:
            annotations.append((key, Template.compile(text)))
        except TemplateError as exc:
            raise TemplateError(f"{label}.annotations.{key}: {exc} ({source})") from exc
    common: dict[str, Any] = {
        "name": spec.name, "matchers": matchers, "for_s": spec.for_s, "keep_firing_for_s": spec.keep_firing_for_s,
        "labels": tuple(sorted(spec.labels.items())), "annotations": tuple(annotations),
    }
    if isinstance(spec, _ThresholdSpec):
        return ThresholdRule(**common, op=spec.op, threshold=spec.threshold)
    if isinstance(spec, _AnomalySpec):
        if spec.points > spec.of:
            raise ConfigError(f"{label}.points: {spec.points} is more than of={spec.of} ({source})")
        return AnomalyRule(**common, detector=spec.detector, score=spec.score, points=spec.points, of=spec.of)
    if isinstance(spec, _ForecastSpec):
        return ForecastRule(**common, window_s=spec.window_s, limit=spec.limit, horizon_s=spec.horizon_s,
                            min_points=spec.min_points, direction=spec.direction)
    assert isinstance(spec, _AbsentSpec)
    return AbsentRule(**common, silent_for_s=spec.silent_for_s)


def parse_rules(raw: Sequence[Any], source: str, prefix: str = "alerting.rules") -> list[Rule]:
    """Build rules from their YAML form; ``source`` names the file for messages.

    Raises:
        ConfigError: naming the rule (index and name), the field and ``source``.
    """
    return [_rule_from(r, f"{prefix}[{i}]", source) for i, r in enumerate(raw)]


def load_rule_file(path: Path) -> list[Rule]:
    """Rules of a YAML file: a list of rules, a mapping with ``rules:``, or Prometheus' ``groups:``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"alerting.rule_files: cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return []
    if isinstance(data, Mapping) and "groups" in data:
        out: list[Rule] = []
        for gi, group in enumerate(data["groups"] or []):
            out += parse_rules(group.get("rules") or [], str(path), f"groups[{gi}].rules")
        return out
    if isinstance(data, Mapping):
        data = data.get("rules") or []
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a list of rules or a mapping with 'rules:'")
    return parse_rules(data, str(path), "rules")


class _RouteSpec(_Spec):
    receiver: str | None = None
    matchers: list[str] = Field(default_factory=list)
    match: dict[str, str] = Field(default_factory=dict)  # Alertmanager's older equality form
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = Field(None, gt=0)
    repeat_interval: Duration | None = Field(None, gt=0)
    continue_: bool = Field(False, alias="continue")
    routes: list[_RouteSpec] = Field(default_factory=list)


def _route_from(spec: _RouteSpec, where: str, source: str) -> Route:
    try:
        matchers = parse_matchers(spec.matchers) + parse_matchers([f'{k}="{v}"' for k, v in spec.match.items()])
    except InputError as exc:
        raise ConfigError(f"{where}.matchers: {exc} ({source})") from exc
    group_by = None
    if spec.group_by is not None:
        group_by = GROUP_BY_ALL if "..." in spec.group_by else tuple(sorted(spec.group_by))
    return Route(
        receiver=spec.receiver, matchers=tuple(matchers), group_by=group_by, group_wait_s=spec.group_wait,
        group_interval_s=spec.group_interval, repeat_interval_s=spec.repeat_interval, continue_=spec.continue_,
        routes=tuple(_route_from(c, f"{where}.routes[{i}]", source) for i, c in enumerate(spec.routes)),
    )


def parse_route(raw: Mapping[str, Any], source: str, receivers: Sequence[str] | None = None) -> Route:
    """The routing tree from its YAML form; an empty mapping routes everything to ``default``.

    Raises:
        ConfigError: on a bad field, or a receiver name not in ``receivers`` (when given).
    """
    try:
        spec = _RouteSpec.model_validate(dict(raw) or {"receiver": "default"})
    except ValidationError as exc:
        raise ConfigError(_prefixed(exc, "alerting.route", source)) from exc
    root = _route_from(spec, "alerting.route", source)
    if root.receiver is None:
        root = dataclasses.replace(root, receiver="default")
    tree = root.finalise()
    if receivers is not None:
        unknown = sorted(tree.receivers() - set(receivers))
        if unknown:
            raise ConfigError(f"alerting.route: receiver(s) {unknown} not defined in alerting.receivers ({source})")
    return tree


class _InhibitSpec(_Spec):
    source_matchers: list[str] = Field(min_length=1)
    target_matchers: list[str] = Field(min_length=1)
    equal: list[str] = Field(default_factory=list)


def parse_inhibit_rules(raw: Sequence[Any], source: str) -> list[InhibitRule]:
    out = []
    for i, item in enumerate(raw):
        where = f"alerting.inhibit_rules[{i}]"
        try:
            spec = _InhibitSpec.model_validate(item)
            out.append(InhibitRule(tuple(parse_matchers(spec.source_matchers)),
                                   tuple(parse_matchers(spec.target_matchers)), tuple(spec.equal)))
        except ValidationError as exc:
            raise ConfigError(_prefixed(exc, where, source)) from exc
        except InputError as exc:
            raise ConfigError(f"{where}: {exc} ({source})") from exc
    return out


def load_alerting(settings: AlertingSettings, source: str = "config", check_receivers: bool = False) -> AlertingConfig:
    """Check and build the whole alerting configuration.

    Args:
        settings: the ``alerting`` section.
        source: the config file's name, for messages.
        check_receivers: fail on a route naming a receiver missing from ``settings.receivers``.

    Raises:
        ConfigError: naming the rule or key, the field and the file.
    """
    rules = parse_rules(settings.rules, source)
    for path in settings.rule_files:
        rules += load_rule_file(Path(path))
    seen: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    for i, r in enumerate(rules):
        key = (r.name, r.labels)
        if key in seen:
            raise ConfigError(f"alerting.rules: rule {r.name!r} defined twice with the same labels "
                              f"(#{seen[key]} and #{i}) ({source})")
        seen[key] = i
    names = [str(r.get("name", "")) for r in settings.receivers] if check_receivers else None
    raw_route = settings.route or ({"receiver": names[0]} if names else {})  # no route: the first receiver
    route = parse_route(raw_route, source, names)
    if names is not None and settings.silence_receiver and settings.silence_receiver not in names:
        raise ConfigError(f"alerting.silence_receiver: {settings.silence_receiver!r} not defined in "
                          f"alerting.receivers ({source})")
    return AlertingConfig(tuple(rules), route, tuple(parse_inhibit_rules(settings.inhibit_rules, source)), settings)
