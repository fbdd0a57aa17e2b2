"""The agent's remediation component: alerts in, playbooks matched, action runs dispatched.

Subscribes to the bus topic ``alerts``; for each alert state change and each playbook whose
trigger matches, records the playbook's runs and dispatches the first (see
:mod:`remediation.planner`). With ``remediation.broker_url`` set, runs go to Celery workers
(``aiops worker``); without, to an in-process executor on the agent's threads. A sweeper thread
expires stale approvals and dispatches runs approved from the CLI.

HTTP routes on the agent API:
``GET /api/v1/actions`` (filters ``status``, ``playbook``, ``since``, ``limit``),
``GET /api/v1/actions/{id}`` (with its audit trail),
``POST /api/v1/actions/{id}/approve`` and ``/reject`` (role ``operator``; body
``{"reason": TEXT}``, optional and kept in the audit trail; the authenticated principal is
recorded, ``by`` in the body is ignored),
``POST /api/v1/killswitch`` (body ``{"enabled": true|false}``; role ``operator``). Reads need
the role ``viewer``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from aiops.bus import ACTIONS, ALERTS
from aiops.config import StoreSettings
from aiops.errors import AiopsError, InputError
from aiops.httpapi import Request, Response
from aiops.httpauth import Role
from aiops.logs import get_logger
from aiops.model import Alert
from aiops.protocols import AgentContext
from aiops.state import StateDB
from aiops.timeutil import parse_time_ms
from remediation.dispatch import BackgroundDispatch
from remediation.executor import Executor
from remediation.guards import kill_switch_on, set_kill_switch
from remediation.inprocess import InProcessRunner
from remediation.kube import Kube
from remediation.planner import Dispatch, approve, reject, safe_start, sweep
from remediation.playbook import Playbook, load_playbooks
from remediation.runs import RunStore
from remediation.settings import RemediationSettings

__all__ = ["RemediationComponent", "build_dispatch", "ActionsQuery", "DecisionBody", "KillSwitchBody",
           "RemediationConfig"]

log = get_logger("remediation.component")


class ActionsQuery(BaseModel):
    """Filters of ``GET /api/v1/actions``."""

    model_config = ConfigDict(extra="ignore")

    status: str | None = Field(None, max_length=256, description="comma-separated statuses")
    playbook: str | None = Field(None, max_length=256)
    since: str | None = Field(None, max_length=64)
    limit: int = Field(200, ge=1, le=10_000)


class DecisionBody(BaseModel):
    """An approval or rejection; ``by`` is ignored: the authenticated principal is recorded."""

    model_config = ConfigDict(extra="ignore")

    by: str | None = Field(None, max_length=256)
    reason: str = Field("", max_length=1000, description="kept in the audit trail")


class KillSwitchBody(BaseModel):
    """``{"enabled": true}`` stops every action run."""

    model_config = ConfigDict(extra="ignore")

    enabled: bool = Field(strict=True)
    by: str | None = Field(None, max_length=256, description="ignored: the authenticated principal is recorded")


class RemediationConfig(Protocol):
    """The sections remediation reads (the application's ``Settings`` has them)."""

    @property
    def remediation(self) -> RemediationSettings: ...

    @property
    def store(self) -> StoreSettings: ...


def build_dispatch(settings: RemediationConfig, db: StateDB, kube: Kube | None = None) -> tuple[Dispatch, Any]:
    """The dispatch function for ``settings`` and the object to stop at the end (runner or app)."""
    rs = settings.remediation
    if rs.broker_url is not None:
        from remediation.celery_app import make_celery
        from remediation.tasks import celery_dispatch

        app = make_celery(rs)
        return BackgroundDispatch(celery_dispatch(app, rs.queue), db), app
    executor = Executor(rs, db, settings.store, kube=kube)
    runner = InProcessRunner(executor, rs.executor_threads)
    executor.dispatch = runner.dispatch
    return runner.dispatch, runner


class RemediationComponent:
    """Matches alerts to playbooks and runs them through the guards.

    Args:
        settings: the whole configuration (remediation section, store path for verification).
        playbooks: already loaded playbooks (default: load ``remediation.playbooks``).
        kube: Kubernetes clients for the in-process executor (default: from settings).
        receivers: the notification receivers configured (``alerting.receivers`` names); every
            receiver a loaded playbook names must be one of them (None: not checked).
    """

    name = "remediation"

    def __init__(self, settings: RemediationConfig, playbooks: Sequence[Playbook] | None = None,
                 kube: Kube | None = None, receivers: Sequence[str] | None = None) -> None:
        self.settings = settings
        self.playbooks = list(playbooks) if playbooks is not None else load_playbooks(
            settings.remediation.playbooks, receivers=receivers)
        from remediation.celery_app import check_timeouts

        check_timeouts(settings.remediation, self.playbooks)
        self.kube = kube
        self.db: StateDB | None = None
        self.dispatch: Dispatch | None = None
        self._closer: Any = None
        self._bus: Any = None
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, ctx: AgentContext) -> None:
        self.attach(ctx.state)
        self._bus = ctx.bus
        ctx.bus.subscribe(ALERTS, self._on_alerts_event)
        api = ctx.api
        api.route("GET", "/api/v1/actions", self._list, role=Role.VIEWER, query=ActionsQuery)
        api.route("GET", "/api/v1/actions/{id}", self._get, role=Role.VIEWER)
        api.route("POST", "/api/v1/actions/{id}/approve", self._approve, role=Role.OPERATOR, body=DecisionBody,
                  responses={409: "The run is not waiting for approval"})
        api.route("POST", "/api/v1/actions/{id}/reject", self._reject, role=Role.OPERATOR, body=DecisionBody,
                  responses={409: "The run is not waiting for approval"})
        api.route("POST", "/api/v1/killswitch", self._killswitch, role=Role.OPERATOR, body=KillSwitchBody)
        api.route("GET", "/api/v1/killswitch", self._killswitch_state, role=Role.VIEWER)

    def attach(self, db: StateDB) -> None:
        """Use ``db`` and start dispatching (``start`` calls this; tests may call it alone)."""
        self.db = db
        self.dispatch, self._closer = build_dispatch(self.settings, db, self.kube)
        self._stop.clear()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="remediation-sweeper", daemon=True)
        self._sweeper.start()
        log.info("remediation_started", playbooks=[p.name for p in self.playbooks],
                 broker=self.settings.remediation.broker_url is not None, dry_run=self.settings.remediation.dry_run)

    def stop(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(5.0)
        if isinstance(self.dispatch, BackgroundDispatch):
            self.dispatch.close()
        if isinstance(self._closer, InProcessRunner):
            self._closer.stop()
        elif self._closer is not None:
            self._closer.close()

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.settings.remediation.sweep_interval_s):
            try:
                assert self.db is not None
                sweep(self.db, self.dispatch, self.settings.remediation.requeue_after_s)
            except AiopsError as exc:
                log.error("remediation_sweep_failed", error=str(exc))

    # --- alerts -----------------------------------------------------------------------------------

    def _on_alerts_event(self, alerts: Sequence[Alert]) -> None:
        self.on_alerts(alerts)

    def on_alerts(self, alerts: Sequence[Alert]) -> list[str]:
        """Start every matching playbook for each alert; returns the ids of the runs created."""
        assert self.db is not None, "start() or attach() first"
        created: list[str] = []
        for alert in alerts:
            if not isinstance(alert, Alert):
                log.warning("alert_ignored", error=f"expected Alert, got {type(alert).__name__}")
                continue
            for pb in self.playbooks:
                if pb.trigger.matches(alert):
                    runs = safe_start(alert, pb, self.settings.remediation, self.db, self.dispatch)
                    created.extend(r.id for r in runs)
                    if runs and self._bus is not None:
                        self._bus.publish(ACTIONS, [r.as_action_run() for r in runs])
        return created

    # --- HTTP ---------------------------------------------------------------------------------------

    def _runs(self) -> RunStore:
        assert self.db is not None
        return RunStore(self.db)

    def _list(self, req: Request) -> Response:
        """Action runs, newest first."""
        q: ActionsQuery = req.args
        status = [s for s in (q.status or "").split(",") if s]
        runs = self._runs().list(status=status, playbook=q.playbook,
                                 since_ms=self._since(q.since), limit=q.limit)
        return Response.json({"status": "success", "data": [r.as_json() for r in runs]})

    @staticmethod
    def _since(text: str | None) -> int:
        try:
            return parse_time_ms(text) if text else 0
        except InputError as exc:
            raise InputError(f"query.since: {exc}") from None

    def _get(self, req: Request) -> Response:
        """One action run with its audit trail."""
        store = self._runs()
        run = store.find(req.params["id"])
        if run is None:
            return Response.error(404, f"action run {req.params['id']!r} does not exist")
        return Response.json({"status": "success", "data": {**run.as_json(), "audit": store.audit_trail(run.id)}})

    @staticmethod
    def _reason(req: Request) -> str:
        return str(req.data.reason or "").strip() if req.data is not None else ""

    def _approve(self, req: Request) -> Response:
        """Approve a run waiting for approval; records the authenticated caller."""
        assert self.db is not None
        by = req.who
        if self._runs().find(req.params["id"]) is None:
            return Response.error(404, f"action run {req.params['id']!r} does not exist")
        run = approve(self.db, req.params["id"], by, self.dispatch, reason=self._reason(req))
        return Response.json({"status": "success", "data": run.as_json()})

    def _reject(self, req: Request) -> Response:
        """Reject a run waiting for approval; records the authenticated caller."""
        assert self.db is not None
        by = req.who
        if self._runs().find(req.params["id"]) is None:
            return Response.error(404, f"action run {req.params['id']!r} does not exist")
        run = reject(self.db, req.params["id"], by, reason=self._reason(req))
        return Response.json({"status": "success", "data": run.as_json()})

    def _killswitch(self, req: Request) -> Response:
        """Turn the kill switch on (no action runs) or off; records the authenticated caller."""
        assert self.db is not None
        set_kill_switch(self.db, req.data.enabled, req.who)
        return self._killswitch_state(req)

    def _killswitch_state(self, req: Request) -> Response:
        """Whether the kill switch is on."""
        assert self.db is not None
        return Response.json({"status": "success",
                              "data": {"enabled": kill_switch_on(self.settings.remediation, self.db)}})
