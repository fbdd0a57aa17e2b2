"""Detection sharded over agents on SQLite and a real PostgreSQL: consistent hashing moves few slots, every
series is scored by exactly one agent once the group settled (never by two), an agent that joins or
dies hands its series over with their detector checkpoints (a moved detector is warm: it flags a
spike at once), and one spike is one anomaly, not two."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from aiops.bus import Bus
from aiops.model import Sample, Series
from aiops.protocols import AgentContext
from aiops.state import StateDB, anomalies
from aiops.store import SqliteSeriesStore
from app.settings import load_settings
from detectors.live import DetectionComponent
from detectors.settings import DetectorSpec
from detectors.sharding import ShardMembership, assign_slots, slot_of
from detectors.tables import shard_members, shard_slots

SPEC = DetectorSpec(name="z", detector="zscore", selector="shard_metric", params={"window": 20})
SERIES = [Series.of("shard_metric", i=str(i)) for i in range(48)]
SLOTS = 32


def test_rendezvous_moves_only_the_joining_members_share() -> None:
    before = assign_slots(["a", "b", "c"], 1024)
    after = assign_slots(["a", "b", "c", "d"], 1024)
    moved = [s for s in before if before[s] != after[s]]
    assert all(after[s] == "d" for s in moved)  # only slots the newcomer takes move
    assert 0.18 < len(moved) / 1024 < 0.32       # about 1/4
    counts = Counter(after.values())
    assert min(counts.values()) > 200            # balanced
    gone = assign_slots(["a", "b", "d"], 1024)
    assert all(gone[s] == after[s] for s in after if after[s] != "c")  # c leaving moves only c's


class Agent:
    def __init__(self, db: StateDB, name: str, store: SqliteSeriesStore | None = None, **opts: Any) -> None:
        self.bus = Bus()
        self.comp = DetectionComponent([SPEC], **{"checkpoint_interval_s": 0.5, "shard_member": name,
                                                  "shard_slots": SLOTS, "shard_heartbeat_s": 0.3,
                                                  "shard_ttl_s": 6.0, **opts})
        ctx = AgentContext(load_settings(None), store, db, self.bus, CollectorRegistry(), None, {})  # type: ignore[arg-type]
        self.comp.start(ctx)
        self.alive = True
        STARTED.append(self)

    def crash(self) -> None:
        """Die like a killed process: no checkpoint, no goodbye; its heartbeat just stops."""
        _halt(self.comp)
        self.alive = False


STARTED: list[Agent] = []


def _halt(comp: DetectionComponent) -> None:
    """Stop a component's threads without its clean stop (no checkpoint, no leave)."""
    comp._stop.set()
    for thread in (comp._thread, comp._member_thread, comp._beat_thread):
        if thread is not None:
            thread.join(5)


@pytest.fixture
def db(state_db: StateDB) -> Iterator[StateDB]:
    """The state database, on SQLite and on PostgreSQL."""
    yield state_db
    while STARTED:  # no agent thread outlives its test (and its database)
        _halt(STARTED.pop().comp)


