"""Who is calling: bearer tokens with roles, dashboard sessions, the generated local token.

Every route of an :class:`~aiops.httpapi.HttpApi` names the role it needs. A caller proves a
:class:`Principal` with ``Authorization: Bearer <token>``: a configured API token
(``agent.tokens``, ``agent.api_token``), the token the agent generated on first start
(:func:`ensure_token_file`), or a dashboard session issued by ``POST /api/v1/login`` after a
password check (:func:`verify_password`: argon2 or bcrypt hashes). Token comparisons are
constant-time (:func:`hmac.compare_digest`, against every configured token, so the time does
not say which one nearly matched).

Roles: ``intake`` posts alerts only; ``viewer`` reads; ``operator`` reads and changes
silences, approvals and the kill switch; ``admin`` may do everything.

Examples:
    >>> auth = Authenticator([("s3cret", Principal("ci", Role.OPERATOR))])
    >>> auth.authenticate("Bearer s3cret")
    Principal(name='ci', role=<Role.OPERATOR: 'operator'>)
    >>> auth.authenticate("Bearer wrong") is None
    True
    >>> Role.OPERATOR.allows(Role.VIEWER), Role.VIEWER.allows(Role.OPERATOR)
    (True, False)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from aiops.errors import ConfigError
from aiops.logs import get_logger

__all__ = [
    "Role", "Principal", "Authenticator", "ApiTokenSettings", "UserSettings",
    "ensure_token_file", "read_token_file", "ensure_secret_file", "hash_password", "verify_password",
    "TOKEN_FILE_NAME", "SESSION_KEY_FILE_NAME",
]

log = get_logger("aiops.auth")

TOKEN_FILE_NAME = "api-token"  # nosec B105 - a file name, not a password
SESSION_KEY_FILE_NAME = "session-key"
_SESSION_PREFIX = "s1."


class Role(str, Enum):
    """What a principal may do; a route names the role it needs."""

    INTAKE = "intake"
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        """Whether a principal with this role may call a route that needs ``needed``."""
        return needed in _ALLOWS[self]


_ALLOWS: dict[Role, frozenset[Role]] = {
    Role.INTAKE: frozenset({Role.INTAKE}),
    Role.VIEWER: frozenset({Role.VIEWER}),
    Role.OPERATOR: frozenset({Role.VIEWER, Role.OPERATOR}),
    Role.ADMIN: frozenset(Role),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: ``name`` is what approvals and silences record."""

    name: str
    role: Role


