"""Scale-out of live detection: 1, 2 and 3 agents sharing 30,000 series with live z-score.

Each agent is its own process (``--worker``) running the real ``DetectionComponent`` with sharding
on a real PostgreSQL (membership and slot claims in its ``shard_*`` tables, detector checkpoints in
``kv``). Every ``--interval-s`` every agent receives one sample of every series, as replicas that
collect the same targets do, and scores only the series of its own slots. Measured per agent count, once the
group has settled: samples scored per second by the whole group, CPU per agent (process CPU time
over wall time), peak RSS. The baseline, in the same run, is one agent without sharding. With 3
agents one is killed (SIGKILL) and ``failover_s`` is the time until every series is scored again
(by the survivors, from the dead agent's checkpoints). Also measured: checkpoint bytes per series
and the remote-write encoding cost per sample, for the per-1,000-series costs in docs/scale-out.md.

    python benchmarks/scale_out.py                     # 30,000 series, ~3 minutes
    python benchmarks/scale_out.py --series 3000 --interval-s 2 --measure-s 6   # quick (2+ ticks per window)
    SCALE_OUT_LOG=INFO python benchmarks/scale_out.py           # agents' handover logs in /tmp/scale_out-*.log

``settle_s`` is the time from an agent's start until every agent scores exactly its ring's share
(the join handover: checkpoint, release, claim, restore); the load average is printed beside the
figures (the machine may be shared).

Needs PostgreSQL (``AIOPS_TEST_PG``, default postgresql+psycopg://postgres@127.0.0.1:5432/test): a
fresh database is created and dropped. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PG_ADMIN = os.environ.get("AIOPS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


# --- one agent -----------------------------------------------------------------------------


def worker(args: argparse.Namespace) -> None:
    from prometheus_client import CollectorRegistry

    from aiops.bus import Bus
    from aiops.logs import configure_logging
    from aiops.model import Sample, Series
    from aiops.protocols import AgentContext
    from aiops.state import StateDB
    from app.settings import load_settings
    from detectors.live import DetectionComponent
    from detectors.settings import DetectorSpec

    configure_logging(os.environ.get("SCALE_OUT_LOG", "WARNING"), stream=sys.stderr)  # stdout: only TICK lines
    spec = DetectorSpec(name="z", detector="zscore", selector="bench_metric", params={"window": 60})
    state = StateDB(args.db)
    comp = DetectionComponent([spec], checkpoint_interval_s=args.checkpoint_s,
                              shard_member=None if args.unsharded else args.member, shard_slots=args.slots,
                              shard_heartbeat_s=args.heartbeat_s, shard_ttl_s=args.ttl_s)
    ctx = AgentContext(load_settings(None), None, state, Bus(), CollectorRegistry(), None, {})  # type: ignore[arg-type]
    comp.start(ctx)
    series = [Series.of("bench_metric", pod=f"p{i // 8}", gpu=str(i % 8)) for i in range(args.series)]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    tick = 0
    next_at = time.monotonic()
    while not stop.is_set():
        tick += 1
        due = next_at  # the tick's place in the schedule (monotonic, shared by the processes)
        ts_ms = int(time.time() * 1000)
        batch = [Sample(s, ts_ms, 0.5 + 0.1 * ((tick * 7 + i) % 13) / 13) for i, s in enumerate(series)]
        before = comp.scored
        started = time.perf_counter()
        comp.on_samples(batch)
        busy_s = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print("TICK " + json.dumps({"member": args.member, "due": due, "t": time.time(),
                          "scored": comp.scored - before,
                          "owned": len(comp._scoring & comp.shard.owns_now()) if comp.shard else args.slots,
                          "desired": len(comp.desired) if comp.shard else args.slots,
                          "busy_s": busy_s, "fenced": bool(comp.shard and not comp.shard.owns_now()),
                          "cpu_s": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}),
              flush=True)
        next_at += args.interval_s
        stop.wait(max(0.0, next_at - time.monotonic()))
        next_at = max(next_at, time.monotonic() - args.interval_s)  # fell behind: do not burst
    comp.stop()
    state.dispose()


# --- the group -----------------------------------------------------------------------------


class Agent:
    def __init__(self, args: argparse.Namespace, db: str, member: str, unsharded: bool = False) -> None:
        cmd = [sys.executable, __file__, "--worker", "--member", member, "--db", db, "--series", str(args.series),
               "--interval-s", str(args.interval_s), "--slots", str(args.slots), "--heartbeat-s",
               str(args.heartbeat_s), "--ttl-s", str(args.ttl_s), "--checkpoint-s", str(args.checkpoint_s)]
        if unsharded:
            cmd.append("--unsharded")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.member = member
        self.log = Path(tempfile.gettempdir()) / f"scale_out-{member}-{os.getpid()}.log"
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log.open("w"), text=True, env=env)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.last: dict[str, Any] | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("TICK "):
                self.lines.put(json.loads(line[5:]))

    def drain(self) -> list[dict[str, Any]]:
        out = []
        while True:
            try:
                item = self.lines.get_nowait()
            except queue.Empty:
                break
            out.append(item)
            self.last = item
        return out

    def stop(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _settled(agents: list[Agent], slots: int) -> bool:
    last = [a.last for a in agents]
    return all(x is not None and x["owned"] == x["desired"] for x in last) and \
        sum(x["owned"] for x in last if x is not None) == slots


def _wait_settled(agents: list[Agent], args: argparse.Namespace, timeout_s: float = 400.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        for a in agents:
            a.drain()
        if _settled(agents, args.slots):
            return time.monotonic() - started
        if int(time.monotonic() - started) % 15 == 0:
            print("settling (owned, desired, fenced):",
                  [(a.member, a.last and (a.last["owned"], a.last["desired"], a.last["fenced"])) for a in agents],
                  file=sys.stderr)
            time.sleep(1)
        time.sleep(0.2)
    raise SystemExit(f"{len(agents)} agents did not settle in {timeout_s}s")


def _measure(agents: list[Agent], seconds: float) -> tuple[float, list[float], list[float]]:
    """Group rate, CPU % per agent and peak RSS per agent.

    The rate counts the samples scored by the ticks of the window over the time between their
    *scheduled* starts (first to next-after-last): it equals the offered rate while the agents
    keep up and falls below it when they lag, since a tick more than one interval late moves the
    schedule on. A tick that merely woke up late (a starved process) does not inflate it.
    """
    for a in agents:
        a.drain()
    time.sleep(seconds)
    rate, cpu, rss = 0.0, [], []
    for a in agents:
        lines = a.drain()
        if len(lines) < 2:
            raise SystemExit(f"{a.member} reported {len(lines)} ticks in {seconds}s (exit {a.proc.poll()}): "
                             f"{a.log.read_text()[-1500:]}")
        counted, end = lines[:-1], lines[-1]
        span_s = max(1e-9, end["due"] - counted[0]["due"])
        rate += sum(x["scored"] for x in counted) / span_s
        cpu.append(100.0 * (end["cpu_s"] - counted[0]["cpu_s"]) / max(1e-9, end["t"] - counted[0]["t"]))
        rss.append(end["rss_mb"])
    return rate, cpu, rss


def _failover(agents: list[Agent], args: argparse.Namespace) -> float:
    """Seconds from the SIGKILL until one collection's series are all scored again by the survivors."""
    victim, survivors = agents[-1], agents[:-1]
    for a in agents:
        a.drain()
    victim.stop(kill=True)
    killed = time.time()
    ticks: dict[str, list[dict[str, Any]]] = {a.member: [] for a in survivors}
    while time.time() - killed < 400:
        for a in survivors:
            ticks[a.member] += a.drain()
        # pair each survivor's ticks by collection round (they tick in step, one per interval) and find the
        # first round whose scores add up to every series
        rounds = min(len(t) for t in ticks.values())
        for k in range(rounds):
            if sum(ticks[a.member][k]["scored"] for a in survivors) == args.series:
                return max(ticks[a.member][k]["t"] for a in survivors) - killed
        time.sleep(0.1)
    raise SystemExit("failover did not complete in 400 s")


