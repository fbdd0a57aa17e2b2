"""HTTP(S) checks for services without metrics, in the spirit of the blackbox exporter.

Each probe exports, with labels ``probe`` (the configured name, or the URL without query
string and credentials), ``instance`` (``host:port``) and the configured labels:

- ``aiops_probe_success``: 1 when the request completed with an expected status, else 0;
- ``aiops_probe_http_status_code``: the final status (0 when no response came back);
- ``aiops_probe_duration_seconds``: time of the whole request, redirects included;
- ``aiops_probe_tls_cert_expiry_seconds`` (https only): seconds until the server certificate's
  ``notAfter`` (negative once expired), read from a separate TLS handshake with the ``ssl``
  module, so it is reported even when verification fails.

A failed probe is data (``success=0``), not an error: ``collect`` never raises for an
unreachable, slow or failing target.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import time

import httpx

from aiops.logs import get_logger
from aiops.model import Sample, Series
from collectors.scrape import target_instance
from collectors.settings import ProbeTarget

__all__ = ["ProbeCollector", "cert_expiry_s"]

log = get_logger("collectors.probe")


def _probe_name(url: httpx.URL) -> str:
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"


def cert_expiry_s(host: str, port: int, timeout_s: float, now_s: float | None = None,
                  server_name: str | None = None) -> float:
    """Seconds until the ``notAfter`` of the certificate ``host:port`` presents.

    The handshake does not verify the chain: an expired or self-signed certificate must
    still be measurable (verification is the probe's business, reported as success).

    Raises:
        OSError: no TLS connection could be made (``ssl.SSLError`` included).
    """
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout_s) as raw, \
            ctx.wrap_socket(raw, server_hostname=server_name or host) as tls:
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise ssl.SSLError(f"{host}:{port} presented no certificate")
    not_after = _not_after_s(der)
    return not_after - (time.time() if now_s is None else now_s)


def _not_after_s(der: bytes) -> float:
    """``notAfter`` of a DER certificate, in epoch seconds."""
    from cryptography import x509  # an installed dependency of our HTTP/Kubernetes stack

    cert = x509.load_der_x509_certificate(der)
    after = getattr(cert, "not_valid_after_utc", None)
    if after is None:  # cryptography < 42
        after = cert.not_valid_after.replace(tzinfo=dt.UTC)
    return float(after.timestamp())


class ProbeCollector:
    """Checks one HTTP(S) URL per collection.

    Args:
        settings: URL, method, expected statuses, labels, headers, TLS options, schedule.
        transport: an httpx transport (tests).
    """

    name = "probe"

    def __init__(self, settings: ProbeTarget, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        url = httpx.URL(settings.url)
        self.instance = target_instance(settings.url, "probe url")
        self.probe = settings.name or _probe_name(url)
        self.target = self.probe
        self.interval_s = settings.interval_s
        self.timeout_s = settings.timeout_s
        self.jitter_s = settings.jitter_s
        self._https = url.scheme == "https"
        self._host = url.host
        self._port = url.port or (443 if self._https else 80)
        labels = {**settings.labels, "probe": self.probe, "instance": self.instance}
        self._s = {n: Series.of(f"aiops_probe_{n}", labels)
                   for n in ("success", "http_status_code", "duration_seconds", "tls_cert_expiry_seconds")}
        verify: bool | ssl.SSLContext = settings.verify_tls
        if settings.verify_tls and settings.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(settings.ca_file))
        self._client = httpx.Client(
            headers={"User-Agent": "aiops-probe/0.1", **{k: v.get_secret_value() for k, v in settings.headers.items()}},
            timeout=httpx.Timeout(settings.timeout_s), follow_redirects=settings.follow_redirects,
            verify=verify, transport=transport)
        self._cert_warned = False

    def collect(self, now_ms: int) -> list[Sample]:
        """Probe once; never raises for a failing target (that is ``success=0``)."""
        status = 0
        started = time.perf_counter()
        try:
            resp = self._client.request(self.settings.method, self.settings.url)
            status = resp.status_code
        except httpx.HTTPError as exc:
            log.info("probe_failed", target=self.probe, error=type(exc).__name__)
        duration = time.perf_counter() - started
        ok = status in self.settings.expect_status
        out = [
            Sample(self._s["success"], now_ms, 1.0 if ok else 0.0),
            Sample(self._s["http_status_code"], now_ms, float(status)),
            Sample(self._s["duration_seconds"], now_ms, duration),
        ]
        if self._https:
            try:
                left = cert_expiry_s(self._host, self._port, self.timeout_s, now_ms / 1000)
                out.append(Sample(self._s["tls_cert_expiry_seconds"], now_ms, left))
                self._cert_warned = False
            except (OSError, ValueError) as exc:
                if not self._cert_warned:  # once per outage, not every interval
                    self._cert_warned = True
                    log.warning("probe_cert_unreadable", target=self.probe, error=str(exc)[:200])
        return out

    def close(self) -> None:
        self._client.close()
