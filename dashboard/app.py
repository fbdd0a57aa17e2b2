"""The Streamlit dashboard: the SRE console over the agent's store and state database.

Run it with ``aiops dashboard`` (or ``streamlit run dashboard/app.py -- --config aiops.yaml``).
Pages are chosen with ``?page=overview|metrics|gpus|alerts|remediation|tuning``; a link with
``?series=<selector>`` and no page (what alert notifications carry) opens the metrics explorer.
Filters travel as query parameters too (``?page=alerts&alertname=X&severity=page``), so any
tool can link into a filtered view.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import streamlit as st

from aiops.errors import AiopsError
from dashboard.access import current_identity
from dashboard.auth import login_required, logout, render_login, session_identity
from dashboard.data import DashboardData, load_dashboard_settings
from dashboard.ui import CSS, go
from dashboard.views import alerts, explorer, gpus, overview, remediation, tuning

PAGES: dict[str, tuple[str, Callable[[DashboardData], None]]] = {
    "overview": (":material/dashboard: Overview", overview.render),
    "metrics": (":material/show_chart: Metrics explorer", explorer.render),
    "gpus": (":material/memory: GPUs", gpus.render),
    "alerts": (":material/notifications_active: Alerts", alerts.render),
    "remediation": (":material/build: Remediation", remediation.render),
    "tuning": (":material/tune: Tuning", tuning.render),
}
ALIASES = {"actions": "remediation", "replay": "tuning", "explorer": "metrics"}
CONFIG_KEY = "aiops_config"  # session-state key AppTest (or an embedding) may set instead of --config


def _config_arg() -> str | None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=None)
    known, _ = parser.parse_known_args(sys.argv[1:])
    return str(known.config) if known.config else None


@st.cache_resource(show_spinner=False)
def _data(config: str | None) -> DashboardData:
    settings, path = load_dashboard_settings(config)
    return DashboardData(settings, path)


def current_page() -> str:
    qp = st.query_params
    page = ALIASES.get(qp.get("page", ""), qp.get("page", ""))
    if page not in PAGES:
        page = "metrics" if qp.get("series") else "overview"
    return page


def main() -> None:
    st.set_page_config(page_title="aiops console", layout="wide")
    st.markdown(CSS, unsafe_allow_html=True)
    config = st.session_state.get(CONFIG_KEY) or _config_arg()
    try:
        data = _data(config)
    except AiopsError as exc:
        st.error(f"configuration: {exc}")
        return
    if login_required(data.settings) and not render_login(data.settings):
        return  # dashboard.users is set: nothing is shown before a login
    page = current_page()
    with st.sidebar:
        st.title("aiops console")
        for name, (label, _) in PAGES.items():
            st.button(label, key=f"nav_{name}", on_click=go, args=(name,), width="stretch",
                      type="primary" if name == page else "secondary")
        ident = current_identity()
        st.divider()
        st.caption(f"{ident.name + ' · ' if ident.name else ''}role: {ident.role}")
        if session_identity() is not None:
            st.button("Log out", key="logout", on_click=logout)
        st.caption(f"config: `{data.config_path or 'defaults'}`")
    PAGES[page][1](data)


main()
