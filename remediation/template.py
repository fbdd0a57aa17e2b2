"""Templates in playbook parameters: ``{{ $labels.deployment }}``, ``{{ $value }}``.

The same Prometheus-style spelling as alert rule annotations (``alerting/templates.py``), so
one syntax serves rules and playbooks. Deliberately tiny here (no logic, no filters): a playbook
parameter names a value of the triggering alert and nothing else, so it can be checked
completely when the playbook loads. Variables: ``$labels.<name>``, ``$annotations.<name>``,
``$value``, ``$fingerprint``, ``$alertname``, ``$state``, ``$starts_at_ms``, and the best-ranked root
cause ``$rca.top.component|metric|workload|kind|namespace|name|score`` (from
:func:`aiops.annotations.extra_annotations`; plain names only, see :func:`_rca_value`). A string that is
exactly one expression renders to the value itself (``{{ $value }}`` gives a float); otherwise
expressions are interpolated as text. The old spelling without ``$`` (``{{ labels.x }}``) fails
at load with the new spelling in the message.

Examples:
    >>> from aiops.model import Alert
    >>> a = Alert.of({"alertname": "Slow", "deployment": "llm"}, value=0.9)
    >>> render("{{ $labels.deployment }}-svc", a)
    'llm-svc'
    >>> render("{{ $value }}", a)
    0.9
    >>> check("{{ labels.deployment }}")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: template '{{ labels.deployment }}': write '{{ $labels.deployment }}' ...
    >>> check("{{ label.x }}")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: template '{{ label.x }}': unknown variable 'label.x' (use $labels.NAME, ...)
"""

from __future__ import annotations

import re
from typing import Any

from aiops.errors import RemediationError
from aiops.model import Alert

__all__ = ["check", "render", "render_tree", "has_template"]

_EXPR = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_NAME = re.compile(r"^\$(labels|annotations)\.([a-zA-Z_][a-zA-Z0-9_]*)$"
                   r"|^\$(value|fingerprint|alertname|state|starts_at_ms)$"
                   r"|^\$rca\.top\.(component|metric|workload|kind|namespace|name|score)$")
_HELP = ("use $labels.NAME, $annotations.NAME, $value, $fingerprint, $alertname, $state, $starts_at_ms, "
         "$rca.top.FIELD")
# A root-cause value is derived from scraped labels: only a plain name passes into an action's parameters.
_SAFE_RCA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,252}$")


def has_template(text: object) -> bool:
    """True if ``text`` is a string holding at least one ``{{ ... }}``."""
    return isinstance(text, str) and "{{" in text


def check(text: str) -> None:
    """Validate the syntax and variables of a template string.

    Raises:
        ValueError: naming the template and what is wrong.
    """
    for m in _EXPR.finditer(text):
        if not _NAME.match(m.group(1)):
            if _NAME.match("$" + m.group(1)):  # the spelling before rules and playbooks shared one syntax
                raise ValueError(f"template {text!r}: write '{{{{ ${m.group(1)} }}}}' (variables start with $, "
                                 "as in alert rules)")
            raise ValueError(f"template {text!r}: unknown variable {m.group(1)!r} ({_HELP})")
    rest = _EXPR.sub("", text)
    if "{{" in rest or "}}" in rest:
        raise ValueError(f"template {text!r}: unbalanced '{{{{' or '}}}}'")


def _lookup(expr: str, alert: Alert) -> Any:
    m = _NAME.match(expr)
    if m is None:  # check() ran at load time; this only guards direct callers
        raise RemediationError(f"unknown template variable {expr!r} ({_HELP})")
    if m.group(1):
        source = alert.label_dict if m.group(1) == "labels" else alert.annotation_dict
        if m.group(2) not in source:
            raise RemediationError(f"alert {alert.name or alert.fingerprint} has no {m.group(1)[:-1]} {m.group(2)!r}")
        return source[m.group(2)]
    if m.group(4):
        return _rca_value(m.group(4), alert)
    name = m.group(3)
    if name == "value":
        if alert.value is None:
            raise RemediationError(f"alert {alert.name or alert.fingerprint} carries no value")
        return alert.value
    return {
        "fingerprint": alert.fingerprint,
        "alertname": alert.name,
        "state": alert.state.value,
        "starts_at_ms": alert.starts_at_ms,
    }[name]


def _rca_value(field: str, alert: Alert) -> Any:
    """``$rca.top.FIELD``: the best-ranked root cause, through the kernel's annotation contract.

    Guarded: the value comes from series labels (a scrape target names its own pods), so it must
    be a plain name (letters, digits, ``. _ / -``); anything else is refused, never rendered.
    """
    from aiops.annotations import extra_annotations

    value = extra_annotations(alert).get(f"rca_top_{field}")
    if not value:
        raise RemediationError(f"alert {alert.name or alert.fingerprint} has no root-cause ranking "
                               f"for $rca.top.{field} (rca disabled, or nothing ranked)")
    if field == "score":
        return float(value)
    if not _SAFE_RCA.match(value):
        raise RemediationError(f"$rca.top.{field} of alert {alert.name or alert.fingerprint}: "
                               f"refused, not a plain name: {value[:60]!r}")
    return value


def render(text: str, alert: Alert) -> Any:
    """Render one template string against ``alert``.

    Raises:
        RemediationError: the alert lacks a label, annotation or value the template names.
    """
    whole = _EXPR.fullmatch(text.strip())
    if whole:
        return _lookup(whole.group(1), alert)
    return _EXPR.sub(lambda m: str(_lookup(m.group(1), alert)), text)


def render_tree(value: Any, alert: Alert) -> Any:
    """Render every string inside nested dicts and lists."""
    if isinstance(value, str):
        return render(value, alert) if has_template(value) else value
    if isinstance(value, dict):
        return {k: render_tree(v, alert) for k, v in value.items()}
    if isinstance(value, list):
        return [render_tree(v, alert) for v in value]
    return value
