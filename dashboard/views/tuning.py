"""Tuning: replay history through a detector with parameters from a generated form.

Sources: a stored series, an uploaded CSV (``timestamp,value[,label]``), or a file of a labelled
data set (NAB layout: ``data/**.csv`` + ``labels/combined_windows.json``). With labels, each
setting gets precision, recall, F1 and the NAB score; two settings can be compared on one
chart; the winner is a YAML snippet for ``detect.detectors``. Replays run in chunks with a
progress bar and a Cancel button (clicking it stops the run).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from aiops.errors import AiopsError, InputError
from aiops.model import now_ms
from dashboard import series
from dashboard.charts import score_chart
from dashboard.data import DashboardData
from dashboard.params import ParamSpec, param_specs, yaml_snippet
from dashboard.ui import browser_tz, fmt_time, guarded
from dashboard.views.explorer import RANGES

__all__ = ["render", "Replay", "replay", "label_metrics", "windows_from_labels", "DATASET_DIRS"]

CHUNK = 2_000
DATASET_DIRS = (Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "nab",)
RUNNING = "tune_running"
RESULT = "tune_result"


class Replay:
    """Scores of one setting over ``values``: the detector's output and its own decision."""

    def __init__(self, setting: str, detector: str, params: dict[str, Any], scores: np.ndarray, threshold: float,
                 seconds: float) -> None:
        self.setting, self.detector, self.params = setting, detector, params
        self.scores, self.threshold, self.seconds = scores, threshold, seconds

    @property
    def flagged(self) -> np.ndarray:
        return np.asarray(self.scores >= self.threshold)


def replay(detector: str, params: dict[str, Any], values: np.ndarray, setting: str = "A",
           progress: Any = None) -> Replay:
    """Run ``values`` through a fresh detector in chunks (the same causal loop as the live agent).

    Raises:
        DetectorError: bad parameters, naming them.
    """
    from detectors import registry

    det = registry.create(detector, **params)
    started = time.perf_counter()
    parts = []
    for i in range(0, len(values), CHUNK):
        parts.append(det.score(values[i:i + CHUNK]))
        if progress is not None:
            progress(min(1.0, (i + CHUNK) / max(len(values), 1)), setting)
    scores = np.concatenate(parts) if parts else np.zeros(0)
    return Replay(setting, detector, det.get_params(), scores, float(det.threshold), time.perf_counter() - started)


