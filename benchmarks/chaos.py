"""Chaos benchmark: agents and workers on one PostgreSQL and a private Redis, killed on purpose.

What runs (all real processes on 127.0.0.1):

- ``--agents`` (2) ``python -m app run`` agents sharing one fresh PostgreSQL state database,
  each scraping the same synthetic metrics endpoint every second;
- ``--workers`` (2) ``python -m app worker`` processes on a private ``redis-server``;
- a chat receiver (Alertmanager's webhook format) that answers 500 at random (``--fail-rate``);
- the fake Kubernetes API (``app.testing.FakeKubernetes``), which logs every request.

A stream of alert episodes: every ``--episode-every-s`` a new deployment's queue depth breaks
the rule for ``--breach-s``, then recovers. Each episode must give exactly one scale call
(``replicas: 3`` on its own deployment) and two notifications (firing, resolved).

Faults, spread over ``--duration`` seconds: SIGKILL of agents (the rules leader first) and
workers (each restarted a few seconds later), a Redis restart with its AOF, a Redis restart
without persistence (killed, its data removed), and a 60 s cut of the receiver (shorter for
short runs). The API (``GET /api/v1/alerts`` on every live agent) is timed all along.

Counted at the end, after a settling period: from the receiver's log, notifications expected /
delivered / duplicated / lost; from the fake API's request log, actions expected / applied /
applied twice / lost; the API's p99 and longest answer. Floors: 0 lost notifications, 0 lost
and 0 doubled actions, <= 1 % duplicated notifications, API p99 < 250 ms. The last line is one
JSON object.

    python benchmarks/chaos.py                    # the full 10-minute run
    python benchmarks/chaos.py --duration 120     # a shorter run while developing
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.testing import FakeKubernetes  # noqa: E402

NS = "chaos"
TOKEN = "chaos-admin-token-0123456789"
PG_ADMIN = os.environ.get("AIOPS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


POLLER = """
import sys, time, httpx
ports, token, out = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
client = httpx.Client(timeout=5.0, headers={"Authorization": f"Bearer {token}"})
with open(out, "a") as f:
    while True:
        for port in ports:
            started = time.perf_counter()
            try:
                client.get(f"http://127.0.0.1:{port}/api/v1/alerts")
            except httpx.TransportError:
                continue  # starting up or just killed: no answer to time
            f.write(f"{(time.perf_counter() - started) * 1000:.2f}\\n")
            f.flush()
        time.sleep(0.25)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


# --- the synthetic metrics endpoint -------------------------------------------------------------


