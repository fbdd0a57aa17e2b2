"""Shared fixtures: clean environment, free ports, state databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aiops.state import StateDB

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
PG_ADMIN_URL = os.environ.get("AIOPS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("AIOPS_TEST_REDIS", "redis://127.0.0.1:6379")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AIOPS_* variable from the developer's shell leaks into a test (like httpx's clean_environ)."""
    for key in list(os.environ):
        if key.startswith("AIOPS_") and not key.startswith("AIOPS_TEST_"):
            monkeypatch.delenv(key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 20.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s")


def wait_for(cond: Any, timeout_s: float = 30.0, what: str = "condition", interval_s: float = 0.05) -> Any:
    """Poll ``cond`` until it returns something truthy (returned), or fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m app ARGS`` in a subprocess and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=cwd, env=full_env, text=True,
                          capture_output=True, timeout=timeout)


def _pg_available() -> bool:
    try:
        db = StateDB(PG_ADMIN_URL)
        with db.engine.connect():
            pass
        db.dispose()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database on the local server, dropped afterwards."""
    if not _pg_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    import sqlalchemy as sa

    name = f"aiops_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database, dropped after the test."""
    with pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def state_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateDB]:
    """The state database on SQLite and on PostgreSQL: tests using it run on both."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
        db = StateDB(url)
        db.create_all()
        yield db
        db.dispose()
    else:
        with pg_database() as url:
            db = StateDB(url)
            db.create_all()
            try:
                yield db
            finally:
                db.dispose()


@pytest.fixture
def shared_datasets() -> Path:
    """../shared/datasets, or a skip that says it is absent."""
    path = SHARED / "datasets"
    if not (path / "nab").is_dir():
        pytest.skip(f"shared datasets absent: {path / 'nab'} (labelled NAB series live beside the repo)")
    return path
