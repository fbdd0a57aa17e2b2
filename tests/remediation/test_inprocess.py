"""Planning, guards, approvals and audit through the in-process executor (no broker, no cluster).

The actions used here (notify, command, http) need no Kubernetes; the Kubernetes actions are
tested against the fake API server with a real worker in test_k8s_*.py.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from rem_helpers import alert, playbook, wait_status
from sqlalchemy import select

from aiops.errors import RemediationError
from aiops.model import ActionStatus, now_ms
from aiops.notification import outbox
from aiops.state import StateDB
from remediation import RunStore, approve, reject, set_kill_switch, sweep


def decode(payload: dict[str, Any]) -> Any:
    """Decode an outbox payload with alerting's own codec: the format is the contract between us."""
    from aiops.notification import decode_notification

    return decode_notification(payload)


NOTIFY = {"action": "notify", "params": {"receiver": "oncall", "message": "{{ $labels.deployment }} is slow"}}


def outbox_rows(db: StateDB) -> list[dict[str, Any]]:
    with db.begin() as conn:
        return [dict(r) for r in conn.execute(select(outbox)).mappings()]




def test_alert_runs_steps_in_order_and_audits_each(component: Any, db: StateDB) -> None:
    second = {"action": "notify", "params": {"receiver": "team", "message": "done"}}
    comp = component([playbook([NOTIFY, second])])
    ids = comp.on_alerts([alert()])
    assert len(ids) == 2
    wait_status(db, ids[1], ActionStatus.APPLIED)
    runs = RunStore(db)
    assert runs.get(ids[0]).status is ActionStatus.APPLIED
    rows = outbox_rows(db)
    assert [r["receiver"] for r in sorted(rows, key=lambda r: r["id"])] == ["oncall", "team"]
    first = decode(rows[0]["payload"])  # the notification format alerting's outbox delivers
    assert first.receiver == "oncall" and first.alerts[0].annotation_dict["summary"] == "llm is slow"
    assert first.extra["action_run_id"] == ids[0] and first.alerts[0].label_dict["playbook"] == "pb"
    events = [a["event"] for a in runs.audit_trail(ids[0])]
    assert events[:1] == ["queued"] and "started" in events and "plan_recorded" in events and events[-1] == "applied"
    assert runs.get(ids[0]).extra["alert"]["labels"]["deployment"] == "llm"


def test_same_alert_twice_runs_once_new_episode_runs_again(component: Any, db: StateDB) -> None:
    comp = component([playbook([NOTIFY])])
    first = comp.on_alerts([alert(starts_at_ms=5_000)])
    assert comp.on_alerts([alert(starts_at_ms=5_000)]) == []
    wait_status(db, first[0], ActionStatus.APPLIED)
    again = comp.on_alerts([alert(starts_at_ms=9_000)])
    wait_status(db, again[0], ActionStatus.APPLIED)
    assert len(outbox_rows(db)) == 2


def test_kill_switch_refuses_and_audits(component: Any, db: StateDB) -> None:
    comp = component([playbook([NOTIFY])])
    set_kill_switch(db, True, "alice")
    (rid,) = comp.on_alerts([alert()])
    run = RunStore(db).get(rid)
    assert run.status is ActionStatus.REFUSED and run.error == "kill switch is on"
    assert [a["event"] for a in RunStore(db).audit_trail(rid)] == ["refused"]
    set_kill_switch(db, False, "alice")
    assert outbox_rows(db) == []


def test_kill_switch_stops_queued_runs_in_the_executor(component: Any, db: StateDB) -> None:
    comp = component([playbook([{**NOTIFY, "delay_s": 0.5}])])
    (rid,) = comp.on_alerts([alert()])
    set_kill_switch(db, True, "bob")  # after queueing, before the delayed run executes
    assert wait_status(db, rid, ActionStatus.REFUSED).error == "kill switch is on"
    assert outbox_rows(db) == []


