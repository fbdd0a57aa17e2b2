"""The agent's HTTP server: ``/metrics``, ``/healthz`` and routes that components register.

A small threaded server from the standard library, so the quick start needs no web
framework. Components add JSON routes (silences, approvals, incoming Alertmanager webhooks);
a route marked ``auth=True`` needs ``Authorization: Bearer <agent.api_token>`` when a token
is configured.

Examples:
    >>> api = HttpApi("127.0.0.1", 0)
    >>> api.route("GET", "/api/v1/ping", lambda req: Response.json({"pong": True}))
    >>> api.start()
    >>> import httpx
    >>> httpx.get(f"{api.url}/api/v1/ping").json()
    {'pong': True}
    >>> api.stop()
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from aiops.errors import AiopsError, InputError
from aiops.logs import get_logger

__all__ = ["HttpApi", "Request", "Response", "Handler"]

log = get_logger("aiops.http")
MAX_BODY_BYTES = 10 * 1024 * 1024  # a burst of 10,000 Alertmanager alerts fits; a runaway client does not


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)  # from /path/{name} patterns

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except json.JSONDecodeError as exc:
            raise InputError(f"request body is not JSON: {exc}") from exc

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default


@dataclass(slots=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Response:
        return cls(status, json.dumps(payload, default=str).encode(), "application/json")

    @classmethod
    def error(cls, status: int, message: str) -> Response:
        return cls.json({"status": "error", "error": message}, status)


Handler = Callable[[Request], Response]


@dataclass(slots=True)
class _Route:
    method: str
    parts: tuple[str, ...]
    handler: Handler
    auth: bool


class HttpApi:
    """A threaded HTTP server with a tiny router.

    Args:
        host: address to bind (``127.0.0.1`` by default: expose deliberately).
        port: port to bind; 0 picks a free one (see :attr:`port` after :meth:`start`).
        token: bearer token required by routes registered with ``auth=True``.
        registry: the prometheus_client registry served on ``/metrics``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.host = host
        self._port = port
        self.token = token
        self.registry = registry
        self._routes: list[_Route] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.health: Callable[[], dict[str, Any]] = lambda: {"status": "ok"}

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def route(self, method: str, path: str, handler: Handler, auth: bool = False) -> None:
        """Register ``handler`` for ``method path``; ``{name}`` segments become ``req.params``."""
        self._routes.append(_Route(method.upper(), tuple(p for p in path.split("/") if p), handler, auth))

    def _match(self, method: str, path: str) -> tuple[_Route | None, dict[str, str], bool]:
        parts = tuple(p for p in path.split("/") if p)
        path_known = False
        for r in self._routes:
            if len(r.parts) != len(parts):
                continue
            params: dict[str, str] = {}
            for want, got in zip(r.parts, parts, strict=True):
                if want.startswith("{") and want.endswith("}"):
                    params[want[1:-1]] = got
                elif want != got:
                    break
            else:
                path_known = True
                if r.method == method:
                    return r, params, True
        return None, {}, path_known

    def dispatch(self, req: Request) -> Response:
        if req.path == "/metrics" and req.method == "GET" and self.registry is not None:
            return Response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        if req.path in ("/healthz", "/-/healthy") and req.method == "GET":
            return Response.json(self.health())
        route, params, known = self._match(req.method, req.path)
        if route is None:
            return Response.error(405 if known else 404, f"no route for {req.method} {req.path}")
        if route.auth and self.token:
            given = req.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                return Response.error(401, "missing or wrong bearer token")
        req.params = params
        try:
            return route.handler(req)
        except InputError as exc:
            return Response.error(400, str(exc))
        except AiopsError as exc:
            return Response.error(409, str(exc))
        except Exception as exc:  # a handler bug answers 500 and never kills the server
            log.exception("http_handler_failed", path=req.path, error=str(exc))
            return Response.error(500, "internal error")

    def start(self) -> None:
        api = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in separate writes: without TCP_NODELAY, Nagle plus
            # delayed ACK holds every response ~40 ms
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    resp = Response.error(413, f"body over {MAX_BODY_BYTES} bytes")
                    self.close_connection = True
                else:
                    body = self.rfile.read(length) if length else b""
                    req = Request(self.command, split.path, parse_qs(split.query),
                                  {k.lower(): v for k, v in self.headers.items()}, body)
                    resp = api.dispatch(req)
                self.send_response(resp.status)
                self.send_header("Content-Type", resp.content_type)
                self.send_header("Content-Length", str(len(resp.body)))
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(resp.body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
                pass  # access logs off: /metrics is scraped every few seconds

        self._server = ThreadingHTTPServer((self.host, self._port), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="aiops-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
