"""The closed loop end to end: ``aiops demo --fast`` as a user runs it.

A fake Kubernetes API server, the simulated inference service and the agent (scrape
collector, alert rules, remediation playbooks) run in one ``python -m app demo`` process;
the test reads what it printed and what it recorded in its state database.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from aiops.state import StateDB
from app.cli_demo import MILESTONES
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

# What each milestone prints (app/cli_demo.py), in the order the story must tell it.
_PRINTED = [
    r"LOAD\s+spike: 15 -> 45 rps",
    r"SERVICE\s+p99 latency [\d.]+s > 1s SLO",
    r"ALERT FIRING\s+InferenceLatencyHigh",
    r"KUBERNETES\s+Scaled up replica set llm-\w+ from 2 to 8",
    r"SERVICE\s+p99 latency back under the SLO: 0\.\d+s",
    r"ALERT RESOLVED\s+InferenceLatencyHigh",
    r"LOAD\s+back to baseline: 45 -> 15 rps",
    r"ALERT FIRING\s+InferenceOverProvisioned",
    r"KUBERNETES\s+Scaled down replica set llm-\w+ from 8 to 2",
    r"DONE\s+back to 2 replicas",
    r"ALERT RESOLVED\s+InferenceOverProvisioned",
]


def test_demo_closes_the_loop(tmp_path: Path) -> None:
    assert len(_PRINTED) == len(MILESTONES)
    proc = run_cli("demo", "--fast", "--workdir", str(tmp_path), timeout=150)
    out = proc.stdout
    log_tail = (tmp_path / "demo.log").read_text(encoding="utf-8")[-3000:] if (tmp_path / "demo.log").exists() else ""
    assert proc.returncode == 0, f"{out}\n{proc.stderr[-2000:]}\n{log_tail}"
    positions = []
    for pattern in _PRINTED:
        m = re.search(pattern, out)
        assert m, f"missing {pattern!r} in:\n{out}"
        positions.append(m.start())
    assert positions == sorted(positions), out
    # the vLLM rule pack ran on the service's vllm:* series; the Kubernetes collector watched the scale-out
    assert re.search(r"VLLM PACK +5 rules evaluated on the vllm:\* series", out), out
    m = re.search(r"KUBERNETES +available replicas: peak (\d+)", out)
    assert m and int(m.group(1)) == 8, out
    # the latency alert's root causes name the saturated deployment first
    rca = re.search(r"RCA\s+InferenceLatencyHigh: Likely causes: 1\. deployment/inference/llm[ :(]", out)
    assert rca, out
    assert rca.start() > positions[2]

    # The audit trail: both playbooks ran against the Deployment, the scale-out was verified.
    db = StateDB(f"sqlite:///{tmp_path / 'aiops-state.db'}")
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT playbook, action, status FROM action_runs")).all()
    finally:
        db.dispose()
    statuses = {(r.playbook, r.status) for r in rows}
    assert ("scale-out-inference", "verified") in statuses, rows
    assert any(p == "scale-in-inference" and s in ("applied", "verified") for p, s in statuses), rows


def test_demo_that_cannot_finish_says_what_is_missing(tmp_path: Path) -> None:
    from dataclasses import replace

    from app.cli_demo import FAST, run_demo

    lines: list[str] = []
    result = run_demo(tmp_path, replace(FAST, spike_after_s=60.0, timeout_s=2.0), lines.append)
    assert not result.complete and result.missing[0] == "load_spike"
    assert lines[-1].startswith("demo incomplete after 2s: never saw load_spike, latency_high")
    assert str(tmp_path / "demo.log") in lines[-1]