def test_dry_run_records_the_plan_and_changes_nothing(component: Any, db: StateDB) -> None:
    comp = component([playbook([NOTIFY])], dry_run=True)
    (rid,) = comp.on_alerts([alert()])
    run = wait_status(db, rid, ActionStatus.DRY_RUN)
    assert run.dry_run and run.result["plan"]["target"] == {"receiver": "oncall"} and run.result["changed"] is False
    assert outbox_rows(db) == []


def test_approval_flow_approve_reject_expire(component: Any, db: StateDB) -> None:
    comp = component([playbook([{**NOTIFY, "approval": True}, {"action": "notify", "params": {
        "receiver": "team", "message": "after"}}])], approval_timeout_s=60)
    a, b = comp.on_alerts([alert(starts_at_ms=1)])
    runs = RunStore(db)
    assert runs.get(a).status is ActionStatus.PENDING_APPROVAL and runs.get(b).status is ActionStatus.PLANNED
    assert outbox_rows(db) == []
    approve(db, a, "carol", comp.dispatch)
    wait_status(db, b, ActionStatus.APPLIED)
    assert runs.get(a).approved_by == "carol"
    assert any(e["event"] == "approved" and e["actor"] == "carol" for e in runs.audit_trail(a))
    with pytest.raises(RemediationError, match="not pending approval"):
        approve(db, a, "carol", comp.dispatch)

    c, d = comp.on_alerts([alert(starts_at_ms=2)])
    reject(db, c, "dave")
    assert runs.get(c).status is ActionStatus.REJECTED and runs.get(d).status is ActionStatus.SKIPPED

    e, f = comp.on_alerts([alert(starts_at_ms=3)])
    with db.begin() as conn:  # the approval deadline passed
        from sqlalchemy import update

        from remediation.tables import action_runs
        conn.execute(update(action_runs).where(action_runs.c.id == e).values(expires_ms=now_ms() - 1))
    assert wait_status(db, e, ActionStatus.EXPIRED).error == "approval timed out"  # the sweeper thread
    wait_status(db, f, ActionStatus.SKIPPED)  # the sweeper skips the later step right after
    assert len(outbox_rows(db)) == 2


def test_approval_from_another_process_is_dispatched_by_the_sweeper(component: Any, db: StateDB) -> None:
    comp = component([playbook([{**NOTIFY, "approval": True}])])
    (rid,) = comp.on_alerts([alert()])
    approve(db, rid, "erin", dispatch=None)  # as the CLI does without a broker
    wait_status(db, rid, ActionStatus.APPLIED)
    assert sweep(db, comp.dispatch) == 0


def test_cooldown_and_run_limit_refuse_with_reason(component: Any, db: StateDB) -> None:
    comp = component([playbook([NOTIFY], name="cool", guards={"cooldown_s": "1h"}),
                      playbook([NOTIFY], name="limited", guards={"max_runs": 2, "window_s": "1h"},
                               match={"alertname": "Other"})])
    (first,) = comp.on_alerts([alert(starts_at_ms=1)])
    (second,) = comp.on_alerts([alert(starts_at_ms=2)])
    assert RunStore(db).get(second).status is ActionStatus.REFUSED
    assert "cooldown" in (RunStore(db).get(second).error or "")
    got = [comp.on_alerts([alert(starts_at_ms=10 + i, alertname="Other")])[0] for i in range(3)]
    assert [RunStore(db).get(r).status for r in got][2] is ActionStatus.REFUSED
    assert "run limit: 2 runs" in (RunStore(db).get(got[2]).error or "")


def test_missing_label_refuses_the_run(component: Any, db: StateDB) -> None:
    comp = component([playbook([{"action": "notify", "params": {"receiver": "x", "message": "{{ $labels.gpu }}"}}])])
    (rid,) = comp.on_alerts([alert()])
    run = RunStore(db).get(rid)
    assert run.status is ActionStatus.REFUSED and "has no label 'gpu'" in (run.error or "")


