"""Test support for notifier and outbox tests: recording HTTP and SMTP servers, sample notifications.

Every server binds 127.0.0.1 on port 0, runs in a thread and is stopped by the test's fixture.
An HTTP receiver can be told, per request, to answer 200, fail with 500, hang, answer 429 with
``Retry-After``, or refuse with 400.
"""

from __future__ import annotations

import json
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiops.model import Alert, AlertState
from aiops.notification import Notification

T0_MS = 1_714_564_800_000  # 2024-05-01T12:00:00Z


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """What the receiver answers: status, body, headers, and seconds to hang first."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    hang_s: float = 0.0
    record: bool = True  # failed attempts are recorded too unless this is False


class RecordingServer:
    """An HTTP receiver recording every request; ``behave`` decides each answer."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[Recorded] = []
        self.attempts = 0
        self.lock = threading.Lock()
        self.behave: Callable[[Recorded], Reply] = lambda req: Reply()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                parts = urlsplit(self.path)
                req = Recorded("POST", parts.path, parse_qs(parts.query), dict(self.headers.items()), body,
                               time.monotonic())
                with server.lock:
                    server.attempts += 1
                reply = server.behave(req)
                if reply.hang_s:
                    time.sleep(reply.hang_s)
                if reply.record or reply.status < 300:
                    with server.lock:
                        server.requests.append(req)
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def ok(self) -> list[Recorded]:
        with self.lock:
            return list(self.requests)

    def wait_for(self, count: int, timeout_s: float = 30.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.ok()
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"expected {count} requests at {self.url}, got {len(self.ok())}")

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Enough of RFC 5321 for smtplib: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def _send(self, line: str) -> None:
        self.wfile.write((line + "\r\n").encode())
        self.wfile.flush()

    def handle(self) -> None:
        srv: SmtpServer = self.server.owner  # type: ignore[attr-defined]
        self._send("220 localhost test SMTP")
        sender, rcpts = "", []
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode(errors="replace").rstrip("\r\n")
            cmd = line[:4].upper()
            if cmd in ("EHLO", "HELO"):
                self._send("250-localhost\r\n250 8BITMIME" if cmd == "EHLO" else "250 localhost")
            elif cmd == "MAIL":
                sender, rcpts = line.split(":", 1)[1].strip().split()[0].strip("<>"), []
                self._send("250 OK")
            elif cmd == "RCPT":
                addr = line.split(":", 1)[1].strip().strip("<>")
                if addr in srv.refuse:
                    self._send("550 5.1.1 no such user")
                else:
                    rcpts.append(addr)
                    self._send("250 OK")
            elif cmd == "DATA":
                self._send("354 end with .")
                data = []
                while True:
                    d = self.rfile.readline()
                    if d in (b".\r\n", b".\n", b""):
                        break
                    data.append(d[1:] if d.startswith(b"..") else d)
                srv.messages.append((sender, rcpts, b"".join(data)))
                self._send("250 OK queued")
            elif cmd == "QUIT":
                self._send("221 bye")
                return
            else:
                self._send("250 OK")


class SmtpServer:
    """A tiny SMTP server on 127.0.0.1 that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.refuse: set[str] = set()
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
        self.server.daemon_threads = True
        self.server.owner = self  # type: ignore[attr-defined]
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def sample_notification(receiver: str = "ops", group: str = "g1", resolved: bool = False,
                        n_alerts: int = 2) -> Notification:
    """A GPU-temperature group: firing (or resolved) alerts with values, thresholds and a dashboard URL."""
    alerts = []
    for i in range(n_alerts):
        state = AlertState.RESOLVED if resolved else AlertState.FIRING
        alerts.append(Alert.of(
            {"alertname": "HighGpuTemp", "severity": "critical", "instance": f"gpu-node-{i}:9400", "gpu": str(i)},
            {"summary": f"GPU {i} is hot", "description": "Temperature above threshold for 5m",
             "threshold": "85", "series": f'gpu_temperature_celsius{{gpu="{i}",instance="gpu-node-{i}:9400"}}'},
            state=state, starts_at_ms=T0_MS, ends_at_ms=T0_MS + 725_000 if resolved else 0, value=91.5 + i,
        ))
    return Notification(receiver=receiver, group_key=f'{{}}:{{alertname="HighGpuTemp",group="{group}"}}',
                        group_labels=(("alertname", "HighGpuTemp"), ("group", group)), alerts=tuple(alerts),
                        external_url="http://dashboard.example:8501")


FAST = {"backoff_initial_s": 0.05, "backoff_max_s": 0.4, "poll_interval_s": 0.05, "lease_s": 10.0,
        "probe_interval_s": 0.1}


def make_outbox(state: Any, servers: dict[str, RecordingServer], *, rate: dict[str, tuple[float, int]] | None = None,
                timeout_s: float = 5.0, registry: Any = None, client_errors_s: float = 600.0,
                **settings: Any) -> Any:
    """An Outbox with webhook receivers pointing at ``servers`` and short backoff."""
    from alerting.notifiers.webhook import WebhookNotifier
    from alerting.outbox import DeliverySettings, Outbox, ReceiverPolicy

    notifiers = {name: WebhookNotifier(name, f"{srv.url}/hook/{name}-token", timeout_s=timeout_s)
                 for name, srv in servers.items()}
    policies = {name: ReceiverPolicy(*(rate or {}).get(name, (0.0, None)), retry_client_errors_for_s=client_errors_s)
                for name in servers}
    return Outbox(state, notifiers, registry, settings=DeliverySettings(**{**FAST, **settings}), policies=policies,
                  seed=1)


def group_keys(requests: list[Recorded]) -> list[str]:
    return [r.json["groupKey"] for r in requests]
