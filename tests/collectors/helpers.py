"""Test HTTP targets: a real server on 127.0.0.1 (port 0) whose routes each test programs."""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    status: int = 200
    body: bytes | str = b""
    content_type: str = "text/plain; version=0.0.4; charset=utf-8"
    hang: bool = False  # accept the request, never answer (until the server stops)


@dataclass
class TargetServer:
    """Routes by path; records the headers of each request."""

    routes: dict[str, Route | Callable[[], Route]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    port: int = 0
    scheme: str = "http"

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"


@contextlib.contextmanager
def serve_targets(tls: ssl.SSLContext | None = None) -> Iterator[TargetServer]:
    state = TargetServer(scheme="https" if tls else "http")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - stdlib's name
            state.requests.append((self.path, dict(self.headers)))
            route = state.routes.get(self.path.split("?")[0])
            if callable(route):
                route = route()
            if route is None:
                route = Route(404, "not found")
            if route.hang:
                state.released.wait(60)
                return
            body = route.body.encode() if isinstance(route.body, str) else route.body
            self.send_response(route.status)
            self.send_header("Content-Type", route.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET  # noqa: N815

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.released.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
