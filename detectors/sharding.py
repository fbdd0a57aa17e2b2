"""Live detection sharded over the running agents: membership and slot ownership in the state DB.

Series are hashed (BLAKE2b of the series key, stable across processes and versions) into a fixed
number of **slots**; slots are spread over the live agents by rendezvous (highest-random-weight)
hashing, the consistent-hashing scheme in which a joining or leaving agent moves only the slots
it gains or held (about ``1/N`` of them). State lives in two small tables of the state database
(``detectors/tables.py``), so SQLite (one machine) and PostgreSQL (a cluster) both work, and a
refresh reads a few hundred rows however many detector checkpoints ``kv`` holds:

- ``shard_members``: each agent's heartbeat (wall-clock ms), written every ``heartbeat_s / 2``;
  a member whose heartbeat is older than ``ttl_s`` is dead.
- ``shard_slots``: the slot's **claim** (``owner``, NULL when free) and its **epoch**, a fencing
  token that every claim, seal and release raises. Only the owner scores the slot's series.

Handover without double scoring, and with the detector state:

1. An agent whose ring no longer gives it a slot stops scoring it, **seals** it (raises its epoch:
   :meth:`ShardMembership.seal`), checkpoints its detectors under the new epoch, and only once they
   are saved releases the claim (:meth:`ShardMembership.release`). A save that failed keeps the
   slot (and its detectors, scored again) for the next round.
2. The slot's new owner claims it only once it is free: no claim, a claim released, or a claim of
   a dead member (compare-and-set on the epoch it read). It then restores each detector from its
   checkpoint on the series' next sample, caught up on the stored samples since (those of the
   handover itself: ``detectors/live.py``).
3. **Fencing**: a checkpoint is written (:meth:`ShardMembership.put_checkpoints`) only in a
   transaction that first locks its slot's row and finds it still at the writer's
   ``(owner, epoch)``, the token read when the detector was pickled. A periodic checkpoint
   pickled before a handover carries the pre-seal epoch and is refused after the seal, so it can
   overwrite neither the handed-over state nor a later checkpoint of the new owner; nor can the
   writes of an agent that lost its slots while paused. The row lock orders the check against a
   concurrent seal, release or claim (PostgreSQL: ``FOR SHARE``; SQLite: the transaction's first
   statement takes the database's write lock).
4. An agent that cannot renew its heartbeat stops scoring ``ttl_s / 2`` after its last successful
   one (self-fencing), before anybody may take its slots over (``ttl_s``). A partitioned agent
   therefore never scores a slot at the same time as its successor, as long as clocks agree
   within ``ttl_s / 2``. One whose heartbeats were apart by more than ``ttl_s`` (a starved or
   paused process) forgets what it owned: it scores again only the claims its next refresh
   finds still its own.

A dead agent's slots move after ``ttl_s`` plus at most one ``heartbeat_s``; their detectors resume
from the last checkpoint (at most ``detect.checkpoint_interval_s`` old), caught up on the stored
samples since.

**Agents older than migration 0005** kept membership and claims in ``kv`` (``detect/member/<id>``:
``{"heartbeat_ms"}``, ``detect/slot/<n>``: ``{"owner", "since_ms"}``) and go on doing so during a
rolling update; they do not see this module's tables, nor it theirs. So that the two versions never
score the same series, a refresh first reads the legacy heartbeats (a range read on ``kv``'s
primary key, ``detect/member/`` to ``detect/member0``: no checkpoint row is touched) and, while
any is younger than ``ttl_s``, claims nothing and gives up what it owns (:attr:`ShardView.waiting`
names the old agents; logged once per change as ``shard_waiting_for_old_agents``). Once none is
fresh (the last old agent left, or its heartbeat lapsed), it deletes the stale legacy rows and
proceeds. Detection pauses meanwhile: the new agents score nothing from the first one's start
until the last old agent stops (up to ``ttl_s`` more when it is killed rather than stopped).

Examples:
    >>> sorted(set(assign_slots(["a", "b", "c"], 12).values()))
    ['a', 'b', 'c']
    >>> slot_of(Series.of("up", job="x"), 256) == slot_of(Series.of("up", job="x"), 256)
    True
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, String, delete, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from aiops.errors import StoreError
from aiops.logs import get_logger
from aiops.model import Series
from aiops.state import StateDB, kv, kv_upsert

from .tables import shard_members, shard_slots

__all__ = ["LEGACY_MEMBER", "LEGACY_SLOT", "ShardMembership", "ShardView", "assign_slots", "slot_of"]

log = get_logger("detectors.sharding")

# the kv rows of agents older than migration 0005 (module docstring); "0" is the character after "/"
LEGACY_MEMBER = "detect/member/"
LEGACY_SLOT = "detect/slot/"


def _h64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def slot_of(series: Series, slots: int) -> int:
    """The slot of ``series``: a stable hash of its key modulo ``slots``."""
    return _h64(series.key) % slots


def assign_slots(members: Iterable[str], slots: int) -> dict[int, str]:
    """Rendezvous hashing: each slot goes to the member with the highest ``hash(member, slot)``."""
    ids = sorted(set(members))
    if not ids:
        return {}
    return {s: max(ids, key=lambda m: _h64(f"{m}\x00{s}")) for s in range(slots)}


@dataclass(frozen=True, slots=True)
class ShardView:
    """One refresh's outcome: the live members, the slots this agent should and does own."""

    members: tuple[str, ...]
    desired: frozenset[int]
    owned: frozenset[int]
    waiting: tuple[str, ...] = ()  # agents older than 0005 still heartbeating in kv: we claim nothing


