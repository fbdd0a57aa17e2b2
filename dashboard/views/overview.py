"""Overview, the landing page: is everything healthy, and if not, where to look.

Tiles: firing alerts by severity, anomalies in the last hour, remediation in progress or
waiting for approval, targets up/down, the agents' own health (last sample, ingest rate, store
size, outbox backlog), GPUs by node. Every tile links to its detail page. The body is a
fragment rerun every few seconds, so it refreshes without a page reload.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd
import streamlit as st

from aiops.model import now_ms
from dashboard import health, records
from dashboard.data import DashboardData, DataUnavailable
from dashboard.ui import SEVERITY_ORDER, ago, guarded, nav_button, severity_icon
from dashboard.units import format_value, unit_of

__all__ = ["render", "REFRESH_S", "target_table", "gpu_rows"]

REFRESH_S = 5.0
NOT_REPORTED = "–"


def render(data: DashboardData) -> None:
    st.header("Overview")
    st.caption(f"Refreshes every {REFRESH_S:.0f} s. Store: `{data.settings.store.path}`")

    @st.fragment(run_every=REFRESH_S)
    def body() -> None:
        _body(data)

    body()


def _body(data: DashboardData) -> None:
    now = now_ms()
    top = st.columns(4)
    with top[0]:
        guarded(lambda: _alerts_tile(data, now))
    with top[1]:
        guarded(lambda: _anomalies_tile(data, now))
    with top[2]:
        guarded(lambda: _runs_tile(data))
    with top[3]:
        guarded(lambda: _agent_tile(data))
    st.divider()
    left, right = st.columns([3, 2])
    below = st.container()  # the targets table spans the page: in the left column it cut off "down since"
    with left:
        guarded(lambda: _targets(data, now, below))
    with right:
        guarded(lambda: _firing_list(data, now))
    st.divider()
    guarded(lambda: _gpus(data, now))


def _alerts_tile(data: DashboardData, now: int) -> None:
    with st.container(border=True):
        st.markdown("**Alerts**")
        current = records.current_alerts(data, now)
        firing = [a for a in current if a["state"] == "firing"]
        pending = [a for a in current if a["state"] == "pending"]
        st.metric("firing", len(firing), help="Alerts firing now (pending: condition holds, waiting for 'for').")
        by = Counter(a["severity"] or "none" for a in firing)
        if by:
            st.markdown(" · ".join(f"{severity_icon(s)} {s} **{n}**" for s, n in
                                   sorted(by.items(), key=lambda kv: SEVERITY_ORDER.get(kv[0], 9))))
        st.caption(f"{len(pending)} pending")
        nav_button("Open alerts →", "alerts", "ov_alerts")


def _anomalies_tile(data: DashboardData, now: int) -> None:
    with st.container(border=True):
        st.markdown("**Anomalies (last hour)**")
        rows = records.anomaly_rows(data, now - 3_600_000)
        st.metric("anomalous points", len(rows))
        series = Counter(r["series"] for r in rows)
        if series:
            top, n = series.most_common(1)[0]
            st.caption(f"{len(series)} series; most: {top.split('{')[0]} ({n} points)")
            nav_button("Chart it →", "metrics", "ov_anom", series=top)
        else:
            st.caption("none flagged by live detection")


def _runs_tile(data: DashboardData) -> None:
    with st.container(border=True):
        st.markdown("**Remediation**")
        runs = records.run_rows(data, status=records.ACTIVE_RUN_STATES, limit=200)
        waiting = [r for r in runs if r["status"] == "pending_approval"]
        st.metric("waiting for approval", len(waiting))
        st.caption(f"{len(runs) - len(waiting)} in progress")
        nav_button("Open remediation →", "remediation", "ov_runs")


def _agent_tile(data: DashboardData) -> None:
    with st.container(border=True):
        st.markdown("**Agent**")
        size = format_value(float(data.store_size_bytes()), unit_of("x_bytes"))
        backlog = records.outbox_backlog(data)
        waiting = backlog.get("queued", 0) + backlog.get("failed", 0)
        st.metric("outbox backlog", waiting, help="Notifications not yet delivered (queued or failed, retrying).")
        failed = backlog.get("failed", 0)
        st.caption(f"store {size}" + (f" · {failed} notification{'s' if failed > 1 else ''} failing (retrying)"
                                      if failed else ""))


def target_table(found: list[health.TargetHealth], now: pd.Timestamp | None = None) -> pd.DataFrame:
    """The targets table's rows: down ones first (as :func:`dashboard.health.targets` sorts them),
    times as "5 min ago", "down since" empty for a target that is up."""
    return pd.DataFrame([{"state": "up" if t.up else "DOWN", "collector": t.collector, "target": t.target,
                          "agent": t.instance, "last seen": ago(t.last_seen, now),
                          "down since": ago(t.down_since, now) if t.down_since is not None else ""} for t in found])


def _targets(data: DashboardData, now: int, below: Any) -> None:
    st.subheader("Agents and targets")
    try:
        with data.store() as store:
            found = health.targets(store, now)
            agents = health.agents(store, found, now)
    except DataUnavailable as exc:
        if exc.kind == "empty":
            st.info("No samples yet: the agent has not collected anything.")
            return
        raise
    for a in agents:
        stale = a.last_seen is None or (pd.Timestamp.now(tz="UTC") - a.last_seen).total_seconds() > 120
        icon = ":red[●]" if stale else (":orange[●]" if a.targets_down else ":green[●]")
        st.markdown(f"{icon} agent **{a.instance}** · last sample {ago(a.last_seen)} · "
                    f"{a.targets_up} up / {a.targets_down} down · ingest {a.samples_per_s:,.0f} samples/s")
    if not found:
        st.caption("No collector health series (aiops_collector_up) in the store.")
        return
    table = target_table(found)
    with below:
        st.dataframe(table, hide_index=True, width="stretch", height=min(38 + 35 * len(table), 300))
        nav_button("Chart target health →", "metrics", "ov_targets", series="aiops_collector_up")


def _firing_list(data: DashboardData, now: int) -> None:
    st.subheader("Firing now")
    firing = [a for a in records.current_alerts(data, now) if a["state"] == "firing"]
    if not firing:
        st.success("Nothing is firing.", icon=":material/check_circle:")
        return
    firing.sort(key=lambda a: (SEVERITY_ORDER.get(a["severity"], 9), str(a["starts"])))
    for i, a in enumerate(firing[:8]):
        cols = st.columns([5, 2])
        cols[0].markdown(f"{severity_icon(a['severity'])} **{a['alertname']}** · since {ago(a['starts'])}  \n"
                         f"<small>{a['summary'][:120]}</small>", unsafe_allow_html=True)
        with cols[1]:
            nav_button("details →", "alerts", f"ov_fire_{i}", alertname=a["alertname"])
    if len(firing) > 8:
        st.caption(f"and {len(firing) - 8} more")


def gpu_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The GPU table's cells from :func:`dashboard.health.gpu_table`: readings as text with their
    unit, and "–" where a row's source does not report a column (an inference pod has no
    temperature), instead of the grid's grey "None". Columns no row reports are left out."""
    cols = {"node": table["node"], "GPU / pod": table["gpu"]}
    if "model" in table and table["model"].notna().any():
        cols["model"] = table["model"].fillna(NOT_REPORTED)
    if "util" in table and table["util"].notna().any():
        cols["utilisation"] = table["util"]  # a progress bar: both sources report it
    # GB, not "compact": 48e9 bytes printed as "48B" read as 48 bytes
    for name, col, fmt in (("memory used", "mem_used", lambda v: f"{v / 1e9:.1f} GB"),
                           ("temperature", "temp_c", lambda v: f"{v:.0f} °C"),
                           ("XID errors", "xid", lambda v: f"{v:.0f}"), ("ECC errors", "ecc", lambda v: f"{v:.0f}")):
        if col in table and table[col].notna().any():
            cols[name] = table[col].map(lambda v, f=fmt: NOT_REPORTED if pd.isna(v) else f(v))
    return pd.DataFrame(cols)


def _gpus(data: DashboardData, now: int) -> None:
    st.subheader("GPUs by node")
    try:
        with data.store() as store:
            table = health.gpu_table(store, now)
    except DataUnavailable as exc:
        if exc.kind == "empty":
            return
        raise
    if table.empty:
        st.caption("No GPU metrics in the last 10 minutes (NVML collector or an inference service's "
                   "inference_gpu_* series).")
        return
    show = gpu_rows(table)
    st.dataframe(show, hide_index=True, width="stretch", column_config={
        "utilisation": st.column_config.ProgressColumn("utilisation", min_value=0.0, max_value=1.0, format="percent"),
    })
    if (show.drop(columns=["utilisation"], errors="ignore") == NOT_REPORTED).any().any():
        st.caption(f"{NOT_REPORTED}: not reported by that source (an inference pod's series give utilisation and "
                   "memory only; temperature and XID/ECC errors come from the node's NVML collector).")
    nav_button("Open GPUs →", "gpus", "ov_gpus")
