"""The ``Notifier`` protocol and the HTTP plumbing every chat notifier shares.

A notifier turns a :class:`~aiops.notification.Notification` into the native payload of
one service (``render``) and puts it on the wire (``send``). ``send`` sorts failures the way
the outbox retries them, like kopf's ``TemporaryError(delay=...)`` / ``PermanentError``:

- network errors, timeouts, 5xx and 429 raise :class:`DeliveryTemporaryError` (with the
  ``Retry-After`` delay when the service gave one);
- 401 and 403 raise :class:`DeliveryPermanentError` with reason ``auth``: the credentials or
  the webhook were revoked, and retrying cannot help;
- any other 4xx raises :class:`DeliveryClientError` (a permanent error carrying the status),
  which the outbox still retries for a bounded time (a 404 while a webhook is re-created, a
  400 from a proxy being redeployed); a service-level error code in a 200 body raises
  :class:`DeliveryPermanentError`.

Webhook URLs and tokens are secrets: messages name only the host (:func:`aiops.logs.url_host`),
and foreign bodies are trimmed to 256 characters with every secret masked.
"""

from __future__ import annotations

import email.utils
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import httpx

from aiops.errors import NotifyError, PermanentError, TemporaryError, trim
from aiops.logs import url_host
from aiops.notification import Notification

__all__ = [
    "Notifier",
    "HttpNotifier",
    "DeliveryTemporaryError",
    "DeliveryPermanentError",
    "DeliveryClientError",
    "parse_retry_after_s",
    "mask",
    "USER_AGENT",
]

USER_AGENT = "aiops-notifier/0.1"
MAX_RETRY_AFTER_S = 3600.0  # a service asking for more than an hour is treated as an hour


class DeliveryTemporaryError(TemporaryError, NotifyError):
    """A delivery attempt failed in a way worth retrying; ``reason`` is a short metric label."""

    def __init__(self, message: str, reason: str, delay_s: float | None = None) -> None:
        super().__init__(message, delay_s=delay_s)
        self.reason = reason


class DeliveryPermanentError(PermanentError, NotifyError):
    """A delivery attempt failed for good (bad request, revoked webhook); ``reason`` as above."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class DeliveryClientError(DeliveryPermanentError):
    """The service refused the request with a 4xx other than 401/403 (``status``).

    Permanent as far as one attempt goes; the outbox retries it for the receiver's
    ``retry_client_errors_for_s`` (a webhook being re-created answers 404 for a while).
    """

    def __init__(self, message: str, reason: str, status: int) -> None:
        super().__init__(message, reason)
        self.status = status


@runtime_checkable
class Notifier(Protocol):
    """One configured receiver: renders a notification natively and sends it.

    Attributes:
        name: the receiver's name from the configuration (``receivers[i].name``).
        kind: the receiver type (``slack``, ``teams``, ...).
        target: what may be logged about the destination: scheme and host only.
    """

    name: str
    kind: str
    target: str

    def render(self, n: Notification) -> dict[str, Any] | str:
        """The native payload for ``n`` (JSON-able dict, or text for text-only services)."""
        ...

    def send(self, payload: dict[str, Any] | str) -> None:
        """Deliver a rendered payload.

        Raises:
            DeliveryTemporaryError: network error, timeout, 5xx, 429 (retry later).
            DeliveryPermanentError: any other refusal (do not retry).
        """
        ...


def parse_retry_after_s(value: str | None, now_s: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date.

    Examples:
        >>> parse_retry_after_s("7")
        7.0
        >>> parse_retry_after_s("Wed, 21 Oct 2015 07:28:10 GMT", now_s=1445412480.0)
        10.0
        >>> parse_retry_after_s("soon") is None
        True
    """
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now_s is None else now_s)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, MAX_RETRY_AFTER_S))


def mask(text: str, secrets: Iterable[str]) -> str:
    """Replace every non-empty secret (and its URL-quoted form) inside ``text`` by ``***``."""
    from urllib.parse import quote, quote_plus

    for s in sorted(secrets, key=len, reverse=True):  # longest first: a URL before its path
        if s and len(s) >= 4:
            for form in {s, quote(s, safe=""), quote_plus(s)}:
                text = text.replace(form, "***")
    return text


def url_secrets(url: str) -> list[str]:
    """The parts of a webhook URL that may be tokens: path, query, long path segments, query values.

    A service echoing part of its URL in an error body must not leak it through our error.
    """
    from urllib.parse import parse_qsl, unquote, urlsplit

    parts = urlsplit(url)
    out = [parts.path, parts.query, parts.password or ""]
    out.extend(seg for seg in parts.path.split("/") if len(seg) >= 6)
    out.extend(v for _, v in parse_qsl(parts.query) if len(v) >= 4)
    if parts.password:
        # httpx sends user:password as a Basic Authorization header; a receiver echoing its
        # headers in an error body would show that base64, not the password
        out.append(basic_credential(unquote(parts.username or ""), unquote(parts.password)))
    return sorted((s for s in out if s and s != "/"), key=len, reverse=True)


