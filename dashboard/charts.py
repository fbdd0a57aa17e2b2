"""Altair charts of long frames: one panel per unit, shared time axis, annotations on top.

Field names are fixed (``t``, ``value``, ``label`` ...) and series texts travel as data, so no
label value can be read as a Vega-Lite field path. Colours come from Streamlit's theme, which
holds in dark mode; annotations use semi-transparent fills readable on both backgrounds.
Times are given in UTC and drawn by Vega in the browser's zone, whose name titles the axis.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd

from dashboard.units import Unit, unit_of

__all__ = ["timeseries_charts", "score_chart", "bar_chart"]

_ALERT_FILL = "#e4572e"
_RUN_STROKE = "#f4a259"
_ANOMALY = "#d62728"


def _x(tz_name: str, show_title: bool) -> alt.X:
    return alt.X("t:T", title=f"time ({tz_name})" if show_title else None,
                 axis=alt.Axis(format="%H:%M", labelOverlap=True, formatType="time",
                               labelExpr="timeFormat(datum.value, "
                                         "(hours(datum.value) == 0 && minutes(datum.value) == 0) ? '%b %d' : '%H:%M')"))


def _lean(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Only the columns the layer encodes, times as epoch ms.

    Streamlit ships each layer's frame to the browser as Arrow and Vega parses every cell: the
    explorer's 10 x 600 points carried the series' full text, its metric and unit on every row
    (1.2 MB for 6,000 points). Altair turns datetimes into ISO strings; epoch-ms integers are
    what Vega-Lite reads as time anyway (temporal fields are UTC ms).
    """
    out = frame[[c for c in columns if c in frame.columns]].reset_index(drop=True)
    if "t" in out and isinstance(out["t"].dtype, pd.DatetimeTZDtype):
        out["t"] = out["t"].dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ms]").astype("int64")
    return out


Y_AXIS_PX = 56  # every panel's y axis takes the same width, so stacked panels' time axes line up


def _panel(lines: pd.DataFrame, unit: Unit, tz_name: str, height: int, last: bool,
           anomalies: pd.DataFrame | None, bands: pd.DataFrame | None, periods: pd.DataFrame | None,
           runs: pd.DataFrame | None, domain: list[Any], title: str | None = None) -> Any:
    x = _x(tz_name, last).scale(domain=domain)  # the lines' layer fixes the domain; the others follow
    x_plain = alt.X("t:T")
    y = alt.Y("value:Q", title=unit.title, axis=alt.Axis(format=unit.fmt, minExtent=Y_AXIS_PX, maxExtent=Y_AXIS_PX))
    lo, hi = float(lines["value"].min()), float(lines["value"].max())
    if lo == hi:  # a flat line (XID errors at 0): Vega's zero-width domain labels its one tick "NaN"
        pad = max(1.0, abs(lo) * 0.1)
        y = y.scale(domain=[max(0.0, lo - pad) if lo >= 0 else lo - pad, hi + pad])  # counts stay >= 0
    legend = alt.Legend(orient="bottom", title=None, labelLimit=600, columns=2, symbolType="stroke")
    layers: list[Any] = []
    if periods is not None and not periods.empty:
        layers.append(alt.Chart(periods).mark_rect(color=_ALERT_FILL, opacity=0.15).encode(
            x=alt.X("start:T"), x2="end:T",
            tooltip=[alt.Tooltip("alertname:N", title="alert"), alt.Tooltip("severity:N"),
                     alt.Tooltip("start:T", title="firing from", format="%Y-%m-%d %H:%M:%S"),
                     alt.Tooltip("end:T", title="until", format="%Y-%m-%d %H:%M:%S")]))
    if bands is not None and not bands.empty:
        band_data = _lean(bands, ("t", "label", "lower", "upper"))
        layers.append(alt.Chart(band_data).mark_area(opacity=0.18, color="#8fa8c8").encode(
            x=x_plain, y=alt.Y("lower:Q", title=unit.title, axis=alt.Axis(format=unit.fmt, minExtent=Y_AXIS_PX,
                                                                          maxExtent=Y_AXIS_PX)), y2="upper:Q",
            detail="label:N", tooltip=[alt.Tooltip("label:N", title="expected band of"),
                                      alt.Tooltip("lower:Q", format=unit.fmt),
                                      alt.Tooltip("upper:Q", format=unit.fmt)]))
    line_data = _lean(lines, ("t", "label", "value"))
    layers.append(alt.Chart(line_data).mark_line(strokeWidth=1.6, interpolate="linear").encode(
        x=x, y=y, color=alt.Color("label:N", legend=legend),
        tooltip=[alt.Tooltip("t:T", title="time", format="%Y-%m-%d %H:%M:%S"), alt.Tooltip("label:N", title="series"),
                 alt.Tooltip("value:Q", format=unit.fmt if unit.key == "ratio" else ",.4~g")]))
    if anomalies is not None and not anomalies.empty:
        points = _lean(anomalies, ("t", "label", "value", "score", "detector"))
        layers.append(alt.Chart(points).mark_point(shape="diamond", filled=True, size=70, color=_ANOMALY,
                                                       opacity=0.95).encode(
            x=x_plain, y="value:Q",
            tooltip=[alt.Tooltip("t:T", title="anomaly at", format="%Y-%m-%d %H:%M:%S"),
                     alt.Tooltip("label:N", title="series"), alt.Tooltip("detector:N"),
                     alt.Tooltip("score:Q", format=".3f"), alt.Tooltip("value:Q", format=",.4~g")]))
    if runs is not None and not runs.empty:
        layers.append(alt.Chart(runs).mark_rule(color=_RUN_STROKE, strokeDash=[4, 3], strokeWidth=2).encode(
            x=alt.X("t:T"),
            tooltip=[alt.Tooltip("t:T", title="remediation", format="%Y-%m-%d %H:%M:%S"),
                     alt.Tooltip("playbook:N"), alt.Tooltip("action:N"), alt.Tooltip("status:N")]))
    # fit-x: the width fills the page; the height is the plot's, so a title and a legend never
    # squeeze a short panel to nothing (Streamlit's default "fit" counts them into the height)
    chart = alt.layer(*layers).properties(height=height, width="container",
                                          autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))
    if title:
        chart = chart.properties(title=alt.Title(title, anchor="start", fontSize=12, fontWeight="normal"))
    return chart.interactive(bind_y=False)


