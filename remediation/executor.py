"""Execution of one action run: lease, plan, guards, apply, verify, roll back, advance.

The same code runs inside a Celery task (``aiops worker``) and in the agent's in-process
executor (no broker configured). Exactly-once in effect comes from three things:

1. the idempotency key per (alert fingerprint, playbook, step, alert episode) was claimed in the
   state DB when the run was created, so two agents seeing one alert create one run;
2. a lease (``status=running``, ``lease_until_ms``) lets one worker at a time execute a run; it
   is short (``run_lease_s``) and renewed by a heartbeat while the action and its verification
   run, so an action longer than the broker's visibility timeout keeps it (the redelivered task
   finds it leased) while a dead worker's run is taken over within a lease; a redelivered task
   of a finished run finds a terminal status and returns;
3. the plan (absolute target and previous state) is stored before anything changes, so a worker
   taking over from a killed one applies the same target instead of planning afresh.

A :class:`~aiops.errors.TemporaryError` puts the run back to ``queued`` (audited as
``retry_scheduled``) and propagates, so the caller retries with backoff; on the last attempt the
caller calls :meth:`Executor.fail`. Anything else is final: the run is recorded ``failed``.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aiops.backoff import backoff_s as shared_backoff_s
from aiops.config import SeriesReadSettings, StoreSettings
from aiops.contracts import alert_states
from aiops.errors import AiopsError, RemediationError, StoreError, TemporaryError, trim
from aiops.logs import get_logger
from aiops.model import ActionStatus, now_ms, parse_selector
from aiops.notification import queue_notification
from aiops.promstore import open_series_reader
from aiops.state import StateDB
from remediation.actions import ActionContext, get_action, remediation_notification
from remediation.guards import KILL_SWITCH_KEY, check_blast
from remediation.kube import Kube
from remediation.runs import TERMINAL, Run, RunStore, refuse_following
from remediation.settings import RemediationSettings

__all__ = ["Executor", "Dispatch", "LeaseHeld", "backoff_s"]

log = get_logger("remediation.executor")

Dispatch = Callable[[str, float], None]
"""Sends a run id to be executed after a delay in seconds (Celery or the in-process executor)."""

_RUNNING = (ActionStatus.RUNNING,)


class LeaseHeld(TemporaryError):
    """Another worker executes this run right now; try again when its lease ends (never fails the run)."""


def backoff_s(attempt: int, settings: RemediationSettings, rng: Callable[[], float] | None = None) -> float:
    """Delay before retry number ``attempt + 1``: the kernel's :func:`aiops.backoff.backoff_s` on
    ``retry_backoff_s`` / ``retry_backoff_max_s``.

    Examples:
        >>> s = RemediationSettings(retry_backoff_s=1, retry_backoff_max_s=5)
        >>> [backoff_s(n, s, rng=lambda: 1.0) for n in range(5)]
        [1.0, 2.0, 4.0, 5.0, 5.0]
    """
    return shared_backoff_s(attempt, initial_s=settings.retry_backoff_s, max_s=settings.retry_backoff_max_s,
                            rng=rng or random.random)


class Executor:
    """Executes action runs recorded in the state DB.

    Args:
        settings: the remediation section.
        db: the state database shared with the agents.
        store: where verifications read series: ``store`` settings (the file at ``path``, or
            Prometheus with ``read.prometheus_url``), a store file, or None (verifications fail).
        kube: Kubernetes clients (built from settings if not given).
        dispatch: how the next step of a playbook is sent on.
    """

    def __init__(self, settings: RemediationSettings, db: StateDB, store: StoreSettings | Path | None,
                 kube: Kube | None = None, dispatch: Dispatch | None = None) -> None:
        self.settings = settings
        self.db = db
        self.runs = RunStore(db)
        self.store = store
        self.kube = kube or Kube(settings.kubeconfig, settings.kube_context, settings.request_timeout_s)
        self.dispatch = dispatch
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        # set on shutdown: a verification in progress stops waiting and keeps its lease, so the
        # run is resumed (by this agent after restart, or by another worker) once the lease ends
        self.stopping = threading.Event()

    def lease_s(self, run: Run) -> float:
        """How long a worker may hold ``run`` without renewing it before others presume it dead
        (``run_lease_s``; :meth:`_keep_lease` renews it while the action and its verification run)."""
        return float(self.settings.run_lease_s)

    # --- the task body -----------------------------------------------------------------------

    def execute(self, run_id: str) -> str:
        """Run ``run_id`` once; returns the status it ended in (or was found in)."""
        # Hot path first: take the lease and read the kill switch in one transaction; only when
        # that fails do we look at why (finished already, leased elsewhere, missing).
        leased, switch = self.runs.acquire_lease(run_id, self.worker_id, self.settings.run_lease_s,
                                                 read_kv=KILL_SWITCH_KEY)
        if leased is None:
            run = self.runs.find(run_id)
            if run is None:
                log.error("action_run_missing", action_run_id=run_id)
                return "missing"
            verifying = run.status is ActionStatus.APPLIED and run.lease_owner is not None
            if (run.status in TERMINAL and not verifying) or run.status is ActionStatus.PLANNED \
                    or run.status is ActionStatus.PENDING_APPROVAL:
                log.info("action_run_not_runnable", action_run_id=run_id, status=run.status.value)
                return run.status.value
            wait_s = max(0.5, ((run.lease_until_ms or 0) - now_ms()) / 1000)
            raise LeaseHeld(f"action run {run_id} is {run.status.value}, leased by {run.lease_owner}", wait_s)
        if self.settings.kill_switch or switch == b"1":
            self._refuse(leased, "kill switch is on")
            return ActionStatus.REFUSED.value
        with self._keep_lease(leased):
            return self._run_leased(leased)

    @contextmanager
    def _keep_lease(self, run: Run) -> Iterator[None]:
        """Renew the run's lease every third of its length while the body runs.

        An action slower than ``visibility_timeout_s`` keeps its lease, so the broker's
        redelivery of the still-running task finds it leased (``LeaseHeld``) instead of
        taking it over and applying it a second time. A dead worker stops renewing and its
        run is taken over once the lease runs out.
        """
        stop = threading.Event()
        lease_s = self.lease_s(run)

        def renew() -> None:
            while not stop.wait(max(0.05, lease_s / 3)):
                try:
                    if not self.runs.extend_lease(run.id, self.worker_id, lease_s):
                        return  # finished (lease cleared) or taken over: nothing left to keep
                except AiopsError as exc:
                    log.warning("action_lease_renew_failed", action_run_id=run.id, error=str(exc))

        keeper = threading.Thread(target=renew, name=f"lease-{run.id[:8]}", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            stop.set()
            keeper.join(5)

    def _ctx(self, run: Run) -> ActionContext:
        return ActionContext(self.settings, self.db, self.kube, run_id=run.id, playbook=run.playbook)

    def _run_leased(self, run: Run) -> str:
        started = time.monotonic()
        action = get_action(run.action)
        ctx = self._ctx(run)
        try:
            try:
                params = action.Params.model_validate(run.params)
            except ValidationError as exc:
                raise RemediationError(f"action run {run.id}: {run.action} params: {trim(exc, 512)}") from exc
            if self._fired_again(run):
                self._refuse(run, "the alert fired again during the cooldown", escalate=False)
                return ActionStatus.REFUSED.value
            plan = run.extra.get("plan")
            if plan is None:  # first attempt: fix the target before anything changes
                plan = action.plan(params, ctx)
                self.runs.update_extra(run.id, self.worker_id, audit_event="plan_recorded", plan=plan)
            refusal = check_blast(plan.get("blast", {}), run.extra.get("guards") or {}, self.settings)
            if refusal:
                self._refuse(run, refusal, detail={"plan": plan})
                return ActionStatus.REFUSED.value
            if run.dry_run:
                self._finish(run, ActionStatus.DRY_RUN, result={"plan": plan, "changed": False})
                return ActionStatus.DRY_RUN.value
            applied_ms = now_ms()  # verification counts samples from the moment the change began
            result = action.apply(params, plan, ctx)
            # a worker resuming a verification finds the change in place (changed: false) and verifies again
            self._finish(run, ActionStatus.APPLIED, result={**result, "previous": plan.get("previous")},
                         keep_lease=bool(run.extra.get("verify")))
            log.info("action_applied", action_run_id=run.id, playbook=run.playbook, action=run.action,
                     duration_s=round(time.monotonic() - started, 3))
            verify = run.extra.get("verify")
            if verify:
                return self._verify(run, action, params, plan, verify, applied_ms)
            self._advance(run, ok=True)
            return ActionStatus.APPLIED.value
        except TemporaryError as exc:
            self.runs.transition(run.id, _RUNNING, ActionStatus.QUEUED, event="retry_scheduled", error=str(exc),
                                 lease_owner=None, lease_until_ms=None, detail={"error": str(exc)})
            log.warning("action_retry_scheduled", action_run_id=run.id, playbook=run.playbook, error=str(exc))
            raise
        except AiopsError as exc:
            self.fail(run.id, str(exc))
            return ActionStatus.FAILED.value
        except Exception as exc:  # an action bug fails its run; it never kills the worker
            log.exception("action_crashed", action_run_id=run.id, error=str(exc))
            self.fail(run.id, f"{exc.__class__.__name__}: {trim(exc)}")
            return ActionStatus.FAILED.value

    def _fired_again(self, run: Run) -> bool:
        """A delayed step started by a *resolved* alert (scale-down after a cooldown) is moot when
        the alert fires again meanwhile: alerting says so through the kernel's ``AlertStates`` contract."""
        alert = run.extra.get("alert") or {}
        if not run.extra.get("delay_s") or alert.get("state") != "resolved":
            return False
        states = alert_states(self.db)
        if states is None:  # no alerting in this process (the application imports it): nothing to ask
            return False
        since = states.firing_since_ms(run.alert_fingerprint)
        return since is not None and since > int(alert.get("starts_at_ms") or 0)

    def fail(self, run_id: str, error: str) -> None:
        """Record ``run_id`` as failed (final), tell its escalation receiver, stop its playbook."""
        from_ = (ActionStatus.QUEUED, ActionStatus.RUNNING, ActionStatus.APPROVED, ActionStatus.APPLIED)
        before = self.runs.get(run_id)
        if before.status in from_:
            # Queued before the run reads as failed, so whoever sees FAILED also finds the
            # escalation; the group key names the run, so a second queueing is a no-op.
            self._escalate(before, f"{before.playbook}: {before.action} failed: {error}")
        if self.runs.transition(run_id, from_, ActionStatus.FAILED, error=error, finished_ms=now_ms(),
                                lease_owner=None, lease_until_ms=None):
            run = self.runs.get(run_id)
            log.error("action_failed", action_run_id=run_id, playbook=run.playbook, error=error)
            self._advance(run, ok=False)

    def _refuse(self, run: Run, reason: str, *, detail: dict[str, Any] | None = None, escalate: bool = True) -> None:
        """A guard refused the run at execution: record it, skip the playbook's later steps and
        tell the step's ``escalate_to`` (a refusal is never silent)."""
        if not self.runs.transition(run.id, _RUNNING, ActionStatus.REFUSED, actor=self.worker_id, error=reason,
                                    finished_ms=now_ms(), lease_owner=None, lease_until_ms=None, detail=detail):
            return
        log.warning("action_refused", action_run_id=run.id, playbook=run.playbook, error=reason)
        if escalate:
            self._escalate(run, f"{run.playbook}: {run.action} refused: {reason}")
        self._advance(run, ok=False)

    def _finish(self, run: Run, status: ActionStatus, *, result: dict[str, Any] | None = None,
                error: str | None = None, detail: dict[str, Any] | None = None, keep_lease: bool = False) -> None:
        values: dict[str, Any] = {"finished_ms": now_ms()}
        if not keep_lease:
            values.update(lease_owner=None, lease_until_ms=None)
        if result is not None:
            values["result"] = result
        if error is not None:
            values["error"] = error
        self.runs.transition(run.id, _RUNNING, status, actor=self.worker_id, detail=detail, **values)

    # --- verification ----------------------------------------------------------------------------

    def _verify(self, run: Run, action: Any, params: Any, plan: dict[str, Any], verify: dict[str, Any],
                applied_ms: int) -> str:
        deadline = time.monotonic() + float(verify["within_s"])
        last: str = "no data"
        while True:
            ok, last = self._check(verify, applied_ms)
            if ok:
                self.runs.transition(run.id, (ActionStatus.APPLIED,), ActionStatus.VERIFIED, actor=self.worker_id,
                                     lease_owner=None, lease_until_ms=None, detail={"observed": last})
                self._advance(run, ok=True)
                return ActionStatus.VERIFIED.value
            if time.monotonic() >= deadline:
                break
            if self.stopping.wait(min(float(verify["poll_s"]), max(0.0, deadline - time.monotonic()))):
                log.info("action_verification_interrupted", action_run_id=run.id, playbook=run.playbook)
                return ActionStatus.APPLIED.value
        reason = f"verification failed after {verify['within_s']:g}s: {last}"
        status = ActionStatus.FAILED
        detail: dict[str, Any] = {"observed": last}
        if run.extra.get("on_failure", "rollback") == "rollback":
            try:
                detail["rollback"] = action.rollback(params, plan, self._ctx(run))
                status = ActionStatus.ROLLED_BACK
            except AiopsError as exc:
                detail["rollback_error"] = str(exc)
        self.runs.transition(run.id, (ActionStatus.APPLIED,), status, actor=self.worker_id, error=reason,
                             lease_owner=None, lease_until_ms=None, detail=detail)
        log.warning("action_verification_failed", action_run_id=run.id, playbook=run.playbook, error=reason)
        self._escalate(run, f"{run.playbook}: {run.action} did not fix it ({reason}); {status.value}")
        self._advance(run, ok=False)
        return status.value

    def _check(self, verify: dict[str, Any], since_ms: int) -> tuple[bool, str]:
        store = self.store
        read = store.read if isinstance(store, StoreSettings) else SeriesReadSettings()  # type: ignore[call-arg]
        try:
            reader = open_series_reader(read, store.path if isinstance(store, StoreSettings) else store)
        except StoreError as exc:
            return False, str(exc)
        try:
            found = reader.select(parse_selector(verify["query"]))
            latest = [s for s in (reader.latest(series, since_ms) for series in found) if s is not None]
        except AiopsError as exc:  # Prometheus unreachable: this poll fails, the next may not
            return False, str(exc)
        finally:
            reader.close()
        if not latest:
            return False, f"no samples of {verify['query']} since the change"
        values = [s.value for s in latest]
        if verify.get("below") is not None:
            worst = max(values)
            return worst < float(verify["below"]), f"{verify['query']} = {worst:g} (want < {verify['below']:g})"
        worst = min(values)
        return worst > float(verify["above"]), f"{verify['query']} = {worst:g} (want > {verify['above']:g})"

    # --- what comes after ----------------------------------------------------------------------------

    def _escalate(self, run: Run, message: str) -> None:
        receiver = run.extra.get("escalate_to")
        if not receiver:
            return
        group_key = f"remediation-escalation:{run.id}"
        alert = run.extra.get("alert") or {}
        notification = remediation_notification(
            str(receiver), group_key, message, severity="critical",
            labels={"playbook": run.playbook, "action": run.action, "kind": "escalation",
                    "trigger": str((alert.get("labels") or {}).get("alertname", ""))},
            extra={"source": "remediation", "action_run_id": run.id, "alert_fingerprint": run.alert_fingerprint})
        try:
            queue_notification(self.db, notification)
            self.runs.audit(run.id, run.playbook, "escalated", self.worker_id, {"receiver": receiver})
        except AiopsError as exc:
            log.error("escalation_failed", action_run_id=run.id, error=str(exc))

    def _advance(self, run: Run, ok: bool) -> None:
        """Start the playbook's next step, or refuse the remaining ones after a failure."""
        nxt = run.extra.get("next_run_id")
        if not nxt:
            return
        if not ok:
            refuse_following(self.runs, run, f"previous step {run.step} ended without success")
            return
        nxt_run = self.runs.get(str(nxt))
        if nxt_run.extra.get("approval"):
            expires = now_ms() + int(self.settings.approval_timeout_s * 1000)
            self.runs.transition(nxt_run.id, (ActionStatus.PLANNED,), ActionStatus.PENDING_APPROVAL,
                                 expires_ms=expires)
            return
        if self.runs.transition(nxt_run.id, (ActionStatus.PLANNED,), ActionStatus.QUEUED) and self.dispatch:
            self.dispatch(nxt_run.id, float(nxt_run.extra.get("delay_s", 0.0)))