def basic_credential(user: str, password: str) -> str:
    """The base64 ``user:password`` of a Basic Authorization header."""
    import base64

    return base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def header_secrets(values: Iterable[str]) -> list[str]:
    """Header values, and the credential alone of ``Bearer <token>``-style values.

    A receiver that echoes the token without its scheme must not leak it either.
    """
    out = []
    for v in values:
        out.append(v)
        scheme, _, credential = v.strip().partition(" ")
        if credential and scheme.isalpha() and len(credential.strip()) >= 8:
            out.append(credential.strip())
    return out


class HttpNotifier(ABC):
    """Base for notifiers that POST JSON to a webhook with httpx.

    Subclasses implement :meth:`render`, set ``kind``, and may override :meth:`url_for`
    (to sign the URL) and :meth:`check_body` (services answering 200 with an error code).

    Args:
        name: the receiver's name.
        url: the webhook URL (a secret: never logged, never in an error).
        timeout_s: seconds for connect + read of one attempt.
        headers: extra request headers (their values are secrets too).
    """

    kind = "http"

    def __init__(self, name: str, url: str, timeout_s: float = 10.0,
                 headers: Mapping[str, str] | None = None) -> None:
        self.name = name
        self._url = url
        self.target = url_host(url)
        self.timeout_s = timeout_s
        self._headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self._secrets: list[str] = [url, *url_secrets(url), *header_secrets((headers or {}).values())]
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)

    # --- hooks for subclasses ------------------------------------------------------------

    @abstractmethod
    def render(self, n: Notification) -> dict[str, Any] | str:
        """The service's payload for ``n``."""

    def url_for(self, payload: dict[str, Any] | str) -> str:
        """The URL to POST to (signed services add a timestamp and signature)."""
        return self._url

    def prepare(self, payload: dict[str, Any] | str) -> dict[str, Any] | str:
        """Last changes before the wire (signed services add ``timestamp``/``sign``)."""
        return payload

    def check_body(self, response: httpx.Response) -> None:  # noqa: B027 - a default hook, not abstract
        """Raise on a service-level error inside a 2xx answer; default: none."""

    # --- the wire --------------------------------------------------------------------------

    def send(self, payload: dict[str, Any] | str) -> None:
        body = self.prepare(payload)
        where = f"{self.kind} receiver {self.name!r} ({self.target})"
        try:
            if isinstance(body, str):
                resp = self._client.post(self.url_for(body), content=body.encode(),
                                         headers={**self._headers, "Content-Type": "text/plain; charset=utf-8"})
            else:
                resp = self._client.post(self.url_for(body), json=body, headers=self._headers)
        except httpx.TimeoutException as exc:
            raise DeliveryTemporaryError(f"{where}: timed out after {self.timeout_s:g}s", "timeout") from exc
        except httpx.HTTPError as exc:
            detail = self._safe(f"{exc.__class__.__name__}: {exc}")
            raise DeliveryTemporaryError(f"{where}: {detail}", "network") from exc
        self.raise_for_response(resp, where)
        self.check_body(resp)

    def raise_for_response(self, resp: httpx.Response, where: str) -> None:
        """Map an HTTP status to success, a temporary or a permanent error."""
        status = resp.status_code
        if 200 <= status < 300:
            return
        body = self._safe(trim(resp.text.strip()))
        msg = f"{where}: HTTP {status}: {body}" if body else f"{where}: HTTP {status}"
        if status == 429:
            delay = parse_retry_after_s(resp.headers.get("Retry-After"))
            raise DeliveryTemporaryError(msg, "http_429", delay_s=delay)
        if status >= 500:
            delay = parse_retry_after_s(resp.headers.get("Retry-After"))
            raise DeliveryTemporaryError(msg, f"http_{status}", delay_s=delay)
        if status == 408:
            raise DeliveryTemporaryError(msg, "http_408")
        if status in (401, 403):
            raise DeliveryPermanentError(f"{msg} (credentials refused: fix the receiver's URL or token, "
                                         f"then 'aiops notify retry')", "auth")
        raise DeliveryClientError(msg, f"http_{status}", status)

    def _safe(self, text: str) -> str:
        return mask(text, self._secrets)

    def probe(self, timeout_s: float = 1.0) -> bool:
        """Whether the receiver's host accepts a TCP connection now (nothing is sent).

        The outbox calls this while a lane backs off after network errors, so a receiver that
        comes back is noticed within a probe interval instead of at the end of the backoff.
        """
        import socket
        from urllib.parse import urlsplit

        parts = urlsplit(self._url)
        if not parts.hostname:
            return False
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with socket.create_connection((parts.hostname, port), timeout=timeout_s):
                return True
        except OSError:
            return False

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, target={self.target!r})"


def json_code_check(resp: httpx.Response, where: str, code_keys: tuple[str, ...],
                    temporary_codes: frozenset[int], secrets: Iterable[str]) -> None:
    """Services like DingTalk, Feishu and WeCom answer 200 with ``{"errcode": n, ...}``."""
    try:
        data = resp.json()
    except ValueError:
        return
    if not isinstance(data, dict):
        return
    for key in code_keys:
        if key in data:
            try:
                code = int(data[key])
            except (TypeError, ValueError):
                return
            if code == 0:
                return
            text = mask(trim(str(data.get("errmsg") or data.get("msg") or "")), secrets)
            msg = f"{where}: service error {code}: {text}"
            if code in temporary_codes:
                raise DeliveryTemporaryError(msg, f"code_{code}")
            raise DeliveryPermanentError(msg, f"code_{code}")