def timeseries_charts(frame: pd.DataFrame, *, tz_name: str, start: pd.Timestamp, end: pd.Timestamp,
                     height: int = 260, anomalies: pd.DataFrame | None = None, bands: pd.DataFrame | None = None,
                     periods: pd.DataFrame | None = None, runs: pd.DataFrame | None = None,
                     per_metric: bool = False) -> list[Any]:
    """Lines of ``frame`` (long, from :func:`dashboard.series.long_frame`), one chart per unit.

    Each panel is its own chart (drawn one under the other with ``width="stretch"``): Vega-Lite's
    ``width="container"`` does not reach into a ``vconcat``, whose panels then overflowed the
    page. All panels get the same time domain and y-axis width, so their time axes line up.

    Args:
        frame: columns ``t``, ``label``, ``metric``, ``unit``, ``value``.
        tz_name: the browser's time zone name, shown on the time axis.
        start, end: the time range (the x domain of every panel).
        anomalies: ``t``, ``label``, ``unit``, ``value``, ``score``, ``detector`` (diamonds).
        bands: ``t``, ``label``, ``unit``, ``lower``, ``upper`` (shaded expected range).
        periods: ``start``, ``end``, ``alertname``, ``severity`` (shaded on every panel).
        runs: ``t``, ``playbook``, ``action``, ``status`` (dashed rules on every panel).
        per_metric: one panel per metric instead of per unit (the GPU page's stacked views).
    """
    domain = [start.isoformat(), end.isoformat()]
    by = "metric" if per_metric else "unit"
    units = list(dict.fromkeys(frame[by]))
    panels = []
    for i, key in enumerate(units):
        sub = frame[frame[by] == key]
        unit = unit_of(sub["metric"].iloc[0])
        title = str(key) if per_metric else None  # the metric above its panel, its unit on the axis

        def of_unit(extra: pd.DataFrame | None, key: str = key) -> pd.DataFrame | None:
            return None if extra is None or extra.empty else extra[extra["unit"] == key]

        panels.append(_panel(sub, unit, tz_name, height, i == len(units) - 1, of_unit(anomalies), of_unit(bands),
                             periods, runs, domain, title))
    return panels


def score_chart(frame: pd.DataFrame, *, tz_name: str, threshold: float | None = None,
                flagged: pd.DataFrame | None = None, labels: pd.DataFrame | None = None,
                height: int = 200, y_title: str = "anomaly score") -> Any:
    """Scores (``t``, ``setting``, ``score``) of one or two settings, the threshold, labelled windows.

    Args:
        flagged: ``t``, ``setting``, ``score`` of points at or above the threshold.
        labels: ``start``, ``end`` of labelled anomaly windows (shaded).
    """
    layers: list[Any] = []
    if labels is not None and not labels.empty:
        layers.append(alt.Chart(labels).mark_rect(color="#2ca02c", opacity=0.18).encode(
            x="start:T", x2="end:T", tooltip=[alt.Tooltip("start:T", title="labelled from"),
                                              alt.Tooltip("end:T", title="until")]))
    layers.append(alt.Chart(frame).mark_line(strokeWidth=1.3).encode(
        x=_x(tz_name, True), y=alt.Y("score:Q", title=y_title, scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("setting:N", legend=alt.Legend(orient="bottom", title=None)),
        tooltip=[alt.Tooltip("t:T", format="%Y-%m-%d %H:%M:%S"), "setting:N", alt.Tooltip("score:Q", format=".3f")]))
    if threshold is not None:
        layers.append(alt.Chart(pd.DataFrame({"y": [threshold]})).mark_rule(strokeDash=[6, 4], color="#999").encode(
            y="y:Q"))
    if flagged is not None and not flagged.empty:
        layers.append(alt.Chart(flagged).mark_point(shape="diamond", filled=True, size=50).encode(
            x="t:T", y="score:Q", color=alt.Color("setting:N", legend=None),
            tooltip=[alt.Tooltip("t:T", title="flagged at", format="%Y-%m-%d %H:%M:%S"), "setting:N",
                     alt.Tooltip("score:Q", format=".3f")]))
    return alt.layer(*layers).properties(height=height, width="container").interactive(bind_y=False)


def bar_chart(frame: pd.DataFrame, x: str, y: str, color: str | None = None, height: int = 160) -> Any:
    """A small bar chart (counts by category) for tiles."""
    enc: dict[str, Any] = {"x": alt.X(f"{x}:N", title=None, sort="-y"), "y": alt.Y(f"{y}:Q", title=None),
                           "tooltip": [f"{x}:N", f"{y}:Q"]}
    if color:
        enc["color"] = alt.Color(f"{color}:N", legend=None)
    return alt.Chart(frame).mark_bar().encode(**enc).properties(height=height, width="container")
