"""An action longer than Redis' visibility timeout runs once (before: twice), and timeouts that
cannot fit in the visibility timeout are refused at start.

Two real ``aiops worker`` processes on a private redis-server (visibility timeout 5 s, run
lease 3 s): Redis hands the unacknowledged task of the still-busy worker to the other one,
which finds the run's lease renewed by the first worker's heartbeat and does nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rem_cluster import RedisServer, Worker, write_config
from rem_helpers import alert, playbook, wait_status

from aiops.errors import ConfigError
from aiops.model import ActionStatus
from aiops.state import StateDB
from app.settings import load_settings
from remediation import RemediationComponent, RunStore
from remediation.celery_app import make_celery

pytestmark = pytest.mark.timeout(120)


def test_action_longer_than_visibility_timeout_runs_once(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    config = write_config(tmp_path / "aiops.yaml", tmp=tmp_path, broker_url=server.url, kubeconfig=None,
                          allow_commands=True)
    settings = load_settings(config)
    db = StateDB(settings.store.state_db_url())
    db.create_all()
    marks = tmp_path / "ran.txt"
    pb = playbook([{"action": "command", "params": {
        "argv": ["sh", "-c", f"echo run >> {marks}; sleep 9"], "timeout_s": 30}}])
    workers = [Worker(config, f"long{i}", tmp_path).start() for i in range(2)]
    comp = RemediationComponent(settings, [pb])
    comp.attach(db)
    try:
        (rid,) = comp.on_alerts([alert(starts_at_ms=1)])
        run = wait_status(db, rid, ActionStatus.APPLIED, ActionStatus.FAILED, timeout_s=60)
        assert run.status is ActionStatus.APPLIED, run.error
        assert marks.read_text().splitlines() == ["run"]  # 9 s > visibility timeout 5 s: still once
        starts = [a for a in RunStore(db).audit_trail(rid) if a["event"] == "started"]
        assert len(starts) == 1, starts
    finally:
        comp.stop()
        for w in workers:
            w.stop()
        db.dispose()
        server.stop()


def test_timeouts_that_cannot_fit_the_visibility_timeout_are_refused(tmp_path: Path) -> None:
    url = "redis://127.0.0.1:9/0"  # never contacted: refused before
    bad_lease = load_settings(write_config(tmp_path / "a.yaml", tmp=tmp_path, broker_url=url, kubeconfig=None,
                                           visibility_timeout_s=5, run_lease_s=10))
    with pytest.raises(ConfigError, match=r"remediation.visibility_timeout_s: 5s must exceed remediation.run_lease_s"):
        make_celery(bad_lease.remediation)
    ok = load_settings(write_config(tmp_path / "b.yaml", tmp=tmp_path, broker_url=url, kubeconfig=None))
    delayed = playbook([{"action": "notify", "params": {"receiver": "ops", "message": "x"}, "delay_s": 60}],
                       name="late")
    with pytest.raises(ConfigError, match=r"steps\[0\].delay_s: 60s is not under remediation.visibility_timeout_s"):
        RemediationComponent(ok, [delayed])