def _batch(ts_ms: int, spike: Series | None = None) -> list[Sample]:
    """One collection of every series; ``spike`` 100 times its usual value."""
    return [Sample(s, ts_ms, 100.0 if s == spike else 1.0 + 0.01 * ((ts_ms // 1000 + i) % 7))
            for i, s in enumerate(SERIES)]


def _feed(agents: list[Agent], ts_ms: int, spike: Series | None = None) -> int:
    """One collection: every live agent sees every series (as replicas scraping the same targets do)."""
    batch = _batch(ts_ms, spike)
    before = sum(a.comp.scored for a in agents if a.alive)
    for a in agents:
        if a.alive:
            a.comp.on_samples(batch)
    return sum(a.comp.scored for a in agents if a.alive) - before


def _settle(agents: list[Agent], clock: list[int], timeout_s: float = 30.0) -> float:
    """Feed until every series is scored exactly once per collection; never more than once."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        clock[0] += 1000
        n = _feed(agents, clock[0])
        assert n <= len(SERIES), f"a series was scored twice ({n} updates for {len(SERIES)} series)"
        owned = [a.comp._scoring for a in agents if a.alive]
        settled = all(a.comp._scoring == a.comp.desired for a in agents if a.alive)
        if n == len(SERIES) and settled and sum(len(o) for o in owned) == SLOTS:
            assert frozenset().union(*owned) == frozenset(range(SLOTS))
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError("the shard group did not settle")


def _anomalies_of(db: StateDB, series: Series) -> list[int]:
    with db.begin() as conn:
        rows = conn.execute(sa.select(anomalies.c.ts_ms).where(anomalies.c.series == series.key)).all()
    return [int(r[0]) for r in rows]


def _owner(agents: list[Agent], series: Series) -> Agent:
    slot = slot_of(series, SLOTS)
    return next(a for a in agents if a.alive and slot in a.comp._scoring)


def _instance(agents: list[Agent], series: Series) -> Any:
    return _owner(agents, series).comp._instances[("z", series)]


def test_three_agents_one_killed(db: StateDB) -> None:
    clock = [1_700_000_000_000]
    agents = [Agent(db, "agent-a")]
    for _ in range(25):  # agent-a alone warms every detector
        clock[0] += 1000
        assert _feed(agents, clock[0]) == len(SERIES)
    agents += [Agent(db, "agent-b"), Agent(db, "agent-c")]  # two join
    _settle(agents, clock)
    handed = [s for s in SERIES if _owner(agents, s).comp.shard_member != "agent-a"]
    assert handed and all(_instance(agents, s).restored for s in handed)  # with agent-a's checkpoints
    members = ShardMembership(db, "observer", slots=SLOTS).live_members()
    assert members == ["agent-a", "agent-b", "agent-c"]
    moved = next(s for s in SERIES if _owner(agents, s).comp.shard_member != "agent-a")
    clock[0] += 1000
    assert _feed(agents, clock[0], spike=moved) == len(SERIES)
    # the joiner restored agent-a's checkpoint: warm, it flags the spike; and only once
    assert _anomalies_of(db, moved) == [clock[0]]

    victim = agents[2]
    lost = [s for s in SERIES if slot_of(s, SLOTS) in victim.comp._scoring]
    assert lost
    for _ in range(10):  # its detectors learn a while past their last checkpoint, then it dies
        clock[0] += 1000
        _feed(agents, clock[0])
    time.sleep(0.6)      # ... and a checkpoint interval passes
    victim.crash()
    killed_at = clock[0]
    failover_s = _settle(agents, clock)
    assert all(_instance(agents, s).restored for s in lost)  # every moved detector resumed from its checkpoint
    assert failover_s < 6.0 + 3 * 0.3 + 4.0  # ttl + a refresh or two, with room for a loaded machine
    heir = _owner(agents, lost[0])
    clock[0] += 1000
    assert _feed(agents, clock[0], spike=lost[0]) == len(SERIES)
    # restored from the dead agent's checkpoint: warm, so the spike is flagged, once
    assert [t for t in _anomalies_of(db, lost[0]) if t > killed_at] == [clock[0]]
    assert heir.comp.shard_member in ("agent-a", "agent-b")
    for a in agents:
        if a.alive:
            a.comp.stop()
    with db.begin() as conn:  # a clean stop leaves nothing claimed ...
        held = conn.execute(sa.select(shard_slots.c.slot).where(shard_slots.c.owner.is_not(None))).all()
        members = conn.execute(sa.select(shard_members.c.member)).scalars().all()
    owners = ShardMembership(db, "observer", slots=SLOTS).claims()
    assert set(owners.values()) <= {"agent-c"} and len(held) == len(owners)  # only the dead one's leftovers
    assert members == ["agent-c"]  # ... and no heartbeat but the dead one's


def test_a_fenced_agent_scores_nothing(db: StateDB) -> None:
    clock = [1_700_000_000_000]
    agents = [Agent(db, "solo")]
    clock[0] += 1000
    assert _feed(agents, clock[0]) == len(SERIES)
    assert agents[0].comp.shard is not None
    _halt(agents[0].comp)  # no more heartbeats ...
    agents[0].comp.shard._valid_until = 0.0  # ... and the last one older than ttl/2
    clock[0] += 1000
    assert _feed(agents, clock[0]) == 0


def test_settings_turn_sharding_on_with_the_agent_instance_as_member() -> None:
    from app.wiring import build_components

    settings = load_settings(None, detect={"detectors": [SPEC.model_dump()], "sharding": True, "shard_slots": 64},
                             agent={"instance": "pod-7"})
    comp = next(c for c in build_components(settings) if isinstance(c, DetectionComponent))
    assert comp.shard_member == "pod-7" and comp._shard_opts["slots"] == 64
    plain = load_settings(None, detect={"detectors": [SPEC.model_dump()]})
    assert next(c for c in build_components(plain) if isinstance(c, DetectionComponent)).shard_member is None


class _Overloaded:
    """Detection that is always behind: the next batch of ``n`` series is ready as one ends."""

    def __init__(self, agent: Agent, n: int) -> None:
        self.agent, self.series = agent, [Series.of("shard_metric", i=str(i)) for i in range(n)]
        self.batch_s: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        while len(self.batch_s) < 2:
            time.sleep(0.05)

    def _run(self) -> None:
        ts = 1_700_000_000_000
        while not self.stop.is_set():
            ts += 1000
            batch = [Sample(s, ts, 1.0 + 0.01 * (i % 7)) for i, s in enumerate(self.series)]
            started = time.perf_counter()
            self.agent.comp.on_samples(batch)
            self.batch_s.append(time.perf_counter() - started)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


def test_busy_detection_lets_a_waiting_handover_in_within_one_chunk(db: StateDB) -> None:
    """The cause of the 30,000-series stall: detection held the component's lock for whole
    batches and, being behind, took it again at once (Python's locks are not fair), so the
    handover, which needs that lock to pick and checkpoint the moving detectors, waited 61 s
    on the starved machine; heartbeats lapsed meanwhile and the group reshuffled again."""
    agent = Agent(db, "busy", score_chunk=1000)
    feed = _Overloaded(agent, 12000)
    try:
        scored_meanwhile = []
        for _ in range(15):
            before = agent.comp.scored
            with agent.comp._lock:
                scored_meanwhile.append(agent.comp.scored - before)
            time.sleep(0.02)
    finally:
        feed.close()
    # a waiter gets the lock after the chunk in progress (1,000 of the 12,000 samples), not after
    # the batch, nor after several batches (counted in samples, so the machine's load does not matter)
    assert max(scored_meanwhile) <= 2 * 1000, f"detection scored {max(scored_meanwhile)} samples before the waiter"


def test_a_busy_agent_hands_slots_over_while_detection_runs_back_to_back(db: StateDB) -> None:
    busy = Agent(db, "busy", checkpoint_interval_s=3600)
    feed = _Overloaded(busy, 6000)
    try:
        joined = time.monotonic()
        joiner = Agent(db, "joiner")
        claims: dict[int, str] = {}
        while time.monotonic() - joined < 8.0:
            claims = ShardMembership(db, "observer", slots=SLOTS).claims()
            if joiner.comp.desired and all(claims.get(s) == "joiner" for s in joiner.comp.desired):
                break
            time.sleep(0.1)
        moved_s = time.monotonic() - joined
        assert joiner.comp.desired and all(claims.get(s) == "joiner" for s in joiner.comp.desired), \
            f"the busy agent did not hand over in {moved_s:.1f}s: claims {Counter(claims.values())}"
        fed = len(feed.batch_s)
    finally:
        feed.close()
    assert fed > 4  # detection went on meanwhile
    moved = [s for s in feed.series if slot_of(s, SLOTS) in joiner.comp.desired]
    assert not [k for k in busy.comp._instances if k[1] in set(moved)]  # forgotten by the busy agent ...
    assert len(db.kv_get_many([f"detector/z/{s.key}" for s in moved])) == len(moved)  # ... once checkpointed


def test_an_agent_back_from_a_lapse_longer_than_the_ttl_scores_nothing_until_it_rereads_its_claims(
        db: StateDB) -> None:
    """Past ``ttl_s`` without a heartbeat, others may have taken our slots: the old set is void."""
    now = [1000.0]
    a = ShardMembership(db, "a", slots=SLOTS, heartbeat_s=1.0, ttl_s=6.0, clock=lambda: now[0])
    b = ShardMembership(db, "b", slots=SLOTS, heartbeat_s=1.0, ttl_s=6.0, clock=lambda: now[0])
    a.refresh()
    assert a.owns_now() == frozenset(range(SLOTS))
    now[0] += 7.0  # a is stalled (a starved process) longer than the ttl ...
    b.refresh()    # ... so b, alone alive, takes every slot
    assert b.owned == frozenset(range(SLOTS))
    a.heartbeat()  # a's heartbeat thread gets through before its next refresh
    assert a.owns_now() == frozenset(), "a resumed scoring slots that b now holds"
    view = a.refresh()  # the next refresh reads the claims again: b holds a's share until it releases it
    assert view.owned == frozenset() and view.desired
