"""The agent's HTTP API from its settings: credentials, limits, dashboard login.

Authenticated by default: every route but ``/healthz``, ``/metrics``, ``/openapi.json`` and
``/api/v1/login`` needs a bearer token whose role covers it. With no token in the config
(``agent.tokens``, ``agent.api_token``) the agent generates an admin token on first start into
``agent.token_file`` (default ``api-token`` beside the store, mode 0600; the path is logged, the
value never), which the CLI and the dashboard on the same host read (:func:`local_token`).
A non-loopback ``agent.listen_host`` without a configured token is refused at start: a token
that only sits in a file on the agent's host is no credential for anybody else.

Dashboard users (``dashboard.users``, argon2/bcrypt hashes) log in with
``POST /api/v1/login {"username", "password"}`` and get a signed session token carrying their
name and role; the dashboard sends it on their writes, so the agent checks *their* role.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field

from aiops.config import AgentSettings, StoreSettings
from aiops.errors import ConfigError
from aiops.httpapi import HttpApi, Request, Response
from aiops.httpauth import (
    SESSION_KEY_FILE_NAME,
    TOKEN_FILE_NAME,
    Authenticator,
    Principal,
    Role,
    UserSettings,
    ensure_secret_file,
    hash_password,
    read_token_file,
    verify_password,
)
from aiops.httpserver import HttpLimits
from aiops.logs import get_logger

__all__ = ["build_agent_api", "local_token", "token_file_path", "is_loopback", "ApiConfig"]


class _Logins(Protocol):
    @property
    def users(self) -> Sequence[UserSettings]: ...


class ApiConfig(Protocol):
    """The sections the agent's API is built from (the application's ``Settings`` has them):
    ``agent`` and ``store`` of the ground floor, and the dashboard's logins."""

    @property
    def agent(self) -> AgentSettings: ...

    @property
    def store(self) -> StoreSettings: ...

    @property
    def dashboard(self) -> _Logins: ...

log = get_logger("aiops.agentapi")

_dummy_hash: list[str] = []


def _dummy() -> str:
    """A real hash, checked when the user name is unknown: the answer takes as long as for a known one."""
    if not _dummy_hash:
        _dummy_hash.append(hash_password(secrets.token_urlsafe(16)))
    return _dummy_hash[0]


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds only this machine (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_file_path(settings: ApiConfig) -> Path:
    """Where the generated admin token lives."""
    return settings.agent.token_file or settings.store.path.parent / TOKEN_FILE_NAME


def local_token(settings: ApiConfig) -> str | None:
    """The token the CLI and dashboard use on the agent's host: configured admin, or the file."""
    if settings.agent.api_token is not None:
        return settings.agent.api_token.get_secret_value()
    for t in settings.agent.tokens:
        if t.role is Role.ADMIN:
            return t.token.get_secret_value()
    try:
        return read_token_file(token_file_path(settings))
    except FileNotFoundError:
        return None


class LoginBody(BaseModel):
    """A dashboard login."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


def build_agent_api(settings: ApiConfig, registry: CollectorRegistry | None = None) -> HttpApi:
    """The agent's :class:`HttpApi` with credentials and limits from ``settings``.

    Raises:
        ConfigError: a non-loopback ``agent.listen_host`` without a configured token.
    """
    a = settings.agent
    tokens: list[tuple[str, Principal]] = [(t.token.get_secret_value(), Principal(t.name, t.role))
                                           for t in a.tokens]
    if a.api_token is not None:
        tokens.append((a.api_token.get_secret_value(), Principal("api-token", Role.ADMIN)))
    if not tokens:
        if not is_loopback(a.listen_host):
            raise ConfigError(f"agent.listen_host {a.listen_host!r} is not a loopback address and no token is "
                              "configured: set agent.tokens (or agent.api_token), or listen on 127.0.0.1")
        path = token_file_path(settings)
        token = ensure_secret_file(path, "api_token")
        log.info("api_token_file", path=str(path))
        tokens.append((token, Principal("local-admin", Role.ADMIN)))
    session_key: bytes | None = None
    if settings.dashboard.users:
        secret = a.session_secret.get_secret_value() if a.session_secret else \
            ensure_secret_file(settings.store.path.parent / SESSION_KEY_FILE_NAME, "session_key")
        session_key = secret.encode()
    auth = Authenticator(tokens, session_key)
    limits = HttpLimits(read_timeout_s=a.read_timeout_s, max_connections=a.max_connections,
                        max_body_bytes=a.max_body_bytes)
    api = HttpApi(a.listen_host, a.listen_port, registry=registry, auth=auth, limits=limits)
    if session_key is not None:
        _register_login(api, auth, settings)
    return api


def _register_login(api: HttpApi, auth: Authenticator, settings: ApiConfig) -> None:
    users = {u.name: u for u in settings.dashboard.users}
    ttl_s = settings.agent.session_ttl_s

    def login(req: Request) -> Response:
        """Log a dashboard user in: a session token carrying their name and role."""
        body: Any = req.data
        user = users.get(body.username)
        ok = verify_password(user.password_hash.get_secret_value() if user else _dummy(), body.password)
        if user is None or not ok:
            log.warning("login_failed", user=body.username[:64])
            time.sleep(0.2)  # slows guessing; the hash check already costs tens of ms
            return Response.error(401, "wrong user name or password")
        principal = Principal(user.name, user.role)
        log.info("login_succeeded", user=user.name, role=user.role.value)
        return Response.json({"status": "success", "data": {
            "token": auth.issue_session(principal, ttl_s), "name": user.name, "role": user.role.value,
            "expires_in_s": ttl_s}})

    api.route("POST", "/api/v1/login", login, role=None, body=LoginBody, responses={401: "Wrong credentials"})
