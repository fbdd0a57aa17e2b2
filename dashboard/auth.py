"""Dashboard login: who the session is, and the credential its writes carry to the agent.

With ``dashboard.users`` configured (argon2 or bcrypt hashes, roles ``viewer`` / ``operator``)
every page needs a login. The form posts the name and password to the agent's
``POST /api/v1/login``; the agent checks the hash and answers a signed session token carrying
the user's name and role. The session keeps that token and every write sends it, so the
agent checks the *user's* role (a viewer's approval is refused 403 with their name) and
records the user as the principal. The dashboard never holds a password or the agent's admin
token for a logged-in user.

Without users the dashboard has no login: bound to a loopback address it is the local
operator console and writes with the agent's local token (what the CLI on the same host uses;
the agent records ``local-admin``); bound to any other address it is read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import streamlit as st

from aiops.agentapi import is_loopback, local_token
from aiops.errors import AiopsError

__all__ = ["Identity", "IDENTITY_KEY", "TOKEN_KEY", "login_required", "session_identity", "session_token",
           "local_identity", "render_login", "logout", "agent_url", "agent_request", "write_token", "AgentWriteError"]

IDENTITY_KEY = "aiops_identity"  # session-state key a login sets
TOKEN_KEY = "aiops_session_token"  # nosec B105 - a session-state key, not a password


class AgentWriteError(AiopsError):
    """The agent refused or could not be reached; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Identity:
    """The person using this session: their name and role (``viewer`` or ``operator``)."""

    name: str
    role: str


def login_required(settings: Any) -> bool:
    """Whether pages need a login (``dashboard.users`` is set)."""
    return bool(getattr(settings.dashboard, "users", None))


def session_identity() -> Identity | None:
    ident = st.session_state.get(IDENTITY_KEY)
    return ident if isinstance(ident, Identity) else None


def session_token() -> str | None:
    tok = st.session_state.get(TOKEN_KEY)
    return tok if isinstance(tok, str) and tok else None


def local_identity() -> Identity:
    """No users configured: the local operator on a loopback address, else a read-only viewer."""
    address = str(st.get_option("server.address") or "")
    if address and is_loopback(address):
        return Identity("", "operator")
    return Identity("anonymous", "viewer")


def agent_url(settings: Any) -> str:
    a = settings.agent
    host = "127.0.0.1" if a.listen_host in ("0.0.0.0", "", "::") else a.listen_host  # nosec B104 - maps a wildcard bind to the loopback address to call
    return f"http://{host}:{a.listen_port}"


def agent_request(settings: Any, method: str, path: str, payload: dict[str, Any] | None = None,
                  token: str | None = None) -> dict[str, Any]:
    """One call of the agent's API; errors are :class:`AgentWriteError` with the agent's message."""
    url = agent_url(settings)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        resp = httpx.request(method, url + path, json=payload if method != "DELETE" else None, headers=headers,
                             timeout=10)
    except httpx.HTTPError as exc:
        raise AgentWriteError(f"the agent at {url} is unreachable ({exc.__class__.__name__}): is `aiops run` "
                              "running with this config?") from exc
    is_json = resp.headers.get("content-type", "").startswith("application/json")
    answer: dict[str, Any] = resp.json() if is_json else {}
    if resp.status_code >= 400:
        raise AgentWriteError(f"the agent refused ({resp.status_code}): {str(answer.get('error', resp.text))[:256]}")
    return answer


def write_token(settings: Any) -> str | None:
    """The credential a write of this session carries: its session, or the local token (no login)."""
    token = session_token()
    if token or login_required(settings):
        return token
    ident = session_identity() or local_identity()
    return local_token(settings) if ident.role == "operator" else None


def render_login(settings: Any) -> bool:
    """Show the login form unless the session is logged in; True when it is."""
    if session_identity() is not None and session_token():
        return True
    st.title("aiops console")
    with st.form("login"):
        name = st.text_input("User")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Log in", type="primary")
    if submitted:
        try:
            got = agent_request(settings, "POST", "/api/v1/login", {"username": name, "password": password})
        except AiopsError as exc:
            st.error(str(exc))
            return False
        data = got.get("data") or {}
        st.session_state[IDENTITY_KEY] = Identity(str(data.get("name", name)), str(data.get("role", "viewer")))
        st.session_state[TOKEN_KEY] = str(data.get("token", ""))
        st.rerun()
    return False


def logout() -> None:
    st.session_state.pop(IDENTITY_KEY, None)
    st.session_state.pop(TOKEN_KEY, None)
