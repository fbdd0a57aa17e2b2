"""Secrets as references, and the masked form every shown value takes.

A secret in the configuration or a playbook can be written as a reference instead of its
value: ``${env:NAME}`` (an environment variable) or ``${file:/run/secrets/slack}`` (a file's
content, trailing newline dropped), whole or inside a string
(``https://hooks.slack.com/services/${env:SLACK_PATH}``). Settings resolve references when
they load (:func:`resolve_refs`); action parameters keep the reference in the state database
and resolve it only when the action runs, so the value never lands in a table.

What is shown (API, CLI, audit trail, dashboard, logs) goes through :func:`mask_secrets`:
header values, values of secret-named keys (``token``, ``password``, ...), URL credentials and
secret-named query parameters become ``***``; references stay visible (they are not secret).

Examples:
    >>> mask_secrets({"url": "https://u:pw@h.example/x?token=abc&q=1",
    ...               "headers": {"Authorization": "Bearer s3cret", "X-Key": "${env:KEY}"}})
    {'url': 'https://***@h.example/x?token=***&q=1', 'headers': {'Authorization': '***', 'X-Key': '${env:KEY}'}}
    >>> import os; os.environ["DEMO_TOKEN"] = "t0k"
    >>> resolve_ref_text("Bearer ${env:DEMO_TOKEN}", "agent.api_token")
    'Bearer t0k'
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from aiops.errors import ConfigError

__all__ = ["resolve_ref_text", "resolve_refs", "has_ref", "mask_secrets", "mask_url", "MASK"]

MASK = "***"
_REF = re.compile(r"\$\{(env|file):([^}]+)\}")
_SECRET_KEY = re.compile(r"(token|password|passwd|secret|authorization|api_?key|credential|private|cookie|"
                         r"webhook_url|state_url|broker_url|result_backend|signature)", re.IGNORECASE)
_SECRET_QUERY = re.compile(r"(token|key|secret|password|passwd|sig|signature|auth|credential|code)", re.IGNORECASE)
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_MAX_FILE_BYTES = 64 * 1024


def has_ref(text: object) -> bool:
    """True if ``text`` is a string holding a ``${env:...}`` / ``${file:...}`` reference."""
    return isinstance(text, str) and _REF.search(text) is not None


def resolve_ref_text(text: str, where: str) -> str:
    """``text`` with every reference replaced by its value.

    Raises:
        ConfigError: naming ``where`` and the reference (never a value) when it cannot be read.
    """

    def one(m: re.Match[str]) -> str:
        kind, name = m.group(1), m.group(2).strip()
        if kind == "env":
            value = os.environ.get(name)
            if value is None:
                raise ConfigError(f"{where}: ${{env:{name}}}: environment variable {name} is not set")
            return value
        path = Path(name)
        try:
            if path.stat().st_size > _MAX_FILE_BYTES:
                raise ConfigError(f"{where}: ${{file:{name}}}: larger than {_MAX_FILE_BYTES} bytes")
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"{where}: ${{file:{name}}}: cannot read ({exc.strerror})") from None

    return _REF.sub(one, text)


def resolve_refs(value: Any, where: str = "") -> Any:
    """A copy of a config tree (dicts, lists, strings) with every reference resolved."""
    if isinstance(value, str):
        return resolve_ref_text(value, where or "<root>") if "${" in value else value
    if isinstance(value, dict):
        return {k: resolve_refs(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(resolve_refs(v, f"{where}[{i}]") for i, v in enumerate(value))
    return value


def mask_url(url: str) -> str:
    """``url`` without its credentials and with secret-named query parameters masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if _SECRET_QUERY.search(k) and not has_ref(v) else v) for k, v in pairs],
                          safe="*${}:/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return value if _REF.fullmatch(value) else MASK
    if isinstance(value, dict):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_value(v) for v in value]
    return MASK if value is not None else None


def mask_secrets(value: Any, key: str = "") -> Any:
    """The shown form of ``value`` (action parameters, audit details, config dumps)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            name = str(k)
            if name.lower() == "headers" and isinstance(v, dict):
                out[k] = {h: _mask_value(hv) for h, hv in v.items()}
            elif _SECRET_KEY.search(name):
                out[k] = _mask_value(v)
            else:
                out[k] = mask_secrets(v, name)
        return out
    if isinstance(value, list):
        return [mask_secrets(v, key) for v in value]
    if isinstance(value, tuple):
        return tuple(mask_secrets(v, key) for v in value)
    if isinstance(value, str) and _URL.match(value):
        return mask_url(value)
    return value
