"""Helpers of the remediation tests: settings, playbook and alert builders, polling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiops.model import ActionStatus, Alert, AlertState
from aiops.state import StateDB
from app.settings import Settings
from remediation import Playbook, Run, RunStore, parse_playbook
from tests.conftest import wait_for

__all__ = ["alert", "make_settings", "playbook", "wait_for", "wait_status"]


def make_settings(tmp_path: Path, **remediation: Any) -> Settings:
    rem = {"retry_backoff_s": 0.05, "retry_backoff_max_s": 0.2, "sweep_interval_s": 0.1, **remediation}
    return Settings(store={"path": tmp_path / "ts.db"}, remediation=rem)


def playbook(steps: list[dict[str, Any]], name: str = "pb", guards: dict[str, Any] | None = None,
             match: dict[str, str] | None = None, state: str = "firing") -> Playbook:
    return parse_playbook({"name": name, "trigger": {"match": match or {"alertname": "Slow"}, "state": state},
                           "steps": steps, "guards": guards or {}}, f"{name}.yaml")


def alert(starts_at_ms: int = 1_000, state: AlertState = AlertState.FIRING, **labels: str) -> Alert:
    return Alert.of({"alertname": "Slow", "namespace": "inference", "deployment": "llm", **labels},
                    state=state, starts_at_ms=starts_at_ms, value=2.5)


def wait_status(db: StateDB, run_id: str, *statuses: ActionStatus, timeout_s: float = 30.0) -> Run:
    runs = RunStore(db)
    return wait_for(lambda: (r := runs.get(run_id)).status in statuses and r, timeout_s,
                    f"run {run_id} in {[s.value for s in statuses]} (now {runs.get(run_id).status.value})")
