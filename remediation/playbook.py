"""Playbooks: YAML files naming a trigger, steps (actions with templated parameters) and guards.

Everything is checked when the file loads: the YAML itself, every key (unknown keys are
errors), the action names, the template variables, and each action's parameters as far as
they are known before an alert arrives (templated values are checked after rendering). An
error names the file and the field path: ``playbooks/scale.yaml: steps[1].params.replicas: ...``.

Examples:
    >>> pb = parse_playbook({
    ...     "name": "scale-llm",
    ...     "trigger": {"match": {"alertname": "LatencyHigh"}},
    ...     "steps": [{"action": "k8s_scale", "params": {
    ...         "name": "{{ $labels.deployment }}", "namespace": "inference", "replicas": "+2"}}],
    ... }, "scale.yaml")
    >>> pb.steps[0].action, pb.trigger.state
    ('k8s_scale', 'firing')
    >>> parse_playbook({"name": "x", "trigger": {}, "steps": [{"action": "reboot"}]},
    ...                "x.yaml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    aiops.errors.ConfigError: x.yaml: steps[0].action: unknown action 'reboot' (known: ansible, command, ...)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aiops.config import Duration
from aiops.errors import ConfigError
from aiops.model import Alert
from aiops.validation import validation_problems
from remediation import template
from remediation.actions import ACTIONS
from remediation.param_guards import check_step_templates

__all__ = ["Playbook", "Trigger", "Step", "Verify", "Guards", "load_playbooks", "parse_playbook", "load_playbook_file",
           "check_references"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(_Model):
    """Which alert state changes start the playbook (Alertmanager route-style matchers)."""

    match: dict[str, str] = Field(default_factory=dict, description="Labels that must equal these values.")
    match_re: dict[str, str] = Field(default_factory=dict, description="Labels that must fully match these regexes.")
    state: Literal["firing", "resolved"] = Field("firing", description="The alert state that triggers.")

    @field_validator("match_re")
    @classmethod
    def _regexes(cls, value: dict[str, str]) -> dict[str, str]:
        for label, rx in value.items():
            try:
                re.compile(rx)
            except re.error as exc:
                raise ValueError(f"label {label!r}: bad regex {rx!r}: {exc}") from exc
        return value

    def matches(self, alert: Alert) -> bool:
        if alert.state.value != self.state:
            return False
        labels = alert.label_dict
        if any(labels.get(k) != v for k, v in self.match.items()):
            return False
        return all(re.fullmatch(rx, labels.get(k, "")) is not None for k, rx in self.match_re.items())


class Verify(_Model):
    """Wait until a metric in the store is back under (or over) a threshold, else roll back."""

    query: str = Field(description="PromQL selector read from the store; every matching series must pass.")
    below: float | None = Field(None, description="Pass when the latest values are all below this.")
    above: float | None = Field(None, description="Pass when the latest values are all above this.")
    within_s: Duration = Field(300.0, gt=0, description="Give up (and roll back) after this long.")
    poll_s: Duration = Field(5.0, gt=0, description="Seconds between two reads of the store.")

    @model_validator(mode="after")
    def _one(self) -> Verify:
        if (self.below is None) == (self.above is None):
            raise ValueError("give exactly one of below or above")
        template.check(self.query)
        return self


class Step(_Model):
    """One action with its parameters, optional verification and approval."""

    action: str = Field(description="Registry name of the action.")
    params: dict[str, Any] = Field(default_factory=dict, description="Action parameters; strings may be templated.")
    verify: Verify | None = None
    approval: bool = Field(False, description="Wait for a person to approve this step.")
    delay_s: Duration = Field(0.0, ge=0, description="Wait this long before running (e.g. scale-down cooldown).")
    on_failure: Literal["rollback", "stop"] = Field("rollback", description="After a failed verification.")
    escalate_to: str | None = Field(None, description="Receiver told when verification fails or the step fails.")

    @field_validator("action")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in ACTIONS:
            raise ValueError(f"unknown action {value!r} (known: {', '.join(sorted(ACTIONS))})")
        return value


class Guards(_Model):
    """Limits on what one playbook may do."""

    dry_run: bool = Field(False, description="Plan and record, change nothing (on top of the global switch).")
    cooldown_s: Duration = Field(0.0, ge=0, description="Refuse a new run this soon after the last one.")
    max_runs: int | None = Field(None, ge=1, description="At most this many runs per window.")
    window_s: Duration = Field(3600.0, gt=0, description="The window of max_runs.")
    max_replicas_change: int | None = Field(None, ge=0, description="Most replicas one run may add or remove.")
    max_pods: int | None = Field(None, ge=0, description="Most pods one run may delete or restart.")
    namespaces: list[str] | None = Field(
        None, description="Namespaces the playbook may touch (none: any but remediation.system_namespaces).")
    max_concurrent: int | None = Field(None, ge=1, description="Runs of this playbook queued or executing at once.")
    max_cordoned_nodes: int | None = Field(
        None, ge=0, description="Nodes that may be unschedulable after a k8s_cordon run of this playbook "
        "(never more than remediation.max_cordoned_nodes).")
    require_approval: list[str] = Field(default_factory=list, description="Actions that always need approval.")


class Playbook(_Model):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$", description="Unique playbook name.")
    description: str = ""
    trigger: Trigger
    steps: list[Step] = Field(min_length=1)
    guards: Guards = Field(default_factory=Guards)  # type: ignore[arg-type]
    source: str = Field("", description="The file it came from (set by the loader).")

    def needs_approval(self, index: int) -> bool:
        step = self.steps[index]
        return step.approval or step.action in self.guards.require_approval


def _check_params(index: int, step: Step) -> list[str]:
    """Errors in ``steps[index].params``: templates, unknown keys, missing keys, static values."""
    errors: list[str] = []
    model = ACTIONS[step.action].Params
    fields = model.model_fields
    aliases = {f.alias or k: k for k, f in fields.items()}
    base = f"steps[{index}].params"

    def walk(value: Any, where: str) -> None:
        if isinstance(value, str) and ("{{" in value or "}}" in value):
            try:
                template.check(value)
            except ValueError as exc:
                errors.append(f"{where}: {exc}")
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{where}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{where}[{i}]")

    walk(step.params, base)
    errors += check_step_templates(step.action, step.params, base)  # where alert content may go
    if errors:
        return errors
    for key, value in step.params.items():
        if key not in aliases:
            errors.append(f"{base}.{key}: unknown parameter of {step.action} (known: {', '.join(sorted(aliases))})")
        elif not _templated(value):
            # validate_assignment runs the field's own validators too (a bare TypeAdapter would not);
            # model-level errors (empty loc) are left to the full check below
            try:
                model.__pydantic_validator__.validate_assignment(model.model_construct(), aliases[key], value)
            except ValidationError as exc:
                errors += validation_problems(exc, prefix=f"{base}.{key}", drop_loc=1, value=value,
                                              located_only=True)
    for name, f in fields.items():
        if f.is_required() and (f.alias or name) not in step.params:
            errors.append(f"{base}.{f.alias or name}: missing (required by {step.action})")
    if not errors and not any(_templated(v) for v in step.params.values()):
        try:  # everything is static: cross-field checks (min <= max) can run now too
            model.model_validate(step.params)
        except ValidationError as exc:
            errors += validation_problems(exc, prefix=base, show_input=False)
    return errors


def _templated(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_templated(v) for v in value.values())
    if isinstance(value, list):
        return any(_templated(v) for v in value)
    return template.has_template(value)


def parse_playbook(data: Any, source: str) -> Playbook:
    """Validate one playbook given as parsed YAML.

    Raises:
        ConfigError: ``SOURCE: field.path: what is wrong`` (one line per problem, ``; `` joined).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with name, trigger, steps, got {type(data).__name__}")
    try:
        pb = Playbook.model_validate({**data, "source": source})
    except ValidationError as exc:
        parts = validation_problems(exc, show_input=False, missing="missing")
        raise ConfigError(f"{source}: " + f"; {source}: ".join(parts)) from exc
    problems = [p for i, step in enumerate(pb.steps) for p in _check_params(i, step)]
    if problems:
        raise ConfigError(f"{source}: " + f"; {source}: ".join(problems))
    return pb


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML says keys are
    unique; PyYAML silently keeps the last, so ``approval: true`` then ``approval: false`` loaded
    as no approval)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {first + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _split(error: ConfigError) -> list[str]:
    return [line for line in str(error).split("; ") if line]


def load_playbook_file(path: Path) -> list[Playbook]:
    """Load a YAML file holding one playbook, a list of them, or ``{playbooks: [...]}``.

    Raises:
        ConfigError: every problem of every playbook in the file, one per line
            (``FILE: field.path: message``).
    """
    found, errors = _load_file(path)
    if errors:
        raise ConfigError("\n".join(errors))
    return found


def _load_file(path: Path) -> tuple[list[Playbook], list[str]]:
    try:
        docs = [d for d in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_StrictLoader) if d is not None]
    except OSError as exc:
        return [], [f"{path}: cannot read: {exc}"]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        return [], [f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]
    items: list[tuple[str, Any]] = []
    for doc in docs:
        if isinstance(doc, dict) and set(doc) == {"playbooks"} and isinstance(doc["playbooks"], list):
            items.extend((f"{path}: playbooks[{i}]", d) for i, d in enumerate(doc["playbooks"]))
        elif isinstance(doc, list):
            items.extend((f"{path}: [{i}]", d) for i, d in enumerate(doc))
        else:
            items.append((str(path), doc))
    found: list[Playbook] = []
    errors: list[str] = []
    for src, d in items:
        try:
            found.append(parse_playbook(d, src))
        except ConfigError as exc:
            errors.extend(_split(exc))
    return found, errors


