"""Structured JSON logging, set up once.

One JSON object per line with the fixed keys ``timestamp``, ``level``, ``event`` and
``logger``, plus context keys. stdlib loggers (Celery, httpx, urllib3) go through the
same renderer. Secrets never reach the output: :func:`redact` masks URL paths and
query strings of webhook-like URLs and any value under a secret-looking key.

Until :func:`configure_logging` runs (the agent, the worker and the demo call it; one-shot CLI
commands do not), events still go to **stderr** as the same JSON lines, redacted the same way,
so a command's stdout stays its output (``aiops rca ... | jq`` works) and no secret leaks
through structlog's default stdout logger. structlog itself is imported when the first event
is logged (or logging is configured), so a command that logs nothing starts without it.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, TextIO

__all__ = ["configure_logging", "get_logger", "redact", "url_host"]

_SECRET_KEYS = re.compile(r"(token|secret|password|passwd|webhook|api_key|apikey|authorization|signature|url)", re.I)
_URL = re.compile(r"\b([a-z][a-z0-9+.-]*://)([^/\s:@]+(?::[^@\s/]*)?@)?([^/\s?#]+)([^\s\"']*)", re.I)

_configured = False
_defaults_set = False


def url_host(url: str) -> str:
    """Return only the scheme and host of ``url``: what may be logged of a webhook.

    Examples:
        >>> url_host("https://hooks.slack.com/services/T000/B000/XXXX")
        'https://hooks.slack.com'
    """
    m = _URL.search(url)
    if not m:
        return "<redacted>"
    return f"{m.group(1)}{m.group(3)}"


def redact(value: Any) -> Any:
    """Mask secrets inside a log value: URL credentials, paths and queries.

    A URL keeps its scheme and host; everything after the host (where webhook tokens live)
    becomes ``/***``. Non-string values pass unchanged.
    """
    if isinstance(value, str) and "://" in value:
        return _URL.sub(lambda m: f"{m.group(1)}{m.group(3)}{'/***' if m.group(4) else ''}", value)
    return value


def _redact_processor(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event_dict.items()):
        if key in ("timestamp", "level", "logger"):
            continue
        if _SECRET_KEYS.search(key) and isinstance(value, str) and "://" not in value and key != "event":
            event_dict[key] = "***"
        else:
            event_dict[key] = redact(value)
    return event_dict


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging to one JSON-lines stream (stderr by default)."""
    global _configured
    structlog = _structlog()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact_processor,
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.JSONRenderer()],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "urllib3", "kubernetes.client.rest"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    _configured = True


def _structlog() -> Any:
    """structlog, imported on first use (a CLI command that logs nothing never pays for it) and,
    unless :func:`configure_logging` ran, set to the same redacted JSON lines, on stderr."""
    global _defaults_set
    import structlog

    if not _defaults_set:
        _defaults_set = True
        if not structlog.is_configured():
            lines: list[Any] = [structlog.contextvars.merge_contextvars, structlog.stdlib.add_log_level,
                                structlog.stdlib.add_logger_name, structlog.processors.TimeStamper(fmt="iso", utc=True),
                                structlog.processors.format_exc_info, _redact_processor,
                                structlog.processors.JSONRenderer()]
            structlog.configure(processors=lines, logger_factory=_stderr_print_logger)
    return structlog


def _stderr_print_logger(*args: Any) -> Any:
    """A print logger on stderr (looked up per logger: a test's swapped stderr is honoured) that
    knows its name, so ``add_logger_name`` fills the ``logger`` key as with stdlib loggers."""
    import structlog

    logger = structlog.PrintLogger(sys.stderr)
    logger.name = str(args[0]) if args else ""  # type: ignore[attr-defined]
    return logger


class _Logger:
    """What :func:`get_logger` returns: resolves to structlog's logger at its first use."""

    __slots__ = ("_name", "_logger")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attr: str) -> Any:  # info, warning, exception, bind, ...
        if self._logger is None:
            self._logger = _structlog().get_logger(self._name)
        return getattr(self._logger, attr)


def get_logger(name: str) -> Any:
    """A structlog logger named ``name``; usage: ``log.info("scrape_failed", target=host)``."""
    return _Logger(name)
