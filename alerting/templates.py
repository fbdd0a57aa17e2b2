"""Annotation templates, Prometheus style: ``{{ $value }}``, ``{{ $labels.instance }}``.

A template is compiled once, when the rules load, so a typo fails at start with a
:class:`~aiops.errors.ConfigError` naming the rule and the field, never at 3 a.m. when the
alert fires. Only the subset alert annotations use is supported:

- variables: ``$value`` (the triggering value), ``$labels.NAME`` (or ``$labels["NAME"]``),
  ``$rule`` (the rule's name);
- pipes: ``| humanize`` (SI prefixes), ``| humanizePercentage`` (0.93 -> ``93%``),
  ``| humanizeDuration`` (seconds -> ``1h 2m 3s``), ``| printf "%.2f"`` (also written
  ``printf "%.2f" $value``), ``| toUpper``, ``| toLower``;
- text outside ``{{ }}`` is kept as is.

Examples:
    >>> t = Template.compile("CPU {{ $value | humanizePercentage }} on {{ $labels.instance }}")
    >>> t.render(0.934, {"instance": "a:9100"})
    'CPU 93.4% on a:9100'
    >>> Template.compile('{{ printf "%.1f" $value }}s').render(2.25, {})
    '2.2s'
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiops.errors import ConfigError

__all__ = ["Template", "TemplateError"]


class TemplateError(ConfigError):
    """A template does not parse; the message says where."""


_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)
_VAR = re.compile(r'^\$(value|rule|labels(?:\.([a-zA-Z_][a-zA-Z0-9_]*)|\[\s*"([^"]+)"\s*\]))$')
_PRINTF_LEAD = re.compile(r'^printf\s+"((?:[^"\\]|\\.)*)"\s+(\S+)$')
_PRINTF_PIPE = re.compile(r'^printf\s+"((?:[^"\\]|\\.)*)"$')
_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def _num(v: object) -> float | None:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _fmt_float(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return f"{v:.4g}"


def _humanize(v: object) -> str:
    x = _num(v)
    if x is None or not math.isfinite(x):
        return str(v) if x is None else _fmt_float(x)
    for scale, prefix in _SI:
        if abs(x) >= scale:
            return f"{x / scale:.4g}{prefix}"
    return f"{x:.4g}"


def _humanize_pct(v: object) -> str:
    x = _num(v)
    return str(v) if x is None else (f"{x * 100:.4g}%" if math.isfinite(x) else _fmt_float(x))


def _humanize_duration(v: object) -> str:
    x = _num(v)
    if x is None or not math.isfinite(x):
        return str(v) if x is None else _fmt_float(x)
    if abs(x) < 1:
        return f"{x * 1000:.4g}ms"
    sign, x = ("-" if x < 0 else ""), abs(x)
    d, rest = divmod(int(x), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((d, "d"), (h, "h"), (m, "m")) if n]
    parts.append(f"{s}s")
    return sign + " ".join(parts)


def _printf(fmt: str) -> Callable[[object], str]:
    def run(v: object) -> str:
        try:
            return fmt % (v,)
        except (TypeError, ValueError):
            return str(v)

    try:  # check the format at compile time with a number and a string
        fmt % (1.0,)
    except (TypeError, ValueError) as exc:
        try:
            fmt % ("x",)
        except (TypeError, ValueError):
            raise TemplateError(f"printf format {fmt!r}: {exc}") from exc
    return run


_PIPES: dict[str, Callable[[object], str]] = {
    "humanize": _humanize,
    "humanizePercentage": _humanize_pct,
    "humanizeDuration": _humanize_duration,
    "toUpper": lambda v: str(v).upper(),
    "toLower": lambda v: str(v).lower(),
}


@dataclass(frozen=True, slots=True)
class _Expr:
    var: str  # "value", "rule" or "labels"
    label: str  # for var == "labels"
    pipes: tuple[Callable[[object], str], ...]


def _parse_var(text: str, source: str) -> tuple[str, str]:
    m = _VAR.match(text)
    if not m:
        raise TemplateError(f"{source!r}: unknown variable {text!r} (use $value, $labels.NAME or $rule)")
    if m.group(1) in ("value", "rule"):
        return m.group(1), ""
    return "labels", m.group(2) or m.group(3)


def _parse_action(body: str, source: str) -> _Expr:
    stages = [s.strip() for s in body.split("|")]
    if not stages[0]:
        raise TemplateError(f"{source!r}: empty {{{{ }}}}")
    pipes: list[Callable[[object], str]] = []
    lead = _PRINTF_LEAD.match(stages[0])
    if lead:
        var, label = _parse_var(lead.group(2), source)
        pipes.append(_printf(lead.group(1)))
    else:
        var, label = _parse_var(stages[0], source)
    for stage in stages[1:]:
        pm = _PRINTF_PIPE.match(stage)
        if pm:
            pipes.append(_printf(pm.group(1)))
        elif stage in _PIPES:
            pipes.append(_PIPES[stage])
        else:
            raise TemplateError(f"{source!r}: unknown function {stage!r} "
                                f"(known: {', '.join(sorted(_PIPES))}, printf \"FMT\")")
    return _Expr(var, label, tuple(pipes))


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled annotation template; :meth:`render` never raises."""

    source: str
    parts: tuple[str | _Expr, ...]

    @classmethod
    def compile(cls, source: str) -> Template:
        """Parse ``source``.

        Raises:
            TemplateError: on an unknown variable or function, or an unclosed ``{{``.
        """
        parts: list[str | _Expr] = []
        pos = 0
        for m in _ACTION.finditer(source):
            text = source[pos:m.start()]
            if "{{" in text or "}}" in text:
                raise TemplateError(f"{source!r}: unbalanced braces near {text!r}")
            if text:
                parts.append(text)
            parts.append(_parse_action(m.group(1), source))
            pos = m.end()
        tail = source[pos:]
        if "{{" in tail or "}}" in tail:
            raise TemplateError(f"{source!r}: unclosed '{{{{'")
        if tail:
            parts.append(tail)
        return cls(source, tuple(parts))

    @property
    def is_static(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)

    def render(self, value: float | None, labels: Mapping[str, str], rule: str = "") -> str:
        """The text with ``value``, ``labels`` and ``rule`` substituted (a missing label is empty)."""
        out: list[str] = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
                continue
            v: object
            if p.var == "value":
                v = value if value is not None else ""
            elif p.var == "rule":
                v = rule
            else:
                v = labels.get(p.label, "")
            if not p.pipes:
                out.append(_fmt_float(v) if isinstance(v, float) else str(v))
                continue
            for fn in p.pipes:
                v = fn(v)
            out.append(str(v))
        return "".join(out)
