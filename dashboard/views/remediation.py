"""Remediation: pending approvals, runs with their steps, plan, before/after and audit trail.

Operators approve or reject a pending run with a reason and switch the kill switch; viewers see
the same facts without the controls. ``?page=remediation&alert=<fingerprint>`` shows the runs
of one alert; ``&run=<id>`` opens one run.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from aiops.errors import AiopsError
from dashboard import records
from dashboard.access import agent_write, can_write
from dashboard.data import DashboardData
from dashboard.ui import ago, browser_tz, fmt_time, guarded, local, nav_button, run_end, until

__all__ = ["render", "KILL_SWITCH_KEY", "before_after", "run_table"]

KILL_SWITCH_KEY = "remediation/kill_switch"  # remediation.guards.KILL_SWITCH_KEY (the state DB's kv)
STATUSES = ["pending_approval", "planned", "queued", "approved", "running", "applied", "verified", "dry_run",
            "refused", "rejected", "expired", "failed", "rolled_back", "skipped"]
_STATUS_ICON = {"pending_approval": ":orange[:material/pause_circle:]", "queued": ":material/schedule:",
                "approved": ":material/thumb_up:", "running": ":blue[:material/play_circle:]",
                "applied": ":blue[:material/check:]", "verified": ":green[:material/check_circle:]",
                "dry_run": ":material/description:", "refused": ":red[:material/block:]",
                "rejected": ":gray[:material/cancel:]", "expired": ":gray[:material/timer_off:]",
                "failed": ":red[:material/error:]", "rolled_back": ":orange[:material/undo:]",
                "planned": ":material/event:"}
# marks every font has (⏸ drew as an empty box in Chromium's default fonts)
_STATUS_MARK = {"pending_approval": "waiting for approval", "verified": "✓ verified", "failed": "✗ failed",
                "refused": "✗ refused",
                "rolled_back": "↺ rolled back", "rejected": "– rejected", "expired": "– expired"}


def before_after(run: dict[str, Any]) -> tuple[Any, Any]:
    """(state before, state after) of a run, from its plan and result, when the action records them."""
    plan = (run.get("extra") or {}).get("plan") or (run.get("result") or {}).get("plan") or {}
    result = run.get("result") or {}
    before = plan.get("previous", plan.get("before", result.get("from")))
    after = result.get("replicas", result.get("after", plan.get("target")))
    return before, after


def run_table(runs: list[dict[str, Any]], now: pd.Timestamp | None = None) -> pd.DataFrame:
    """The runs table's rows: a finished cell that says what a still-open run does (never "None"),
    the short id people type, and the error column only when some run has one."""
    table = pd.DataFrame([{"status": _STATUS_MARK.get(r["status"], r["status"]), "playbook": r["playbook"],
                           "step": r["step"], "action": r["action"], "created": r["created"],
                           "finished": run_end(r, now), "approved by": r["approved_by"] or "",
                           "dry run": bool(r["dry_run"]), "error": (r["error"] or "")[:120], "id": r["id"][:8]}
                          for r in runs])
    if table.empty:
        return table
    table["created"] = local(pd.to_datetime(table["created"], utc=True))
    return table if table["error"].astype(bool).any() else table.drop(columns="error")


def render(data: DashboardData) -> None:
    st.header("Remediation")
    guarded(lambda: _render(data))


def _render(data: DashboardData) -> None:
    qp = st.query_params
    _kill_switch(data)
    _approvals(data)
    st.subheader("Runs")
    c = st.columns([3, 2, 2])
    want = c[0].multiselect("Status", STATUSES, key="f_r_status", placeholder="any")
    alert_fp = c[1].text_input("Alert fingerprint", key="f_r_alert", value=qp.get("alert", ""))
    dry = c[2].toggle("dry-run plans only", key="f_r_dry")
    runs = records.run_rows(data, status=want, fingerprint=alert_fp.strip(), limit=300)
    if dry:
        runs = [r for r in runs if r["dry_run"] or r["status"] == "dry_run"]
    if not runs:
        st.info("No action runs" + (" for this alert." if alert_fp else " yet: no playbook has matched an alert."))
        return
    table = run_table(runs)
    picked = st.dataframe(table, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
                          key="runs_table", column_config={
                              "created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
                              "id": st.column_config.TextColumn(help="the first 8 characters: what `aiops approve` "
                                                                     "takes")})
    rows = picked.selection.rows if hasattr(picked, "selection") else []
    run_id = runs[rows[0]]["id"] if rows else qp.get("run", "")
    st.caption(f"Times in your browser's zone ({browser_tz()}). "
               "Select a row to see its steps, plan, before/after and audit trail.")
    run = next((r for r in runs if r["id"] == run_id), None)
    if run is None and run_id:
        found = records.run_rows(data, run_id=run_id)
        run = found[0] if found else None
    if run is not None:
        _detail(data, run)
    with st.expander("Audit log (all runs)"):
        audit = records.audit_rows(data, limit=300)
        if not audit.empty:
            audit["time"] = local(audit["time"])
        st.dataframe(audit, hide_index=True, width="stretch")


def _kill_switch(data: DashboardData) -> None:
    configured = data.settings.remediation.kill_switch
    on = configured or data.kv(KILL_SWITCH_KEY) == b"1"
    with st.container(border=True):
        c = st.columns([5, 2, 2])
        if on:
            c[0].error("**Kill switch ON**: every action is refused." +
                       (" (set in the config: `remediation.kill_switch`)" if configured else ""),
                       icon=":material/dangerous:")
        else:
            c[0].success("Kill switch off: playbooks may act (within their guards).", icon=":material/check_circle:")
        if can_write() and not configured:
            who = c[1].text_input("Your name", key="ks_who", label_visibility="collapsed", placeholder="your name")
            label = "Release kill switch" if on else "Engage kill switch"
            if c[2].button(label, key="ks_btn", type="secondary" if on else "primary"):
                try:
                    agent_write(data, "POST", "/api/v1/killswitch", {"enabled": not on}, actor=who)
                    st.rerun()
                except AiopsError as exc:
                    st.error(str(exc))


def _approvals(data: DashboardData) -> None:
    if st.session_state.get("flash_run"):
        st.success(st.session_state.pop("flash_run"), icon=":material/task_alt:")
    pending = records.run_rows(data, status=["pending_approval"], limit=50)
    st.subheader(f"Waiting for approval ({len(pending)})")
    if not pending:
        st.caption("Nothing waits for a decision.")
        return
    for r in pending:
        with st.container(border=True):
            left, right = st.columns([3, 2])
            left.markdown(f"{_STATUS_ICON['pending_approval']} **{r['playbook']}** · step {r['step']} · "
                          f"`{r['action']}` · created {ago(r['created'])}"
                          f" · expires {until(r['expires'])}")
            left.markdown("**Parameters** " + ", ".join(f"`{k}={v}`" for k, v in (r["params"] or {}).items()))
            plan = (r["extra"] or {}).get("plan")
            if plan:
                left.json(plan, expanded=False)
            with left:
                nav_button("the alert →", "alerts", f"pa_alert_{r['id']}", alert=r["alert_fingerprint"] or "")
            if not can_write():
                right.caption("Approval needs the operator role.")
                continue
            with right.form(f"decide_{r['id']}", border=False):
                who = st.text_input("Your name", key=f"who_{r['id']}")
                reason = st.text_input("Reason", key=f"reason_{r['id']}", placeholder="why (kept in the audit trail)")
                a, b = st.columns(2)
                approve = a.form_submit_button("Approve", type="primary")
                reject = b.form_submit_button("Reject")
            for verb, clicked in (("approve", approve), ("reject", reject)):
                if clicked:
                    try:
                        agent_write(data, "POST", f"/api/v1/actions/{r['id']}/{verb}", {"reason": reason}, actor=who)
                        st.session_state["flash_run"] = (f"{verb.rstrip('e')}ed {r['playbook']} step {r['step']} "
                                                         f"({r['id'][:8]})")
                        st.rerun()
                    except AiopsError as exc:
                        right.error(str(exc))


def _detail(data: DashboardData, run: dict[str, Any]) -> None:
    st.markdown(f"#### {_STATUS_ICON.get(run['status'], '')} {run['playbook']} · step {run['step']} · "
                f"`{run['action']}` · {run['status']}")
    end = run_end(run)
    st.caption(f"created {fmt_time(run['created'])} ({ago(run['created'])}) · "
               + (f"finished {end}" if run["finished"] is not None else end))
    steps = [r for r in records.run_rows(data, fingerprint=run["alert_fingerprint"], limit=100)
             if r["playbook"] == run["playbook"]]
    c = st.columns(3)
    c[0].markdown("**Steps of this playbook run**")
    c[0].dataframe(pd.DataFrame([{"step": s["step"], "action": s["action"], "status": s["status"],
                                  "finished": run_end(s)}
                                 for s in sorted(steps, key=lambda s: s["step"])]), hide_index=True)
    before, after = before_after(run)
    c[1].markdown("**Before → after**")
    c[1].markdown(f"`{json.dumps(before)}` → `{json.dumps(after)}`" if before is not None or after is not None
                  else "not recorded by this action")
    c[1].markdown(f"**Parameters** `{json.dumps(run['params'])}`")
    if run["error"]:
        c[1].error(run["error"])
    c[2].markdown("**Plan**")
    c[2].json((run["extra"] or {}).get("plan") or (run["result"] or {}).get("plan") or {}, expanded=False)
    c[2].markdown("**Result**")
    c[2].json(run["result"] or {}, expanded=False)
    nav_button("Alert of this run →", "alerts", f"run_alert_{run['id']}", alert=run["alert_fingerprint"] or "")
    trail = records.audit_rows(data, run_id=run["id"])
    if not trail.empty:
        trail["time"] = local(trail["time"])
    st.markdown("**Audit trail**")
    st.dataframe(trail, hide_index=True, width="stretch")
