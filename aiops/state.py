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
from functools import cache
from pathlib import Path
from typing import Any

from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.script import ScriptDirectory
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
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from aiops.errors import StoreError
from aiops.logs import get_logger
from aiops.model import Anomaly, now_ms

__all__ = [
    "StateDB",
    "metadata",
    "anomalies",
    "kv",
    "audit",
    "idempotency_keys",
    "leases",
    "json_safe",
    "kv_upsert",
]

log = get_logger("aiops.state")

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
BASELINE_REVISION = "0001_baseline"
_MIGRATION_LOCK = 0x41494F5053  # "AIOPS": the PostgreSQL advisory lock key of schema migrations

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

leases = Table(  # named leases (one leader among agents); see aiops/lease.py
    "leases",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("owner", String(256), nullable=False),
    Column("until_ms", BigInteger, nullable=False),
    Column("acquired_ms", BigInteger, nullable=False),
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


def _first_line(exc: SQLAlchemyError) -> str:
    """The driver's own message, without SQLAlchemy's SQL echo and "Background on this error" link."""
    orig = getattr(exc, "orig", None)
    text = str(orig) if orig is not None else str(exc)
    return f"{type(orig or exc).__name__}: {text.splitlines()[0] if text else ''}"


def kv_upsert(conn: Connection, items: Sequence[tuple[str, bytes]], stamp_ms: int) -> None:
    """Upsert ``items`` into ``kv`` on ``conn`` (PostgreSQL or SQLite), 1,000 rows per statement.

    For writes that must share a transaction with other statements (fenced detector
    checkpoints, ``detectors/sharding.py``); :meth:`StateDB.kv_put_many` is the same in a
    transaction of its own.
    """
    from sqlalchemy.dialects import postgresql, sqlite

    rows = [{"key": k, "value": v, "updated_ms": stamp_ms} for k, v in items]
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    for i in range(0, len(rows), 1000):
        # one multi-row statement, not executemany: the sqlite3 driver re-takes the GIL after
        # every row, so beside a busy detection thread 500 rows took 2.5 s (5 ms switch interval each)
        stmt: Any = insert(kv).values(rows[i:i + 1000])
        stmt = stmt.on_conflict_do_update(index_elements=[kv.c.key],
                                          set_={"value": stmt.excluded.value, "updated_ms": stmt.excluded.updated_ms})
        conn.execute(stmt)


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
        """Create or upgrade the schema: :meth:`upgrade` (kept under this name for its callers)."""
        self.upgrade()

    def upgrade(self) -> str:
        """Bring the schema to the newest Alembic migration (``aiops/migrations/versions``).

        A database written by aiops 0.1.0 (tables, no ``alembic_version``) is stamped at the
        baseline first, since it has exactly the baseline's schema; a new one is created from
        scratch. On PostgreSQL an advisory lock makes agents that start together migrate one
        after the other; on SQLite the database's own write lock does.

        Returns:
            The revision the database is at now.

        Raises:
            StoreError: the database cannot be read or a migration failed.
        """
        script = _migrations()
        head = script.get_current_head()
        with self.begin() as conn:
            if not self.is_sqlite:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            ctx = MigrationContext.configure(connection=conn, opts={"render_as_batch": True})
            current = ctx.get_current_revision()
            if current == head:
                return str(head)
            if current is None and inspect(conn).has_table("alerts"):
                ctx.stamp(script, BASELINE_REVISION)  # written by 0.1.0, before migrations existed
                current = BASELINE_REVISION

            def steps(rev: Any, _context: Any) -> Any:
                return script._upgrade_revs("head", rev)  # what ``alembic upgrade head`` runs

            ctx = MigrationContext.configure(connection=conn, opts={"fn": steps, "render_as_batch": True})
            with Operations.context(ctx):
                ctx.run_migrations()
            log.info("state_db_upgraded", previous=current, revision=head, url=self.safe_url)
        return str(head)

    def revision(self) -> str | None:
        """The Alembic revision the database is at (None: never migrated)."""
        with self.begin() as conn:
            rev = MigrationContext.configure(connection=conn).get_current_revision()
        return None if rev is None else str(rev)

    def drop_all(self) -> None:
        """Drop every table, ours or not, and the migration history (tests, ``aiops`` resets)."""
        with self.begin() as conn:
            found = MetaData()
            found.reflect(conn)
            found.drop_all(conn)

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
            raise StoreError(f"state database {self.safe_url}: {_first_line(exc)}") from exc

    @contextmanager
    def locked(self, name: str) -> Iterator[Connection]:
        """A transaction holding the lock ``name`` from its first statement to its commit.

        Everything read and written on the yielded connection is serialised against every
        other holder of ``name`` in any process on this database, which makes "count, then
        insert" atomic across agents. PostgreSQL: a transaction-scoped advisory lock
        (``pg_advisory_xact_lock``, released by commit, rollback or a dropped connection).
        SQLite: the transaction starts by writing the ``kv`` row ``lock/<name>``, which takes
        the database's single write lock before anything is read, so the reads that follow see
        every transaction committed before and none commits until this one ends.
        """
        try:
            if self._sqlite_lock is not None:
                with self._sqlite_lock, self.engine.begin() as conn:
                    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                    ins = sqlite_insert(kv).values(key=f"lock/{name}", value=b"", updated_ms=now_ms())
                    conn.execute(ins.on_conflict_do_update(index_elements=[kv.c.key],
                                                           set_={"updated_ms": ins.excluded.updated_ms}))
                    yield conn
            else:
                with self.engine.begin() as conn:
                    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
                    yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"state database {self.safe_url}: {_first_line(exc)}") from exc

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
        if self.engine.dialect.name not in ("postgresql", "sqlite"):
            for key, value in items:
                self.kv_put(key, value)
            return
        with self.begin() as conn:
            kv_upsert(conn, items, stamp)

    def kv_get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """The rows of ``keys`` that exist, 1,000 keys per query."""
        out: dict[str, bytes] = {}
        with self.begin() as conn:
            for i in range(0, len(keys), 1000):
                rows = conn.execute(select(kv.c.key, kv.c.value).where(kv.c.key.in_(keys[i:i + 1000]))).all()
                out.update((str(k), bytes(v)) for k, v in rows)
        return out

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


@cache
def _migrations() -> ScriptDirectory:
    """The migration scripts, read once per process (every test opens many databases)."""
    return ScriptDirectory(str(MIGRATIONS_DIR))


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
