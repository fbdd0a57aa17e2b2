"""Small rendering helpers shared by the pages: messages instead of tracebacks, chips, links, times."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import streamlit as st

from aiops.errors import AiopsError
from dashboard.data import DataUnavailable

__all__ = ["guarded", "chips_html", "go", "nav_button", "browser_tz", "local", "SEVERITY_ORDER", "severity_icon"]

SEVERITY_ORDER = {"critical": 0, "page": 1, "error": 2, "warning": 3, "info": 4, "": 5}
_SEVERITY_ICON = {"critical": ":red[●]", "page": ":red[●]", "error": ":orange[●]", "warning": ":orange[●]",
                  "info": ":blue[●]"}


def severity_icon(severity: str) -> str:
    return _SEVERITY_ICON.get(severity, ":gray[●]")


def guarded(render: Callable[[], None]) -> None:
    """Run ``render``; a store/state problem or an input error becomes one clear message."""
    try:
        render()
    except DataUnavailable as exc:
        if exc.kind in ("missing", "empty"):
            st.info(str(exc), icon=":material/info:")
        else:
            st.error(str(exc), icon=":material/error:")
    except AiopsError as exc:
        st.error(str(exc), icon=":material/error:")


def chips_html(labels: Mapping[str, str], skip: tuple[str, ...] = ()) -> str:
    """Labels as chips (escaped: any value is safe)."""
    parts = [f'<span class="aiops-chip"><b>{html.escape(k)}</b>={html.escape(v)}</span>'
             for k, v in sorted(labels.items()) if k not in skip]
    return " ".join(parts)


CSS = """
<style>
.aiops-chip {display:inline-block; padding:1px 8px; margin:1px 3px 1px 0; border-radius:10px;
  font-size:0.8rem; background:rgba(128,128,128,0.18); border:1px solid rgba(128,128,128,0.35);
  font-family: ui-monospace, monospace; white-space:nowrap;}
.aiops-tile-num {font-size:2rem; font-weight:600; line-height:1.1}
div[data-testid="stMetricValue"] {font-size:1.7rem}
</style>
"""


def go(page: str, **params: str) -> None:
    """Switch to ``page`` with query parameters (a callback: runs before the rerun)."""
    st.query_params.clear()
    st.query_params.update({"page": page, **{k: v for k, v in params.items() if v}})
    for key in [k for k in st.session_state.keys() if str(k).startswith("f_")]:
        del st.session_state[key]  # filters re-read the new query parameters


def nav_button(label: str, page: str, key: str, **params: str) -> None:
    st.button(label, key=key, on_click=go, args=(page,), kwargs=params, type="tertiary")


def browser_tz() -> str:
    """The browser's IANA zone (UTC when unknown, e.g. in AppTest)."""
    try:
        tz = st.context.timezone
    except Exception:  # st.context needs a browser session; AppTest has none of its headers
        tz = None
    return tz or "UTC"


def local(value: Any) -> Any:
    """A UTC timestamp (or a column of them) in the browser's zone, for tables."""
    tz = browser_tz()
    if isinstance(value, pd.Series):
        return value.dt.tz_convert(tz) if hasattr(value, "dt") and value.dt.tz is not None else value
    if isinstance(value, pd.Timestamp):
        return value.tz_convert(tz)
    return value


def fmt_time(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value) or value is pd.NaT:
        return "–"
    ts = local(value)
    return str(ts.strftime("%Y-%m-%d %H:%M:%S")) if isinstance(ts, pd.Timestamp) else str(ts)


def ago(value: Any, now: pd.Timestamp | None = None) -> str:
    if value is None or value is pd.NaT:
        return "–"
    now = now or pd.Timestamp.now(tz="UTC")
    s = max(0.0, (now - value).total_seconds())
    if s < 90:
        return f"{s:.0f}s ago"
    if s < 5400:
        return f"{s / 60:.0f} min ago"
    if s < 172800:
        return f"{s / 3600:.1f} h ago"
    return f"{s / 86400:.1f} d ago"
