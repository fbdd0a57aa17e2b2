"""From an alert and a matching playbook to recorded action runs: claim, render, admit, dispatch.

One run per step is created up front, linked by ``extra.next_run_id``; step 0 is queued (or
pending approval, or refused) at once and each later step is started by the executor when the
previous one succeeded. The idempotency key of a step is
``<alert fingerprint>:<playbook>:<step>:<alert startsAt>``: the same firing seen twice (two
agents, a replayed webhook) claims it once, while the same alert firing again later (a new
``startsAt``) is a new episode that may run again, subject to cooldowns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import insert, select

from aiops.contracts import alert_states
from aiops.errors import AiopsError, RemediationError, trim
from aiops.logs import get_logger
from aiops.model import ActionStatus, Alert, now_ms
from aiops.state import StateDB, idempotency_keys
from remediation import template
from remediation.guards import admission_refusal, kill_switch_on
from remediation.param_guards import render_step
from remediation.playbook import Playbook
from remediation.runs import Run, RunStore, new_run_id, refuse_following
from remediation.settings import RemediationSettings

__all__ = ["start_playbook", "idempotency_key", "alert_json", "approve", "reject", "sweep"]

log = get_logger("remediation.planner")

Dispatch = Callable[[str, float], None]

ADMISSION_LOCK = "remediation/admission"
"""The state-DB lock every agent takes to admit and record a playbook's runs."""


def idempotency_key(alert: Alert, playbook: str, step: int) -> str:
    return f"{alert.fingerprint}:{playbook}:{step}:{alert.starts_at_ms}"


def alert_json(alert: Alert) -> dict[str, Any]:
    return {"fingerprint": alert.fingerprint, "labels": alert.label_dict, "annotations": alert.annotation_dict,
            "state": alert.state.value, "starts_at_ms": alert.starts_at_ms, "value": alert.value}


def start_playbook(alert: Alert, pb: Playbook, settings: RemediationSettings, db: StateDB,
                   dispatch: Dispatch | None, actor: str = "system") -> list[Run]:
    """Record the runs of ``pb`` for ``alert`` and dispatch its first step.

    Returns the runs created, or ``[]`` when another agent (or an earlier delivery) already
    claimed this alert episode for this playbook.
    """
    runs = RunStore(db)
    n = len(pb.steps)
    ids = [new_run_id() for _ in range(n)]
    keys = [idempotency_key(alert, pb.name, i) for i in range(n)]
    refusal: str | None = None
    rendered: list[dict[str, Any]] = []
    verifies: list[dict[str, Any] | None] = []
    for i, step in enumerate(pb.steps):
        try:
            rendered.append(render_step(step.action, step.params, alert, "params"))
            v = step.verify.model_dump() if step.verify else None
            if v is not None:
                v["query"] = str(template.render(v["query"], alert))
            verifies.append(v)
        except RemediationError as exc:
            rendered.append(dict(step.params))
            verifies.append(None)
            refusal = refusal or f"steps[{i}]: {exc}"
    if refusal is None and kill_switch_on(settings, db):
        refusal = "kill switch is on"
    dry_run = settings.dry_run or pb.guards.dry_run
    guards = pb.guards.model_dump()
    created: list[Run] = []
    # Admission and recording are one transaction under one lock for every agent on the state
    # DB: two agents (or two alerts) can no longer both pass a cooldown, run limit or
    # concurrency cap by counting before either inserted.
    with db.locked(ADMISSION_LOCK) as conn:
        # the episode's key is claimed in the same transaction as its runs: a crash between
        # the two can no longer leave an episode claimed with nothing recorded
        if conn.execute(select(idempotency_keys.c.key).where(idempotency_keys.c.key == keys[0])).first():
            log.info("playbook_deduplicated", playbook=pb.name, fingerprint=alert.fingerprint,
                     idempotency_key=keys[0])
            return []
        now = now_ms()
        conn.execute(insert(idempotency_keys), [{"key": k, "owner": o, "created_ms": now}
                                                for k, o in zip(keys, ids, strict=True)])
        for i in range(n):
            if refusal is None:
                why = admission_refusal(pb, i, rendered[i], settings, runs, now=now, conn=conn)
                refusal = f"steps[{i}]: {why}" if why and i > 0 else why
        for i, step in enumerate(pb.steps):
            approval = pb.needs_approval(i) and not dry_run
            if refusal is not None:
                status = ActionStatus.REFUSED
            elif i > 0:
                status = ActionStatus.PLANNED
            elif approval:
                status = ActionStatus.PENDING_APPROVAL
            else:
                status = ActionStatus.QUEUED
            extra = {
                "alert": alert_json(alert), "guards": guards, "verify": verifies[i], "approval": approval,
                "delay_s": step.delay_s, "on_failure": step.on_failure, "escalate_to": step.escalate_to,
                "next_run_id": ids[i + 1] if i + 1 < n else None, "steps": n, "source": pb.source,
            }
            run = Run(id=ids[i], playbook=pb.name, action=step.action, step=i, params=rendered[i],
                      alert_fingerprint=alert.fingerprint, idempotency_key=keys[i], status=status, created_ms=now,
                      error=refusal if status is ActionStatus.REFUSED else None, dry_run=dry_run, extra=extra,
                      finished_ms=now if status is ActionStatus.REFUSED else None,
                      expires_ms=now + int(settings.approval_timeout_s * 1000)
                      if status is ActionStatus.PENDING_APPROVAL else None)
            created.append(runs.create(run, actor=actor, conn=conn))
    first = created[0]
    if refusal is not None:
        log.warning("playbook_refused", playbook=pb.name, fingerprint=alert.fingerprint, error=refusal)
    elif first.status is ActionStatus.QUEUED and dispatch is not None:
        _dispatch(runs, first.id, pb.steps[0].delay_s, dispatch)
    log.info("playbook_started", playbook=pb.name, fingerprint=alert.fingerprint, action_run_id=first.id,
             status=first.status.value, dry_run=dry_run)
    return created


