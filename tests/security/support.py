"""A real agent with alerting and remediation on 127.0.0.1, and a capture server for actions."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from app.agent import Agent
from app.settings import Settings, load_settings
from app.wiring import build_components

TOKENS = {
    "admin": "admin-token-0123456789",
    "operator": "operator-token-0123456789",
    "viewer": "viewer-token-0123456789",
    "intake": "intake-token-0123456789",
}


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


@dataclass
class Capture:
    """An HTTP server that records every request it gets (the target an SSRF would reach)."""

    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])


@contextmanager
def capture_server() -> Iterator[Capture]:
    cap = Capture()

    class H(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            cap.requests.append((self.command, self.path, dict(self.headers.items())))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST = do_PUT = do_DELETE = _any  # noqa: N815 - http.server's names

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    cap.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=cap.server.serve_forever, daemon=True)
    t.start()
    try:
        yield cap
    finally:
        cap.server.shutdown()
        cap.server.server_close()


def settings_for(tmp_path: Path, playbooks: list[dict[str, Any]] | None = None, **sections: Any) -> Settings:
    pb_dir = tmp_path / "playbooks"
    pb_dir.mkdir(exist_ok=True)
    for i, pb in enumerate(playbooks or []):
        (pb_dir / f"pb{i}.yaml").write_text(yaml.safe_dump(pb))
    agent = {"listen_port": 0, "read_timeout_s": 1.0,
             "tokens": [{"name": f"{role}-user", "role": role, "token": tok} for role, tok in TOKENS.items()]}
    agent.update(sections.pop("agent", {}))
    cfg: dict[str, Any] = {
        "store": {"path": str(tmp_path / "aiops.db")},
        "agent": agent,
        "alerting": {"rules": [{"alert": "HighCPU", "expr": "cpu_ratio", "op": ">", "threshold": 0.8}],
                     "evaluation_interval_s": 1},
        "remediation": {"playbooks": [str(pb_dir)] if playbooks else [], "sweep_interval_s": 0.2,
                        **sections.pop("remediation", {})},
        **sections,
    }
    path = tmp_path / "aiops.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_settings(path)


@contextmanager
def running_agent(settings: Settings) -> Iterator[Agent]:
    agent = Agent(settings, [], build_components(settings))
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()


def healthy(agent: Agent) -> bool:
    r = httpx.get(f"{agent.api.url}/healthz", timeout=5)
    return r.status_code == 200 and r.json()["status"] == "ok"


def wait_for(pred: Callable[[], Any], timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def raw_request(port: int, data: bytes, timeout_s: float = 5.0) -> bytes:
    """Send ``data`` as is and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def webhook(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "receiver": "aiops", "groupKey": "{}", "alerts": [
        {"status": "firing", "annotations": {}, "startsAt": "2024-05-01T12:00:00Z", **a} for a in alerts]}
