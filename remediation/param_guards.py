"""Alert content cannot choose where an action goes or what it runs.

Labels and annotations come from scraped targets and webhooks, so a playbook parameter that
takes them is attacker-controlled text. Two actions reach outside the agent and get rules of
their own, checked when the playbook loads (:func:`check_step_templates`, errors naming file
and field) and again when an alert's values are filled in (:func:`render_step`, a refusal
whose reason lands in the audit trail):

``http``
    The scheme, host and port are written in the playbook: a template may appear only in the
    path and the query. A value filled into the path must be one segment (no ``/ ? # \\``,
    no ``..``, no control characters) and is percent-encoded; a value filled into the query is
    percent-encoded. Header names and values take no templates. With
    ``remediation.http_allowed_hosts`` set, the host (``host`` or ``host:port``, shell-style
    patterns) must be on it before anything is sent.

``command``
    A template may only be a whole argument (``"{{ ... }}"``), never part of one, and no shell
    or interpreter (``sh -c``, ``bash -c``, ``python -c``, ...) may take a template at all.
    A filled-in value starting with ``-`` is refused unless the playbook lists the argument's
    index in ``option_args``; NUL and other control characters are refused.

Examples:
    >>> check_step_templates("http", {"request": {"url": "http://{{ $labels.instance }}/drain"}}, "p")[0]
    'p.request.url: the scheme, host and port must be written in the playbook; templates only in the path and query'
    >>> check_step_templates("command", {"argv": ["/bin/sh", "-c", "echo {{ $labels.x }}"]}, "p")[0]
    'p.argv[2]: a template must be a whole argument, not part of one'
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from aiops.errors import RemediationError
from aiops.model import Alert
from remediation import template

__all__ = ["check_step_templates", "render_step", "check_http_host", "SHELLS"]

_EXPR = re.compile(r"\{\{.*?\}\}", re.S)
_AUTHORITY = re.compile(r"^(https?)://([^/?#]*)(.*)$", re.S)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BAD_SEGMENT = re.compile(r"[/?#\\\x00-\x1f\x7f]")
# programs that interpret an argument as code: a template anywhere in their argv is refused
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "fish", "busybox", "csh", "tcsh", "env",
                    "python", "python3", "perl", "ruby", "node", "php", "lua", "awk", "xargs", "su", "sudo"})


def _templated(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def _any_templated(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_any_templated(k) or _any_templated(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_any_templated(v) for v in value)
    return _templated(value)


def check_http_host(url: str, allowed: Sequence[str], where: str) -> str | None:
    """Why ``url``'s host is not allowed (``None`` when it is, or when no allow-list is set)."""
    if not allowed:
        return None
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if any(fnmatch.fnmatchcase(host, p.lower()) or fnmatch.fnmatchcase(f"{host}:{port}", p.lower())
           for p in allowed):
        return None
    return f"{where}: host {host}:{port} is not in remediation.http_allowed_hosts"


def _check_http_request(spec: Any, where: str, allowed: Sequence[str]) -> list[str]:
    if not isinstance(spec, dict):
        return []
    errors = []
    url = spec.get("url")
    if isinstance(url, str):
        m = _AUTHORITY.match(url)
        if m is None or _templated(m.group(1)) or _templated(m.group(2)) or not m.group(2):
            errors.append(f"{where}.url: the scheme, host and port must be written in the playbook; "
                          "templates only in the path and query")
        else:
            why = check_http_host(f"{m.group(1)}://{m.group(2)}", allowed, f"{where}.url")
            if why:
                errors.append(why)
            if "#" in m.group(3) and _templated(m.group(3).split("#", 1)[1]):
                errors.append(f"{where}.url: no template in the fragment")
    headers = spec.get("headers")
    if isinstance(headers, dict) and _any_templated(headers):
        errors.append(f"{where}.headers: header names and values take no templates")
    return errors


def _program(argv: Sequence[Any]) -> str:
    return os.path.basename(str(argv[0])) if argv else ""


def _check_argv(argv: Any, where: str) -> list[str]:
    if not isinstance(argv, list):
        return []
    errors = []
    for i, arg in enumerate(argv):
        if _templated(arg) and _EXPR.fullmatch(arg.strip()) is None:
            errors.append(f"{where}[{i}]: a template must be a whole argument, not part of one")
    if argv and _templated(argv[0]):
        errors.append(f"{where}[0]: the program is written in the playbook, not taken from the alert")
    prog = re.sub(r"[0-9.]+$", "", _program(argv))
    if (prog in SHELLS or _program(argv) in SHELLS) and _any_templated(argv):
        errors.append(f"{where}: {_program(argv)} interprets its arguments as code: no template may reach it")
    return errors


