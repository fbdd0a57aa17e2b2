"""`python -m app run` with the default configuration collects this host into the store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aiops.model import parse_selector
from aiops.store import SqliteSeriesStore
from tests.conftest import run_cli


def _host_series(db: Path) -> list[str]:
    with SqliteSeriesStore(db, read_only=True) as st:
        return [s.key for s in st.select(parse_selector('{__name__=~"aiops_host_.*"}'))]


def test_run_for_three_seconds_writes_host_series(tmp_path: Path) -> None:
    db = tmp_path / "aiops.db"
    proc = run_cli("run", "--duration-s", "3", "--store", str(db), "--port", "0", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    keys = _host_series(db)
    assert any(k.startswith("aiops_host_memory_used_bytes{") for k in keys), keys[:20]
    assert any(k.startswith("aiops_host_load1{") for k in keys)
    with SqliteSeriesStore(db, read_only=True) as st:
        up = st.select(parse_selector('aiops_collector_up{collector="host"}'))
        assert up and st.read(up[0], 0, 2**62).values.tolist()[-1] == 1.0


def test_sigterm_flushes_and_exits_zero(tmp_path: Path) -> None:
    db = tmp_path / "aiops.db"
    proc = subprocess.Popen([sys.executable, "-m", "app", "run", "--store", str(db), "--port", "0"],
                            cwd=tmp_path, env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        # wait until the first collection has been queued (the agent logs its start; then one jitter)
        deadline = time.monotonic() + 60
        started = False
        assert proc.stderr is not None
        while time.monotonic() < deadline and not started:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            started = '"agent_started"' in line
        assert started, "agent never logged agent_started"
        time.sleep(1.5)  # past the first collection's jitter (0.5 s by default)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    assert '"agent_stopped"' in err
    assert any(k.startswith("aiops_host_memory_used_bytes{") for k in _host_series(db))
