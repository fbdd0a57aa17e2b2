r"""The one formatter of pydantic validation errors: config, playbooks, receivers, API bodies.

Every edge that validates with pydantic (STYLE.md: pydantic at the edges) reports the same
way: ``key: what was expected[, got VALUE] (where)``, problems joined by ``; ``. Values of keys
that may hold secrets (tokens, passwords, webhook URLs, headers) are never echoed.

Examples:
    >>> from pydantic import BaseModel, ValidationError
    >>> class Target(BaseModel):
    ...     url: str
    ...     timeout_s: float
    >>> try:
    ...     Target.model_validate({"timeout_s": "soon"})
    ... except ValidationError as exc:
    ...     print(format_validation_error(exc, prefix="scrape[0]", source="aiops.yaml").replace("; ", "\n"))
    scrape[0].url: Field required (aiops.yaml)
    scrape[0].timeout_s: Input should be a valid number, unable to parse string as a number, got 'soon' (aiops.yaml)
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Sequence
from typing import Any, Literal

from pydantic import ValidationError

__all__ = ["format_validation_error", "validation_problems", "format_loc", "field_name", "is_secret_key"]

# Key names whose values are never shown in an error: a mistyped token is still a token.
_SECRET = re.compile(r"(token|password|passwd|secret|webhook_url|headers|authorization|api_key|state_url|"
                     r"broker_url|result_backend)", re.IGNORECASE)
_UNSET: Any = object()
_GOT_LIMIT = 120  # characters of ", got ..." kept: enough to recognise a value, short enough for one line


def is_secret_key(name: str) -> bool:
    """True for a key whose value may be a secret (``bearer_token``, ``webhook_url``, ...)."""
    return bool(_SECRET.search(name)) or name == "url"


def format_loc(loc: Sequence[Any], style: Literal["brackets", "dotted"] = "brackets") -> str:
    """``("steps", 0, "params")`` as ``steps[0].params`` (or ``steps.0.params`` with ``dotted``)."""
    if style == "dotted":
        return ".".join(str(p) for p in loc)
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")


def field_name(prefix: str, loc: Sequence[Any]) -> str:
    """The key a problem at ``loc`` is reported under: ``field_name("body", ("matchers", 0))`` is
    ``body.matchers[0]``."""
    return _join(prefix, format_loc(loc))


def _join(prefix: str, key: str) -> str:
    if not prefix:
        return key
    if not key:
        return prefix
    return prefix + key if key.startswith("[") else f"{prefix}.{key}"


def format_validation_error(exc: ValidationError, **options: Any) -> str:
    """One line from a pydantic error: :func:`validation_problems` joined by ``; ``."""
    return "; ".join(validation_problems(exc, **options))


def validation_problems(
    exc: ValidationError,
    *,
    prefix: str = "",
    source: str | None = None,
    env_prefix: str | None = None,
    show_input: bool = True,
    first_only: bool = False,
    missing: str | None = None,
    skip_loc: Collection[str] = (),
    loc_style: Literal["brackets", "dotted"] = "brackets",
    root: str = "<root>",
    secret_keys: Collection[str] = (),
    drop_loc: int = 0,
    value: Any = _UNSET,
    located_only: bool = False,
) -> list[str]:
    """Each problem of a pydantic error as ``prefix.key: message[, got value] (source)``.

    Args:
        exc: the pydantic error.
        prefix: what the location is relative to (``alerting.receivers[2]``, ``POST /load``).
        source: the file or input named after each problem (``aiops.yaml``); none: not named.
        env_prefix: for settings: a problem whose key is set in the environment
            (``AIOPS_STORE__PATH``) names that variable instead of ``source``.
        show_input: append ``, got VALUE`` (never for secret keys, missing or unknown keys).
        first_only: report only the first problem (API bodies answer one at a time).
        missing: the message for a missing key (default: pydantic's ``Field required``).
        skip_loc: location parts left out (a discriminated union's tag, e.g. ``slack``).
        loc_style: ``brackets`` (``a[0].b``) or ``dotted`` (``a.0.b``, as JSON paths).
        root: the key shown for a problem of the whole input without prefix.
        secret_keys: more key names whose values are never shown.
        drop_loc: leading location parts left out (the field a caller already named in ``prefix``).
        value: the value shown after ``got`` (default: the part of the input that was wrong).
        located_only: leave out problems of the whole input (a model validator's), which a
            caller checks separately.

    Returns:
        One line per problem.
    """
    parts: list[str] = []
    for err in exc.errors():
        if located_only and not err.get("loc"):
            continue
        loc = tuple(p for p in tuple(err.get("loc", ()))[drop_loc:] if not (isinstance(p, str) and p in skip_loc))
        key = _join(prefix, format_loc(loc, loc_style)) or root
        kind = err.get("type")
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        raw = err.get("input")
        if isinstance(raw, (dict, list, tuple, set)) and repr(raw) in msg:  # a validator quoting a whole mapping
            msg = msg.replace(repr(raw), f"a {type(raw).__name__}")
        got = ""
        secret = any(isinstance(p, str) and (is_secret_key(p) or p in secret_keys) for p in loc)
        if kind == "extra_forbidden":
            msg = "unknown key"
        elif kind == "missing":
            msg = missing or msg
        elif show_input and not secret and "got " not in msg:
            shown = err.get("input") if value is _UNSET else value
            if isinstance(shown, (dict, list, tuple, set)):
                # a mis-shaped section or list can hold secrets under any key: name its type only
                got = f", got a {type(shown).__name__}"
            else:
                got = f", got {shown!r}"[:_GOT_LIMIT]
        where = source
        if env_prefix is not None:
            env = env_prefix + "__".join(str(p).upper() for p in loc if not isinstance(p, int))
            if env in os.environ:
                where = f"environment {env}"
        parts.append(f"{key}: {msg}{got}" + (f" ({where})" if where else ""))
        if first_only:
            break
    return parts