class ShardMembership:
    """This agent's membership of the detection shard group (see the module docstring).

    Args:
        state: the shared state database.
        member_id: this agent's unique id (``agent.instance``: the pod name in Kubernetes).
        slots: number of slots (every agent of a group must use the same).
        heartbeat_s: seconds between two heartbeats (and slot refreshes).
        ttl_s: a member silent this long is dead and its slots are taken over.
        clock: wall-clock seconds (tests).
    """

    def __init__(self, state: StateDB, member_id: str, *, slots: int = 256, heartbeat_s: float = 3.0,
                 ttl_s: float = 15.0, clock: Callable[[], float] = time.time) -> None:
        if ttl_s <= 2 * heartbeat_s:  # the fencing window (ttl/2) must outlast one heartbeat period
            raise ValueError(f"shard ttl_s must exceed 2 x heartbeat_s, got ttl_s={ttl_s}, heartbeat_s={heartbeat_s}")
        self.state, self.member_id, self.slots = state, member_id, slots
        self.heartbeat_s, self.ttl_s, self.clock = heartbeat_s, ttl_s, clock
        self.owned: frozenset[int] = frozenset()
        self._epochs: dict[int, int] = {}  # owned slot -> the epoch of our claim (the fencing token)
        self._valid_until = 0.0  # self-fencing: owned slots count only until then
        self._last_beat = float("-inf")  # when our last heartbeat started (others see that time)
        self._pg = state.engine.dialect.name == "postgresql"
        self._waiting: tuple[str, ...] = ()  # the old agents we last logged waiting for
        self._bytewise: bool | None = None  # kv keys of one prefix form a range of the primary key

    # --- reads -----------------------------------------------------------------------------

    def live_members(self) -> list[str]:
        now_ms = int(self.clock() * 1000)
        with self.state.begin() as conn:
            rows = conn.execute(select(shard_members.c.member, shard_members.c.heartbeat_ms)).all()
        return sorted(str(m) for m, beat in rows if now_ms - int(beat) <= self.ttl_s * 1000)

    def legacy_members(self) -> dict[str, int]:
        """Agents older than migration 0005 (heartbeats in ``kv``): member -> heartbeat ms, fresh or not.

        A range read on ``kv``'s primary key (``detect/member/ <= key < detect/member0``): it
        reads the few heartbeat rows, never the detector checkpoints. Rows that are not a
        heartbeat are skipped.
        """
        with self.state.begin() as conn:
            rows = conn.execute(select(kv.c.key, kv.c.value).where(self._prefixed(conn, LEGACY_MEMBER))).all()
        found: dict[str, int] = {}
        for key, value in rows:
            if not str(key).startswith(LEGACY_MEMBER):
                continue
            try:
                found[str(key)[len(LEGACY_MEMBER):]] = int(json.loads(bytes(value))["heartbeat_ms"])
            except (ValueError, KeyError, TypeError):
                continue
        return found

    def _prefixed(self, conn: Connection, prefix: str) -> ColumnElement[bool]:
        """``kv`` keys starting with ``prefix`` (which ends in "/"), as a range on the primary key.

        The range holds every such key where the keys sort bytewise (SQLite; PostgreSQL's "C"
        collation) and in the usual linguistic ones (punctuation before digits). Where the
        database's collation sorts otherwise (asked once, on PostgreSQL), ``LIKE``: exact, but
        a scan of ``kv``.
        """
        upper = prefix[:-1] + "0"
        if self._bytewise is None:
            self._bytewise = True
            if self._pg:
                probes = [prefix + c for c in ("", "a", "z", "A", "Z", "0", "9", "-", ".", "_", "~", "\u00e9")]
                row = conn.execute(select(*(literal(p, String(512)) < literal(upper, String(512))
                                            for p in probes))).one()
                self._bytewise = all(bool(v) for v in row)
                if not self._bytewise:
                    log.warning("shard_legacy_read_scans", collation="not bytewise",
                                reason="the check for agents older than 0005 reads kv with LIKE")
        if self._bytewise:
            return (kv.c.key >= prefix) & (kv.c.key < upper)
        return kv.c.key.like(prefix + "%")  # no "_" nor "%" in the prefixes

    def claims(self) -> dict[int, str]:
        """Slot -> owner of every claimed slot."""
        return {slot: owner for slot, (owner, _) in self._raw_claims().items() if owner is not None}

    def owns_now(self) -> frozenset[int]:
        """The slots this agent may score right now (none once its heartbeat is too old)."""
        return self.owned if self.clock() < self._valid_until else frozenset()

    def tokens(self) -> dict[int, int]:
        """Owned slot -> its epoch: the fencing token a checkpoint pickled now must be written with."""
        return dict(self._epochs)

    # --- writes ----------------------------------------------------------------------------

    def heartbeat(self) -> None:
        now = self.clock()
        beat = int(now * 1000)
        with self.state.begin() as conn:
            if conn.execute(update(shard_members).where(shard_members.c.member == self.member_id)
                            .values(heartbeat_ms=beat)).rowcount == 0:
                conn.execute(insert(shard_members).values(member=self.member_id, heartbeat_ms=beat))
        if now - self._last_beat > self.ttl_s:
            # silent past the ttl: the others may have taken our slots; what we owned is void
            # until the next refresh reads the claims again
            if self.owned:
                log.warning("shard_heartbeat_lapsed", member=self.member_id, silent_s=round(now - self._last_beat, 1),
                            dropped=len(self.owned))
            self.owned, self._epochs = frozenset(), {}
        self._last_beat = now
        self._valid_until = now + self.ttl_s / 2

    def refresh(self) -> ShardView:
        """Heartbeat, then compute the slots this agent should own and claim the free ones among them.

        Slots it owns but should not are *not* released here: the caller seals them, checkpoints
        their detectors, then calls :meth:`release`.
        """
        self.heartbeat()
        members = self.live_members()
        if self.member_id not in members:  # our own heartbeat just landed; a clock jump at most
            members = sorted({*members, self.member_id})
        old = self._old_agents()
        if old:  # a rolling update from before 0005: the old agents score every series; we score none
            epochs = {s: e for s, (owner, e) in self._raw_claims().items() if owner == self.member_id}
            self._epochs = epochs
            self.owned = frozenset(epochs)  # the caller hands them over (seal, checkpoint, release)
            return ShardView(tuple(members), frozenset(), self.owned, old)
        ring = assign_slots(members, self.slots)
        desired = frozenset(s for s, m in ring.items() if m == self.member_id)
        alive = set(members)
        raw = self._raw_claims()
        epochs = {s: epoch for s, (owner, epoch) in raw.items() if owner == self.member_id}
        wanted = {s: (raw[s][1] if s in raw else None) for s in desired - set(epochs)
                  if s not in raw or raw[s][0] is None or raw[s][0] not in alive}
        if wanted:
            epochs.update(self._claim(wanted, {s: raw[s][0] for s in wanted if s in raw}))
        self._epochs = epochs
        self.owned = frozenset(epochs)
        return ShardView(tuple(members), desired, self.owned)

    def _old_agents(self) -> tuple[str, ...]:
        """The agents older than 0005 whose ``kv`` heartbeat is fresh; once none is, their rows are deleted."""
        legacy = self.legacy_members()
        now_ms = int(self.clock() * 1000)
        fresh = tuple(sorted(m for m, beat in legacy.items() if now_ms - beat <= self.ttl_s * 1000))
        if fresh != self._waiting:
            if fresh:
                log.warning("shard_waiting_for_old_agents", member=self.member_id, old_agents=list(fresh),
                            reason="agents older than migration 0005 still score in kv: this agent scores "
                                   "nothing until they stop (a rolling update)")
            else:
                log.info("shard_old_agents_gone", member=self.member_id, old_agents=list(self._waiting))
            self._waiting = fresh
        if legacy and not fresh:
            self._drop_legacy(legacy, now_ms - int(self.ttl_s * 1000))
        return fresh

    def _drop_legacy(self, legacy: Iterable[str], stale_before_ms: int) -> None:
        """Delete the old agents' ``kv`` rows: the heartbeats of ``legacy`` not renewed since
        ``stale_before_ms`` (one renewed meanwhile stays, and is waited for at the next refresh)
        and, once none is left, the old agents' slot claims."""
        keys = [LEGACY_MEMBER + m for m in sorted(legacy)]
        with self.state.begin() as conn:
            conn.execute(delete(kv).where(kv.c.key.in_(keys), kv.c.updated_ms < stale_before_ms))
            if any(str(k).startswith(LEGACY_MEMBER)
                   for k, in conn.execute(select(kv.c.key).where(self._prefixed(conn, LEGACY_MEMBER)))):
                return
            slots = [str(k) for k, in conn.execute(select(kv.c.key).where(self._prefixed(conn, LEGACY_SLOT)))
                     if str(k).startswith(LEGACY_SLOT) and str(k)[len(LEGACY_SLOT):].isdigit()]
            if slots:
                conn.execute(delete(kv).where(kv.c.key.in_(slots)))
        log.info("shard_old_agents_rows_deleted", member=self.member_id, heartbeats=len(keys), claims=len(slots))

    def _raw_claims(self) -> dict[int, tuple[str | None, int]]:
        """Slot -> (owner or None when free, epoch) of every slot row."""
        with self.state.begin() as conn:
            rows = conn.execute(select(shard_slots.c.slot, shard_slots.c.owner, shard_slots.c.epoch)).all()
        return {int(s): (None if o is None else str(o), int(e)) for s, o, e in rows}

    def _claim(self, wanted: dict[int, int | None], holders: dict[int, str | None]) -> dict[int, int]:
        """Claim each free slot in one transaction; returns the slots won with their new epochs.

        ``wanted``: slot -> the epoch read (None: no row yet). A slot without a row is inserted at
        epoch 1, losing to a concurrent insert (``ON CONFLICT DO NOTHING``); a released slot or a
        dead member's is taken by compare-and-set on the epoch read, raising it, so two heirs of
        one dead member cannot both win and the dead member's writes are fenced out.
        """
        now_ms = int(self.clock() * 1000)
        won: dict[int, int] = {}
        dialect = postgresql if self._pg else sqlite
        try:
            with self.state.begin() as conn:
                for slot, seen in sorted(wanted.items()):  # slot order: concurrent claimers lock rows alike
                    if seen is None:
                        # RETURNING says whether we inserted (rowcount is -1 for inserts on psycopg)
                        stmt = dialect.insert(shard_slots).values(slot=slot, owner=self.member_id, epoch=1,
                                                                 since_ms=now_ms)
                        got = conn.execute(stmt.on_conflict_do_nothing(index_elements=[shard_slots.c.slot])
                                           .returning(shard_slots.c.epoch)).first()
                    else:
                        got = conn.execute(update(shard_slots)
                                           .where(shard_slots.c.slot == slot, shard_slots.c.epoch == seen)
                                           .values(owner=self.member_id, epoch=shard_slots.c.epoch + 1,
                                                   since_ms=now_ms)
                                           .returning(shard_slots.c.epoch)).first()
                    if got is not None:
                        won[slot] = int(got[0])
        except StoreError as exc:
            log.warning("shard_claim_failed", member=self.member_id, error=str(exc))
            return {}
        if won:
            log.info("shard_slots_claimed", member=self.member_id, slots=len(won),
                     from_dead=sorted({h for s, h in holders.items() if h is not None and s in won}))
        return won

    def _lock(self, conn: Connection, slots: Iterable[int], *, share: bool) -> dict[int, int]:
        """Lock our rows among ``slots`` until ``conn`` commits; returns slot -> epoch of those still ours.

        PostgreSQL: ``SELECT ... ORDER BY slot FOR SHARE / FOR UPDATE`` (always in slot order, so
        two transactions locking several rows cannot deadlock). SQLite: a no-op ``UPDATE`` as the
        transaction's first statement, which takes the database's write lock before anything is
        read (a deferred read, then a write, could act on a claim changed in between).
        """
        wanted = sorted(set(slots))
        if not wanted:
            return {}
        mine = (shard_slots.c.owner == self.member_id) & shard_slots.c.slot.in_(wanted)
        if self._pg:
            rows = conn.execute(select(shard_slots.c.slot, shard_slots.c.epoch).where(mine)
                                .order_by(shard_slots.c.slot).with_for_update(read=share)).all()
        else:
            rows = conn.execute(update(shard_slots).where(mine).values(epoch=shard_slots.c.epoch)
                                .returning(shard_slots.c.slot, shard_slots.c.epoch)).all()
        return {int(s): int(e) for s, e in rows}

    def seal(self, slots: Iterable[int]) -> dict[int, int]:
        """Raise the epoch of our claims on ``slots`` before their detectors are checkpointed for a handover.

        Any checkpoint pickled before (under the old epoch) is refused from now on. Returns slot ->
        new epoch of the slots still ours; the others are ours no more and dropped from ``owned``.
        """
        wanted = set(slots)
        with self.state.begin() as conn:
            mine = self._lock(conn, wanted, share=False)
            if mine:
                conn.execute(update(shard_slots).where(shard_slots.c.slot.in_(sorted(mine)))
                             .values(epoch=shard_slots.c.epoch + 1))
        sealed = {s: e + 1 for s, e in mine.items()}
        epochs = {s: e for s, e in self._epochs.items() if s not in wanted}
        self._epochs = {**epochs, **sealed}
        self.owned = frozenset(self._epochs)
        return sealed

    def put_checkpoints(self, items: Iterable[tuple[int, int, str, bytes]]) -> set[int]:
        """Write detector checkpoints fenced by their slot's claim, in one transaction.

        Args:
            items: ``(slot, epoch, key, blob)``: the ``kv`` row ``key`` is written only if ``slot``
                is still ours at ``epoch`` (the token read when the detector was pickled).

        Returns:
            The slots whose rows were refused (claimed by another agent, released, or sealed since).

        Raises:
            StoreError: the database failed; nothing was written.
        """
        rows = list(items)
        if not rows:
            return set()
        with self.state.begin() as conn:
            held = self._lock(conn, {slot for slot, _, _, _ in rows}, share=True)
            kv_upsert(conn, [(key, blob) for slot, epoch, key, blob in rows if held.get(slot) == epoch],
                      int(self.clock() * 1000))
        refused = {slot for slot, epoch, _, _ in rows if held.get(slot) != epoch}
        if refused:
            log.warning("shard_checkpoint_fenced", member=self.member_id, slots=sorted(refused),
                        rows=sum(1 for slot, _, _, _ in rows if slot in refused))
        return refused

    def release(self, slots: Iterable[int]) -> None:
        """Give up ``slots`` (their detectors must have been checkpointed first)."""
        gone = set(slots)
        if gone:
            with self.state.begin() as conn:
                mine = self._lock(conn, gone, share=False)
                if mine:
                    conn.execute(update(shard_slots).where(shard_slots.c.slot.in_(sorted(mine)))
                                 .values(owner=None, epoch=shard_slots.c.epoch + 1))
        self._epochs = {s: e for s, e in self._epochs.items() if s not in gone}
        self.owned = frozenset(self._epochs)

    def leave(self) -> None:
        """Release every slot and remove the heartbeat (a clean stop: successors need not wait for the TTL)."""
        self.release(self.owned)
        with self.state.begin() as conn:
            conn.execute(delete(shard_members).where(shard_members.c.member == self.member_id))
