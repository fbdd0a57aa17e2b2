"""Action runs and the audit log in the state DB: every transition is one guarded UPDATE plus one audit row.

A transition names the statuses it may leave (``UPDATE ... WHERE id = ? AND status IN (...)``), so
two agents approving, two workers starting or a late delivery racing an expiry can never both
win: exactly one UPDATE matches, the others see ``False``. The audit row is written in the same
transaction as the change it records.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from aiops.errors import RemediationError
from aiops.model import ActionRun, ActionRunId, ActionStatus, Fingerprint, now_ms
from aiops.secretref import mask_secrets
from aiops.state import StateDB, audit, json_safe, kv
from remediation.tables import action_runs

__all__ = ["Run", "RunStore", "TERMINAL", "ACTIVE", "IN_FLIGHT", "new_run_id", "refuse_following"]

TERMINAL = frozenset({
    ActionStatus.REJECTED, ActionStatus.EXPIRED, ActionStatus.REFUSED, ActionStatus.APPLIED,
    ActionStatus.VERIFIED, ActionStatus.ROLLED_BACK, ActionStatus.FAILED, ActionStatus.DRY_RUN,
    ActionStatus.SKIPPED,
})
"""A run in one of these states is done; a late delivery of its task does nothing."""

ACTIVE = frozenset({
    ActionStatus.QUEUED, ActionStatus.RUNNING, ActionStatus.APPLIED, ActionStatus.VERIFIED, ActionStatus.ROLLED_BACK,
    ActionStatus.APPROVED, ActionStatus.PENDING_APPROVAL, ActionStatus.FAILED,
})
"""Runs that count against cooldowns and run limits (they were admitted, whatever came of them)."""

IN_FLIGHT = frozenset({ActionStatus.QUEUED, ActionStatus.RUNNING, ActionStatus.APPROVED})
"""Runs admitted and not finished: what the concurrency limits count (``applied`` while verifying
is counted by the caller where it matters)."""


def new_run_id() -> ActionRunId:
    return ActionRunId(uuid.uuid4().hex)


@dataclass(frozen=True, slots=True)
class Run:
    """One row of ``action_runs``."""

    id: str
    playbook: str
    action: str
    step: int
    params: dict[str, Any]
    alert_fingerprint: str
    idempotency_key: str
    status: ActionStatus
    created_ms: int
    started_ms: int | None = None
    finished_ms: int | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    approved_by: str | None = None
    dry_run: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    lease_owner: str | None = None
    lease_until_ms: int | None = None
    attempts: int = 0
    expires_ms: int | None = None

    @classmethod
    def from_row(cls, row: Any) -> Run:
        """From a result row's mapping (``RowMapping`` or a dict)."""
        d = dict(row)
        d["status"] = ActionStatus(d["status"])
        d["dry_run"] = bool(d["dry_run"])
        d["extra"] = dict(d.get("extra") or {})
        return cls(**d)

    def as_action_run(self) -> ActionRun:
        """The kernel's view, published on the bus topic ``actions``."""
        return ActionRun(
            id=ActionRunId(self.id), playbook=self.playbook, action=self.action, params=self.params,
            alert_fingerprint=Fingerprint(self.alert_fingerprint), idempotency_key=self.idempotency_key,
            status=self.status, created_ms=self.created_ms, started_ms=self.started_ms,
            finished_ms=self.finished_ms, result=self.result, error=self.error, approved_by=self.approved_by,
            extra={**self.extra, "step": self.step, "dry_run": self.dry_run, "attempts": self.attempts},
        )

    def as_json(self) -> dict[str, Any]:
        """The shown form: header values, URL credentials and secret-named values masked."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["status"] = self.status.value
        d["params"] = mask_secrets(d["params"])
        d["extra"] = mask_secrets(d["extra"])
        return d


class RunStore:
    """Reads and guarded writes of action runs and their audit trail.

    Args:
        db: the state database (tables must exist: ``StateDB.create_all``).
    """

    def __init__(self, db: StateDB) -> None:
        self.db = db

    # --- create / read ---------------------------------------------------------------------

    def create(self, run: Run, actor: str = "system", detail: Mapping[str, Any] | None = None,
               conn: Connection | None = None) -> Run:
        """Insert ``run`` and audit it under its status (``planned``, ``refused``, ...); on ``conn``
        (an open transaction, such as the admission lock's) when given."""
        values = {k: getattr(run, k) for k in run.__dataclass_fields__}
        values["status"] = run.status.value
        values["dry_run"] = int(run.dry_run)
        values["params"] = json_safe(run.params)
        values["extra"] = json_safe(run.extra)
        with self._tx(conn) as conn:
            conn.execute(insert(action_runs).values(**values))
            self._audit(conn, run.id, run.playbook, run.status.value, actor, {
                "action": run.action, "step": run.step, "params": mask_secrets(run.params),
                "alert": run.extra.get("alert"),
                "error": run.error, **(detail or {}),
            })
        return run

    def get(self, run_id: str) -> Run:
        with self.db.begin() as conn:
            row = conn.execute(select(action_runs).where(action_runs.c.id == run_id)).mappings().first()
        if row is None:
            raise RemediationError(f"action run {run_id!r} does not exist")
        return Run.from_row(row)

    def find(self, run_id: str) -> Run | None:
        try:
            return self.get(run_id)
        except RemediationError:
            return None

    def list(self, status: Iterable[str] | None = None, playbook: str | None = None, since_ms: int = 0,
             limit: int = 200, alert_fingerprint: str | None = None) -> builtins.list[Run]:
        q = select(action_runs).where(action_runs.c.created_ms >= since_ms)
        wanted = [s for s in (status or ()) if s]
        if wanted:
            q = q.where(action_runs.c.status.in_(wanted))
        if playbook:
            q = q.where(action_runs.c.playbook == playbook)
        if alert_fingerprint:
            q = q.where(action_runs.c.alert_fingerprint == alert_fingerprint)
        q = q.order_by(action_runs.c.created_ms.desc(), action_runs.c.step.desc()).limit(limit)
        with self.db.begin() as conn:
            return [Run.from_row(r) for r in conn.execute(q).mappings()]

    def audit_trail(self, run_id: str) -> builtins.list[dict[str, Any]]:
        with self.db.begin() as conn:
            rows = conn.execute(select(audit).where(audit.c.action_run_id == run_id).order_by(audit.c.id)).mappings()
            return [dict(r) for r in rows]

    def count_since(self, playbook: str | None, since_ms: int, statuses: Iterable[ActionStatus] = ACTIVE,
                    step: int | None = 0, conn: Connection | None = None, action: str | None = None) -> int:
        """Runs created since ``since_ms`` in ``statuses`` (of one playbook, step or action when given)."""
        q = select(func.count()).select_from(action_runs).where(
            action_runs.c.created_ms >= since_ms, action_runs.c.status.in_([s.value for s in statuses]))
        if playbook is not None:
            q = q.where(action_runs.c.playbook == playbook)
        if step is not None:
            q = q.where(action_runs.c.step == step)
        if action is not None:
            q = q.where(action_runs.c.action == action)
        with self._tx(conn) as conn:
            return int(conn.execute(q).scalar_one())

    @contextmanager
    def _tx(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.db.begin() as fresh:
                yield fresh

    # --- transitions ---------------------------------------------------------------------------

    def transition(self, run_id: str, from_: Iterable[ActionStatus], to: ActionStatus, *, actor: str = "system",
                   event: str | None = None, detail: Mapping[str, Any] | None = None, **values: Any) -> bool:
        """Move ``run_id`` from one of ``from_`` to ``to``, setting ``values``, and audit it.

        Returns False (and changes nothing) when the run was not in one of ``from_``.
        """
        row_values = {k: json_safe(v) if k in ("result", "extra", "params") else v for k, v in values.items()}
        row_values["status"] = to.value
        with self.db.begin() as conn:
            done = conn.execute(update(action_runs).where(
                action_runs.c.id == run_id, action_runs.c.status.in_([s.value for s in from_])).values(**row_values))
            if done.rowcount != 1:
                return False
            pb = conn.execute(select(action_runs.c.playbook).where(action_runs.c.id == run_id)).scalar_one()
            self._audit(conn, run_id, pb, event or to.value, actor, {**(detail or {}), **_audit_values(values)})
        return True

    def acquire_lease(self, run_id: str, owner: str, lease_s: float,
                      read_kv: str | None = None) -> tuple[Run | None, bytes | None]:
        """Take the run for execution: from queued/approved, or from running (or applied and still
        verifying) whose lease expired.

        Returns the run as it is now (None when someone else holds a live lease or it is not
        runnable) and, in the same transaction, the value of the ``kv`` key ``read_kv`` (the kill
        switch): one round trip on the hot path instead of three.
        """
        now = now_ms()
        runnable = [ActionStatus.QUEUED.value, ActionStatus.APPROVED.value]
        with self.db.begin() as conn:
            done = conn.execute(update(action_runs).where(
                action_runs.c.id == run_id,
                or_(action_runs.c.status.in_(runnable),
                    and_(action_runs.c.status == ActionStatus.RUNNING.value,
                         or_(action_runs.c.lease_until_ms.is_(None), action_runs.c.lease_until_ms < now)),
                    # applied, verification under way (lease kept), but its worker died: resume it
                    and_(action_runs.c.status == ActionStatus.APPLIED.value, action_runs.c.lease_owner.is_not(None),
                         action_runs.c.lease_until_ms < now)),
            ).values(status=ActionStatus.RUNNING.value, lease_owner=owner, lease_until_ms=now + int(lease_s * 1000),
                     attempts=action_runs.c.attempts + 1,
                     started_ms=func.coalesce(action_runs.c.started_ms, now)))
            value = None
            if read_kv is not None:
                found = conn.execute(select(kv.c.value).where(kv.c.key == read_kv)).first()
                value = None if found is None else bytes(found[0])
            if done.rowcount != 1:
                return None, value
            row = conn.execute(select(action_runs).where(action_runs.c.id == run_id)).mappings().first()
            assert row is not None
            run = Run.from_row(row)
            self._audit(conn, run_id, run.playbook, "started", owner, {"attempt": run.attempts})
        return run, value

    def extend_lease(self, run_id: str, owner: str, lease_s: float) -> bool:
        """Push the end of ``owner``'s lease on ``run_id`` to ``lease_s`` from now."""
        with self.db.begin() as conn:
            done = conn.execute(update(action_runs).where(
                action_runs.c.id == run_id, action_runs.c.lease_owner == owner,
            ).values(lease_until_ms=now_ms() + int(lease_s * 1000)))
            return bool(done.rowcount == 1)

    def update_extra(self, run_id: str, owner: str, audit_event: str | None = None, **extra: Any) -> None:
        """Merge ``extra`` into the run's ``extra`` column (only while ``owner`` holds the lease),
        auditing ``audit_event`` with ``extra`` as detail in the same transaction."""
        with self.db.begin() as conn:
            row = conn.execute(select(action_runs.c.extra, action_runs.c.lease_owner)
                               .where(action_runs.c.id == run_id).with_for_update()).first()
            if row is None or row[1] != owner:
                raise RemediationError(f"action run {run_id}: lease lost to {row[1] if row else 'nobody'}")
            merged = {**dict(row[0] or {}), **extra}
            conn.execute(update(action_runs).where(action_runs.c.id == run_id).values(extra=json_safe(merged)))
            if audit_event is not None:
                pb = conn.execute(select(action_runs.c.playbook).where(action_runs.c.id == run_id)).scalar_one()
                self._audit(conn, run_id, pb, audit_event, owner, extra)

    def merge_extra(self, run_id: str, **extra: Any) -> None:
        """Merge ``extra`` into the run's ``extra`` column (no lease needed: bookkeeping only)."""
        with self.db.begin() as conn:
            # FOR UPDATE (PostgreSQL; SQLite has one writer): a read-modify-write of the JSON
            # column racing the executor's would otherwise lose one of the two (its plan)
            row = conn.execute(select(action_runs.c.extra).where(action_runs.c.id == run_id).with_for_update()).first()
            if row is None:
                raise RemediationError(f"action run {run_id!r} does not exist")
            merged = {**dict(row[0] or {}), **extra}
            conn.execute(update(action_runs).where(action_runs.c.id == run_id).values(extra=json_safe(merged)))

    def audit(self, run_id: str | None, playbook: str, event: str, actor: str = "system",
              detail: Mapping[str, Any] | None = None) -> None:
        with self.db.begin() as conn:
            self._audit(conn, run_id, playbook, event, actor, detail or {})

    @staticmethod
    def _audit(conn: Any, run_id: str | None, playbook: str, event: str, actor: str,
               detail: Mapping[str, Any]) -> None:
        # the audit trail is shown (API, dashboard, CLI): no secret is ever written to it
        conn.execute(insert(audit).values(ts_ms=now_ms(), action_run_id=run_id, playbook=playbook, event=event,
                                          actor=actor, detail=json_safe(mask_secrets(dict(detail)))))


def _audit_values(values: Mapping[str, Any]) -> dict[str, Any]:
    keep = ("result", "error", "approved_by", "finished_ms")
    return {k: values[k] for k in keep if values.get(k) is not None}


def refuse_following(runs: RunStore, run: Run, reason: str) -> None:
    """Mark the planned steps after ``run`` skipped (its playbook stopped), each audited."""
    nxt = run.extra.get("next_run_id")
    while nxt:
        if not runs.transition(str(nxt), (ActionStatus.PLANNED,), ActionStatus.SKIPPED, error=reason,
                               finished_ms=now_ms()):
            return
        nxt = runs.get(str(nxt)).extra.get("next_run_id")