def _side_costs(db_url: str, n_series: int) -> dict[str, float]:
    """Checkpoint bytes per series (from the database) and remote-write encoding per sample."""
    import sqlalchemy as sa

    from aiops.model import Series
    from aiops.remotewrite_proto import compress, encode_write_request
    from aiops.state import StateDB

    state = StateDB(db_url)
    with state.begin() as conn:
        total, count = conn.execute(sa.text("SELECT coalesce(sum(length(value)), 0), count(*) FROM kv "
                                            "WHERE key LIKE 'detector/%'")).one()
    state.dispose()
    series = [Series.of("bench_metric", pod=f"p{i // 8}", gpu=str(i % 8)) for i in range(n_series)]
    cache: dict[Series, bytes] = {}
    batch = {s: [(1_700_000_000_000, 0.5)] for s in series}
    encode_write_request(batch, label_cache=cache)
    started = time.perf_counter()
    body = compress(encode_write_request(batch, label_cache=cache))
    encode_s = time.perf_counter() - started
    return {"checkpoint_bytes_per_series": round(float(total) / max(1, int(count)), 1),
            "checkpointed_series": int(count),
            "remote_write_us_per_sample": round(1e6 * encode_s / n_series, 2),
            "remote_write_bytes_per_sample": round(len(body) / n_series, 2)}


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--series", type=int, default=30_000)
    p.add_argument("--interval-s", type=float, default=5.0, help="Seconds between two collections.")
    p.add_argument("--measure-s", type=float, default=25.0, help="Measuring window per agent count.")
    p.add_argument("--slots", type=int, default=256)
    p.add_argument("--heartbeat-s", type=float, default=2.0)
    p.add_argument("--ttl-s", type=float, default=10.0)
    p.add_argument("--checkpoint-s", type=float, default=30.0)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--unsharded", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--member", default="agent-1", help=argparse.SUPPRESS)
    p.add_argument("--db", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return

    import sqlalchemy as sa

    load_before = _loadavg()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the agents and drop the database
    name = f"aiops_scaleout_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    db = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    from aiops.state import StateDB

    StateDB(db).create_all()
    rows: list[dict[str, Any]] = []
    agents: list[Agent] = []
    failover_s = float("nan")
    side: dict[str, float] = {}
    try:
        base = [Agent(args, db, "baseline", unsharded=True)]
        agents = base
        _wait_settled(base, args)
        rate, cpu, rss = _measure(base, args.measure_s)
        rows.append({"agents": 1, "mode": "unsharded (baseline)", "samples_per_s": rate, "cpu": cpu, "rss": rss})
        base[0].stop()
        agents = []
        for n in (1, 2, 3):
            agents.append(Agent(args, db, f"agent-{n}"))
            settle_s = _wait_settled(agents, args)
            rate, cpu, rss = _measure(agents, args.measure_s)
            rows.append({"agents": n, "mode": "sharded", "samples_per_s": rate, "cpu": cpu, "rss": rss,
                         "settle_s": settle_s})
        failover_s = _failover(agents, args)
        side = _side_costs(db, args.series)
    finally:
        for a in agents:
            a.stop()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    offered = args.series / args.interval_s
    print(f"\n{args.series} series, one sample each every {args.interval_s:g} s (offered {offered:,.0f} samples/s), "
          f"zscore window 60, PostgreSQL state, {os.cpu_count()} CPUs")
    print(f"load average before / after: {load_before} / {_loadavg()}")
    print(f"{'agents':>6}  {'mode':<22} {'samples/s':>10}  {'CPU % per agent':<20} {'RSS MB':<16} settle s")
    for r in rows:
        cpu = ", ".join(f"{c:.1f}" for c in r["cpu"])
        rss = ", ".join(f"{m:.0f}" for m in r["rss"])
        print(f"{r['agents']:>6}  {r['mode']:<22} {r['samples_per_s']:>10,.0f}  {cpu:<20} {rss:<16} "
              f"{r.get('settle_s', 0):.1f}")
    print(f"failover (SIGKILL one of 3, ttl {args.ttl_s:g} s, heartbeat {args.heartbeat_s:g} s): {failover_s:.1f} s")
    print(f"checkpoint {side.get('checkpoint_bytes_per_series', 0):.0f} B/series; remote-write "
          f"{side.get('remote_write_us_per_sample', 0):.2f} us and {side.get('remote_write_bytes_per_sample', 0):.1f} "
          "B per sample")
    sharded = [r for r in rows if r["mode"] == "sharded"]
    print(json.dumps({
        "agents": [r["agents"] for r in sharded],
        "samples_per_s": [round(r["samples_per_s"]) for r in sharded],
        "cpu_pct_per_agent": [[round(c, 1) for c in r["cpu"]] for r in sharded],
        "failover_s": round(failover_s, 2),
        "series": args.series,
        "offered_samples_per_s": round(offered),
        "baseline_unsharded": {"samples_per_s": round(rows[0]["samples_per_s"]),
                               "cpu_pct": round(rows[0]["cpu"][0], 1)},
        "rss_mb_per_agent": [[round(m) for m in r["rss"]] for r in sharded],
        "settle_s": [round(r["settle_s"], 1) for r in sharded],
        "checkpoint_interval_s": args.checkpoint_s, "load_average": [load_before, _loadavg()],
        "ttl_s": args.ttl_s, "heartbeat_s": args.heartbeat_s, **side,
    }))


if __name__ == "__main__":
    main()
