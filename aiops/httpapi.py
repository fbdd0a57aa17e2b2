"""The one HTTP application base of every server we ship: ASGI (Starlette) on uvicorn.

The agent's API, the simulated inference service and the fake Kubernetes API are each an
:class:`HttpApi`: components register plain functions ``handler(Request) -> Response``
(run on a thread pool, so they may block on the state database) with the role they need
and, optionally, pydantic models of their query and body. The base does the rest for every
route alike:

- authentication by bearer token and a role check per route (:mod:`aiops.httpauth`):
  401 without a valid credential, 403 naming the principal when its role is not enough;
- read deadline, keep-alive timeout, connection limit, header and body size limits
  (:class:`~aiops.httpserver.HttpLimits`): 408 / 413 / 503 instead of held threads;
- every malformed request is a 4xx JSON error naming the field
  (``{"status": "error", "error": "query.limit: ...", "field": "query.limit"}``); a handler
  bug is a logged 500 and never kills the server;
- ``HEAD`` for every ``GET``; ``/metrics`` (Prometheus), ``/healthz``, and ``/openapi.json``
  describing every route, its role, parameters and body schema.

Examples:
    >>> api = HttpApi("127.0.0.1", 0)
    >>> api.route("GET", "/api/v1/ping", lambda req: Response.json({"pong": True}), role=None)
    >>> api.start()
    >>> import httpx
    >>> httpx.get(f"{api.url}/api/v1/ping").json()
    {'pong': True}
    >>> httpx.post(f"{api.url}/api/v1/ping").status_code
    405
    >>> api.stop()
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin
from urllib.parse import parse_qs

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ValidationError
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.requests import Request as AsgiRequest
from starlette.responses import Response as AsgiResponse
from starlette.responses import StreamingResponse
from starlette.routing import compile_path

from aiops.errors import AiopsError, InputError
from aiops.httpauth import Authenticator, Principal, Role
from aiops.httpserver import HttpLimits, ServerThread
from aiops.logs import get_logger
from aiops.openapi import build_openapi
from aiops.validation import field_name, validation_problems

__all__ = ["HttpApi", "Request", "Response", "Handler", "HttpLimits", "parse_json", "validation_message",
           "DEFAULT_ROLE"]

log = get_logger("aiops.http")


class _Default:
    pass


DEFAULT_ROLE: Any = _Default()
"""``route(role=DEFAULT_ROLE)``: ``viewer`` for ``GET``, ``operator`` for every other method."""


def parse_json(body: bytes, what: str = "request body") -> Any:
    """Decode a JSON body; every way it can be wrong is an :class:`InputError` naming ``what``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what}: not UTF-8 (byte {exc.start})") from None
    if not text.strip():
        return None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise InputError(f"{what}: JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{what}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def _no_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


def validation_message(exc: ValidationError, where: str) -> tuple[str, str]:
    """``("body.matchers[0]: Field required", "body.matchers[0]")`` for the first error.

    Worded by the one formatter (:mod:`aiops.validation`), without the offending value: a body
    may carry a secret.
    """
    errors = exc.errors(include_input=False, include_url=False)
    message = validation_problems(exc, prefix=where, show_input=False, first_only=True)[0]
    more = len(errors) - 1
    return message + (f" (and {more} more)" if more else ""), field_name(where, errors[0].get("loc", ()))


@dataclass(slots=True)
class Request:
    """What a handler sees.

    Attributes:
        query: every query parameter's values, in order.
        params: ``{name}`` segments of the route's path.
        principal: the authenticated caller (``None`` on public routes).
        data: the validated body model when the route declared ``body=``.
        args: the validated query model when the route declared ``query=``.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    principal: Principal | None = None
    data: Any = None
    args: Any = None

    def json(self) -> Any:
        return parse_json(self.body)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    @property
    def who(self) -> str:
        """The principal's name (what approvals and silences record)."""
        return self.principal.name if self.principal else "anonymous"


@dataclass(slots=True)
class Response:
    """What a handler answers; ``stream`` (chunks, produced on a worker thread) replaces ``body``."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterator[bytes] | None = None

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Response:
        return cls(status, json.dumps(payload, default=str).encode(), "application/json")

    @classmethod
    def error(cls, status: int, message: str, field_name: str | None = None) -> Response:
        body: dict[str, Any] = {"status": "error", "error": message}
        if field_name:
            body["field"] = field_name
        return cls.json(body, status)


Handler = Callable[[Request], Response]


@dataclass(slots=True)
class _Route:
    method: str
    path: str
    regex: re.Pattern[str]
    handler: Handler
    role: Role | None
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    summary: str
    responses: dict[int, str]


class HttpApi:
    """One HTTP server: routes, authentication, limits, OpenAPI.

    Args:
        host: address to bind (``127.0.0.1`` by default: expose deliberately).
        port: port to bind; 0 picks a free one (see :attr:`port` after :meth:`start`).
        token: an admin bearer token (shorthand for ``auth=Authenticator([(token, admin)])``).
        registry: the prometheus_client registry served on ``/metrics``.
        auth: who may call; without any credential every protected route answers 401.
        limits: timeouts and sizes.
        title: the OpenAPI document's title.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 registry: CollectorRegistry | None = None, *, auth: Authenticator | None = None,
                 limits: HttpLimits | None = None, title: str = "aiops agent API") -> None:
        self.host = host
        self._port = port
        self.registry = registry
        if auth is None:
            auth = Authenticator([(token, Principal("api-token", Role.ADMIN))] if token else [])
        self.auth = auth
        self.limits = limits or HttpLimits()
        self.title = title
        self._routes: list[_Route] = []
        self._server: ServerThread | None = None
        self.health: Callable[[], dict[str, Any]] = lambda: {"status": "ok"}
        self.route("GET", "/healthz", lambda _req: Response.json(self.health()), role=None,
                   summary="Liveness and component health")
        self.route("GET", "/-/healthy", lambda _req: Response.json(self.health()), role=None,
                   summary="Liveness (Prometheus' spelling)")
        self.route("GET", "/metrics", self._metrics, role=None, summary="Prometheus metrics")
        self.route("GET", "/openapi.json", lambda _req: Response.json(self.openapi()), role=None,
                   summary="This document")

    @property
    def port(self) -> int:
        return self._server.port if self._server else self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def route(self, method: str, path: str, handler: Handler, *, role: Role | str | None = DEFAULT_ROLE,
              body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
              summary: str = "", responses: dict[int, str] | None = None) -> None:
        """Register ``handler`` for ``method path``.

        Args:
            method: ``GET``, ``POST``, ``PUT``, ``PATCH`` or ``DELETE`` (``HEAD`` follows ``GET``).
            path: ``/api/v1/silences/{id}``; ``{rest:path}`` matches the remainder, slashes included.
            handler: called on a worker thread with the :class:`Request`.
            role: the role a caller needs; ``None`` makes the route public. Default: ``viewer``
                for ``GET``, ``operator`` otherwise.
            body: a pydantic model the JSON body must satisfy (``req.data``).
            query: a pydantic model of the query parameters (``req.args``).
            summary: one line for the OpenAPI document (default: the handler's docstring).
            responses: extra statuses the route answers, for the OpenAPI document.
        """
        method = method.upper()
        if role is DEFAULT_ROLE:
            role = Role.VIEWER if method == "GET" else Role.OPERATOR
        regex, _fmt, _conv = compile_path(path)
        doc = (handler.__doc__ or "").strip().splitlines()
        self._routes.append(_Route(method, path, regex, handler, Role(role) if role is not None else None,
                                   body, query, summary or (doc[0] if doc else ""), dict(responses or {})))

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of every route."""
        return build_openapi(self.title, [(r.method, r.path, r.role, r.body, r.query, r.summary, r.responses)
                                          for r in self._routes])

    def _metrics(self, _req: Request) -> Response:
        if self.registry is None:
            return Response(200, b"", CONTENT_TYPE_LATEST)
        return Response(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)

    def _match(self, method: str, path: str) -> tuple[_Route | None, dict[str, str], list[str]]:
        allowed: list[str] = []
        for r in self._routes:
            m = r.regex.match(path)
            if m is None:
                continue
            if r.method == method or (method == "HEAD" and r.method == "GET"):
                return r, m.groupdict(), []
            allowed.append(r.method)
        return None, {}, allowed

    # --- ASGI ---------------------------------------------------------------------------------

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = AsgiRequest(scope, receive)
        try:
            resp = await self._handle(request)
        except ClientDisconnect:
            return
        out: AsgiResponse
        if resp.stream is not None:
            out = StreamingResponse(iterate_in_threadpool(resp.stream), resp.status, headers=resp.headers,
                                    media_type=resp.content_type)
        else:
            out = AsgiResponse(resp.body, resp.status, headers=resp.headers, media_type=resp.content_type)
        await out(scope, receive, send)

    async def _handle(self, request: AsgiRequest) -> Response:
        method, path = request.method, request.url.path
        route, params, allowed = self._match(method, path)
        if route is None:
            if allowed:
                r = Response.error(405, f"{method} {path}: method not allowed (allowed: {', '.join(allowed)})")
                r.headers["Allow"] = ", ".join(sorted(set(allowed + (["HEAD"] if "GET" in allowed else []))))
                return r
            return Response.error(404, f"no route for {method} {path}")
        principal: Principal | None = None
        if route.role is not None:
            principal = self.auth.authenticate(request.headers.get("authorization"))
            if principal is None:
                r = Response.error(401, "missing or invalid bearer token (Authorization: Bearer <token>)")
                r.headers["WWW-Authenticate"] = 'Bearer realm="aiops"'
                return r
            if not principal.role.allows(route.role):
                return Response.error(403, f"{principal.name} (role {principal.role.value}) may not "
                                           f"{method} {route.path}: needs role {route.role.value}")
        body = b""
        if method not in ("GET", "HEAD"):
            body_or_error = await self._read_body(request)
            if isinstance(body_or_error, Response):
                return body_or_error
            body = body_or_error
        query = parse_qs(request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        req = Request(method, path, query, {k.lower(): v for k, v in request.headers.items()}, body,
                      params, principal)
        try:
            if route.query is not None:
                req.args = _validate(route.query, {k: (v if _is_list(route.query, k) else v[-1])
                                                   for k, v in query.items()}, "query")
            if route.body is not None:
                req.data = _validate(route.body, parse_json(body), "body")
            return await run_in_threadpool(self._call, route, req)
        except _FieldError as exc:
            return Response.error(400, exc.message, exc.field)
        except InputError as exc:
            return Response.error(400, str(exc))

    async def _read_body(self, request: AsgiRequest) -> bytes | Response:
        limit = self.limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return Response.error(400, f"Content-Length {declared[:20]!r}: expected a whole number")
            if int(declared) > limit:
                r = Response.error(413, f"request body over {limit} bytes")
                r.headers["Connection"] = "close"
                return r
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                r = Response.error(413, f"request body over {limit} bytes")
                r.headers["Connection"] = "close"
                return r
            chunks.append(chunk)
        return b"".join(chunks)

    def _call(self, route: _Route, req: Request) -> Response:
        try:
            return route.handler(req)
        except _FieldError as exc:
            return Response.error(400, exc.message, exc.field)
        except ValidationError as exc:
            message, name = validation_message(exc, "body")
            return Response.error(400, message, name)
        except InputError as exc:
            return Response.error(400, str(exc))
        except RecursionError:
            return Response.error(400, "request nested too deeply")
        except AiopsError as exc:
            return Response.error(409, str(exc))
        except Exception as exc:  # a handler bug answers 500 and never kills the server
            log.exception("http_handler_failed", path=route.path, error=type(exc).__name__)
            return Response.error(500, "internal error")

    # --- lifecycle ----------------------------------------------------------------------------

    def bind(self) -> None:
        """Bind the socket now (so :attr:`port` is known before :meth:`start`)."""
        if self._server is None:
            self._server = ServerThread(self, self.host, self._port, self.limits)

    def start(self) -> None:
        """Bind and serve on a background thread (returns once connections are accepted)."""
        self.bind()
        assert self._server is not None
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._port = self._server.port  # a restart binds the same port
            self._server.stop()
            self._server = None


class _FieldError(Exception):
    def __init__(self, message: str, field_name: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field_name


def _is_list(model: type[BaseModel], name: str) -> bool:
    info = model.model_fields.get(name)
    if info is None:
        return False
    kinds = [info.annotation, *get_args(info.annotation)]
    return any(k is list or get_origin(k) is list for k in kinds)


def _validate(model: type[BaseModel], value: Any, where: str) -> BaseModel:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        message, name = validation_message(exc, where)
        raise _FieldError(message, name) from None
    except RecursionError:
        raise _FieldError(f"{where}: nested too deeply", where) from None
