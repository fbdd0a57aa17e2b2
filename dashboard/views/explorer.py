"""Metrics explorer: series by name and label filters, over a quick or absolute range.

``?page=metrics&series=<selector>`` (the link alerts carry) opens it on that selector. Series
are downsampled in the store to about 600 points each; at most N are charted and the page says
so when more match. Anomaly markers (with score), the expected band, alert periods and
remediation runs are drawn on the chart; each unit gets its own axis.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from aiops.errors import InputError
from aiops.model import Matcher, MatchOp, Series, now_ms, parse_selector
from aiops.store import SqliteSeriesStore
from dashboard import records, series
from dashboard.charts import timeseries_charts
from dashboard.data import DashboardData
from dashboard.ui import browser_tz, guarded
from dashboard.units import format_value, unit_of

__all__ = ["render", "RANGES", "parse_range", "split_selector"]

RANGES = {"15 min": 15 * 60_000, "1 hour": 3_600_000, "6 hours": 6 * 3_600_000, "24 hours": 86_400_000,
          "7 days": 7 * 86_400_000, "30 days": 30 * 86_400_000}
RANGE_PARAM = {"15m": "15 min", "1h": "1 hour", "6h": "6 hours", "24h": "24 hours", "7d": "7 days", "30d": "30 days"}
ABSOLUTE = "absolute…"


def parse_range(text: str) -> str:
    """A ``range`` query parameter (``1h``) or label (``1 hour``) to a RANGES label (default 1 hour)."""
    return RANGE_PARAM.get(text, text if text in RANGES else "1 hour")


def split_selector(text: str) -> tuple[str | None, dict[str, list[str]], list[Matcher]]:
    """A PromQL selector as (metric, equality filters, other matchers).

    Raises:
        InputError: not a selector.
    """
    matchers = parse_selector(text)
    metric = next((m.value for m in matchers if m.label == "__name__" and m.op is MatchOp.EQ), None)
    eq = {m.label: [m.value] for m in matchers if m.op is MatchOp.EQ and m.label != "__name__"}
    rest = [m for m in matchers if m.op is not MatchOp.EQ]
    return metric, eq, rest


def _init(key: str, value: Any) -> None:
    if key not in st.session_state:
        st.session_state[key] = value


def render(data: DashboardData) -> None:
    st.header("Metrics explorer")
    guarded(lambda: _render(data))


def _render(data: DashboardData) -> None:
    qp = st.query_params
    with data.store() as store:
        names = series.metric_names(store)
        metric: str | None = None
        eq: dict[str, list[str]] = {}
        rest: list[Matcher] = []
        if qp.get("series"):
            try:
                metric, eq, rest = split_selector(qp["series"])
            except InputError as exc:
                st.error(f"the link's selector: {exc}")
        default_metric = metric or qp.get("metric") or ("inference_latency_p99_seconds"
                                                        if "inference_latency_p99_seconds" in names else names[0])
        _init("f_metric", default_metric if default_metric in names else "(any)")
        top = st.columns([3, 2, 1])
        options = ["(any)", *names]
        chosen = top[0].selectbox("Metric", options, key="f_metric", help="Type to search the store's metric names.")
        metric_name = None if chosen == "(any)" else chosen
        _init("f_range", parse_range(qp.get("range", "1h")))
        rng = top[1].selectbox("Range", [*RANGES, ABSOLUTE], key="f_range")
        _init("f_max", 10)
        max_series = top[2].number_input("Max series", min_value=1, max_value=50, key="f_max",
                                         help="Series drawn at most; the page says when more match.")
        start_ms, end_ms = _range(rng)
        values = series.label_values(store, metric_name)
        filters: dict[str, list[str]] = {}
        if values:
            cols = st.columns(min(4, len(values)))
            for i, (label, vals) in enumerate(values.items()):
                key = f"f_l_{label}"
                _init(key, [v for v in eq.get(label, []) if v in vals])
                filters[label] = cols[i % len(cols)].multiselect(label, vals, key=key, placeholder="any")
        with st.expander("Advanced: regex / negative matchers", expanded=bool(rest)):
            _init("f_extra", ", ".join(_matcher_text(m) for m in rest))
            extra_text = st.text_input("Extra matchers", key="f_extra", help='e.g. pod=~"llm-.*", instance!="a"')
            extra = parse_selector("{" + extra_text + "}") if extra_text.strip() else []
            toggles = st.columns(4)
            show_anom = toggles[0].toggle("anomalies", value=True, key="f_t_anom")
            show_band = toggles[1].toggle("expected band", value=True, key="f_t_band")
            show_alerts = toggles[2].toggle("alert periods", value=True, key="f_t_alerts")
            show_runs = toggles[3].toggle("remediation runs", value=True, key="f_t_runs")
        found = series.select(store, metric_name, filters, extra)
        if not found:
            st.warning("No series match these filters.")
            return
        shown = found[: int(max_series)]
        if len(found) > len(shown):
            st.warning(f"Showing {len(shown)} of {len(found)} matching series. Narrow the label filters or raise "
                       "'Max series' to see the rest.", icon=":material/content_cut:")
        else:
            st.caption(f"{len(found)} series match")
        step = series.step_for(start_ms, end_ms)
        frame = series.long_frame(store, shown, start_ms, end_ms, step)
        bands, score_frame = _companions(store, shown, frame, start_ms, end_ms, step, show_band)
    if frame.empty:
        st.info("These series have no samples in this range. Try a longer range.")
        return
    plot = pd.concat([frame, score_frame], ignore_index=True) if not score_frame.empty else frame
    anomalies = _anomalies(data, shown, frame, start_ms, end_ms) if show_anom else None
    periods = _periods(data, shown, start_ms, end_ms) if show_alerts or show_runs else pd.DataFrame()
    runs = _runs(data, periods, start_ms, end_ms) if show_runs and not periods.empty else None
    tz = browser_tz()
    for chart in timeseries_charts(plot, tz_name=tz, start=pd.Timestamp(start_ms, unit="ms", tz="UTC"),
                                   end=pd.Timestamp(end_ms, unit="ms", tz="UTC"), anomalies=anomalies, bands=bands,
                                   periods=periods if show_alerts else None, runs=runs):
        st.altair_chart(chart, width="stretch")
    st.caption(f"Times in your browser's zone ({tz}); one point per {step // 1000:,} s (average, computed in "
               "the store). ◆ anomaly · shaded red: alert firing · dashed: remediation run · grey band: expected.")
    _stats(frame)


def _matcher_text(m: Matcher) -> str:
    escaped = m.value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{m.label}{m.op.value}"{escaped}"'


def _range(label: str) -> tuple[int, int]:
    now = now_ms()
    if label != ABSOLUTE:
        return now - RANGES[label], now
    today = datetime.now().date()
    c = st.columns(4)
    d0 = c[0].date_input("From (date)", value=today - timedelta(days=1), key="f_d0")
    t0 = c[1].time_input("From (time)", value=time(0, 0), key="f_t0")
    d1 = c[2].date_input("To (date)", value=today, key="f_d1")
    t1 = c[3].time_input("To (time)", value=time(23, 59), key="f_t1")
    tz = browser_tz()
    start = pd.Timestamp(datetime.combine(d0, t0)).tz_localize(tz)
    end = pd.Timestamp(datetime.combine(d1, t1)).tz_localize(tz)
    if end <= start:
        raise InputError("the range ends before it starts")
    return int(start.value // 1_000_000), int(end.value // 1_000_000)


def _companions(store: SqliteSeriesStore, shown: list[Series], frame: pd.DataFrame, start_ms: int, end_ms: int,
                step: int, want_band: bool) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    bands, scores = [], []
    labels = dict(zip(frame["series"], frame["label"], strict=False))
    for s in shown:
        comp = series.companions(store, s)
        for detector, sc in comp.get(series.SCORE_METRIC, {}).items():
            f = series.long_frame(store, [sc], start_ms, end_ms, step)
            if not f.empty:
                f["label"] = f"score of {labels.get(s.key, s.key)} ({detector})"
                scores.append(f)
        lower, upper = comp.get(series.LOWER_METRIC, {}), comp.get(series.UPPER_METRIC, {})
        if want_band:
            for detector in sorted(set(lower) & set(upper)):
                lo = series.long_frame(store, [lower[detector]], start_ms, end_ms, step)
                hi = series.long_frame(store, [upper[detector]], start_ms, end_ms, step)
                if lo.empty or hi.empty:
                    continue
                band = lo[["t", "value"]].rename(columns={"value": "lower"}).merge(
                    hi[["t", "value"]].rename(columns={"value": "upper"}), on="t")
                band["label"] = labels.get(s.key, s.key)
                band["unit"] = unit_of(s.name).key
                bands.append(band)
    return (pd.concat(bands, ignore_index=True) if bands else None,
            pd.concat(scores, ignore_index=True) if scores else pd.DataFrame())


def _anomalies(data: DashboardData, shown: list[Series], frame: pd.DataFrame, start_ms: int,
               end_ms: int) -> pd.DataFrame | None:
    rows = records.anomaly_rows(data, start_ms, [s.key for s in shown], until_ms=end_ms)
    labels = dict(zip(frame["series"], frame["label"], strict=False))
    units = {s.key: unit_of(s.name).key for s in shown}
    out = [{"t": pd.Timestamp(r["ts_ms"], unit="ms", tz="UTC"), "label": labels.get(r["series"], r["series"]),
            "unit": units.get(r["series"], ""), "value": r["value"], "score": r["score"], "detector": r["detector"]}
           for r in rows if r["value"] is not None]
    return pd.DataFrame(out) if out else None


def _periods(data: DashboardData, shown: list[Series], start_ms: int, end_ms: int) -> pd.DataFrame:
    found = records.alert_periods(data, [s.key for s in shown], [dict(s.labels) for s in shown], start_ms, end_ms)
    frame = pd.DataFrame(found)
    if frame.empty:
        return frame
    frame["start"] = pd.to_datetime(frame["start"], unit="ms", utc=True)
    frame["end"] = pd.to_datetime(frame["end"], unit="ms", utc=True)
    return frame


def _runs(data: DashboardData, periods: pd.DataFrame, start_ms: int, end_ms: int) -> pd.DataFrame | None:
    out = []
    for fp in set(periods["fingerprint"]):
        for r in records.run_rows(data, fingerprint=fp, since_ms=start_ms - 86_400_000):
            t = r["started"] or r["created"]
            if t is not None and start_ms <= t.value // 1_000_000 <= end_ms:
                out.append({"t": t, "playbook": r["playbook"], "action": r["action"], "status": r["status"]})
    return pd.DataFrame(out) if out else None


def _stats(frame: pd.DataFrame) -> None:
    rows = []
    for key, g in frame.groupby("series", sort=False):
        unit = unit_of(str(g["metric"].iloc[0]))
        rows.append({"series": key, "last": format_value(float(g["value"].iloc[-1]), unit),
                     "min": format_value(float(g["value"].min()), unit), "mean": format_value(float(g["value"].mean()),
                                                                                              unit),
                     "max": format_value(float(g["value"].max()), unit), "points": len(g)})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