class ApiTokenSettings(BaseModel):
    """One API token of ``agent.tokens``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$",
                      description="Who holds the token; recorded on approvals and silences.")
    role: Role = Field(description="intake, viewer, operator or admin.")
    token: SecretStr = Field(description="The bearer token (at least 16 characters; "
                             "write it as ${env:NAME} or ${file:/path}).")

    @field_validator("token")
    @classmethod
    def _long_enough(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 16:
            raise ValueError("shorter than 16 characters")
        return v


class UserSettings(BaseModel):
    """One dashboard user of ``dashboard.users``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$", description="Login name.")
    role: Role = Field(Role.VIEWER, description="viewer or operator.")
    password_hash: SecretStr = Field(description="argon2 ($argon2id$...) or bcrypt ($2b$...) hash; "
                                     "make one with `aiops hash-password`.")

    @field_validator("role")
    @classmethod
    def _dashboard_role(cls, v: Role) -> Role:
        if v not in (Role.VIEWER, Role.OPERATOR):
            raise ValueError("expected viewer or operator")
        return v

    @field_validator("password_hash")
    @classmethod
    def _known_hash(cls, v: SecretStr) -> SecretStr:
        if not _hash_kind(v.get_secret_value()):
            raise ValueError("expected an argon2 ($argon2id$...) or bcrypt ($2b$...) hash")
        return v


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Authenticator:
    """Maps an ``Authorization`` header to a :class:`Principal`.

    Args:
        tokens: ``(token, principal)`` pairs.
        session_key: HMAC key of dashboard sessions; ``None`` accepts no session.
    """

    def __init__(self, tokens: Sequence[tuple[str, Principal]] = (), session_key: bytes | None = None) -> None:
        self._tokens = [(hashlib.sha256(t.encode()).digest(), p) for t, p in tokens]
        self._session_key = session_key

    @property
    def has_credentials(self) -> bool:
        """Whether any token is configured (without one, every protected route answers 401)."""
        return bool(self._tokens)

    def authenticate(self, header: str | None) -> Principal | None:
        """The principal of ``Authorization: Bearer ...``, or ``None``."""
        if not header or not header[:7].lower() == "bearer ":
            return None
        given = header[7:].strip()
        if given.startswith(_SESSION_PREFIX):
            return self._session(given)
        digest = hashlib.sha256(given.encode("utf-8", "replace")).digest()
        found: Principal | None = None
        for want, principal in self._tokens:  # all of them: the time says nothing about which matched
            if hmac.compare_digest(want, digest) and found is None:
                found = principal
        return found

    def issue_session(self, principal: Principal, ttl_s: float, now_s: float | None = None) -> str:
        """A signed session token for ``principal`` valid ``ttl_s`` seconds."""
        if self._session_key is None:
            raise ConfigError("sessions: no session key configured")
        exp = int((time.time() if now_s is None else now_s) + ttl_s)
        payload = _b64(json.dumps({"sub": principal.name, "role": principal.role.value, "exp": exp}).encode())
        sig = _b64(hmac.new(self._session_key, payload.encode(), hashlib.sha256).digest())
        return f"{_SESSION_PREFIX}{payload}.{sig}"

    def _session(self, token: str) -> Principal | None:
        if self._session_key is None:
            return None
        payload, _, sig = token[len(_SESSION_PREFIX):].partition(".")
        want = _b64(hmac.new(self._session_key, payload.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(want.encode(), sig.encode("utf-8", "replace")):
            return None
        try:
            data = json.loads(_unb64(payload))
            if int(data["exp"]) < time.time():
                return None
            return Principal(str(data["sub"]), Role(data["role"]))
        except (ValueError, KeyError, TypeError):
            return None


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


def ensure_secret_file(path: Path, what: str) -> str:
    """Read the secret in ``path``, creating a random one (mode 0600) if the file is absent.

    The path is logged, the value never.
    """
    try:
        return read_token_file(path)
    except FileNotFoundError:
        pass
    try:
        _write_private(path, secrets.token_urlsafe(32))
        log.warning(f"{what}_generated", path=str(path))
    except FileExistsError:  # another process created it between our read and write
        pass
    return read_token_file(path)


def ensure_token_file(data_dir: Path) -> tuple[Path, str]:
    """The agent's local admin token: ``<data_dir>/api-token``, created on first start."""
    path = data_dir / TOKEN_FILE_NAME
    return path, ensure_secret_file(path, "api_token")


def read_token_file(path: Path) -> str:
    """The token stored in ``path`` (what the CLI and the dashboard on the agent's host use).

    Raises:
        FileNotFoundError: no such file.
        ConfigError: the file is readable by others or empty.
    """
    st = path.stat()
    if st.st_mode & 0o077:
        raise ConfigError(f"{path}: token file is readable by others (mode {st.st_mode & 0o777:o}); chmod 600 it")
    text = path.read_text().strip()
    if not text:
        raise ConfigError(f"{path}: token file is empty")
    return text


def _hash_kind(hashed: str) -> str:
    if hashed.startswith("$argon2"):
        return "argon2"
    if hashed.startswith(("$2a$", "$2b$", "$2y$")):
        return "bcrypt"
    return ""


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` for ``dashboard.users[].password_hash``."""
    from argon2 import PasswordHasher

    return PasswordHasher().hash(password)


def verify_password(hashed: str, password: str) -> bool:
    """Whether ``password`` matches an argon2 or bcrypt ``hashed`` (never raises on a mismatch)."""
    kind = _hash_kind(hashed)
    if kind == "argon2":
        from argon2 import PasswordHasher
        from argon2.exceptions import Argon2Error, InvalidHashError

        try:
            return PasswordHasher().verify(hashed, password)
        except (Argon2Error, InvalidHashError):
            return False
    if kind == "bcrypt":
        import bcrypt

        try:
            return bcrypt.checkpw(password.encode(), hashed.encode())
        except ValueError:
            return False
    return False