class Metrics:
    """``chaos_queue_depth{deployment=...}`` per episode: 50 while it breaches, 1 after."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.breach_until: dict[str, float] = {}
        box = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                now = time.monotonic()
                with box.lock:
                    lines = [f'chaos_queue_depth{{deployment="{d}",namespace="{NS}"}} '
                             f'{50 if now < until else 1}' for d, until in box.breach_until.items()]
                body = ("\n".join(["# TYPE chaos_queue_depth gauge", *lines]) + "\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/metrics"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def breach(self, deployment: str, seconds: float) -> None:
        with self.lock:
            self.breach_until[deployment] = time.monotonic() + seconds

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- the chat receiver ----------------------------------------------------------------------------


class Receiver:
    """Records every webhook POST; answers 500 at random; can be cut (nothing listens)."""

    def __init__(self, fail_rate: float, seed: int) -> None:
        self.port = free_port()
        self.fail_rate = fail_rate
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.log: list[tuple[float, int, str, str]] = []  # (t, status, deployment, firing|resolved)
        self.httpd: ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        box = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with box.lock:
                    status = 500 if box.rng.random() < box.fail_rate else 200
                try:
                    msg = json.loads(body)
                    deployment = str((msg.get("groupLabels") or {}).get("deployment", "?"))
                    state = str(msg.get("status", "?"))
                except ValueError:
                    deployment, state = "?", "?"
                with box.lock:
                    box.log.append((time.time(), status, deployment, state))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def cut(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def delivered(self) -> Counter[tuple[str, str]]:
        with self.lock:
            return Counter((d, s) for _, status, d, s in self.log if status == 200)


# --- processes ------------------------------------------------------------------------------------


class Proc:
    """One agent, worker or redis-server process in its own session (a SIGKILL takes it whole)."""

    def __init__(self, name: str, argv: list[str], log: Path, port: int | None = None) -> None:
        self.name, self.argv, self.log, self.port = name, argv, log, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        if self.alive:
            return self  # already (re)started: never two of one
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIOPS_")}
        env["PYTHONPATH"] = str(REPO)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env,
                                         start_new_session=True)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout_s: float = 15.0) -> None:
        if self.alive:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()


def redis_proc(workdir: Path, port: int) -> Proc:
    workdir.mkdir(parents=True, exist_ok=True)
    return Proc("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "yes", "--appendfsync", "always", "--dir", str(workdir),
                          "--protected-mode", "no", "--loglevel", "warning"], workdir / "redis.log", port)


def write_configs(work: Path, pg_url: str, redis_url: str, metrics_url: str, receiver_port: int,
                  kubeconfig: Path, agents: int) -> tuple[list[Path], Path, list[int]]:
    playbook = {"name": "chaos-scale", "trigger": {"match": {"alertname": "ChaosQueueDeep"}},
                "steps": [{"action": "k8s_scale", "params": {"namespace": NS, "name": "{{ $labels.deployment }}",
                                                             "replicas": 3}}],
                "guards": {"namespaces": [NS]}}
    (work / "playbooks").mkdir(exist_ok=True)
    (work / "playbooks" / "scale.yaml").write_text(yaml.safe_dump(playbook))
    remediation = {"broker_url": redis_url, "playbooks": [str(work / "playbooks")], "kubeconfig": str(kubeconfig),
                   "visibility_timeout_s": 60, "run_lease_s": 10, "requeue_after_s": 15, "sweep_interval_s": 1,
                   "request_timeout_s": 5, "max_retries": 8, "retry_backoff_s": 0.5, "retry_backoff_max_s": 5,
                   "max_concurrent_runs": 50}
    ports = [free_port() for _ in range(agents)]
    paths = []
    for i, port in enumerate(ports):
        cfg = {
            "store": {"path": str(work / f"agent{i}.db"), "state_url": pg_url},
            "agent": {"listen_port": port, "api_token": TOKEN, "log_level": "INFO", "instance": f"agent{i}"},
            "collect": {"host": {"enabled": False}, "gpu": {"enabled": False},
                        "scrape": [{"url": metrics_url, "job": "chaos", "interval_s": 1, "timeout_s": 2,
                                    "jitter_s": 0.1}]},
            "alerting": {
                "rules": [{"alert": "ChaosQueueDeep", "expr": "chaos_queue_depth", "op": ">", "threshold": 10,
                           "labels": {"severity": "page"}}],
                "route": {"receiver": "chat", "group_by": ["alertname", "deployment"], "group_wait": 0,
                          "group_interval": "1s", "repeat_interval": "4h"},
                "receivers": [{"name": "chat", "type": "webhook", "url": f"http://127.0.0.1:{receiver_port}/hook",
                               "rate_limit_per_min": 0, "timeout_s": 5}],
                "delivery": {"backoff_initial_s": 1, "backoff_max_s": 10},
                "evaluation_interval_s": 1, "ha_lease_s": 6,
            },
            "remediation": remediation,
        }
        path = work / f"agent{i}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        paths.append(path)
    worker_cfg = work / "worker.yaml"
    worker_cfg.write_text(yaml.safe_dump({"store": {"path": str(work / "worker.db"), "state_url": pg_url},
                                          "agent": {"log_level": "INFO"}, "remediation": remediation}))
    return paths, worker_cfg, ports


# --- the run ----------------------------------------------------------------------------------------


class Chaos:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.work = Path(tempfile.mkdtemp(prefix="aiops-chaos-"))
        self.faults: list[tuple[float, str]] = []
        self.latencies_ms: list[float] = []
        self.stop = threading.Event()
        self.settling = threading.Event()
        self.t0 = time.monotonic()
        self.episodes: list[str] = []

    def note(self, what: str) -> None:
        t = time.monotonic() - self.t0
        self.faults.append((t, what))
        print(f"[{t:7.1f}s] {what}", flush=True)

    # parts
    def setup(self) -> None:
        a = self.args
        self.db_name = f"aiops_chaos_{os.getpid()}"
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.db_name}"'))
            conn.execute(sa.text(f'CREATE DATABASE "{self.db_name}"'))
        admin.dispose()
        self.pg_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{self.db_name}"
        self.redis_port = free_port()
        self.redis = redis_proc(self.work / "redis", self.redis_port).start()
        wait_port(self.redis_port)
        self.k8s = FakeKubernetes(pod_ready_delay_s=0.05).start()
        self.metrics = Metrics()
        self.receiver = Receiver(a.fail_rate, a.seed)
        cfgs, worker_cfg, self.ports = write_configs(self.work, self.pg_url, f"redis://127.0.0.1:{self.redis_port}/0",
                                                     self.metrics.url, self.receiver.port, self.k8s.kubeconfig_path,
                                                     a.agents)
        from aiops.state import StateDB
        from app.settings import load_settings

        db = StateDB(self.pg_url)
        load_settings(cfgs[0])
        import alerting.outbox  # noqa: F401  (registers nothing new, but imports the tables' packages)
        import remediation  # noqa: F401

        db.create_all()
        self.db = db
        self.agents = [Proc(f"agent{i}", [sys.executable, "-m", "app", "run", "--config", str(c)],
                            self.work / f"agent{i}.log", self.ports[i]) for i, c in enumerate(cfgs)]
        self.workers = [Proc(f"worker{i}", [sys.executable, "-m", "app", "worker", "--config", str(worker_cfg),
                                            "--pool", "solo", "--hostname", f"chaos{i}@bench"],
                             self.work / f"worker{i}.log") for i in range(a.workers)]
        for p in self.agents:
            p.start()
            time.sleep(1.0)  # the first agent takes the rules lease
        for p in self.workers:
            p.start()
        for p in self.agents:
            assert p.port is not None
            wait_port(p.port, 90)
        print(f"work dir {self.work}; state DB {self.db_name}; agents on {self.ports}", flush=True)

    def teardown(self) -> None:
        self.stop.set()
        poller = getattr(self, "poller", None)
        if poller is not None and poller.poll() is None:
            poller.kill()
            poller.wait(5)
        for p in [*self.agents, *self.workers]:
            p.terminate()
        self.redis.terminate()
        self.k8s.stop()
        self.metrics.stop()
        self.receiver.cut()
        self.db.dispose()
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
        admin.dispose()
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    # load and measurement
    def poll_api(self) -> None:
        """Time ``GET /api/v1/alerts`` on every live agent, from a process of its own (the driver's
        threads, the fake API and the receiver share one GIL and would inflate the figures)."""
        out = self.work / "api_latency.txt"
        ports = ",".join(str(p) for p in self.ports)
        self.poller = subprocess.Popen([sys.executable, "-c", POLLER, ports, TOKEN, str(out)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.latency_file = out

    def read_latencies(self) -> None:
        if getattr(self, "poller", None) is not None:
            self.poller.terminate()
            self.poller.wait(10)
        try:
            self.latencies_ms = [float(x) for x in self.latency_file.read_text().split()]
        except (OSError, ValueError):
            self.latencies_ms = []

    def run_episodes(self, until: float) -> None:
        i = 0
        while time.monotonic() < until and not self.stop.is_set():
            name = f"dep-{i:03d}"
            self.k8s.add_deployment(NS, name, replicas=1)
            self.episodes.append(name)
            self.metrics.breach(name, self.args.breach_s)
            i += 1
            self.stop.wait(self.args.episode_every_s)

    def leader(self) -> Proc | None:
        with self.db.begin() as conn:
            row = conn.execute(sa.text("select owner from leases where name = 'alerting/rules'")).first()
        if row is None:
            return None
        pid = int(str(row[0]).split(":")[1])
        return next((p for p in self.agents if p.proc is not None and p.proc.pid == pid), None)

    def kill_and_restart(self, p: Proc, down_s: float = 3.0) -> None:
        p.kill()
        self.note(f"SIGKILL {p.name}")

        def later() -> None:
            if self.stop.wait(down_s) or self.settling.is_set():
                return  # the run is over (or settling restarts everything itself)
            p.start()
            self.note(f"restarted {p.name}")

        threading.Thread(target=later, daemon=True).start()

    def drive_faults(self, duration_s: float) -> None:
        d = duration_s
        cut_s = min(60.0, max(10.0, d / 6))
        plan: list[tuple[float, str]] = [(0.15 * d, "kill_leader"), (0.25 * d, "kill_worker"),
                                         (0.33 * d, "redis_restart"), (0.42 * d, "cut_receiver"),
                                         (0.62 * d, "kill_agent"), (0.70 * d, "redis_wipe"),
                                         (0.78 * d, "kill_worker"), (0.85 * d, "kill_leader")]
        t = 0.5 * d / 6  # plus a random kill every ~d/6 s
        while t < 0.9 * d:
            plan.append((t + self.rng.uniform(0, d / 12), self.rng.choice(["kill_agent", "kill_worker"])))
            t += d / 6
        for at, fault in sorted(plan):
            if self.stop.wait(max(0.0, self.t0 + at - time.monotonic())):
                return
            if fault == "kill_leader":
                p = self.leader() or self.agents[0]
                if p.alive:
                    self.kill_and_restart(p)
            elif fault == "kill_agent":
                live = [p for p in self.agents if p.alive]
                if len(live) > 1:
                    self.kill_and_restart(self.rng.choice(live))
            elif fault == "kill_worker":
                live = [p for p in self.workers if p.alive]
                if live:
                    self.kill_and_restart(self.rng.choice(live))
            elif fault == "redis_restart":
                self.redis.terminate()  # SIGTERM: the AOF is flushed
                self.redis.start()
                self.note("restarted redis (with its AOF)")
            elif fault == "redis_wipe":
                self.redis.kill()
                for f in (self.work / "redis").glob("appendonly*"):
                    shutil.rmtree(f, ignore_errors=True) if f.is_dir() else f.unlink()
                self.redis.start()
                self.note("restarted redis WITHOUT persistence (killed, data removed)")
            elif fault == "cut_receiver":
                self.receiver.cut()
                self.note(f"receiver cut for {cut_s:.0f}s")

                def back() -> None:
                    time.sleep(cut_s)
                    self.receiver.start()
                    self.note("receiver back")

                threading.Thread(target=back, daemon=True).start()

    def settled(self) -> bool:
        got = self.receiver.delivered()
        applied = self.applied()
        return all(got[(e, "firing")] and got[(e, "resolved")] and applied[e] for e in self.episodes)

    def applied(self) -> Counter[str]:
        return Counter(r.path.split("/")[-2] for r in self.k8s.requests_to("PATCH", "/scale") if r.status == 200)

    def run(self) -> dict[str, Any]:
        a = self.args
        self.setup()
        self.poll_api()
        faults = threading.Thread(target=self.drive_faults, args=(a.duration,), daemon=True)
        self.t0 = time.monotonic()
        faults.start()
        self.run_episodes(self.t0 + a.duration - a.breach_s - 5)
        faults.join(max(0.0, self.t0 + a.duration - time.monotonic()) + 5)
        self.settling.set()
        time.sleep(0.5)
        for p in [*self.agents, *self.workers]:  # whatever is still down comes back for the settling
            if not p.alive:
                p.start()
        deadline = time.monotonic() + a.settle_s
        while time.monotonic() < deadline and not self.settled():
            time.sleep(1.0)
        time.sleep(3.0)  # room for late duplicates
        self.stop.set()
        self.read_latencies()
        return self.count()

    def count(self) -> dict[str, Any]:
        got = self.receiver.delivered()
        expected_n = 2 * len(self.episodes)
        delivered = sum(1 for e in self.episodes for s in ("firing", "resolved") if got[(e, s)])
        duplicated = sum(max(0, got[(e, s)] - 1) for e in self.episodes for s in ("firing", "resolved"))
        applied = self.applied()
        with self.db.begin() as conn:
            runs = Counter(str(r[0]) for r in conn.execute(sa.text(
                "select params->>'name' from action_runs where status in ('applied','verified')")))
        lat = sorted(self.latencies_ms) or [0.0]
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        return {
            "duration_s": self.args.duration, "agents": self.args.agents, "workers": self.args.workers,
            "episodes": len(self.episodes),
            "notifications_expected": expected_n, "notifications_delivered": delivered,
            "notifications_duplicated": duplicated,
            "notifications_duplicated_pct": round(100.0 * duplicated / max(1, expected_n), 2),
            "notifications_lost": expected_n - delivered,
            "receiver_failures_injected": sum(1 for _, st, _, _ in self.receiver.log if st != 200),
            "actions_expected": len(self.episodes),
            "actions_applied": sum(1 for e in self.episodes if applied[e]),
            "actions_doubled": sum(1 for e in self.episodes if applied[e] > 1),
            "actions_lost": sum(1 for e in self.episodes if not applied[e]),
            "runs_recorded_applied": sum(runs[e] for e in self.episodes),
            "api_requests": len(self.latencies_ms), "api_p99_ms": round(p99, 1),
            "api_max_ms": round(lat[-1], 1),
            "faults_injected": len(self.faults),
            "fault_log": [f"{t:.0f}s {w}" for t, w in self.faults],
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=600.0, help="Seconds of episodes and faults (default 600).")
    ap.add_argument("--agents", type=int, default=2, help="Agents on the shared state DB (2-3).")
    ap.add_argument("--workers", type=int, default=2, help="Celery workers.")
    ap.add_argument("--episode-every-s", type=float, default=8.0, help="Seconds between two episodes.")
    ap.add_argument("--breach-s", type=float, default=14.0, help="How long each episode breaks the rule.")
    ap.add_argument("--fail-rate", type=float, default=0.1, help="Share of receiver answers that are 500.")
    ap.add_argument("--settle-s", type=float, default=150.0, help="Longest wait for the backlog after the faults.")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--keep", action="store_true", help="Keep the work directory (logs, configs).")
    args = ap.parse_args()
    chaos = Chaos(args)
    try:
        result = chaos.run()
    finally:
        chaos.teardown()
    print()
    print(f"{'figure':<32}{'value':>12}")
    for key, value in result.items():
        if key != "fault_log":
            print(f"{key:<32}{value!s:>12}")
    floors = {"notifications_lost": result["notifications_lost"] == 0,
              "actions_lost": result["actions_lost"] == 0, "actions_doubled": result["actions_doubled"] == 0,
              "notifications_duplicated_pct": result["notifications_duplicated_pct"] <= 1.0,
              "api_p99_ms": result["api_p99_ms"] < 250.0}
    print("floors: " + ", ".join(f"{k} {'ok' if ok else 'MISSED'}" for k, ok in floors.items()))
    result["floors_met"] = all(floors.values())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
