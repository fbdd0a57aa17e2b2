"""GPUs: per node and GPU over time, with the inference services beside them on one time axis.

Panels, top to bottom on a shared time axis: utilisation, memory, temperature, power, clocks,
XID and ECC errors (NVML collector, ``aiops_gpu_*``); the inference service's per-pod GPU
utilisation and memory; then its p99 latency, queue depth and ready replicas.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from aiops.model import Matcher, MatchOp, Series, now_ms
from dashboard import series
from dashboard.charts import timeseries_charts
from dashboard.data import DashboardData
from dashboard.ui import browser_tz, guarded
from dashboard.views.explorer import RANGES

__all__ = ["render", "GPU_PANELS", "SERVICE_PANELS"]

GPU_PANELS = ("aiops_gpu_utilisation_ratio", "aiops_gpu_memory_used_bytes", "aiops_gpu_temperature_celsius",
              "aiops_gpu_power_watts", "aiops_gpu_sm_clock_hertz", "aiops_gpu_xid_errors_total",
              "aiops_gpu_ecc_errors_total", "inference_gpu_utilization_ratio", "inference_gpu_memory_used_bytes")
SERVICE_PANELS = ("inference_latency_p99_seconds", "inference_queue_depth", "inference_ready_replicas")
NODE_LABELS = ("instance", "node")


def _node(s: Series) -> str:
    return next((s.get(k) for k in NODE_LABELS if s.get(k)), "")


def render(data: DashboardData) -> None:
    st.header("GPUs")
    guarded(lambda: _render(data))


def _render(data: DashboardData) -> None:
    with data.store() as store:
        gpu_series = [s for m in GPU_PANELS for s in store.select([Matcher("__name__", MatchOp.EQ, m)])]
        svc_series = [s for m in SERVICE_PANELS for s in store.select([Matcher("__name__", MatchOp.EQ, m)])]
        if not gpu_series and not svc_series:
            st.info("No GPU or inference-service series in the store: enable the gpu collector "
                    "(collect.gpu) on GPU nodes, or scrape an inference service's /metrics.")
            return
        nodes = sorted({_node(s) for s in gpu_series if s.name.startswith("aiops_gpu")} - {""})
        deployments = sorted({s.get("deployment") for s in [*gpu_series, *svc_series]} - {""})
        c = st.columns([3, 3, 2])
        want_nodes = c[0].multiselect("Node", nodes, key="f_g_nodes", placeholder="all")
        want_dep = c[1].multiselect("Inference service", deployments, key="f_g_dep", placeholder="all")
        rng = c[2].selectbox("Range", list(RANGES), index=1, key="f_g_range")
        end = now_ms()
        start = end - RANGES[rng]
        step = series.step_for(start, end, points=400)

        def keep(s: Series) -> bool:
            if s.name.startswith("aiops_gpu"):
                return not want_nodes or _node(s) in want_nodes
            return not want_dep or s.get("deployment") in want_dep

        chosen = [s for s in [*gpu_series, *svc_series] if keep(s)]
        frame = series.long_frame(store, chosen, start, end, step)
    if frame.empty:
        st.info("No samples in this range.")
        return
    frame["label"] = [_gpu_label(s) for s in frame["series"]]
    order = {m: i for i, m in enumerate((*GPU_PANELS, *SERVICE_PANELS))}
    frame = frame.sort_values(["metric"], key=lambda col: col.map(order), kind="stable")
    tz = browser_tz()
    for chart in timeseries_charts(frame, tz_name=tz, start=pd.Timestamp(start, unit="ms", tz="UTC"),
                                   end=pd.Timestamp(end, unit="ms", tz="UTC"), height=110, per_metric=True):
        st.altair_chart(chart, width="stretch")
    st.caption(f"Times in your browser's zone ({tz}). Every panel shares the time axis; one point per "
               f"{step // 1000} s.")


def _gpu_label(key: str) -> str:
    from aiops.model import parse_series

    s = parse_series(key)
    if s.name.startswith("aiops_gpu"):
        extra = "".join(f" {k}={s.get(k)}" for k in ("type", "scope") if s.get(k))
        return f"{_node(s)} gpu{s.get('gpu')}{extra}"
    if s.get("pod"):
        return f"{s.get('deployment')}/{s.get('pod')}"
    return f"{s.get('namespace')}/{s.get('deployment')}" if s.get("deployment") else s.key
