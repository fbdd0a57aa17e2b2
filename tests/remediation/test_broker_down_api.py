"""The agent's API keeps answering while the broker is down or hangs.

Before: Celery's publish retries ran under the alert engine's lock, so with Redis down the
intake webhook took 57.5 s and ``GET /api/v1/alerts`` 52.5 s to answer. Now runs are recorded
in the state DB and published from a thread of their own. Here a real agent process (``python
-m app run``) has remediation on a private redis-server that is then stopped, or on a port
that accepts connections and never answers (a hung broker: the worse case, every publish
waits for its socket timeout). Alerts keep arriving on the webhook, each a new episode whose
playbook run must be published, while the test times ``GET /api/v1/alerts`` and the webhook.
The median must stay under 100 ms (the issue's bound); p90 and the longest are printed.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from rem_cluster import RedisServer

from aiops.state import StateDB
from app.testing import FakeKubernetes
from remediation import RunStore
from tests.conftest import REPO, free_port, wait_port

pytestmark = pytest.mark.timeout(120)
TOKEN = "broker-down-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REQUESTS = 40


class HungBroker:
    """A TCP port that accepts connections and never says a word (a broker that hangs)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        self.sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.conns.append(conn)  # held open, never read, never answered
            except OSError:
                continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


def _config(tmp: Path, broker_url: str, kubeconfig: Path, port: int) -> Path:
    (tmp / "playbooks").mkdir()
    (tmp / "playbooks" / "scale.yaml").write_text(yaml.safe_dump({
        "name": "scale-on-upstream", "trigger": {"match": {"alertname": "UpstreamDown"}},
        "steps": [{"action": "k8s_scale", "params": {"namespace": "inference", "name": "llm", "replicas": 2}}],
        "guards": {"namespaces": ["inference"]}}))
    cfg = {
        "store": {"path": str(tmp / "ts.db"), "state_url": f"sqlite:///{tmp / 'state.db'}"},
        "agent": {"listen_port": port, "api_token": TOKEN, "log_level": "INFO"},
        "collect": {"host": {"enabled": False}, "gpu": {"enabled": False}},
        "alerting": {"route": {"receiver": "chat", "group_by": ["..."], "group_wait": 0},
                     "receivers": [{"name": "chat", "type": "webhook", "url": f"http://127.0.0.1:{free_port()}/x",
                                    "rate_limit_per_min": 0}]},
        "remediation": {"broker_url": broker_url, "playbooks": [str(tmp / "playbooks")],
                        "kubeconfig": str(kubeconfig), "visibility_timeout_s": 60, "run_lease_s": 10,
                        "request_timeout_s": 5, "sweep_interval_s": 0.5, "max_concurrent_runs": 1000},
    }
    path = tmp / "aiops.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def agent(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A running agent whose broker is down ("stopped") or hung ("hung")."""
    k8s = FakeKubernetes(pod_ready_delay_s=0.05).start()
    k8s.add_deployment("inference", "llm", replicas=1)
    redis = RedisServer(tmp_path / "redis").start()
    hung = HungBroker() if request.param == "hung" else None
    url = f"redis://127.0.0.1:{hung.port}/0" if hung else redis.url
    port = free_port()
    log = tmp_path / "agent.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app", "run", "--config",
                                 str(_config(tmp_path, url, k8s.kubeconfig_path, port))],
                                stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        wait_port(port, 60)
        redis.stop()  # the broker the agent was configured with (or a stranger's) is gone
        yield {"url": f"http://127.0.0.1:{port}", "state": tmp_path / "state.db", "log": log, "kind": request.param}
    finally:
        proc.kill()  # its clean stop would wait for the stuck publish; nothing here needs it
        proc.wait(10)
        if hung is not None:
            hung.stop()
        k8s.stop()


def _post(client: httpx.Client, url: str, i: int) -> float:
    body = {"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "labels": {"alertname": "UpstreamDown", "instance": f"up:{i}"},
        "annotations": {}, "startsAt": "2026-12-01T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}]}
    started = time.perf_counter()
    r = client.post(f"{url}/api/v1/alertmanager/webhook", json=body, headers=AUTH)
    took = (time.perf_counter() - started) * 1000
    assert r.status_code == 200, r.text
    return took


def _figures(ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(ms, n=10)
    return {"median_ms": round(statistics.median(ms), 1), "p90_ms": round(q[-1], 1), "max_ms": round(max(ms), 1)}


@pytest.mark.parametrize("agent", ["stopped", "hung"], indirect=True)
def test_api_answers_fast_while_the_broker_is_down(agent: dict[str, Any]) -> None:
    url = agent["url"]
    posts: list[float] = []
    gets: list[float] = []
    with httpx.Client(timeout=30) as client:
        client.get(f"{url}/api/v1/alerts", headers=AUTH)  # connection and first-request costs out of the figures

        def intake() -> None:
            with httpx.Client(timeout=30) as c:
                for i in range(REQUESTS):
                    posts.append(_post(c, url, i))  # each a new alert: a new run to publish
                    time.sleep(0.05)

        poster = threading.Thread(target=intake)
        poster.start()
        while poster.is_alive() or len(gets) < REQUESTS:
            started = time.perf_counter()
            r = client.get(f"{url}/api/v1/alerts", headers=AUTH)
            gets.append((time.perf_counter() - started) * 1000)
            assert r.status_code == 200
            time.sleep(0.05)
        poster.join()
        firing = [a for a in client.get(f"{url}/api/v1/alerts", headers=AUTH).json()["data"]
                  if a["labels"]["alertname"] == "UpstreamDown"]
    db = StateDB(f"sqlite:///{agent['state']}")
    try:
        runs = RunStore(db).list()
        failed = [r for r in runs if "dispatch_failed" in [a["event"] for a in RunStore(db).audit_trail(r.id)]]
    finally:
        db.dispose()
    tried = [r for r in runs if r.extra.get("dispatched_ms")]  # noted just before each publish
    print(f"\nbroker {agent['kind']}: GET /api/v1/alerts {_figures(gets)} (n={len(gets)}); "
          f"webhook {_figures(posts)} (n={len(posts)}); runs {len(runs)}, publishes tried {len(tried)}, "
          f"failed {len(failed)}")
    assert len(firing) == REQUESTS and len(runs) == REQUESTS  # every alert was taken and its run recorded
    # the publisher was at the broker while we measured, failing or stuck there (not idle, not done)
    assert tried and (failed or len(tried) < len(runs)), (len(tried), len(failed))
    assert statistics.median(gets) < 100, _figures(gets)
    assert statistics.median(posts) < 100, _figures(posts)
