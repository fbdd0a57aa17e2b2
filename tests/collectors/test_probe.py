"""The probe collector against real HTTP and HTTPS servers on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from aiops.protocols import Collector
from collectors import ProbeCollector
from collectors.settings import ProbeTarget
from tests.collectors.helpers import Route, TargetServer, serve_targets
from tests.conftest import free_port

CERT_DAYS = 10


def _values(samples) -> dict[str, float]:
    return {s.series.name.removeprefix("aiops_probe_"): s.value for s in samples}


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    """A CA and a server certificate for 127.0.0.1 valid CERT_DAYS days, made by trustme:
    (CA certificate, server key + chain, the server certificate's notAfter epoch s)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    not_after = now + dt.timedelta(days=CERT_DAYS)
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", not_before=now - dt.timedelta(days=1), not_after=not_after)
    d = tmp_path_factory.mktemp("tls")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    return d / "ca.pem", d / "server.pem", not_after.timestamp()


@pytest.fixture
def https_server(cert_files: tuple[Path, Path, float]) -> Iterator[TargetServer]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_files[1])  # the key and the chain in one file
    with serve_targets(tls=ctx) as server:
        yield server


def test_success_status_and_duration(target_server: TargetServer) -> None:
    target_server.routes["/healthz"] = Route(body="ok")
    c = ProbeCollector(ProbeTarget(url=target_server.url("/healthz?token=abc"), labels={"team": "ml"}))
    assert isinstance(c, Collector)
    assert c.target == f"http://127.0.0.1:{target_server.port}/healthz"  # no query string: no secrets
    samples = c.collect(1000)
    v = _values(samples)
    assert v["success"] == 1 and v["http_status_code"] == 200 and 0 <= v["duration_seconds"] < 30
    assert "tls_cert_expiry_seconds" not in v
    labels = samples[0].series.label_dict
    assert labels == {"probe": c.target, "instance": f"127.0.0.1:{target_server.port}", "team": "ml"}
    c.close()


def test_unexpected_status_is_failure_data(target_server: TargetServer) -> None:
    target_server.routes["/healthz"] = Route(503, "overloaded")
    c = ProbeCollector(ProbeTarget(url=target_server.url("/healthz"), name="api"))
    v = _values(c.collect(0))
    assert (v["success"], v["http_status_code"]) == (0, 503)
    c.close()
    c = ProbeCollector(ProbeTarget(url=target_server.url("/healthz"), expect_status=[200, 503]))
    assert _values(c.collect(0))["success"] == 1
    c.close()


def test_refused_and_hanging_targets_are_failure_data(target_server: TargetServer) -> None:
    refused = ProbeCollector(ProbeTarget(url=f"http://127.0.0.1:{free_port()}/", timeout_s=1))
    assert _values(refused.collect(0)) | {"duration_seconds": 0} == {
        "success": 0, "http_status_code": 0, "duration_seconds": 0}
    refused.close()
    target_server.routes["/slow"] = Route(hang=True)
    slow = ProbeCollector(ProbeTarget(url=target_server.url("/slow"), timeout_s=0.3))
    v = _values(slow.collect(0))
    assert (v["success"], v["http_status_code"]) == (0, 0)
    assert v["duration_seconds"] >= 0.3
    slow.close()


def test_https_cert_expiry_and_verification(https_server: TargetServer, cert_files) -> None:
    https_server.routes["/"] = Route(body="hi")
    cert, _key, not_after = cert_files
    # default verification: a self-signed certificate fails the check, expiry is still measured
    strict = ProbeCollector(ProbeTarget(url=https_server.url("/"), timeout_s=5))
    now_ms = 1_000 * int(not_after - 3600)
    v = _values(strict.collect(now_ms))
    assert v["success"] == 0
    assert v["tls_cert_expiry_seconds"] == pytest.approx(3600, abs=1)
    strict.close()
    # trusting the certificate as CA: success, and the expiry is about CERT_DAYS days from now
    trusted = ProbeCollector(ProbeTarget(url=https_server.url("/"), ca_file=cert, timeout_s=5))
    v = _values(trusted.collect(int(dt.datetime.now(dt.UTC).timestamp() * 1000)))
    assert v["success"] == 1 and v["http_status_code"] == 200
    assert v["tls_cert_expiry_seconds"] == pytest.approx(CERT_DAYS * 86400, abs=120)
    trusted.close()
    lax = ProbeCollector(ProbeTarget(url=https_server.url("/"), verify_tls=False, timeout_s=5))
    assert _values(lax.collect(0))["success"] == 1
    lax.close()


def test_https_target_down_reports_no_expiry_but_does_not_raise() -> None:
    c = ProbeCollector(ProbeTarget(url=f"https://127.0.0.1:{free_port()}/", timeout_s=1))
    v = _values(c.collect(0))
    assert v["success"] == 0 and "tls_cert_expiry_seconds" not in v
    c.close()
