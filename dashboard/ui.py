"""Small rendering helpers shared by the pages: messages instead of tracebacks, chips, links, times."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
import streamlit as st

from aiops.errors import AiopsError
from dashboard.data import DataUnavailable

__all__ = ["guarded", "chips_html", "go", "nav_button", "browser_tz", "local", "SEVERITY_ORDER", "severity_icon",
           "fmt_time", "duration", "ago", "until", "run_end"]

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


def fmt_time(value: Any, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A UTC timestamp as wall-clock text in the browser's zone; "–" for none."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NaT:
        return "–"
    ts = local(value)
    return str(ts.strftime(fmt)) if isinstance(ts, pd.Timestamp) else str(ts)


def duration(seconds: float) -> str:
    """A span as people say it: "< 1 s", "45 s", "12 min", "3.5 h", "2.0 d" (negative spans read as "< 1 s")."""
    s = max(0.0, seconds)
    if s < 1:  # "took 0 s" reads as "did not run"
        return "< 1 s"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def ago(value: Any, now: pd.Timestamp | None = None) -> str:
    """How long ago ``value`` was: "just now", "16 s ago", "5 min ago"; "–" for none."""
    if value is None or value is pd.NaT:
        return "–"
    now = now or pd.Timestamp.now(tz="UTC")
    s = (now - value).total_seconds()
    # "0 s ago" reads like a glitch; a clock a little ahead of ours is "just now" too
    return "just now" if s < 1 else f"{duration(s)} ago"


def until(value: Any, now: pd.Timestamp | None = None) -> str:
    """How far ahead ``value`` is: "in 59 min (16:53)"; "passed" once it is behind us; "–" for none."""
    if value is None or value is pd.NaT:
        return "–"
    now = now or pd.Timestamp.now(tz="UTC")
    s = (value - now).total_seconds()
    return f"in {duration(s)} ({fmt_time(value, '%H:%M')})" if s > 0 else f"passed ({fmt_time(value, '%H:%M')})"


# what a run that has not finished is doing, and since when (created or, once it runs, started)
_OPEN_RUN = {"pending_approval": ("waiting", "created"), "planned": ("planned", "created"),
             "approved": ("queued", "created"), "queued": ("queued", "created"),
             "running": ("running", "started"), "applied": ("verifying", "started")}
_NEVER_RAN = {"dry_run": "not run (dry run)", "skipped": "not run (skipped)"}


def run_end(run: Mapping[str, Any], now: pd.Timestamp | None = None) -> str:
    """The "finished" cell of an action run (times as :func:`dashboard.records.run_rows` gives them).

    A finished run: its end time in the browser's zone (the date only when it differs from the
    start's) and how long it took. A run still open: what it does and for how long so far
    ("still running · 12 s so far"), never an empty or "None" cell.
    """
    finished, created = run.get("finished"), run.get("created")
    began = run.get("started") or created
    if finished is not None and finished is not pd.NaT:
        same_day = began is not None and fmt_time(began, "%Y-%m-%d") == fmt_time(finished, "%Y-%m-%d")
        when = fmt_time(finished, "%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S")
        return f"{when} (took {duration((finished - began).total_seconds())})" if began is not None else when
    status = str(run.get("status") or "")
    if status in _OPEN_RUN:
        verb, field = _OPEN_RUN[status]
        since = run.get(field) or created
        now = now or pd.Timestamp.now(tz="UTC")
        return f"still {verb} · {duration((now - since).total_seconds())} so far" if since is not None \
            else f"still {verb}"
    return _NEVER_RAN.get(status, "–")
