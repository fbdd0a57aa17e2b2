"""Shard membership reads against the number of detector checkpoints in the state database.

A refresh of ``detectors.sharding.ShardMembership`` (heartbeat, the check for agents older than
0005, member list, claims), a member list read alone and that check alone, timed on a real
PostgreSQL holding 0, 30,000 and 100,000 detector checkpoints of 1.8 KB (the z-score window-60
size) in ``kv``: membership has tables of its own and the check is a primary-key range, so the
times must not grow with the checkpoints (when membership lived in ``kv``, behind
``LIKE 'detect/...%'``, they did: docs/scale-out.md).

    python benchmarks/shard_membership.py                  # 0, 30000, 100000 checkpoints
    python benchmarks/shard_membership.py --checkpoints 0 30000

Needs PostgreSQL (``AIOPS_TEST_PG``, default postgresql+psycopg://postgres@127.0.0.1:5432/test): a
fresh database is created and dropped per count. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PG_ADMIN = os.environ.get("AIOPS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def measure(checkpoints: int, reps: int) -> dict[str, float]:
    import sqlalchemy as sa

    from aiops.state import StateDB
    from detectors.sharding import ShardMembership

    name = f"aiops_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        db = StateDB(PG_ADMIN.rsplit("/", 1)[0] + "/" + name)
        db.create_all()
        blob = os.urandom(1800)
        for i in range(0, checkpoints, 5000):
            db.kv_put_many([(f'detector/z/bench_metric{{pod="p{j // 8}",gpu="{j % 8}"}}', blob)
                            for j in range(i, min(checkpoints, i + 5000))])
        with db.begin() as conn:
            conn.execute(sa.text("ANALYZE"))
        members = [ShardMembership(db, f"agent-{k}", slots=256, heartbeat_s=2.0, ttl_s=10.0) for k in range(3)]
        for m in members * 2:  # three members, every slot claimed
            m.refresh()
        started = time.perf_counter()
        for _ in range(reps):
            members[0].refresh()
        refresh_s = (time.perf_counter() - started) / reps
        started = time.perf_counter()
        for _ in range(reps):
            members[0].live_members()
        members_s = (time.perf_counter() - started) / reps
        started = time.perf_counter()
        for _ in range(reps):
            members[0].legacy_members()  # the check for agents older than 0005 (a kv primary-key range)
        legacy_s = (time.perf_counter() - started) / reps
        db.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    return {"checkpoints": checkpoints, "refresh_ms": round(1000 * refresh_s, 2),
            "live_members_ms": round(1000 * members_s, 2), "legacy_check_ms": round(1000 * legacy_s, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", type=int, nargs="+", default=[0, 30_000, 100_000])
    p.add_argument("--reps", type=int, default=50, help="Timed calls per figure.")
    args = p.parse_args()
    from aiops.logs import configure_logging

    configure_logging("WARNING", stream=sys.stderr)
    rows = [measure(n, args.reps) for n in args.checkpoints]
    print(f"{'checkpoints':>12} {'refresh ms':>11} {'live_members ms':>16} {'legacy check ms':>16}")
    for r in rows:
        print(f"{r['checkpoints']:>12,} {r['refresh_ms']:>11.2f} {r['live_members_ms']:>16.2f}"
              f" {r['legacy_check_ms']:>16.2f}")
    print(json.dumps({"rows": rows, "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg())}))


if __name__ == "__main__":
    main()
