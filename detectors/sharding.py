"""Live detection sharded over the running agents: membership and slot ownership in the state DB.

Series are hashed (BLAKE2b of the series key, stable across processes and versions) into a fixed
number of **slots**; slots are spread over the live agents by rendezvous (highest-random-weight)
hashing, the consistent-hashing scheme in which a joining or leaving agent moves only the slots
it gains or held (about ``1/N`` of them). State lives in the state database's ``kv`` table, so
SQLite (one machine) and PostgreSQL (a cluster) both work:

- ``detect/member/<id>``: each agent's heartbeat (wall-clock ms), written every ``heartbeat_s``;
  a member whose heartbeat is older than ``ttl_s`` is dead.
- ``detect/slot/<n>``: the slot's **claim** (owner id). Only the owner scores the slot's series.

Handover without double scoring, and with the detector state:

1. An agent whose ring no longer gives it a slot checkpoints that slot's detectors, forgets them,
   then deletes its claim (:meth:`ShardMembership.release`).
2. The slot's new owner claims it only once it is free: no claim, a claim released, or a claim of
   a dead member. It then restores each detector from its checkpoint on the series' next sample.
3. An agent that cannot renew its heartbeat stops scoring ``ttl_s / 2`` after its last successful
   one (self-fencing), before anybody may take its slots over (``ttl_s``). A partitioned agent
   therefore never scores a slot at the same time as its successor, as long as clocks agree
   within ``ttl_s / 2``. One whose heartbeats were apart by more than ``ttl_s`` (a starved or
   paused process) forgets what it owned: it scores again only the claims its next refresh
   finds still its own.

A dead agent's slots move after ``ttl_s`` plus at most one ``heartbeat_s``; their detectors resume
from the last checkpoint (at most ``detect.checkpoint_interval_s`` old).

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

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from aiops.errors import StoreError
from aiops.logs import get_logger
from aiops.model import Series
from aiops.state import StateDB, kv

__all__ = ["ShardMembership", "ShardView", "assign_slots", "slot_of"]

log = get_logger("detectors.sharding")

_MEMBER = "detect/member/"
_SLOT = "detect/slot/"


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
        self._valid_until = 0.0  # self-fencing: owned slots count only until then
        self._last_beat = float("-inf")  # when our last heartbeat started (others see that time)

    # --- reads -----------------------------------------------------------------------------

    def live_members(self) -> list[str]:
        now_ms = int(self.clock() * 1000)
        with self.state.begin() as conn:
            rows = conn.execute(select(kv.c.key, kv.c.value).where(kv.c.key.like(_MEMBER + "%"))).all()
        alive = []
        for key, value in rows:
            beat = json.loads(bytes(value))["heartbeat_ms"]
            if now_ms - int(beat) <= self.ttl_s * 1000:
                alive.append(str(key)[len(_MEMBER):])
        return sorted(alive)

    def claims(self) -> dict[int, str]:
        """Slot -> owner of every claimed slot."""
        return {slot: owner for slot, (owner, _) in self._raw_claims().items()}

    def owns_now(self) -> frozenset[int]:
        """The slots this agent may score right now (none once its heartbeat is too old)."""
        return self.owned if self.clock() < self._valid_until else frozenset()

    # --- writes ----------------------------------------------------------------------------

    def heartbeat(self) -> None:
        now = self.clock()
        value = json.dumps({"heartbeat_ms": int(now * 1000)}).encode()
        key = _MEMBER + self.member_id
        with self.state.begin() as conn:
            if conn.execute(update(kv).where(kv.c.key == key).values(value=value, updated_ms=int(now * 1000))
                            ).rowcount == 0:
                conn.execute(insert(kv).values(key=key, value=value, updated_ms=int(now * 1000)))
        if now - self._last_beat > self.ttl_s:
            # silent past the ttl: the others may have taken our slots; what we owned is void
            # until the next refresh reads the claims again
            if self.owned:
                log.warning("shard_heartbeat_lapsed", member=self.member_id, silent_s=round(now - self._last_beat, 1),
                            dropped=len(self.owned))
            self.owned = frozenset()
        self._last_beat = now
        self._valid_until = now + self.ttl_s / 2

    def refresh(self) -> ShardView:
        """Heartbeat, then compute the slots this agent should own and claim the free ones among them.

        Slots it owns but should not are *not* released here: the caller checkpoints their
        detectors first, then calls :meth:`release`.
        """
        self.heartbeat()
        members = self.live_members()
        if self.member_id not in members:  # our own heartbeat just landed; a clock jump at most
            members = sorted({*members, self.member_id})
        ring = assign_slots(members, self.slots)
        desired = frozenset(s for s, m in ring.items() if m == self.member_id)
        alive = set(members)
        raw = self._raw_claims()
        owned = {s for s, (owner, _) in raw.items() if owner == self.member_id}
        wanted = {s: raw.get(s) for s in desired - owned if s not in raw or raw[s][0] not in alive}
        if wanted:
            owned |= self._claim(wanted)
        self.owned = frozenset(owned)
        return ShardView(tuple(members), desired, self.owned)

    def _raw_claims(self) -> dict[int, tuple[str, bytes]]:
        with self.state.begin() as conn:
            rows = conn.execute(select(kv.c.key, kv.c.value).where(kv.c.key.like(_SLOT + "%"))).all()
        return {int(str(k)[len(_SLOT):]): (json.loads(bytes(v))["owner"], bytes(v)) for k, v in rows}

    def _claim(self, wanted: dict[int, tuple[str, bytes] | None]) -> set[int]:
        """Claim each free slot in one transaction; returns the slots won.

        A free slot is unclaimed (insert, losing to a concurrent insert: ``ON CONFLICT DO NOTHING``)
        or claimed by a dead member (compare-and-set on the claim's exact bytes, so two heirs of
        one dead member cannot both win).
        """
        now_ms = int(self.clock() * 1000)
        value = json.dumps({"owner": self.member_id, "since_ms": now_ms}).encode()
        won: set[int] = set()
        dialect = postgresql if self.state.engine.dialect.name == "postgresql" else sqlite
        try:
            with self.state.begin() as conn:
                for slot, holder in sorted(wanted.items()):
                    key = _SLOT + str(slot)
                    if holder is None:
                        # RETURNING says whether we inserted (rowcount is -1 for inserts on psycopg)
                        stmt = dialect.insert(kv).values(key=key, value=value, updated_ms=now_ms)
                        got = conn.execute(stmt.on_conflict_do_nothing(index_elements=[kv.c.key])
                                           .returning(kv.c.key)).first()
                    else:
                        got = conn.execute(update(kv).where(kv.c.key == key, kv.c.value == holder[1])
                                           .values(value=value, updated_ms=now_ms).returning(kv.c.key)).first()
                    if got is not None:
                        won.add(slot)
        except StoreError as exc:
            log.warning("shard_claim_failed", member=self.member_id, error=str(exc))
            return set()
        if won:
            log.info("shard_slots_claimed", member=self.member_id, slots=len(won),
                     from_dead=sorted({h[0] for s, h in wanted.items() if h is not None and s in won}))
        return won

    def release(self, slots: Iterable[int]) -> None:
        """Give up ``slots`` (their detectors must have been checkpointed first)."""
        gone = set(slots)
        mine = {s for s, (owner, _) in self._raw_claims().items() if owner == self.member_id and s in gone}
        if mine:
            with self.state.begin() as conn:
                conn.execute(delete(kv).where(kv.c.key.in_([_SLOT + str(s) for s in mine])))
        self.owned = self.owned - gone

    def leave(self) -> None:
        """Release every slot and remove the heartbeat (a clean stop: successors need not wait for the TTL)."""
        self.release(self.owned)
        with self.state.begin() as conn:
            conn.execute(delete(kv).where(kv.c.key == _MEMBER + self.member_id))
