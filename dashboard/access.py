"""Who is looking, and the one door every write goes through.

Every change the dashboard makes (create or expire a silence, approve or reject a run, the kill
switch) is a call of :func:`agent_write`: it checks the viewer's role and calls the agent's HTTP
API with the session's credential (:mod:`dashboard.auth`: the logged-in user's session token,
or the local token on a loopback dashboard without users), so the agent's own role checks and
audit apply and the agent records who acted.
"""

from __future__ import annotations

from typing import Any

from aiops.errors import InputError
from dashboard.auth import (
    IDENTITY_KEY,
    AgentWriteError,
    Identity,
    agent_request,
    local_identity,
    session_identity,
    write_token,
)
from dashboard.data import DashboardData

__all__ = ["Identity", "IDENTITY_KEY", "current_identity", "can_write", "agent_write", "AgentWriteError"]

ROLES = ("viewer", "operator")


def current_identity() -> Identity:
    """The session's identity: the logged-in user, else the local operator or a viewer (no login)."""
    return session_identity() or local_identity()


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
    if method != "DELETE" and who:
        body.setdefault("by", who)  # informational: the agent records the authenticated principal
        if "createdBy" in body or path.endswith("/silences"):
            body["createdBy"] = who
    token = write_token(data.settings)
    if token is None:
        raise AgentWriteError("no credential for the agent: log in, or run the dashboard on the agent's host")
    return agent_request(data.settings, method, path, body, token)
