"""Shard handover on SQLite and PostgreSQL, each agent on its own engine (as separate processes are):
a checkpoint in flight during a handover is fenced out (it neither replaces the handed-over state
nor a later checkpoint of the new owner), a handover whose checkpoint cannot be saved keeps its
slots until it can, membership reads never touch the detector checkpoints, a database of
0004 keeps its members and claims through the migration to the shard tables, and during a rolling
update from agents older than 0005 (membership in ``kv``) the new agents score nothing beside them."""

from __future__ import annotations

import json
import pickle  # nosec B403 - reads back the checkpoints the component under test wrote
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from aiops.model import Series
from aiops.state import StateDB, _migrations, kv
from aiops.store import SqliteSeriesStore
from detectors.live import state_key
from detectors.sharding import ShardMembership, slot_of
from detectors.tables import shard_slots
from tests.conftest import pg_database
from tests.detectors.test_sharding import (
    SERIES,
    SLOTS,
    STARTED,
    Agent,
    _anomalies_of,
    _batch,
    _feed,
    _halt,
    _settle,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """One state database (a SQLite file or a fresh PostgreSQL database), migrated to head."""
    if request.param == "sqlite":
        found = f"sqlite:///{tmp_path / 'state.db'}"
        _migrated(found)
        yield found
    else:
        with pg_database() as found:
            _migrated(found)
            yield found
    while STARTED:  # no agent thread outlives its test (and its database)
        _halt(STARTED.pop().comp)


def _migrated(url: str) -> None:
    db = StateDB(url)
    db.create_all()
    db.dispose()


@pytest.fixture
def engines(url: str) -> Iterator[Callable[[], StateDB]]:
    """A factory of StateDBs on ``url``, one per agent; all disposed at the end."""
    made: list[StateDB] = []

    def make() -> StateDB:
        made.append(StateDB(url))
        return made[-1]

    yield make
    while STARTED:
        _halt(STARTED.pop().comp)
    for db in made:
        db.dispose()


class _Gate:
    """Holds the transactions that a thread of a given name opens on ``db`` until released."""

    def __init__(self, db: StateDB, thread_name: str) -> None:
        self.thread_name, self.held, self.go = thread_name, threading.Event(), threading.Event()
        begin = db.begin

        def gated() -> AbstractContextManager[Any]:
            if threading.current_thread().name == self.thread_name:
                self.held.set()
                assert self.go.wait(30), "the gate was never opened"
            return begin()

        db.begin = gated  # type: ignore[method-assign]


def _stored_ts(db: StateDB, series: list[Any]) -> dict[Any, int]:
    blobs = db.kv_get_many([state_key("z", s) for s in series])
    return {s: int(pickle.loads(blobs[state_key("z", s)])["last_ts_ms"]) for s in series}  # nosec B301


def _wait_claimed(db: StateDB, agent: Agent, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        claims = ShardMembership(db, "observer", slots=SLOTS).claims()
        if agent.comp.desired and all(claims.get(s) == agent.comp.shard_member for s in agent.comp.desired) \
                and agent.comp._scoring == agent.comp.desired:
            return
        time.sleep(0.05)
    raise AssertionError(f"{agent.comp.shard_member} did not get its slots in {timeout_s}s")


def _warm_agent_a(db: StateDB, clock: list[int]) -> Agent:
    """agent-a alone, every detector warm: 25 collections, one second apart on ``clock``."""
    a = Agent(db, "agent-a", checkpoint_interval_s=3600)
    for _ in range(25):
        clock[0] += 1000
        assert _feed([a], clock[0]) == len(SERIES)
    return a


@pytest.mark.parametrize("lands", ["before_the_new_owner_restores", "after_the_new_owners_checkpoint"])
def test_a_checkpoint_in_flight_during_a_handover_is_fenced_out(engines: Callable[[], StateDB], lands: str) -> None:
    """The race: a periodic checkpoint pickled its detectors, then the slot was handed over (with
    newer state); its late write used to replace the handed-over state (the new owner restored an
    older one) or the new owner's own later checkpoint."""
    db_a, db_b = engines(), engines()
    clock = [1_700_000_000_000]
    a = _warm_agent_a(db_a, clock)
    gate = _Gate(db_a, "stale-checkpoint")
    stale = threading.Thread(target=a.comp.checkpoint, name="stale-checkpoint")
    stale.start()  # pickles every detector as of now, then waits at the gate before writing
    assert gate.held.wait(10)
    for _ in range(3):  # agent-a learns on ...
        clock[0] += 1000
        assert _feed([a], clock[0]) == len(SERIES)
    handed_ts = clock[0]
    b = Agent(db_b, "agent-b", checkpoint_interval_s=3600)
    _wait_claimed(db_b, b)  # ... and hands agent-b its share, checkpointed as of handed_ts
    moved = [s for s in SERIES if slot_of(s, SLOTS) in b.comp.desired]
    assert moved and set(_stored_ts(db_b, moved).values()) == {handed_ts}
    expected = handed_ts
    if lands == "after_the_new_owners_checkpoint":
        for _ in range(3):
            clock[0] += 1000
            _feed([a, b], clock[0])
        assert b.comp.checkpoint() == len(moved)
        expected = clock[0]
    gate.go.set()
    stale.join(10)
    stored = _stored_ts(db_b, moved)
    replaced = sum(v != expected for v in stored.values())
    assert replaced == 0, f"the stale checkpoint (as of {handed_ts - 3000}) replaced {replaced} newer states"
    kept = [s for s in SERIES if s not in moved]
    assert set(_stored_ts(db_b, kept).values()) == {handed_ts - 3000}  # agent-a's own slots: written
    clock[0] += 1000
    _feed([a, b], clock[0])
    assert all(b.comp._instances[("z", s)].restored for s in moved)


def test_a_handover_whose_checkpoint_fails_keeps_its_slots_until_saved(engines: Callable[[], StateDB]) -> None:
    """A failed save used to release the slots anyway: the heir restored an older checkpoint (or
    none) and the state since was lost."""
    db_a, db_b = engines(), engines()
    clock = [1_700_000_000_000]
    a = _warm_agent_a(db_a, clock)
    failing = threading.Event()
    failing.set()

    @sa.event.listens_for(db_a.engine, "before_cursor_execute")
    def _disk_full(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if failing.is_set() and statement.lstrip().upper().startswith("INSERT INTO KV"):
            raise sa.exc.OperationalError(statement, None, Exception("injected: could not write checkpoints"))

    b = Agent(db_b, "agent-b", checkpoint_interval_s=3600)
    started = time.monotonic()
    while time.monotonic() - started < 2.5:  # several of agent-a's rebalances, each failing to save
        clock[0] += 1000
        # never twice; a kept slot is skipped only while a save is tried
        assert _feed([a, b], clock[0]) <= len(SERIES)
        time.sleep(0.1)
    moved = [s for s in SERIES if slot_of(s, SLOTS) in b.comp.desired]
    assert moved
    claims = ShardMembership(db_b, "observer", slots=SLOTS).claims()
    assert {claims.get(slot_of(s, SLOTS)) for s in moved} == {"agent-a"}, "slots released without their checkpoints"
    deadline = time.monotonic() + 5  # between two attempts agent-a holds and scores them all again
    while not all(("z", s) in a.comp._instances for s in SERIES):
        assert time.monotonic() < deadline, "agent-a forgot the detectors it could not save"
        time.sleep(0.01)
    last_ts = clock[0]
    failing.clear()  # the database recovers: the next round saves, then releases
    _settle([a, b], clock)
    assert all(b.comp._instances[("z", s)].restored for s in moved)
    # handed over as of agent-a's samples after the failures (it kept scoring them), not older
    assert min(_stored_ts(db_b, moved).values()) >= last_ts


def test_membership_reads_do_not_touch_the_detector_checkpoints(engines: Callable[[], StateDB]) -> None:
    db = engines()
    db.kv_put_many([(f"detector/z/s{i}", b"x" * 64) for i in range(2000)])
    with db.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
    statements: list[tuple[str, Any]] = []

    @sa.event.listens_for(db.engine, "before_cursor_execute")
    def _seen(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        statements.append((statement, parameters))

    m = ShardMembership(db, "agent-a", slots=SLOTS, heartbeat_s=1.0, ttl_s=6.0)
    view = m.refresh()
    assert view.owned == frozenset(range(SLOTS)) and m.live_members() == ["agent-a"]
    assert m.claims() == {s: "agent-a" for s in range(SLOTS)}
    read_kv = [(s, p) for s, p in statements if re.search(r"\bkv\b", s)]
    # at most the check for agents older than 0005: a range of the primary key, once per refresh
    assert len(read_kv) <= 1, f"membership read the kv table {len(read_kv)} times: {read_kv[:3]}"
    for statement, params in read_kv:
        assert "LIKE" not in statement.upper()
        with db.engine.connect() as conn:
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(
                ("EXPLAIN " if db.engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN ") + statement, params))
        assert ("kv_pkey" in plan or "sqlite_autoindex_kv" in plan) and "Seq Scan" not in plan \
            and not plan.startswith("SCAN"), f"the kv read is not a primary-key range: {plan}"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
    else:
        with pg_database() as found:
            yield found


def test_a_database_of_0004_keeps_its_shard_members_and_claims(empty_url: str) -> None:
    """0005 copies the ``kv`` rows of 0004 (``detect/member/...``, ``detect/slot/...``) to the shard
    tables; the old heartbeats stay in ``kv`` until the old agents are gone, so that a new agent
    started right after the migration (a rolling update) waits for a still-running old one."""
    db = StateDB(empty_url)
    script = _migrations()
    with db.begin() as conn:
        ctx = MigrationContext.configure(connection=conn, opts={
            "fn": lambda rev, _ctx: script._upgrade_revs("0004_alerting_inbox", rev), "render_as_batch": True})
        with Operations.context(ctx):
            ctx.run_migrations()
    assert db.revision() == "0004_alerting_inbox"
    beat_ms = int(time.time() * 1000)  # kv_put stamps updated_ms with the wall clock, as 0004's agents did
    db.kv_put("detect/member/agent-a", json.dumps({"heartbeat_ms": beat_ms}).encode())
    db.kv_put("detect/slot/3", json.dumps({"owner": "agent-a", "since_ms": beat_ms - 10_000}).encode())
    db.kv_put("detector/z/up", b"checkpoint")
    db.upgrade()
    now = [beat_ms / 1000 + 1.0]
    m = ShardMembership(db, "observer", slots=SLOTS, clock=lambda: now[0])
    assert m.live_members() == ["agent-a"] and m.claims() == {3: "agent-a"}
    with db.begin() as conn:
        assert [r[0] for r in conn.execute(sa.select(kv.c.key))] == ["detect/member/agent-a", "detector/z/up"]
        assert conn.execute(sa.select(shard_slots.c.epoch)).scalar_one() == 1
    view = m.refresh()  # agent-a's heartbeat is 1 s old: it may still be running, so claim nothing
    assert not view.desired and not m.owned
    now[0] += m.ttl_s + 5  # agent-a stopped: its heartbeat lapses, the observer takes its share
    view = m.refresh()
    assert view.desired and m.owned == view.desired
    with db.begin() as conn:
        assert [r[0] for r in conn.execute(sa.select(kv.c.key))] == ["detector/z/up"]
    db.dispose()


def test_a_handover_during_a_periodic_checkpoints_write_hands_the_detectors_over(
        engines: Callable[[], StateDB]) -> None:
    """The race: a periodic checkpoint pickled every detector and marked it saved, then waited for
    its commit (a loaded database); a handover meanwhile skipped those detectors as already saved
    and released their slots, and the seal fenced the late write out: the heir came up cold (the
    spike missed) and the state was lost."""
    db_a, db_b = engines(), engines()
    clock = [1_700_000_000_000]
    a = _warm_agent_a(db_a, clock)
    handed_ts = clock[0]
    gate = _Gate(db_a, "slow-checkpoint")
    slow = threading.Thread(target=a.comp.checkpoint, name="slow-checkpoint")
    slow.start()  # pickles every detector as of handed_ts, then waits at the gate before its commit
    assert gate.held.wait(10)
    try:
        b = Agent(db_b, "agent-b", checkpoint_interval_s=3600)  # nothing is collected during the handover
        _wait_claimed(db_b, b)
        moved = [s for s in SERIES if slot_of(s, SLOTS) in b.comp.desired]
        assert moved
        saved = db_b.kv_get_many([state_key("z", s) for s in moved])
        assert len(saved) == len(moved), f"{len(moved) - len(saved)} of {len(moved)} handed over without a checkpoint"
        assert set(_stored_ts(db_b, moved).values()) == {handed_ts}, "handed over with older states"
    finally:
        gate.go.set()  # the slow commit lands: fenced out for the moved slots, written for agent-a's own
    slow.join(10)
    assert not slow.is_alive()
    assert set(_stored_ts(db_b, moved).values()) == {handed_ts}
    kept = [s for s in SERIES if s not in moved]
    assert set(_stored_ts(db_b, kept).values()) == {handed_ts}
    assert all(not a.comp._instances[("z", s)].dirty for s in kept)  # committed: not written again
    spiked = moved[0]
    clock[0] += 1000
    assert _feed([a, b], clock[0], spike=spiked) == len(SERIES)
    assert all(b.comp._instances[("z", s)].restored for s in moved)
    assert _anomalies_of(db_b, spiked) == [clock[0]], "the heir came up cold and missed the spike"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteSeriesStore]:
    """The samples every agent stores (replicas scraping the same targets store the same ones)."""
    found = SqliteSeriesStore(tmp_path / "samples.db")
    yield found
    found.close()


def _collect(store: SqliteSeriesStore, agents: list[Agent], ts_ms: int, spike: Series | None = None) -> int:
    """One collection as an agent's writer handles it: stored first, then handed to detection."""
    batch = _batch(ts_ms, spike)
    store.append(batch)
    before = sum(a.comp.scored for a in agents if a.alive)
    for a in agents:
        if a.alive:
            a.comp.on_samples(batch)
    return sum(a.comp.scored for a in agents if a.alive) - before


def test_the_heir_catches_up_on_the_samples_of_the_handover_gap(
        engines: Callable[[], StateDB], store: SqliteSeriesStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Samples that arrive after the old owner released a slot and before the new owner claimed it
    (up to a heartbeat) were learned and scored by nobody: a spike among them was never flagged.
    The restored detectors read their samples in one store query, not one each."""
    db_a, db_b = engines(), engines()
    clock = [1_700_000_000_000]
    opts = {"checkpoint_interval_s": 3600, "catchup_s": 600}
    a = Agent(db_a, "agent-a", store=store, **opts)
    for _ in range(25):
        clock[0] += 1000
        assert _collect(store, [a], clock[0]) == len(SERIES)
    b = Agent(db_b, "agent-b", store=store, **opts)
    _wait_claimed(db_b, b)  # agent-a released the moved slots, agent-b claimed them, nothing scored them yet
    moved = [s for s in SERIES if slot_of(s, SLOTS) in b.comp.desired]
    handed_ts = clock[0]
    assert moved and set(_stored_ts(db_b, moved).values()) == {handed_ts}
    spiked = moved[0]
    gap = []
    for i in range(3):  # stored while the slots were between owners: neither agent scores them
        clock[0] += 1000
        gap.append(clock[0])
        store.append(_batch(clock[0], spiked if i == 1 else None))
    reads: list[str] = []
    for name in ("read", "read_many"):
        real = getattr(store, name)
        monkeypatch.setattr(store, name, lambda *args, _real=real, _name=name: (reads.append(_name), _real(*args))[1])
    clock[0] += 1000
    assert _collect(store, [a, b], clock[0]) == len(SERIES) + 3 * len(moved)  # the heir scored the gap too
    assert reads == ["read_many"], f"{len(moved)} restored detectors read the store as {reads}"
    assert all(b.comp._instances[("z", s)].restored for s in moved)
    assert all(b.comp._instances[("z", s)].last_ts_ms == clock[0] for s in moved)
    assert _anomalies_of(db_b, spiked) == [gap[1]], "the spike of the handover gap was not flagged (once)"
    assert not any(_anomalies_of(db_b, s) for s in SERIES if s != spiked)


def test_a_dead_owners_anomalies_since_its_checkpoint_are_not_recorded_twice(
        engines: Callable[[], StateDB], store: SqliteSeriesStore) -> None:
    """The heir of a dead agent scores again, from the last checkpoint, the samples the dead one
    scored after it: learned again (so its state is as the dead one's was), but the anomalies the
    dead one recorded are not recorded a second time; one it could not see is."""
    db_a, db_b = engines(), engines()
    clock = [1_700_000_000_000]
    opts = {"checkpoint_interval_s": 3600, "catchup_s": 600, "shard_heartbeat_s": 0.2, "shard_ttl_s": 1.0}
    a = Agent(db_a, "agent-a", store=store, **opts)
    for _ in range(25):
        clock[0] += 1000
        assert _collect(store, [a], clock[0]) == len(SERIES)
    assert a.comp.checkpoint() == len(SERIES)
    checkpoint_ts = clock[0]
    spiked, late = SERIES[0], SERIES[1]
    for i in range(4):  # scored by agent-a after its last checkpoint: the spike is recorded once
        clock[0] += 1000
        assert _collect(store, [a], clock[0], spike=spiked if i == 1 else None) == len(SERIES)
    seen_ts = checkpoint_ts + 2000
    assert _anomalies_of(db_a, spiked) == [seen_ts]
    a.crash()
    b = Agent(db_b, "agent-b", store=store, **opts)
    clock[0] += 1000
    store.append(_batch(clock[0], late))  # after agent-a died, before agent-b owns the slots
    late_ts = clock[0]
    _wait_claimed(db_b, b, timeout_s=15)
    assert b.comp._scoring == frozenset(range(SLOTS))
    clock[0] += 1000
    assert _collect(store, [b], clock[0]) == len(SERIES) * 6  # 5 caught up (4 seen by agent-a, 1 by none) + 1
    assert all(b.comp._instances[("z", s)].restored for s in SERIES)
    assert _anomalies_of(db_b, spiked) == [seen_ts], "agent-a's anomaly was recorded twice"
    assert _anomalies_of(db_b, late) == [late_ts], "the spike after agent-a died was not flagged"


# --- a rolling update from agents older than 0005 -------------------------------------------------

_OLD_MEMBER = "detect/member/"
_OLD_SLOT = "detect/slot/"


def _old_heartbeat(state: StateDB, member_id: str, now: float) -> None:
    """The heartbeat of an agent older than 0005, a literal copy of ``ShardMembership.heartbeat``'s
    write as of commit 44fcfb0 (before 0b9849b moved membership out of ``kv``)."""
    value = json.dumps({"heartbeat_ms": int(now * 1000)}).encode()
    key = _OLD_MEMBER + member_id
    with state.begin() as conn:
        if conn.execute(sa.update(kv).where(kv.c.key == key).values(value=value, updated_ms=int(now * 1000))
                        ).rowcount == 0:
            conn.execute(sa.insert(kv).values(key=key, value=value, updated_ms=int(now * 1000)))


def _old_claims(state: StateDB, member_id: str, slots: range, now: float) -> None:
    """The claims of an agent older than 0005 (``ShardMembership._claim``'s rows as of 44fcfb0)."""
    value = json.dumps({"owner": member_id, "since_ms": int(now * 1000)}).encode()
    with state.begin() as conn:
        for slot in slots:
            conn.execute(sa.insert(kv).values(key=_OLD_SLOT + str(slot), value=value, updated_ms=int(now * 1000)))


def _kv_keys(db: StateDB) -> list[str]:
    with db.begin() as conn:
        return sorted(str(r[0]) for r in conn.execute(sa.select(kv.c.key)))


class _Logged:
    """Records what ``detectors.sharding`` logs (a stand-in for its logger)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        return lambda event, **kw: self.events.append((level, event, kw))


def test_a_new_agent_claims_nothing_while_an_agent_older_than_0005_heartbeats_in_kv(
        engines: Callable[[], StateDB], monkeypatch: pytest.MonkeyPatch) -> None:
    """A rolling update: the old agents still heartbeat and claim in ``kv``; the new one used to take
    every slot beside them (each version scored the whole ring: series scored and alerted twice)."""
    import detectors.sharding

    logged = _Logged()
    monkeypatch.setattr(detectors.sharding, "log", logged)
    db, now = engines(), [1_700_000_000.0]
    db.kv_put_many([(f"detector/z/s{i}", b"x" * 64) for i in range(200)])  # checkpoints: left alone
    _old_heartbeat(db, "agent-old", now[0])
    _old_claims(db, "agent-old", range(SLOTS), now[0])
    new = ShardMembership(db, "agent-new", slots=SLOTS, heartbeat_s=1.0, ttl_s=6.0, clock=lambda: now[0])
    for _ in range(8):  # the old agent heartbeats on: the new one waits as long
        now[0] += 1.0
        _old_heartbeat(db, "agent-old", now[0])
        view = new.refresh()
        assert view.owned == frozenset() and view.desired == frozenset() and new.owns_now() == frozenset()
        assert view.waiting == ("agent-old",)
        assert new.claims() == {}
    waits = [e for e in logged.events if e[1] == "shard_waiting_for_old_agents"]
    assert [(lvl, kw["old_agents"]) for lvl, _, kw in waits] == [("warning", ["agent-old"])]  # once
    assert new.live_members() == ["agent-new"]  # its own heartbeat goes on meanwhile
    now[0] += 5.0  # the old agent's last heartbeat is 5 s old: within the ttl, still waited for
    assert new.refresh().owned == frozenset()
    now[0] += 1.5  # past the ttl: the old agent is gone (killed); the new one takes over
    view = new.refresh()
    assert view.waiting == () and view.owned == view.desired == frozenset(range(SLOTS))
    assert [k for k in _kv_keys(db) if not k.startswith("detector/")] == []  # its stale rows deleted
    assert len(_kv_keys(db)) == 200
    assert [e[1] for e in logged.events].count("shard_old_agents_gone") == 1


def test_an_agent_that_sees_an_old_agent_appear_gives_its_slots_up(engines: Callable[[], StateDB]) -> None:
    """A rollback (or an old pod restarted mid-update): the new agent stops claiming and hands over."""
    db, now = engines(), [1_700_000_000.0]
    new = ShardMembership(db, "agent-new", slots=SLOTS, heartbeat_s=1.0, ttl_s=6.0, clock=lambda: now[0])
    assert new.refresh().owned == frozenset(range(SLOTS))
    now[0] += 1.0
    _old_heartbeat(db, "agent-old", now[0])
    view = new.refresh()
    assert view.desired == frozenset() and view.waiting == ("agent-old",)  # rebalance seals and releases it all


def test_no_series_is_scored_twice_during_a_rolling_update_from_before_0005(
        engines: Callable[[], StateDB]) -> None:
    """Detection end to end: while an old agent heartbeats (real time), the new agent scores nothing;
    once the old one is killed, the new one scores every series after the ttl."""
    db_old, db_new = engines(), engines()
    stop = threading.Event()

    def old_agent() -> None:  # an agent older than 0005: heartbeat every 0.3 s, claims in kv
        _old_claims(db_old, "agent-old", range(SLOTS), time.time())
        while not stop.is_set():
            _old_heartbeat(db_old, "agent-old", time.time())
            stop.wait(0.3)

    beating = threading.Thread(target=old_agent, name="old-agent")
    beating.start()
    try:
        deadline = time.monotonic() + 5
        while not db_new.kv_get(_OLD_MEMBER + "agent-old") and time.monotonic() < deadline:
            time.sleep(0.02)
        clock = [1_700_000_000_000]
        new = Agent(db_new, "agent-new", shard_ttl_s=2.0)
        started = time.monotonic()
        while time.monotonic() - started < 2.5:  # several refreshes (every 0.3 s) of the new agent
            clock[0] += 1000
            assert _feed([new], clock[0]) == 0, "the new agent scored beside an agent older than 0005"
            time.sleep(0.05)
        assert new.comp._scoring == frozenset() and new.comp.desired == frozenset()
    finally:
        stop.set()
        beating.join(5)
    killed = time.time()
    _settle([new], clock)
    assert time.time() - killed > 1.5, "took over before the old agent's heartbeat lapsed"
    assert db_new.kv_get(_OLD_MEMBER + "agent-old") is None and db_new.kv_get(_OLD_SLOT + "0") is None


def test_the_old_agents_are_found_with_like_where_keys_do_not_sort_bytewise(engines: Callable[[], StateDB]) -> None:
    """Where the database's collation would put a prefix's keys outside the range (asked once on
    PostgreSQL), the check falls back to ``LIKE``: a scan, but it still finds the old agents."""
    db, now = engines(), [1_700_000_000.0]
    _old_heartbeat(db, "agent-old", now[0])
    db.kv_put("detect/memberz", b"not a heartbeat")
    new = ShardMembership(db, "agent-new", slots=SLOTS, heartbeat_s=1.0, ttl_s=6.0, clock=lambda: now[0])
    new._bytewise = False
    assert new.legacy_members() == {"agent-old": int(now[0] * 1000)}
    assert new.refresh().waiting == ("agent-old",)