def _dispatch(runs: RunStore, run_id: str, delay_s: float, dispatch: Dispatch) -> None:
    try:
        dispatch(run_id, delay_s)
    except Exception as exc:  # broker down: the run stays queued, flagged; the sweeper sends it again
        try:
            runs.merge_extra(run_id, dispatch_failed=True)
            runs.audit(run_id, runs.get(run_id).playbook, "dispatch_failed", detail={"error": trim(exc)})
        except AiopsError as db_exc:
            log.error("action_dispatch_failure_unrecorded", action_run_id=run_id, error=str(db_exc))
        log.error("action_dispatch_failed", action_run_id=run_id, error=str(exc))


def approve(db: StateDB, run_id: str, by: str, dispatch: Dispatch | None, reason: str = "") -> Run:
    """Approve a pending run (it then runs); expired or already decided runs raise.

    ``reason`` (optional) is kept in the audit row of the decision.

    Raises:
        RemediationError: naming the run and its current status.
    """
    runs = RunStore(db)
    run = runs.get(run_id)
    if run.status is ActionStatus.PENDING_APPROVAL and run.expires_ms is not None and run.expires_ms < now_ms():
        _expire(runs, run)
        raise RemediationError(f"action run {run_id}: approval expired")
    stale = _stale(db, run)
    if run.status is ActionStatus.PENDING_APPROVAL and stale:
        if runs.transition(run_id, (ActionStatus.PENDING_APPROVAL,), ActionStatus.REFUSED, actor=by,
                           event="approval_stale", error=f"approval refused: {stale}", finished_ms=now_ms(),
                           detail={"approved_by": by}):
            refuse_following(runs, run, f"step {run.step} was approved after its alert {stale}")
        raise RemediationError(f"action run {run_id}: approval refused, {stale} (stale; audited)")
    if not runs.transition(run_id, (ActionStatus.PENDING_APPROVAL,), ActionStatus.APPROVED, actor=by,
                           detail={"reason": reason} if reason else None, approved_by=by):
        raise RemediationError(f"action run {run_id} is {runs.get(run_id).status.value}, not pending approval")
    if dispatch is not None and runs.transition(run_id, (ActionStatus.APPROVED,), ActionStatus.QUEUED, actor=by):
        _dispatch(runs, run_id, float(run.extra.get("delay_s") or 0.0), dispatch)
    return runs.get(run_id)


def _stale(db: StateDB, run: Run) -> str | None:
    """Why approving ``run`` now would act on an alert episode that is over, or None.

    A run started by a firing alert is stale once alerting's record of that alert (the
    :class:`~aiops.contracts.AlertStates` contract) shows it resolved, or firing again as a later
    episode (another ``startsAt``).
    """
    alert = run.extra.get("alert") or {}
    states = alert_states(db)
    if alert.get("state") != "firing" or states is None:
        return None
    row = states.episode(run.alert_fingerprint)
    if row is None:
        return None
    if row[0] == "resolved":
        return "the alert resolved"
    if int(row[1]) != int(alert.get("starts_at_ms") or 0):
        return "the alert episode ended (it fired again since)"
    return None


