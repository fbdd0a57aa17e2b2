"""Who is looking, and the one door every write goes through.

Every change the dashboard makes (create or expire a silence, approve or reject a run, the kill
switch) is a call of :func:`agent_write`: it checks the viewer's role, names the actor, and calls
the agent's HTTP API with the agent's token, so the agent's own checks and audit apply. Adding
login (issue 10) changes :func:`current_identity` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import streamlit as st

from aiops.errors import AiopsError, InputError
from dashboard.data import DashboardData

__all__ = ["Identity", "IDENTITY_KEY", "current_identity", "can_write", "agent_write", "AgentWriteError"]

IDENTITY_KEY = "aiops_identity"  # session-state key a login sets
ROLES = ("viewer", "operator")


class AgentWriteError(AiopsError):
    """The agent refused or could not be reached; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Identity:
    """The person using this session: their name and role (``viewer`` or ``operator``)."""

    name: str
    role: str


def current_identity() -> Identity:
    """The session's identity: set by the login when there is one, else an operator named by the UI.

    Without dashboard login everyone who reaches the dashboard acts with the agent's token (as
    before); the name they type is recorded as the actor.
    """
    ident = st.session_state.get(IDENTITY_KEY)
    if isinstance(ident, Identity):
        return ident
    return Identity(name="", role="operator")


def can_write(ident: Identity | None = None) -> bool:
    """True when the session may see and use write controls."""
    return (ident or current_identity()).role == "operator"


def agent_write(data: DashboardData, method: str, path: str, payload: dict[str, Any] | None = None,
                *, actor: str = "") -> dict[str, Any]:
    """Send one write to the agent's API as the current identity.

    Args:
        data: where the agent's address and token come from.
        method: ``POST`` or ``DELETE``.
        path: the API path, e.g. ``/api/v1/silences``.
        payload: the JSON body; ``by`` / ``createdBy`` are filled with the actor.
        actor: the name typed in the form, used when the session has no logged-in name.

    Raises:
        InputError: a viewer tried to write, or no actor name is known.
        AgentWriteError: the agent is unreachable or answered an error (its message, trimmed).
    """
    ident = current_identity()
    if not can_write(ident):
        raise InputError(f"{ident.name or 'this session'} is a viewer: changes need the operator role")
    who = (ident.name or actor).strip()
    body = dict(payload or {})
    if method != "DELETE":
        if not who:
            raise InputError("say who you are (your name is recorded in the audit trail)")
        body.setdefault("by", who)
        if "createdBy" in body or path.endswith("/silences"):
            body["createdBy"] = who
    a = data.settings.agent
    host = "127.0.0.1" if a.listen_host in ("0.0.0.0", "", "::") else a.listen_host
    url = f"http://{host}:{a.listen_port}"
    token = a.api_token
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
    try:
        resp = httpx.request(method, url + path, json=body if method != "DELETE" else None, headers=headers,
                             timeout=10)
    except httpx.HTTPError as exc:
        raise AgentWriteError(f"the agent at {url} is unreachable ({exc.__class__.__name__}): is `aiops run` "
                              "running with this config?") from exc
    is_json = resp.headers.get("content-type", "").startswith("application/json")
    answer: dict[str, Any] = resp.json() if is_json else {}
    if resp.status_code >= 400:
        raise AgentWriteError(f"the agent refused ({resp.status_code}): {str(answer.get('error', resp.text))[:256]}")
    return answer
