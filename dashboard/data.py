"""Data access for the dashboard: the store, the state tables and the agent's API.

Kept apart from the Streamlit pages so it can be tested without a browser. The dashboard
reads the store read-only (WAL lets it read while the agent writes) and never shows secrets:
settings are rendered through pydantic, where ``SecretStr`` prints masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pandas as pd
from sqlalchemy import select

from aiops.config import Settings
from aiops.errors import AiopsError, StoreError
from aiops.model import Series, parse_selector
from aiops.state import StateDB, action_runs, alert_events, alerts, audit, silences
from aiops.store import SqliteSeriesStore

__all__ = ["DashboardData", "series_frame"]


def series_frame(store: SqliteSeriesStore, series: list[Series], start_ms: int, end_ms: int,
                 step_ms: int | None = None) -> pd.DataFrame:
    """One column per series (its text form), indexed by UTC time; NaN where a series has no point."""
    columns: dict[str, pd.Series] = {}
    for s in series:
        data = store.downsample(s, start_ms, end_ms, step_ms) if step_ms else store.read(s, start_ms, end_ms)
        columns[s.key] = pd.Series(data.values, index=pd.to_datetime(data.ts_ms, unit="ms", utc=True))
    if not columns:
        return pd.DataFrame()
    return pd.DataFrame(columns).sort_index()


@dataclass
class DashboardData:
    """What the pages read, opened once per Streamlit session."""

    settings: Settings

    def store(self) -> SqliteSeriesStore | None:
        try:
            return SqliteSeriesStore(self.settings.store.path, read_only=True)
        except StoreError:
            return None

    def state(self) -> StateDB:
        db = StateDB(self.settings.store.state_db_url())
        db.create_all()
        return db

    def find_series(self, selector: str) -> list[Series]:
        st = self.store()
        if st is None:
            return []
        try:
            return st.select(parse_selector(selector))
        finally:
            st.close()

    def table(self, name: str, limit: int = 500, **where: Any) -> pd.DataFrame:
        table = {"alerts": alerts, "alert_events": alert_events, "silences": silences,
                 "action_runs": action_runs, "audit": audit}[name]
        order = {"alerts": alerts.c.starts_at_ms, "alert_events": alert_events.c.ts_ms,
                 "silences": silences.c.created_ms, "action_runs": action_runs.c.created_ms,
                 "audit": audit.c.ts_ms}[name]
        q = select(table)
        for key, value in where.items():
            if value not in (None, ""):
                q = q.where(table.c[key] == value)
        q = q.order_by(order.desc()).limit(limit)
        db = self.state()
        try:
            with db.begin() as conn:
                rows = [dict(r._mapping) for r in conn.execute(q)]
        finally:
            db.dispose()
        frame = pd.DataFrame(rows)
        for col in frame.columns:
            if col.endswith("_ms") and col != "duration_ms":
                frame[col] = pd.to_datetime(frame[col], unit="ms", utc=True, errors="coerce")
        return frame

    # --- writes go through the agent's API, so its checks and audit apply ---------------

    @property
    def agent_url(self) -> str:
        a = self.settings.agent
        host = "127.0.0.1" if a.listen_host in ("0.0.0.0", "") else a.listen_host
        return f"http://{host}:{a.listen_port}"

    def agent_call(self, method: str, path: str, payload: Any = None) -> dict[str, Any]:
        token = self.settings.agent.api_token
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        try:
            resp = httpx.request(method, self.agent_url + path, json=payload, headers=headers, timeout=10)
        except httpx.HTTPError as exc:
            raise AiopsError(f"agent at {self.agent_url} unreachable: {exc.__class__.__name__}") from exc
        is_json = resp.headers.get("content-type", "").startswith("application/json")
        body: dict[str, Any] = resp.json() if is_json else {}
        if resp.status_code >= 400:
            raise AiopsError(f"agent answered {resp.status_code}: {body.get('error', resp.text[:200])}")
        return body
