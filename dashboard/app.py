"""The Streamlit dashboard: metrics, alerts, actions, and replay through the detectors.

Run it with ``aiops dashboard`` (or ``streamlit run dashboard/app.py -- --config aiops.yaml``).
Pages are chosen with ``?page=metrics|alerts|actions|replay``; the metrics page takes
``&series=<selector>``, which is the link alerts carry to "the dashboard's view of the series".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from aiops.config import load_settings
from aiops.errors import AiopsError
from aiops.model import now_ms
from aiops.timeutil import parse_time_ms
from dashboard.data import DashboardData, series_frame

PAGES = {"metrics": "Metrics", "alerts": "Alerts", "actions": "Actions", "replay": "Replay"}
RANGES = {"15 minutes": "-15m", "1 hour": "-1h", "6 hours": "-6h", "24 hours": "-24h", "7 days": "-7d",
          "30 days": "-30d"}


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=None)
    known, _ = parser.parse_known_args(sys.argv[1:])
    return known


@st.cache_resource
def _data(config: str | None) -> DashboardData:
    path = config if config else ("aiops.yaml" if Path("aiops.yaml").is_file() else None)
    return DashboardData(load_settings(path))


def _chart(frame: pd.DataFrame) -> None:
    """A line chart in UTC.

    Vega-Lite reads ``"``, ``.`` and ``[]`` in a column name as an access path, and a series'
    text form has all three, so chart columns get a display-safe name.
    """
    plain = frame.rename(columns=lambda c: str(c).replace('"', "").replace(".", "·")
                         .replace("[", "(").replace("]", ")").replace("\\", "/"))
    if isinstance(plain.index, pd.DatetimeIndex) and plain.index.tz is not None:
        plain.index = plain.index.tz_convert("UTC").tz_localize(None)
    st.line_chart(plain, height=320)


def page_metrics(data: DashboardData) -> None:
    st.header("Metrics")
    default = st.query_params.get("series", "aiops_collector_up")
    selector = st.text_input("Series selector (PromQL)", value=default,
                             help='For example node_load1{instance=~"gpu-.*"}')
    window = st.selectbox("Range", list(RANGES), index=1)
    try:
        found = data.find_series(selector)
    except AiopsError as exc:
        st.error(str(exc))
        return
    st.caption(f"{len(found)} series match")
    chosen = found[:20]
    store = data.store()
    if store is None or not chosen:
        st.info("No data yet: start the agent with `aiops run`.")
        return
    try:
        end = now_ms()
        start = parse_time_ms(RANGES[window], now=end)
        step = max(1000, (end - start) // 600)
        frame = series_frame(store, chosen, start, end, step_ms=step)
    finally:
        store.close()
    if frame.empty:
        st.info("No samples in this range.")
        return
    _chart(frame.replace([np.inf, -np.inf], np.nan))
    st.dataframe(frame.describe().T[["count", "mean", "min", "max"]], width="stretch")


def page_alerts(data: DashboardData) -> None:
    st.header("Alerts")
    current = data.table("alerts")
    st.subheader("Current")
    if current.empty:
        st.success("No alerts.")
    else:
        st.dataframe(current, width="stretch", hide_index=True)
    st.subheader("History")
    state = st.selectbox("State", ["", "pending", "firing", "resolved"])
    history = data.table("alert_events", state=state or None)
    st.dataframe(history, width="stretch", hide_index=True)
    st.subheader("Silences")
    st.dataframe(data.table("silences"), width="stretch", hide_index=True)
    with st.form("silence"):
        matchers = st.text_input("Matchers", value='alertname="HighLatency"')
        hours = st.number_input("Duration (hours)", min_value=0.1, value=2.0)
        author = st.text_input("Author")
        comment = st.text_input("Comment")
        if st.form_submit_button("Create silence"):
            try:
                body = {"matchers": matchers, "duration_s": hours * 3600, "created_by": author, "comment": comment}
                st.success(f"created: {data.agent_call('POST', '/api/v1/silences', body)}")
            except AiopsError as exc:
                st.error(str(exc))


def page_actions(data: DashboardData) -> None:
    st.header("Actions")
    status = st.selectbox("Status", ["", "pending_approval", "applied", "verified", "refused", "failed",
                                     "rolled_back", "dry_run"])
    runs = data.table("action_runs", status=status or None)
    st.dataframe(runs, width="stretch", hide_index=True)
    pending = [] if runs.empty else runs.loc[runs["status"] == "pending_approval", "id"].tolist()
    if pending:
        with st.form("approve"):
            run_id = st.selectbox("Pending run", pending)
            who = st.text_input("Your name")
            approve, reject = st.columns(2)
            for verb, col in (("approve", approve), ("reject", reject)):
                if col.form_submit_button(verb.title()):
                    try:
                        data.agent_call("POST", f"/api/v1/actions/{run_id}/{verb}", {"by": who})
                        st.success(f"{verb}d {run_id}")
                    except AiopsError as exc:
                        st.error(str(exc))
    st.subheader("Audit log")
    st.dataframe(data.table("audit"), width="stretch", hide_index=True)


def _replay_values(data: DashboardData) -> pd.DataFrame | None:
    source = st.radio("Source", ["Store", "CSV file"], horizontal=True)
    if source == "CSV file":
        upload = st.file_uploader("CSV with header timestamp,value", type="csv")
        if upload is None:
            return None
        frame = pd.read_csv(upload)
        if list(frame.columns[:2]) != ["timestamp", "value"]:
            st.error("expected a header timestamp,value")
            return None
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        return frame.set_index("timestamp")[["value"]]
    selector = st.text_input("Series selector", value=st.query_params.get("series", ""))
    window = st.selectbox("Range", list(RANGES), index=4)
    if not selector:
        return None
    try:
        found = data.find_series(selector)
    except AiopsError as exc:
        st.error(str(exc))
        return None
    if not found:
        st.warning("no series match")
        return None
    chosen = st.selectbox("Series", [s.key for s in found])
    store = data.store()
    if store is None:
        return None
    try:
        end = now_ms()
        frame = series_frame(store, [s for s in found if s.key == chosen], parse_time_ms(RANGES[window], now=end), end)
    finally:
        store.close()
    return frame.rename(columns={chosen: "value"})


def page_replay(data: DashboardData) -> None:
    st.header("Replay")
    st.caption("Run history through a detector, exactly as the live agent would have, to tune it before you trust it.")
    try:
        from detectors import registry
    except ImportError as exc:  # the detectors package is part of the install; say so if it is broken
        st.error(f"detectors unavailable: {exc}")
        return
    values = _replay_values(data)
    name = st.selectbox("Detector", registry.available())
    params_text = st.text_input("Parameters (JSON)", value="{}")
    if values is None or values.empty:
        return
    try:
        params: dict[str, Any] = json.loads(params_text or "{}")
        detector = registry.create(name, **params)
    except (ValueError, AiopsError) as exc:
        st.error(f"parameters: {exc}")
        return
    started = time.perf_counter()
    with st.spinner(f"replaying {len(values)} points through {name}"):
        scores = detector.score(values["value"].to_numpy(dtype=float))
    flagged = scores >= detector.threshold
    st.caption(f"{len(values)} points in {time.perf_counter() - started:.2f}s; {int(flagged.sum())} flagged "
               f"at threshold {detector.threshold:g}; parameters {detector.get_params()}")
    out = values.assign(anomaly_score=scores)
    _chart(out[["value"]])
    _chart(out[["anomaly_score"]])
    st.dataframe(out[flagged].head(200), width="stretch")
    st.download_button("Download scores (CSV)", out.to_csv().encode(), file_name=f"replay-{name}.csv")


def main() -> None:
    st.set_page_config(page_title="aiops", layout="wide")
    args = _args()
    try:
        data = _data(args.config)
    except AiopsError as exc:
        st.error(str(exc))
        return
    page = st.query_params.get("page", "metrics")
    if page not in PAGES:
        page = "metrics"
    choice = st.sidebar.radio("Page", list(PAGES), index=list(PAGES).index(page), format_func=PAGES.get)
    if choice != page:
        st.query_params["page"] = choice
    st.sidebar.caption(f"store: {data.settings.store.path}")
    {"metrics": page_metrics, "alerts": page_alerts, "actions": page_actions, "replay": page_replay}[choice](data)


main()
