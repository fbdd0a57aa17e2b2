"""Alertmanager-style label matchers on alerts: ``severity="critical"``, ``job=~"node.*"``.

The matcher type is the kernel's :class:`~aiops.model.Matcher` (PromQL semantics, anchored
regexes); this module parses Alertmanager's string forms and applies matchers to label sets.

Examples:
    >>> ms = parse_matchers(['alertname="HighCPU"', "severity=~crit.*"])
    >>> matches_all(ms, (("alertname", "HighCPU"), ("severity", "critical")))
    True
    >>> format_matcher(ms[1])
    'severity=~"crit.*"'
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiops.errors import InputError
from aiops.model import Fingerprint, Labels, Matcher, MatchOp, Series, fingerprint_of

__all__ = ["fingerprint", "parse_matcher", "parse_matchers", "matches_all", "format_matcher", "matcher_to_json",
           "matcher_from_json"]

_FORM = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|(.*?))\s*$', re.S)


@functools.lru_cache(maxsize=65_536)
def fingerprint(labels: Labels) -> Fingerprint:
    """:func:`aiops.model.fingerprint_of` of a sorted label tuple, memoised.

    The FNV hash runs byte by byte in Python; an alert's fingerprint is asked for by the
    lifecycle, the inhibitor, the groups and the history, so a storm would hash each one
    four times without this.
    """
    return fingerprint_of(labels)


def parse_matcher(text: str) -> Matcher:
    """Parse ``name="value"`` (quotes optional; ops ``=``, ``!=``, ``=~``, ``!~``).

    Raises:
        InputError: naming the text.
    """
    m = _FORM.match(text)
    if not m:
        raise InputError(f"matcher {text!r}: expected name=\"value\" with one of = != =~ !~")
    value = m.group(3) if m.group(3) is not None else m.group(4)
    if m.group(3) is not None:
        value = value.replace('\\"', '"').replace("\\\\", "\\")
    return Matcher(m.group(1), MatchOp(m.group(2)), value)


def parse_matchers(texts: Iterable[str] | str) -> list[Matcher]:
    """Parse a list of matcher strings, or one ``{a="1", b=~"2"}`` / ``a="1",b="2"`` string."""
    if isinstance(texts, str):
        body = texts.strip().removeprefix("{").removesuffix("}")
        parts = [p for p in re.findall(r'(?:[^,"]|"(?:[^"\\]|\\.)*")+', body) if p.strip()]
        return [parse_matcher(p) for p in parts]
    return [parse_matcher(t) for t in texts]


def matches_all(matchers: Sequence[Matcher], labels: Labels | Mapping[str, str]) -> bool:
    """True if ``labels`` satisfy every matcher (an absent label reads as ``""``)."""
    pairs = tuple(sorted(labels.items())) if isinstance(labels, Mapping) else labels
    s = Series("", pairs)
    return all(m.matches(s) for m in matchers)


def format_matcher(m: Matcher) -> str:
    value = m.value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{m.label}{m.op.value}"{value}"'


def matcher_to_json(m: Matcher) -> dict[str, Any]:
    """Alertmanager API v2 shape: ``{name, value, isRegex, isEqual}``."""
    return {"name": m.label, "value": m.value, "isRegex": m.op in (MatchOp.RE, MatchOp.NRE),
            "isEqual": m.op in (MatchOp.EQ, MatchOp.RE)}


def matcher_from_json(d: Mapping[str, Any]) -> Matcher:
    """Inverse of :func:`matcher_to_json` (``isEqual`` defaults to true, as in Alertmanager)."""
    try:
        name, value = str(d["name"]), str(d["value"])
    except (KeyError, TypeError) as exc:
        raise InputError(f"matcher {d!r}: needs 'name' and 'value'") from exc
    regex, equal = bool(d.get("isRegex", False)), bool(d.get("isEqual", True))
    op = {(False, True): MatchOp.EQ, (False, False): MatchOp.NE,
          (True, True): MatchOp.RE, (True, False): MatchOp.NRE}[(regex, equal)]
    return Matcher(name, op, value)