def check_step_templates(action: str, params: dict[str, Any], where: str,
                         allowed_hosts: Sequence[str] = ()) -> list[str]:
    """Load-time errors of one step's parameters (``where`` is ``steps[i].params``)."""
    if action == "http":
        return _check_http_request(params.get("request"), f"{where}.request", allowed_hosts) + \
            _check_http_request(params.get("rollback"), f"{where}.rollback", allowed_hosts)
    if action == "command":
        return _check_argv(params.get("argv"), f"{where}.argv") + \
            _check_argv(params.get("rollback_argv"), f"{where}.rollback_argv")
    return []


def _fill(text: str, alert: Alert, encode: Any) -> str:
    out, pos = [], 0
    for m in _EXPR.finditer(text):
        out.append(text[pos:m.start()])
        out.append(encode(str(template.render(m.group(0), alert))))
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def _segment(where: str) -> Any:
    def encode(value: str) -> str:
        if _BAD_SEGMENT.search(value) or value in (".", "..") or ".." in value.split("/"):
            raise RemediationError(f"{where}: value {value[:80]!r} from the alert is not one path segment "
                                   "(it contains / ? # \\, .. or a control character): refused")
        return quote(value, safe="")

    return encode


def _render_url(url: str, alert: Alert, where: str) -> str:
    m = _AUTHORITY.match(url)
    if m is None or _templated(m.group(1)) or _templated(m.group(2)):  # the loader refused these already
        raise RemediationError(f"{where}: templates only in the path and query")
    path, sep, query = m.group(3).partition("?")
    filled = f"{m.group(1)}://{m.group(2)}{_fill(path, alert, _segment(where))}"
    if sep:
        filled += "?" + _fill(query, alert, lambda v: quote(v, safe=""))
    return filled


def _render_http(params: dict[str, Any], alert: Alert, where: str) -> dict[str, Any]:
    out = dict(params)
    for key in ("request", "rollback"):
        spec = params.get(key)
        if isinstance(spec, dict):
            spec = dict(spec)
            if isinstance(spec.get("url"), str) and _templated(spec["url"]):
                spec["url"] = _render_url(spec["url"], alert, f"{where}.{key}.url")
            spec = {k: (template.render_tree(v, alert) if k not in ("url", "headers") else v) for k, v in spec.items()}
            out[key] = spec
    rest: dict[str, Any] = template.render_tree({k: v for k, v in out.items() if k not in ("request", "rollback")},
                                                alert)
    return rest | {k: out[k] for k in ("request", "rollback") if k in out}


def _render_argv(argv: list[Any], alert: Alert, options: Sequence[int], where: str) -> list[Any]:
    out = []
    for i, arg in enumerate(argv):
        if not _templated(arg):
            out.append(arg)
            continue
        value = str(template.render(arg, alert))
        if _CONTROL.search(value):
            raise RemediationError(f"{where}[{i}]: the value from the alert holds a NUL or control character: refused")
        if value.startswith("-") and i not in options:
            raise RemediationError(f"{where}[{i}]: the value from the alert {value[:80]!r} starts with '-' (an option)"
                                   "; list the argument in option_args if that is intended: refused")
        out.append(value)
    return out


def render_step(action: str, params: dict[str, Any], alert: Alert, where: str = "params") -> dict[str, Any]:
    """The step's parameters with the alert's values filled in, under the rules above.

    Raises:
        RemediationError: a value would change where the action goes or what it runs (the run
            is refused with this reason, which the audit trail keeps).
    """
    if action == "http":
        return _render_http(params, alert, where)
    if action == "command":
        out = template.render_tree({k: v for k, v in params.items() if k not in ("argv", "rollback_argv")}, alert)
        options = [int(i) for i in params.get("option_args") or []]
        for key in ("argv", "rollback_argv"):
            if isinstance(params.get(key), list):
                out[key] = _render_argv(params[key], alert, options, f"{where}.{key}")
            elif key in params:
                out[key] = params[key]
        return dict(out)
    return dict(template.render_tree(params, alert))
