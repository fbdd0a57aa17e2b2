"""A storm of 10,000 notifications: rate-limited, nothing lost, the held-back ones summarised, memory bounded."""

from __future__ import annotations

import gc
from pathlib import Path

import psutil
from notif_support import RecordingServer, make_outbox, sample_notification

from aiops.state import StateDB

BURST = 10_000


def test_burst_of_10000_is_rate_limited_and_nothing_is_lost(tmp_path: Path) -> None:
    srv = RecordingServer()
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    db.create_all()
    proc = psutil.Process()
    box = make_outbox(db, {"ops": srv}, rate={"ops": (600.0, 10)})  # 10 messages a second, 10 at once
    box.start()
    try:
        gc.collect()
        rss_before = proc.memory_info().rss
        for i in range(BURST):
            box.enqueue(sample_notification(group=f"g{i % 50}", n_alerts=1))
        rss_after = proc.memory_info().rss
        assert box.drain(120), box.counts()
    finally:
        box.stop()
        srv.stop()
    counts = box.counts()
    assert counts.get("sent", 0) + counts.get("held_back", 0) == BURST, counts  # every row recorded
    assert set(counts) <= {"sent", "held_back"}
    got = [r.json for r in srv.ok()]
    assert len(got) == counts["sent"]
    assert len(got) < BURST / 10  # the channel was not flooded
    assert sum(1 + m.get("heldBack", 0) for m in got) == BURST  # each notification sent or counted in a summary
    summaries = [m for m in got if m.get("heldBack")]
    assert summaries and all("alertname=HighGpuTemp" in m["heldBackSummary"] for m in summaries)
    # memory is bounded: rows live in the database, not in a Python queue (loose: allocator noise)
    assert rss_after - rss_before < 150 * 2**20, f"RSS grew {(rss_after - rss_before) / 2**20:.0f} MiB"
    db.dispose()
