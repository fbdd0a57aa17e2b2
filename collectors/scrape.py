"""Scrape any Prometheus text-format or OpenMetrics endpoint over HTTP(S).

Every series gets ``job`` and ``instance`` (the target's ``host:port``) plus the configured
labels; a scraped label of the same name is kept as ``exported_<name>`` (Prometheus'
``honor_labels: false``). Explicit sample timestamps are honoured; NaN and ±Inf are kept.

**Staleness.** Like Prometheus, the collector writes a *staleness marker* for a series that
stops being exported: when a series of the previous scrape is missing from this one, or the
whole target fails (down, timeout, HTTP error, garbage body), each such series gets one sample
whose value is Prometheus' stale NaN (the bit pattern ``0x7ff0000000000002``, a NaN to every
reader; :func:`is_stale` tells it from an exported NaN). It is written once: the next failed
scrape marks nothing again. Readers use it to end a series promptly instead of carrying its
last value forward.

A failure raises :class:`~aiops.errors.CollectError` naming the target's host (never the URL,
which may carry a token) and the cause: the HTTP status, the timeout, or the line that could
not be parsed; the staleness markers travel on the error (``CollectError.samples``).

Examples:
    >>> import math
    >>> math.isnan(STALE_NAN), is_stale(STALE_NAN), is_stale(float("nan"))
    (True, True, False)
"""

from __future__ import annotations

import math
import struct
import time

import httpx

from aiops.columns import SampleColumns, concat_samples
from aiops.errors import CollectError, ConfigError, InputError
from aiops.logs import get_logger
from aiops.model import Sample
from collectors.exposition import ExpositionParser
from collectors.recording import build_recorder
from collectors.settings import ScrapeTarget

__all__ = ["ScrapeCollector", "STALE_NAN", "is_stale", "target_instance"]

log = get_logger("collectors.scrape")

_STALE_BITS = 0x7FF0000000000002
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", _STALE_BITS))[0]
"""Prometheus' staleness marker: a NaN with a distinct payload."""

ACCEPT = ("application/openmetrics-text;version=1.0.0;q=0.75,"
          "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
USER_AGENT = "aiops-scraper/0.1"


def is_stale(value: float) -> bool:
    """True for the staleness marker, False for any other value (an exported NaN included)."""
    return math.isnan(value) and struct.unpack("<Q", struct.pack("<d", value))[0] == _STALE_BITS


def target_instance(url: str, what: str = "scrape url") -> str:
    """The ``instance`` label of a target: ``host:port``, the port filled in from the scheme.

    Raises:
        ConfigError: when ``url`` is not an http(s) URL.

    Examples:
        >>> target_instance("https://user:pw@example.com/metrics?token=x")
        'example.com:443'
    """
    try:
        u = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"{what}: not a URL ({exc})") from None
    if u.scheme not in ("http", "https") or not u.host:
        raise ConfigError(f"{what}: expected http(s)://host[:port]/path, got scheme {u.scheme!r}")
    port = u.port or (443 if u.scheme == "https" else 80)
    host = f"[{u.host}]" if ":" in u.host else u.host
    return f"{host}:{port}"


class ScrapeCollector:
    """Scrapes one target.

    Args:
        settings: the target (url, job, labels, headers, bearer token, schedule).
        transport: an httpx transport (tests); default: a real connection pool.
    """

    name = "scrape"

    def __init__(self, settings: ScrapeTarget, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self.instance = target_instance(settings.url)
        self.target = self.instance
        self.interval_s = settings.interval_s
        self.timeout_s = settings.timeout_s
        self.jitter_s = settings.jitter_s
        self.body_limit_bytes = settings.body_limit_bytes
        target_labels = {"job": settings.job, "instance": self.instance, **settings.labels}
        self.parser = ExpositionParser(target_labels)
        self.recorder = build_recorder(settings.preset, settings.recording)
        headers = {"Accept": ACCEPT, "User-Agent": USER_AGENT,
                   "X-Prometheus-Scrape-Timeout-Seconds": f"{settings.timeout_s:g}"}
        headers.update({k: v.get_secret_value() for k, v in settings.headers.items()})
        if settings.bearer_token is not None:
            headers["Authorization"] = f"Bearer {settings.bearer_token.get_secret_value()}"
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(settings.timeout_s),
                                    follow_redirects=True, transport=transport,
                                    verify=settings.verify_tls)

    def collect(self, now_ms: int) -> SampleColumns:
        """Scrape once, as columns; staleness markers for series that disappeared are appended.

        Raises:
            CollectError: target down, slow, not 2xx or not parseable; carries markers.
        """
        try:
            body, openmetrics = self._fetch()
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CollectError(f"scrape {self.target}: body is not UTF-8 text (byte {exc.start})") from None
            try:
                samples = self.parser.parse_columns(text, now_ms, openmetrics)
            except InputError as exc:
                raise CollectError(f"scrape {self.target}: cannot parse the body: {exc}") from None
        except CollectError as exc:
            markers = self._mark_all_stale(now_ms)
            raise CollectError(str(exc), samples=markers) from exc.__cause__
        extra: list[Sample] = self.recorder.derive(samples) if self.recorder is not None else []
        if self.parser.gone:
            extra.extend(Sample(s, now_ms, STALE_NAN) for s in sorted(self.parser.gone))
        if extra:
            samples = concat_samples([samples, extra])
        return samples

    def _mark_all_stale(self, now_ms: int) -> list[Sample]:
        markers = [Sample(s, now_ms, STALE_NAN) for s in sorted(self.parser.series)]
        self.parser.forget()
        return markers

    def _fetch(self) -> tuple[bytes, bool]:
        """GET the target within ``timeout_s`` in total (httpx's timeout is per read)."""
        deadline = time.monotonic() + self.timeout_s
        try:
            with self._client.stream("GET", self.settings.url) as resp:
                if resp.status_code // 100 != 2:
                    raise CollectError(f"scrape {self.target}: HTTP {resp.status_code} {resp.reason_phrase}")
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > self.body_limit_bytes:
                        raise CollectError(f"scrape {self.target}: body exceeds {self.body_limit_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise CollectError(f"scrape {self.target}: no complete response within {self.timeout_s:g}s")
                ctype = resp.headers.get("content-type", "")
        except httpx.TimeoutException:
            raise CollectError(f"scrape {self.target}: no response within {self.timeout_s:g}s") from None
        except httpx.HTTPError as exc:
            raise CollectError(f"scrape {self.target}: {type(exc).__name__}: {_reason(exc)}") from None
        return b"".join(chunks), ctype.startswith("application/openmetrics-text")

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def _reason(exc: Exception) -> str:
    """The cause of a transport error without the URL httpx sometimes puts in its message."""
    text = str(exc) or type(exc).__name__
    return "see target" if "://" in text else text[:200]
