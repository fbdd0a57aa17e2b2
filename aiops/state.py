"""The platform's state outside the time series, through SQLAlchemy Core.

Alerts and their history, silences, the notification outbox, action runs, the audit log,
idempotency keys, anomalies and detector state live in these tables. SQLite (WAL) is the
embedded default; PostgreSQL (``postgresql+psycopg://...``) when several agents and workers
must agree (HA). Every statement here is plain Core, so both dialects run the same code, and
the tests run against both.

Packages may add tables of their own to :data:`metadata` in their modules; the agent imports
them before :meth:`StateDB.create_all`.

Examples:
    >>> db = StateDB("sqlite://")
    >>> db.create_all()
    >>> db.claim_idempotency_key("fp:scale:0", owner="run-1")
    True
    >>> db.claim_idempotency_key("fp:scale:0", owner="run-2")
    False
    >>> db.kv_put("detector/cpu", b"state"); db.kv_get("detector/cpu")
    b'state'
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from aiops.errors import StoreError
from aiops.model import Anomaly, now_ms

__all__ = [
    "StateDB",
    "metadata",
    "anomalies",
    "kv",
    "alerts",
    "alert_events",
    "silences",
    "outbox",
    "action_runs",
    "audit",
    "idempotency_keys",
    "json_safe",
]

metadata = MetaData()

anomalies = Table(
    "anomalies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("series", Text, nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("value", Float, nullable=True),  # NULL where the value was NaN/Inf
    Column("score", Float, nullable=False),
    Column("detector", String(128), nullable=False),
    Column("threshold", Float, nullable=False),
    Column("expected", Float, nullable=True),
    Column("lower", Float, nullable=True),
    Column("upper", Float, nullable=True),
    Index("anomalies_by_time", "ts_ms"),
    Index("anomalies_by_series", "series", "ts_ms"),
)

kv = Table(
    "kv",
    metadata,
    Column("key", String(512), primary_key=True),
    Column("value", LargeBinary, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

alerts = Table(  # the current state of each alert, one row per fingerprint
    "alerts",
    metadata,
    Column("fingerprint", String(32), primary_key=True),
    Column("rule", String(256), nullable=False, default=""),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("starts_at_ms", BigInteger, nullable=False),
    Column("ends_at_ms", BigInteger, nullable=False, default=0),
    Column("active_since_ms", BigInteger, nullable=True),
    Column("last_eval_ms", BigInteger, nullable=False, default=0),
    Column("value", Float, nullable=True),
    Column("source", String(64), nullable=False, default="rule"),
    Column("extra", JSON, nullable=False, default=dict),
)

alert_events = Table(  # every state change, kept long after the alert resolved
    "alert_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(32), nullable=False),
    Column("rule", String(256), nullable=False, default=""),
    Column("alertname", String(256), nullable=False, default=""),
    Column("severity", String(64), nullable=False, default=""),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("value", Float, nullable=True),
    Column("silenced_by", String(64), nullable=True),
    Column("note", Text, nullable=True),
    Index("alert_events_by_time", "ts_ms"),
    Index("alert_events_by_fp", "fingerprint", "ts_ms"),
)

silences = Table(
    "silences",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("matchers", JSON, nullable=False),
    Column("starts_at_ms", BigInteger, nullable=False),
    Column("ends_at_ms", BigInteger, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("created_ms", BigInteger, nullable=False),
    Column("expired_ms", BigInteger, nullable=True),
)

outbox = Table(  # notifications waiting for delivery; survives restarts
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("receiver", String(256), nullable=False),
    Column("group_key", Text, nullable=False, default=""),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False, default="queued"),  # queued, sending, sent, failed, held_back, skipped
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_ms", BigInteger, nullable=False, default=0),
    Column("created_ms", BigInteger, nullable=False),
    Column("sent_ms", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_until_ms", BigInteger, nullable=True),
    # held_back: notifications a rate limit folded into this one; merged_into: the row that
    # summarised this one (status held_back). Nothing is deleted: every row stays recorded.
    Column("held_back", Integer, nullable=False, default=0),
    Column("merged_into", Integer, nullable=True),
    Column("updated_ms", BigInteger, nullable=True),
    Index("outbox_due", "status", "next_attempt_ms"),
    Index("outbox_lane", "receiver", "status", "next_attempt_ms"),
    Index("outbox_merged", "merged_into"),
)

action_runs = Table(
    "action_runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("playbook", String(256), nullable=False),
    Column("action", String(128), nullable=False),
    Column("step", Integer, nullable=False, default=0),
    Column("params", JSON, nullable=False),
    Column("alert_fingerprint", String(32), nullable=False),
    Column("idempotency_key", String(512), nullable=False),
    Column("status", String(32), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("started_ms", BigInteger, nullable=True),
    Column("finished_ms", BigInteger, nullable=True),
    Column("result", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("approved_by", String(256), nullable=True),
    Column("dry_run", Integer, nullable=False, default=0),
    Column("extra", JSON, nullable=False, default=dict),
    # remediation: who executes the run now and until when (a dead worker's lease expires),
    # how many times it was attempted, and when a pending approval expires
    Column("lease_owner", String(128), nullable=True),
    Column("lease_until_ms", BigInteger, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("expires_ms", BigInteger, nullable=True),
    Index("action_runs_by_time", "created_ms"),
    Index("action_runs_by_status", "status"),
    Index("action_runs_by_playbook", "playbook", "created_ms"),
)

audit = Table(  # append-only: who did what to which run, when, with what result
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts_ms", BigInteger, nullable=False),
    Column("action_run_id", String(64), nullable=True),
    Column("playbook", String(256), nullable=False, default=""),
    Column("event", String(64), nullable=False),
    Column("actor", String(256), nullable=False, default="system"),
    Column("detail", JSON, nullable=False, default=dict),
    Index("audit_by_time", "ts_ms"),
    Index("audit_by_run", "action_run_id"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(512), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("result", JSON, nullable=True),
)


def json_safe(value: Any) -> Any:
    """Replace NaN/±Inf (which JSON and PostgreSQL JSON reject) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