def test_commands_only_when_allowed_and_failures_escalate(component: Any, db: StateDB, tmp_path: Path) -> None:
    pb = playbook([{"action": "command", "params": {"argv": ["sh", "-c", "echo hi; exit 3"]},
                    "escalate_to": "oncall"}])
    (rid,) = component([pb]).on_alerts([alert(starts_at_ms=1)])
    assert "allow_commands is false" in (RunStore(db).get(rid).error or "")
    (rid,) = component([pb], allow_commands=True).on_alerts([alert(starts_at_ms=2)])
    run = wait_status(db, rid, ActionStatus.FAILED)
    assert "exit status 3" in (run.error or "")
    deadline = time.monotonic() + 10  # the run is marked failed first, then its escalation is queued
    while not outbox_rows(db) and time.monotonic() < deadline:
        time.sleep(0.02)
    (row,) = outbox_rows(db)
    sent = decode(row["payload"])
    assert row["receiver"] == "oncall" and sent.alerts[0].label_dict["kind"] == "escalation"
    assert "exit status 3" in sent.alerts[0].annotation_dict["summary"]


class _Flaky(BaseHTTPRequestHandler):
    failures = 0
    calls: list[Any] = []

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append(body)
        status = 500 if len(type(self).calls) <= type(self).failures else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("failures,expected", [(2, ActionStatus.APPLIED), (99, ActionStatus.FAILED)])
def test_http_action_retries_5xx_then_succeeds_or_fails(component: Any, db: StateDB, failures: int,
                                                        expected: ActionStatus) -> None:
    handler = type("H", (_Flaky,), {"failures": failures, "calls": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/admin/drain"
        request = {"url": url, "json": {"pod": "{{ $labels.deployment }}"}}
        pb = playbook([{"action": "http", "params": {"request": request}}])
        (rid,) = component([pb], max_retries=3).on_alerts([alert()])
        run = wait_status(db, rid, expected)
    finally:
        server.shutdown()
        server.server_close()
    assert handler.calls[0] == {"pod": "llm"}
    assert len(handler.calls) == (3 if failures == 2 else 4)
    events = [a["event"] for a in RunStore(db).audit_trail(rid)]
    assert events.count("retry_scheduled") == (2 if failures == 2 else 4)
    if expected is ActionStatus.FAILED:
        assert "gave up after 4 attempts" in (run.error or "") and "HTTP 500" in (run.error or "")


def test_delayed_scale_down_is_refused_when_the_alert_fires_again(component: Any, db: StateDB) -> None:
    from sqlalchemy import insert

    from aiops.model import AlertState
    from alerting.tables import alerts

    comp = component([playbook([{**NOTIFY, "delay_s": 0.2}], state="resolved")])
    (quiet,) = comp.on_alerts([alert(starts_at_ms=1_000, state=AlertState.RESOLVED)])
    assert wait_status(db, quiet, ActionStatus.APPLIED)  # nothing fired again: the cooldown step runs
    resolved = alert(starts_at_ms=5_000, state=AlertState.RESOLVED)
    (rid,) = comp.on_alerts([resolved])
    with db.begin() as conn:  # alerting records a new firing of the same alert within the cooldown
        conn.execute(insert(alerts).values(fingerprint=resolved.fingerprint, labels={}, annotations={},
                                           state="firing", starts_at_ms=9_000))
    run = wait_status(db, rid, ActionStatus.REFUSED, ActionStatus.APPLIED)
    assert run.status is ActionStatus.REFUSED and run.error == "the alert fired again during the cooldown"
    assert len(outbox_rows(db)) == 1


def test_stop_interrupts_a_verification_wait_and_keeps_the_run_resumable(component: Any, db: StateDB) -> None:
    import time

    verify = {"query": 'inference_latency_p99_seconds{deployment="nowhere"}', "below": 0.5, "within_s": 120,
              "poll_s": 0.2}
    comp = component([playbook([{**NOTIFY, "verify": verify}])])
    (rid,) = comp.on_alerts([alert()])
    wait_status(db, rid, ActionStatus.APPLIED)  # applied, now waiting for a metric that never comes
    time.sleep(0.5)
    started = time.monotonic()
    comp.stop()
    assert time.monotonic() - started < 15  # not the 120 s verification window
    run = RunStore(db).get(rid)
    assert run.status is ActionStatus.APPLIED  # not failed: the lease lapses and the run is resumed