def reject(db: StateDB, run_id: str, by: str, reason: str = "") -> Run:
    """Reject a pending run; the playbook's later steps are refused. ``reason`` goes to the audit row."""
    runs = RunStore(db)
    if not runs.transition(run_id, (ActionStatus.PENDING_APPROVAL,), ActionStatus.REJECTED, actor=by,
                           detail={"reason": reason} if reason else None, approved_by=by, finished_ms=now_ms(),
                           error=f"rejected by {by}: {reason}" if reason else None):
        raise RemediationError(f"action run {run_id} is {runs.get(run_id).status.value}, not pending approval")
    run = runs.get(run_id)
    refuse_following(runs, run, f"step {run.step} was rejected by {by}")
    return run


def _expire(runs: RunStore, run: Run) -> None:
    if runs.transition(run.id, (ActionStatus.PENDING_APPROVAL,), ActionStatus.EXPIRED, finished_ms=now_ms(),
                       error="approval timed out"):
        refuse_following(runs, run, f"step {run.step} expired waiting for approval")


def sweep(db: StateDB, dispatch: Dispatch | None, requeue_after_s: float | None = None) -> int:
    """Expire pending approvals past their deadline, dispatch runs approved elsewhere (CLI), send
    again the runs whose dispatch failed (broker down), and, with ``requeue_after_s``, the runs
    lost after they were sent: still ``queued`` that long past their delay, or ``running`` /
    verifying with a lease that ended that long ago (a worker killed and its task lost with a
    broker restarted without persistence).

    Returns how many runs it touched. Safe to call from several agents at once: every change is
    a guarded transition, and an extra delivery of a run is refused by its lease, so each run is
    expired, dispatched and executed once.
    """
    runs = RunStore(db)
    now = now_ms()
    touched = 0
    for run in runs.list(status=[ActionStatus.PENDING_APPROVAL.value], limit=1000):
        if run.expires_ms is not None and run.expires_ms < now:
            _expire(runs, run)
            touched += 1
    if dispatch is None:
        return touched
    for run in runs.list(status=[ActionStatus.APPROVED.value], limit=1000):
        if runs.transition(run.id, (ActionStatus.APPROVED,), ActionStatus.QUEUED):
            _dispatch(runs, run.id, float(run.extra.get("delay_s") or 0.0), dispatch)
            touched += 1
    for run in runs.list(status=[ActionStatus.QUEUED.value], limit=1000):
        if run.extra.get("dispatch_failed"):  # the broker was down when it was first sent
            runs.merge_extra(run.id, dispatch_failed=False)
            runs.audit(run.id, run.playbook, "dispatch_retried")
            _dispatch(runs, run.id, 0.0, dispatch)
            touched += 1
        elif requeue_after_s is not None and _lost(run, now, requeue_after_s):
            touched += _redispatch(runs, run, now, "queued and not taken by any worker", dispatch)
    if requeue_after_s is not None:
        for run in runs.list(status=[ActionStatus.RUNNING.value, ActionStatus.APPLIED.value], limit=1000):
            if run.lease_until_ms is not None and run.lease_owner is not None \
                    and run.lease_until_ms + requeue_after_s * 1000 < now and _lost(run, now, requeue_after_s):
                touched += _redispatch(runs, run, now, f"its worker {run.lease_owner} stopped renewing the lease",
                                       dispatch)
    return touched


def _lost(run: Run, now: int, requeue_after_s: float) -> bool:
    sent = int(run.extra.get("dispatched_ms") or run.created_ms)
    return sent + int((float(run.extra.get("delay_s") or 0.0) + requeue_after_s) * 1000) < now


def _redispatch(runs: RunStore, run: Run, now: int, why: str, dispatch: Dispatch) -> int:
    runs.merge_extra(run.id, dispatched_ms=now, redispatched=int(run.extra.get("redispatched") or 0) + 1)
    runs.audit(run.id, run.playbook, "redispatched", detail={"reason": why, "status": run.status.value})
    log.warning("action_redispatched", action_run_id=run.id, playbook=run.playbook, error=why)
    _dispatch(runs, run.id, 0.0, dispatch)
    return 1


def safe_start(alert: Alert, pb: Playbook, settings: RemediationSettings, db: StateDB,
               dispatch: Dispatch | None) -> list[Run]:
    """:func:`start_playbook`, logging instead of raising (a bad alert never stops the agent)."""
    try:
        return start_playbook(alert, pb, settings, db, dispatch)
    except AiopsError as exc:
        log.error("playbook_start_failed", playbook=pb.name, fingerprint=alert.fingerprint, error=str(exc))
        return []
