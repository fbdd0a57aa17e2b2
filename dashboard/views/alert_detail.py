"""One alert: what it is, where the trouble started (root causes and their paths), what happened since.

``?page=alerts&alert=<fingerprint>`` opens it (the alert cards' Details button, the remediation
page's links). The ranked root causes are the rca component's, stored when the alert started
firing (:mod:`dashboard.causes` reads them through the rca package): a table with each cause's
score, change in σ, onset and path, and a graph of the paths from the best three causes to the
alerting metric over the topology. Below: the alert's state changes and its notifications.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from aiops.model import now_ms
from dashboard import causes, records
from dashboard.data import DashboardData
from dashboard.ui import ago, chips_html, fmt_time, guarded, local, nav_button, severity_icon

__all__ = ["render", "CAUSE_WIDTHS"]


def render(data: DashboardData, fingerprint: str, current: list[dict[str, Any]]) -> None:
    nav_button(":material/arrow_back: All alerts", "alerts", "detail_back")
    alert = next((a for a in current if a["fingerprint"] == fingerprint), None)
    if alert is None:
        alert = _from_history(data, fingerprint)
    if alert is None:
        st.info(f"No alert with fingerprint `{fingerprint}` in the state database.")
        return
    _head(data, alert)
    guarded(lambda: _causes(data, alert))
    guarded(lambda: _timeline(data, fingerprint))


def _from_history(data: DashboardData, fingerprint: str) -> dict[str, Any] | None:
    """An alert no longer current (resolved over an hour ago): its newest recorded state change."""
    frame = records.alert_history(data, 0, fingerprint=fingerprint, limit=1)
    if frame.empty:
        return None
    row = frame.iloc[0]
    labels = dict(chip.split("=", 1) for chip in row["labels"])
    return {"fingerprint": fingerprint, "alertname": row["alertname"], "severity": row["severity"],
            "state": row["state"], "labels": labels, "summary": "", "starts": None, "ends": row["time"],
            "value": row["value"], "selector": records.series_selector(labels, {})}


def _head(data: DashboardData, a: dict[str, Any]) -> None:
    st.subheader(f"{severity_icon(a['severity'])} {a['alertname']}")
    when = (f"{a['state']} since {ago(a['starts'])} ({fmt_time(a['starts'])})" if a["state"] != "resolved"
            else f"resolved {ago(a['ends'])} ({fmt_time(a['ends'])}), fired at {fmt_time(a['starts'])}")
    value = f" · value **{a['value']:.4g}**" if isinstance(a["value"], float) else ""
    st.markdown(f"{a['severity'] or 'no severity'} · {when}{value}")
    st.markdown(chips_html(a["labels"], skip=("alertname",)), unsafe_allow_html=True)
    if a["summary"]:
        st.caption(a["summary"])
    b = st.columns([1, 1, 4])
    with b[0]:
        if a["selector"]:
            nav_button(":material/show_chart: Series", "metrics", "detail_series", series=a["selector"], range="1h")
    with b[1]:
        nav_button(":material/build: Action runs", "remediation", "detail_runs", alert=a["fingerprint"])


# The root-cause table's column widths (px): they hold the cells' budgets (causes.METRIC_CHARS, ...)
# and add up to 970 px, the main block's width beside the sidebar at 1440 px, so every column
# shows without scrolling sideways (the browser test measures both).
CAUSE_WIDTHS = {"rank": 40, "metric": 240, "component": 150, "workload": 115, "score": 55, "z (σ)": 90,
                "onset": 75, "path to the symptom": 205}


def _causes(data: DashboardData, a: dict[str, Any]) -> None:
    st.markdown("#### :material/troubleshoot: Where it started: root causes")
    starts = a["starts"].value // 1_000_000 if a["starts"] is not None else None
    record = causes.alert_causes(data, a["fingerprint"], starts)
    if record is None:
        st.info("No root-cause ranking stored for this alert: the `rca` component ranks an alert when it starts "
                "firing (`rca.enabled: true` in the agent's config).", icon=":material/info:")
        return
    if record.get("error") or not record.get("causes"):
        st.warning(f"The localisation found no ranking: {record.get('error') or 'no candidate changed'}.",
                   icon=":material/warning:")
        return
    top = record["causes"][0]
    change = causes.change_text(float(top["z"]))
    st.markdown(f"**Most likely: {causes.cause_title(top)}**, metric `{top['metric']}` "
                + (f"(changed {change} σ from its normal, given its parents in the topology)."
                   if "flat" not in change else "(it barely moved before the onset, then changed; given its parents "
                   "in the topology)."))
    st.caption(f"Symptom `{record['symptom']}` · anomaly onset {fmt_time(records.to_time(record.get('onset_ms')))}"
               f" · ranked {fmt_time(records.to_time(record['created_ms']))} in {record['duration_s'] * 1000:.0f} ms. "
               "Score: the metric's change given its parents plus the largest change it explains downstream; "
               "higher ranks first.")
    shown = min(causes.TOP_DRAWN, len(record["causes"]))
    st.markdown(f"**How the top {shown} reach the symptom**")
    st.graphviz_chart(causes.path_dot(record), width="content")
    st.caption("Arrows follow the topology's cause → effect edges; dashed boxes are components (with the workload "
               "they roll up to); #1 is the most likely cause, the yellow box the alerting metric.")
    table = causes.cause_rows(record)
    table["onset"] = local(table["onset"])
    short = "cut in the middle where long; the full names under 'Every cause in full'"
    w = CAUSE_WIDTHS
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "rank": st.column_config.NumberColumn("#", width=w["rank"]),
        "metric": st.column_config.TextColumn("metric", width=w["metric"], help=f"the cause's metric ({short})"),
        "component": st.column_config.TextColumn("component", width=w["component"],
                                                 help=f"where the metric is measured, namespace left out ({short})"),
        "workload": st.column_config.TextColumn("workload", width=w["workload"],
                                                help="the Deployment/StatefulSet the component rolls up to"),
        "score": st.column_config.NumberColumn("score", format="compact", width=w["score"]),
        "z (σ)": st.column_config.TextColumn("z (σ)", width=w["z (σ)"], help="change from the normal period in "
                                             "robust σ; 'flat': the metric barely moved before the onset"),
        "onset": st.column_config.DatetimeColumn("onset", format="HH:mm:ss", width=w["onset"]),
        "path to the symptom": st.column_config.TextColumn(
            "path to the symptom", width=w["path to the symptom"], help="the components the change travels "
            "through over the topology's cause → effect edges, ending at the alerting metric; every hop in full "
            "under 'Every cause in full'")})
    with st.expander("Every cause in full: names and paths"):
        st.markdown("\n".join(f"- {line}" for line in causes.cause_details(record)))


def _timeline(data: DashboardData, fingerprint: str) -> None:
    st.markdown("#### :material/history: State changes and notifications")
    left, right = st.columns(2)
    history = records.alert_history(data, 0, fingerprint=fingerprint, limit=50)
    with left:
        if history.empty:
            st.caption("No recorded state changes.")
        else:
            history["time"] = local(history["time"])
            st.dataframe(history[["time", "state", "value", "silenced by", "note"]], hide_index=True,
                         width="stretch", column_config={
                             "time": st.column_config.DatetimeColumn("time", format="YYYY-MM-DD HH:mm:ss")})
    sent = records.notification_rows(data, now_ms() - 7 * 86_400_000, fingerprint=fingerprint)
    with right:
        if sent.empty:
            st.caption("No notification about this alert in the last 7 days.")
        else:
            for col in ("created", "sent"):
                sent[col] = local(sent[col])
            st.dataframe(sent[["created", "receiver", "outcome", "state", "attempts", "last error"]],
                         hide_index=True, width="stretch", column_config={
                             "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm:ss")})
