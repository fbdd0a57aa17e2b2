"""The same alert seen by two agents at once, on one PostgreSQL state DB: one action.

Each agent is a RemediationComponent with its own engine (its own connection pool), executing
in-process against the fake Kubernetes API. The idempotency key of the alert episode is claimed
by exactly one of them; the other records nothing.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from rem_cluster import write_config
from rem_helpers import alert, playbook, wait_status

from aiops.model import ActionStatus
from aiops.state import StateDB
from app.settings import load_settings
from app.testing import FakeKubernetes
from remediation import RemediationComponent, RunStore

pytestmark = pytest.mark.timeout(120)


def test_same_alert_from_two_agents_gives_one_action(pg_url: str, tmp_path: Path) -> None:
    k8s = FakeKubernetes(pod_ready_delay_s=0.1).start()
    config = write_config(tmp_path / "aiops.yaml", tmp=tmp_path, broker_url=None, kubeconfig=k8s.kubeconfig_path,
                          state_url=pg_url)
    settings = load_settings(config)
    k8s.add_deployment("inference", "llm", replicas=2)
    pb = playbook([{"action": "k8s_scale", "params": {"namespace": "inference", "name": "llm", "replicas": "+2"}}])
    dbs = [StateDB(pg_url) for _ in range(2)]
    dbs[0].create_all()
    agents = [RemediationComponent(settings, [pb]) for _ in range(2)]
    for agent, db in zip(agents, dbs, strict=True):
        agent.attach(db)
    try:
        for episode in range(1, 6):  # five firings, each seen by both agents at the same instant
            barrier = threading.Barrier(2)
            created: list[list[str]] = [[], []]

            def see(i: int, ep: int = episode, barrier: threading.Barrier = barrier,
                    created: list[list[str]] = created) -> None:
                barrier.wait()
                created[i] = agents[i].on_alerts([alert(starts_at_ms=ep)])

            threads = [threading.Thread(target=see, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            ids = created[0] + created[1]
            assert len(ids) == 1, created
            wait_status(dbs[0], ids[0], ActionStatus.APPLIED)
        runs = RunStore(dbs[0]).list()
        assert len(runs) == 5 and {r.status for r in runs} == {ActionStatus.APPLIED}
        assert k8s.get_deployment("inference", "llm")["spec"]["replicas"] == 12  # 2 + 5 x 2, never more
        assert len([r for r in k8s.requests_to("PATCH", "deployments/llm/scale") if r.status == 200]) == 5
    finally:
        for agent in agents:
            agent.stop()
        for db in dbs:
            db.dispose()
        k8s.stop()