def windows_from_labels(ts_ms: np.ndarray, labels: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs of label 1 as (first, last) times in ms."""
    out: list[tuple[int, int]] = []
    start: int | None = None
    prev = 0
    for t, lab in zip(ts_ms, labels, strict=True):
        if lab and start is None:
            start = int(t)
        if not lab and start is not None:
            out.append((start, prev))
            start = None
        prev = int(t)
    if start is not None:
        out.append((start, int(ts_ms[-1])))
    return out


def label_metrics(ts_ms: np.ndarray, windows: list[tuple[int, int]], flagged: np.ndarray) -> dict[str, Any]:
    """Precision, recall, F1 (windows detected / alarms outside) and the normalised NAB score."""
    from detectors import nab

    f = nab.prepare_file("replay", ts_ms, windows)
    hit = flagged & f.scorable
    detected = sum(1 for k in f.counted if (hit & (f.window_of == k)).any())
    fps = int((hit & (f.window_of < 0)).sum())
    precision = detected / (detected + fps) if detected + fps else None
    recall = detected / f.n_windows if f.n_windows else None
    f1 = None if precision is None or recall is None else (
        0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    raw = nab.raw_score(f, flagged)
    return {"windows": f.n_windows, "detected": detected, "false alarms": fps, "precision": precision,
            "recall": recall, "F1": f1, "NAB score": nab.normalised_score(raw, [f])}


def render(data: DashboardData) -> None:
    st.header("Tuning")
    st.caption("Replay history through a detector exactly as the live agent would, and tune it before you trust it.")
    if st.session_state.pop(RUNNING, False):
        st.warning("The last replay was cancelled.", icon=":material/stop_circle:")
    guarded(lambda: _render(data))


def _render(data: DashboardData) -> None:
    from detectors import registry

    source = st.radio("Source", ["Stored series", "CSV upload", "Labelled data set"], horizontal=True, key="t_src")
    loaded = _source(data, source)
    st.divider()
    names = [n for n in registry.available() if n not in ("ensemble",)]
    c = st.columns([2, 2, 3])
    detector = c[0].selectbox("Detector", names, index=names.index("zscore") if "zscore" in names else 0, key="t_det")
    compare = c[1].toggle("Compare two settings", key="t_cmp")
    specs = param_specs(registry.get(detector))
    cols = st.columns(2 if compare else 1)
    per_row = 2 if compare else 4
    settings = {"A": _form(cols[0], specs, "A", detector, per_row)}
    if compare:
        settings["B"] = _form(cols[1], specs, "B", detector, per_row)
    if loaded is None:
        st.info("Choose data to replay above.")
        return
    frame, windows, selector = loaded
    # in the browser's zone, as the chart's axis: a caption in UTC over a chart in local time read as two spans
    st.caption(f"{len(frame):,} points from {fmt_time(frame['t'].iloc[0], '%Y-%m-%d %H:%M')} to "
               f"{fmt_time(frame['t'].iloc[-1], '%Y-%m-%d %H:%M')} ({browser_tz()})"
               f"{'; ' + str(len(windows)) + ' labelled windows' if windows else '; no labels'}")
    go, cancel = st.columns([1, 6])
    run = go.button("Run replay", icon=":material/play_arrow:", type="primary", key="t_run")
    if run:
        cancel.button("Cancel", icon=":material/stop:", key="t_cancel")
        st.session_state[RUNNING] = True
        bar = st.progress(0.0, text="replaying")
        values = frame["value"].to_numpy(dtype=float)
        try:
            results = [replay(detector, p, values, name,
                              lambda f, s: bar.progress(f, text=f"setting {s}: {f * 100:.0f}%"))
                       for name, p in settings.items()]
        except AiopsError as exc:
            st.session_state.pop(RUNNING, None)
            st.error(f"parameters: {exc}")
            return
        st.session_state.pop(RUNNING, None)
        bar.empty()
        st.session_state[RESULT] = (results, frame, windows, selector)
    if RESULT in st.session_state:
        _results(*st.session_state[RESULT])


def _form(where: Any, specs: list[ParamSpec], setting: str, detector: str, per_row: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with where.container(border=True):
        st.markdown(f"**Setting {setting}**")
        grid = st.columns(per_row)
        for i, p in enumerate(specs):
            with grid[i % per_row]:
                _widget(p, setting, detector, out)
    return out


def _widget(p: ParamSpec, setting: str, detector: str, out: dict[str, Any]) -> None:
    """One generated widget for ``p``; its value goes to ``out[p.name]`` (None: switched off)."""
    key = f"t_{detector}_{setting}_{p.name}"
    if p.optional:
        on = st.toggle(f"set {p.name}", value=p.default is not None, key=key + "_on")
        if not on:
            out[p.name] = None
            return
    if p.kind == "bool":
        out[p.name] = st.toggle(p.name, value=bool(p.default), key=key)
    elif p.kind == "choice":
        out[p.name] = st.selectbox(p.name, p.choices, index=p.choices.index(p.default)
                                   if p.default in p.choices else 0, key=key)
    elif p.kind == "int":
        d = int(p.default) if p.default is not None else int(p.low) or 1
        if p.name == "seed":
            out[p.name] = int(st.number_input(p.name, value=d, step=1, key=key))
        else:
            out[p.name] = int(st.slider(p.name, int(p.low), int(p.high), d, key=key))
    elif p.kind == "float":
        f0 = float(p.default) if p.default is not None else p.low
        out[p.name] = float(st.slider(p.name, float(p.low), float(p.high), f0, step=float(p.step), key=key,
                                      format="%.4f" if p.step < 0.01 else "%.2f"))
    else:
        out[p.name] = st.text_input(p.name, value=str(p.default or ""), key=key)


def _source(data: DashboardData, source: str) -> tuple[pd.DataFrame, list[tuple[int, int]], str] | None:
    if source == "CSV upload":
        upload = st.file_uploader("CSV with a header timestamp,value (optional label column of 0/1)", type="csv")
        if upload is None:
            return None
        return _csv_frame(pd.read_csv(upload), upload.name)
    if source == "Labelled data set":
        roots = [str(d) for d in DATASET_DIRS if d.is_dir()]
        root = Path(st.text_input("Data set folder (NAB layout)", value=roots[0] if roots else "", key="t_root"))
        if not (root / "labels" / "combined_windows.json").is_file():
            st.info(f"No NAB-style data set at {root} (expected data/**.csv and labels/combined_windows.json).")
            return None
        files = sorted(str(p.relative_to(root / "data")) for p in (root / "data").rglob("*.csv"))
        name = st.selectbox("File", files, key="t_file")
        frame, _, _ = _csv_frame(pd.read_csv(root / "data" / name), name)
        labels = json.loads((root / "labels" / "combined_windows.json").read_text())
        windows = [(_ms(a), _ms(b)) for a, b in labels.get(name, [])]
        return frame, windows, ""
    with data.store() as store:
        names = [n for n in series.metric_names(store) if n not in series.COMPANIONS]
        c = st.columns([2, 3, 1])
        first = next((n for n in ("inference_latency_p99_seconds", "inference_queue_depth") if n in names), None)
        metric = c[0].selectbox("Metric", names, key="t_metric", index=names.index(first) if first else 0)
        found = series.select(store, metric, {})
        key = c[1].selectbox("Series", [s.key for s in found], key="t_series")
        rng = c[2].selectbox("Range", list(RANGES), index=4, key="t_range")
        s = next((x for x in found if x.key == key), None)
        if s is None:
            return None
        end = now_ms()
        raw = store.read(s, end - RANGES[rng], end)
    if not len(raw):
        st.info("No samples in this range.")
        return None
    frame = pd.DataFrame({"t": pd.to_datetime(raw.ts_ms, unit="ms", utc=True), "value": raw.values})
    return frame, [], s.key


def _ms(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").value // 1_000_000)


def _csv_frame(frame: pd.DataFrame, name: str) -> tuple[pd.DataFrame, list[tuple[int, int]], str]:
    if list(frame.columns[:2]) != ["timestamp", "value"]:
        raise InputError(f"{name}: expected a header timestamp,value, got {','.join(map(str, frame.columns[:3]))}")
    try:
        t = pd.to_datetime(frame["timestamp"], utc=True)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{name}: timestamps are not ISO-8601 ({exc})") from exc
    out = pd.DataFrame({"t": t, "value": pd.to_numeric(frame["value"], errors="coerce")})
    windows = []
    if "label" in frame.columns:
        ts = (t.astype("int64") // 1_000_000).to_numpy()
        windows = windows_from_labels(ts, frame["label"].fillna(0).astype(int).to_numpy())
    return out, windows, ""


def _results(results: list[Replay], frame: pd.DataFrame, windows: list[tuple[int, int]], selector: str) -> None:
    tz = browser_tz()
    ts_ms = (frame["t"].astype("int64") // 1_000_000).to_numpy()
    step = max(1, len(frame) // 1500)  # the chart shows every step-th point (flagged points always)
    idx = np.arange(0, len(frame), step)
    long = pd.concat([pd.DataFrame({"t": frame["t"].iloc[idx].to_numpy(), "setting": f"{r.setting}: {r.detector}",
                                    "score": r.scores[idx]}) for r in results])
    flagged = pd.concat([pd.DataFrame({"t": frame["t"][r.flagged].to_numpy(), "setting": f"{r.setting}: {r.detector}",
                                       "score": r.scores[r.flagged]}) for r in results])
    label_frame = pd.DataFrame([{"start": pd.Timestamp(a, unit="ms", tz="UTC"),
                                 "end": pd.Timestamp(b, unit="ms", tz="UTC")} for a, b in windows])
    values = pd.DataFrame({"t": frame["t"].iloc[idx].to_numpy(), "setting": "value", "score": frame["value"].iloc[idx]})
    vmin, vmax = float(np.nanmin(frame["value"])), float(np.nanmax(frame["value"]))
    span = (vmax - vmin) or 1.0
    values["score"] = (values["score"] - vmin) / span
    st.markdown("**Value (scaled to 0–1) and scores** · ◆ flagged · green: labelled anomaly windows · "
                "dashed: threshold")
    st.altair_chart(score_chart(pd.concat([values, long]), tz_name=tz, threshold=results[0].threshold,
                                flagged=flagged, labels=label_frame, height=300, y_title="score / scaled value"),
                    width="stretch")
    rows = []
    for r in results:
        row: dict[str, Any] = {"setting": r.setting, "flagged points": int(r.flagged.sum()), "threshold": r.threshold,
                               "replay took": f"{r.seconds * 1000:,.0f} ms"}
        if windows:
            row.update(label_metrics(ts_ms, windows, r.flagged))
        rows.append(row)
    table = pd.DataFrame(rows)
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        c: st.column_config.NumberColumn(format="%.3f") for c in ("precision", "recall", "F1")})
    best = results[0]
    if windows and len(results) > 1:
        scores = [(x.get("NAB score") or -1e9) for x in rows]
        best = results[int(np.argmax(scores))]
        st.success(f"Setting {best.setting} scores best on NAB ({max(scores):.1f}).")
    st.markdown(f"**YAML for setting {best.setting}** (copy with the button at the top right of the block)")
    st.code(yaml_snippet(f"{best.detector}-tuned", best.detector, selector, best.params, None), language="yaml")