def check_references(playbooks: list[Playbook], receivers: Iterable[str]) -> list[str]:
    """Problems with names a playbook refers to: ``escalate_to`` and ``notify`` receivers that
    are not in ``alerting.receivers``; ``guards.require_approval`` naming unknown actions."""
    known = set(receivers)
    names = ", ".join(sorted(known)) or "none configured"
    errors: list[str] = []
    for pb in playbooks:
        where = pb.source or pb.name
        for i, step in enumerate(pb.steps):
            if step.escalate_to is not None and step.escalate_to not in known:
                errors.append(f"{where}: steps[{i}].escalate_to: unknown receiver {step.escalate_to!r} "
                              f"(alerting.receivers: {names})")
            receiver = step.params.get("receiver") if step.action == "notify" else None
            if isinstance(receiver, str) and not template.has_template(receiver) and receiver not in known:
                errors.append(f"{where}: steps[{i}].params.receiver: unknown receiver {receiver!r} "
                              f"(alerting.receivers: {names})")
        for j, action in enumerate(pb.guards.require_approval):
            if action not in ACTIONS:
                errors.append(f"{where}: guards.require_approval[{j}]: unknown action {action!r} "
                              f"(known: {', '.join(sorted(ACTIONS))})")
    return errors


def load_playbooks(paths: list[Path], receivers: Iterable[str] | None = None) -> list[Playbook]:
    """Load every playbook from files and folders (``*.yaml`` / ``*.yml``, sorted).

    Every problem of every file is reported at once, one line each (``FILE: field.path:
    message``), not only the first bad file's.

    Args:
        paths: files and folders.
        receivers: the names in ``alerting.receivers``; when given, every receiver a playbook
            names (``escalate_to``, ``notify``'s ``receiver``) must be one of them.

    Raises:
        ConfigError: bad files, two playbooks with one name, unknown references.
    """
    found: list[Playbook] = []
    errors: list[str] = []
    for p in paths:
        if p.is_dir():
            files = sorted([*p.rglob("*.yaml"), *p.rglob("*.yml")])
        elif p.is_file():
            files = [p]
        else:
            errors.append(f"remediation.playbooks: {p} does not exist")
            continue
        for f in files:
            ok, bad = _load_file(f)
            found.extend(ok)
            errors.extend(bad)
    seen: dict[str, str] = {}
    for pb in found:
        if pb.name in seen:
            errors.append(f"{pb.source}: name: playbook {pb.name!r} is also defined in {seen[pb.name]}")
        seen.setdefault(pb.name, pb.source)
    if receivers is not None:
        errors.extend(check_references(found, receivers))
    else:
        errors.extend(e for e in check_references(found, ()) if "require_approval" in e)
    if errors:
        raise ConfigError("\n".join(errors))
    return found
