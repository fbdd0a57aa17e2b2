"""Remediation latency: firing alert -> scale change applied on the (fake) Kubernetes API server.

Real parts: a private redis-server (broker and result backend), real ``aiops worker``
processes, the fake Kubernetes API server on 127.0.0.1 driven by the official client, and the
state DB on PostgreSQL when one answers on 127.0.0.1:5432 (else SQLite).

1. ``latency``: 300 firing alerts, one after another, each through RemediationComponent ->
   Redis -> one worker -> k8s_scale (read, plan, conditional PATCH of the scale subresource);
   timed from ``on_alerts`` to the moment the fake API server holds the new replica count.
2. ``baseline``: a bare no-op Celery task round trip (send, execute, result back) on the same
   Redis and worker, 300 times, in the same run.
3. ``drain_1000``: 1,000 alerts queued at once and drained by two worker processes; timed from
   the first alert to the last action applied.

Run: ``python benchmarks/remediation_latency.py [--runs 300] [--drain 1000]``. The last line is
one JSON object: ``p50_ms``, ``p99_ms``, ``baseline_p50_ms``, ``baseline_p99_ms``, ``drain_1000_s``, ...
Floors: p99 < 2 s, drain_1000 < 60 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "remediation"))

from rem_cluster import RedisServer, Worker, write_config  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from aiops.logs import configure_logging  # noqa: E402
from aiops.model import Alert  # noqa: E402
from aiops.state import StateDB  # noqa: E402
from app.settings import load_settings  # noqa: E402
from app.testing import FakeKubernetes, fake_k8s  # noqa: E402
from remediation import RemediationComponent, parse_playbook  # noqa: E402
from remediation.celery_app import TASK_NOOP, make_celery  # noqa: E402
from remediation.tables import action_runs  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NS = "bench"


@contextlib.contextmanager
def state_url(tmp: Path) -> Iterator[str]:
    """A fresh PostgreSQL database if the local server answers, else a SQLite file."""
    import sqlalchemy as sa

    try:
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        name = f"aiops_bench_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception:
        yield f"sqlite:///{tmp / 'state.db'}"
        return
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def playbook() -> object:
    return parse_playbook({
        "name": "bench-scale",
        "trigger": {"match": {"alertname": "BenchLatency"}},
        "steps": [{"action": "k8s_scale", "params": {
            "namespace": NS, "name": "{{ $labels.deployment }}", "replicas": "{{ $labels.target }}",
            "min_replicas": 0, "max_replicas": 10}}],
    }, "bench.yaml")


def bench_alert(i: int, deployment: str, target: int) -> Alert:
    return Alert.of({"alertname": "BenchLatency", "deployment": deployment, "target": str(target)},
                    starts_at_ms=100_000 + i)


def terminal_count(db: StateDB, since_ms: int) -> tuple[int, int]:
    done = ("applied", "failed", "refused")
    with db.begin() as conn:
        total = conn.execute(select(func.count()).select_from(action_runs)
                             .where(action_runs.c.created_ms >= since_ms)).scalar_one()
        finished = conn.execute(select(func.count()).select_from(action_runs).where(
            action_runs.c.created_ms >= since_ms, action_runs.c.status.in_(done))).scalar_one()
    return int(finished), int(total)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=300, help="alerts timed one by one")
    ap.add_argument("--drain", type=int, default=1000, help="actions queued at once for two workers")
    args = ap.parse_args()
    configure_logging("WARNING")
    # The fake API server answers with headers and body in two writes; with Nagle's algorithm on,
    # the client's delayed ACK then adds ~40 ms to every call. A real API server (Go net/http)
    # sets TCP_NODELAY, so we do the same to the fake's handler rather than time an artefact.
    fake_k8s._Handler.disable_nagle_algorithm = True
    tmp = Path(tempfile.mkdtemp(prefix="aiops-bench-remediation-"))
    server = RedisServer(tmp / "redis").start()
    k8s = FakeKubernetes(pod_ready_delay_s=0.05, controller_interval_s=0.05).start()
    workers: list[Worker] = []
    try:
        with state_url(tmp) as url:
            config = write_config(tmp / "aiops.yaml", tmp=tmp, broker_url=server.url,
                                  kubeconfig=k8s.kubeconfig_path, state_url=url, visibility_timeout_s=300,
                                  request_timeout_s=10)
            settings = load_settings(config)
            db = StateDB(url)
            db.create_all()
            comp = RemediationComponent(settings, [playbook()])  # type: ignore[list-item]
            comp.attach(db)
            k8s.add_deployment(NS, "lat", replicas=1)
            workers.append(Worker(config, "bench0", tmp).start())

            # --- 1. alert -> applied, one at a time (after 5 untimed warm-up runs: imports, pools) ---
            latencies: list[float] = []
            for i in range(-5, args.runs):
                target = 2 if i % 2 == 0 else 1
                t0 = time.perf_counter()
                comp.on_alerts([bench_alert(i, "lat", target)])
                while int(k8s.get_deployment(NS, "lat")["spec"]["replicas"]) != target:
                    if time.perf_counter() - t0 > 30:
                        raise SystemExit(f"run {i}: not applied after 30 s (see {tmp})")
                    time.sleep(0.001)
                if i >= 0:
                    latencies.append((time.perf_counter() - t0) * 1000)

            # --- 2. bare Celery round trip on the same broker and worker ---
            capp = make_celery(settings.remediation)
            baseline: list[float] = []
            for i in range(args.runs):
                t0 = time.perf_counter()
                assert capp.send_task(TASK_NOOP, args=[i], queue=settings.remediation.queue).get(timeout=30) == i
                baseline.append((time.perf_counter() - t0) * 1000)
            capp.close()

            # --- 3. 1,000 queued actions, two worker processes ---
            workers.append(Worker(config, "bench1", tmp).start())
            deployments = [f"d{j}" for j in range(20)]
            for d in deployments:
                k8s.add_deployment(NS, d, replicas=1)
            since = int(time.time() * 1000) - 1
            t0 = time.perf_counter()
            for i in range(args.drain):
                comp.on_alerts([bench_alert(10_000 + i, deployments[i % len(deployments)], 1 + (i // 20) % 2)])
            enqueue_s = time.perf_counter() - t0
            while True:
                finished, total = terminal_count(db, since)
                if finished >= args.drain:
                    break
                if time.perf_counter() - t0 > 600:
                    raise SystemExit(f"drain: {finished}/{total} after 600 s (see {tmp})")
                time.sleep(0.05)
            drain_s = time.perf_counter() - t0
            with db.begin() as conn:
                failed = conn.execute(select(func.count()).select_from(action_runs).where(
                    action_runs.c.created_ms >= since, action_runs.c.status != "applied")).scalar_one()
            comp.stop()
            db.dispose()
    finally:
        for w in workers:
            w.stop()
        k8s.stop()
        server.stop()

    figures = {
        "runs": args.runs,
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(pct(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
        "baseline_p50_ms": round(statistics.median(baseline), 1),
        "baseline_p99_ms": round(pct(baseline, 99), 1),
        "drain_actions": args.drain,
        "drain_1000_s": round(drain_s, 2),
        "drain_enqueue_s": round(enqueue_s, 2),
        "drain_not_applied": int(failed),
        "state_db": "postgresql" if url.startswith("postgresql") else "sqlite",
    }
    print(f"{'measure':<44} {'p50 ms':>9} {'p99 ms':>9}")
    print(f"{'alert -> scale applied (Redis + 1 worker)':<44} {figures['p50_ms']:>9} {figures['p99_ms']:>9}")
    print(f"{'bare no-op Celery round trip (baseline)':<44} {figures['baseline_p50_ms']:>9} "
          f"{figures['baseline_p99_ms']:>9}")
    print(f"drain {args.drain} queued actions, 2 workers: {drain_s:.2f} s "
          f"(enqueue {enqueue_s:.2f} s, not applied: {failed}); state DB {figures['state_db']}")
    ok = figures["p99_ms"] < 2000 and drain_s < 60 and failed == 0
    print(f"floors (p99 < 2000 ms, drain_1000 < 60 s, all applied): {'met' if ok else 'NOT met'}")
    print(json.dumps(figures))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