class StateDB:
    """A SQLAlchemy engine on the state database, with the few operations everyone needs.

    Args:
        url: a SQLAlchemy URL: ``sqlite:///path.db`` (default, WAL) or
            ``postgresql+psycopg://user@host/db``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=10)
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(f"state database: cannot open {self.safe_url}: {exc}") from exc
        self._sqlite_lock = threading.RLock() if self.is_sqlite else None
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)

    @property
    def safe_url(self) -> str:
        """The URL without its password, for logs."""
        try:
            return self.engine.url.render_as_string(hide_password=True)
        except AttributeError:
            return self.url.split("@")[-1]

    def create_all(self) -> None:
        """Create every table registered on :data:`metadata` that does not exist yet."""
        try:
            metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"state database {self.safe_url}: cannot create tables: {exc}") from exc

    def drop_all(self) -> None:
        metadata.drop_all(self.engine)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction; commits on success, rolls back on error."""
        try:
            if self._sqlite_lock is not None:
                # SQLite allows one writer; serialise our own threads instead of spinning on busy
                with self._sqlite_lock, self.engine.begin() as conn:
                    yield conn
            else:
                with self.engine.begin() as conn:
                    yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"state database {self.safe_url}: {exc.__class__.__name__}: {exc}") from exc

    def dispose(self) -> None:
        self.engine.dispose()

    # --- idempotency ---------------------------------------------------------------------

    def claim_idempotency_key(self, key: str, owner: str) -> bool:
        """Claim ``key`` for ``owner``; False if anyone (this owner included) claimed it first.

        An INSERT on a primary key is atomic in both SQLite and PostgreSQL, so two agents or
        two deliveries of one task can never both win.
        """
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(idempotency_keys).values(key=key, owner=owner, created_ms=now_ms()))
            return True
        except IntegrityError:
            return False

    def idempotency_owner(self, key: str) -> str | None:
        with self.begin() as conn:
            row = conn.execute(select(idempotency_keys.c.owner).where(idempotency_keys.c.key == key)).first()
        return None if row is None else str(row[0])

    def release_idempotency_key(self, key: str, owner: str) -> None:
        with self.begin() as conn:
            conn.execute(
                delete(idempotency_keys).where(idempotency_keys.c.key == key, idempotency_keys.c.owner == owner)
            )

    # --- key-value (detector state) --------------------------------------------------------

    def kv_put(self, key: str, value: bytes) -> None:
        with self.begin() as conn:
            done = conn.execute(update(kv).where(kv.c.key == key).values(value=value, updated_ms=now_ms()))
            if done.rowcount == 0:
                conn.execute(insert(kv).values(key=key, value=value, updated_ms=now_ms()))

    def kv_put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Upsert many rows in one transaction (detector checkpoints: thousands at once)."""
        if not items:
            return
        stamp = now_ms()
        rows = [{"key": k, "value": v, "updated_ms": stamp} for k, v in items]
        name = self.engine.dialect.name
        if name not in ("postgresql", "sqlite"):
            for key, value in items:
                self.kv_put(key, value)
            return
        from sqlalchemy.dialects import postgresql, sqlite

        stmt: Any = (postgresql.insert if name == "postgresql" else sqlite.insert)(kv)
        stmt = stmt.on_conflict_do_update(index_elements=[kv.c.key],
                                          set_={"value": stmt.excluded.value, "updated_ms": stmt.excluded.updated_ms})
        with self.begin() as conn:
            for i in range(0, len(rows), 1000):
                conn.execute(stmt, rows[i:i + 1000])

    def kv_get(self, key: str) -> bytes | None:
        with self.begin() as conn:
            row = conn.execute(select(kv.c.value).where(kv.c.key == key)).first()
        return None if row is None else bytes(row[0])

    # --- anomalies -----------------------------------------------------------------------

    def record_anomalies(self, found: Sequence[Anomaly]) -> int:
        if not found:
            return 0
        rows = [
            {
                "series": a.series.key,
                "ts_ms": a.ts_ms,
                "value": _finite_or_none(a.value),
                "score": float(a.score),
                "detector": a.detector,
                "threshold": float(a.threshold),
                "expected": _finite_or_none(a.expected),
                "lower": _finite_or_none(a.lower),
                "upper": _finite_or_none(a.upper),
            }
            for a in found
        ]
        with self.begin() as conn:
            conn.execute(insert(anomalies), rows)
        return len(rows)

    def list_anomalies(self, since_ms: int = 0, series: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        q = select(anomalies).where(anomalies.c.ts_ms >= since_ms)
        if series is not None:
            q = q.where(anomalies.c.series == series)
        q = q.order_by(anomalies.c.ts_ms.desc()).limit(limit)
        with self.begin() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    # --- audit -----------------------------------------------------------------------------

    def audit(self, event_name: str, *, action_run_id: str | None = None, playbook: str = "",
              actor: str = "system", detail: dict[str, Any] | None = None) -> None:
        with self.begin() as conn:
            conn.execute(insert(audit).values(
                ts_ms=now_ms(), action_run_id=action_run_id, playbook=playbook, event=event_name,
                actor=actor, detail=json_safe(detail or {}),
            ))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def dumps(value: Any) -> str:
    """JSON text of ``value`` with NaN/Inf as null."""
    return json.dumps(json_safe(value), separators=(",", ":"), sort_keys=True)
