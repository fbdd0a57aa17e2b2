"""Detection's tables: the shard group's membership and slot claims (``detectors/sharding.py``).

Declared on the ground floor's :data:`aiops.state.metadata`; the schema is made by the Alembic
migration ``0005_detect_shards``. Until that migration these rows lived in the ``kv`` table
(``detect/member/<id>``, ``detect/slot/<n>``) beside every detector checkpoint, so a membership
read (``LIKE 'detect/...%'``, which no primary-key index serves) scanned the checkpoints too; in
tables of their own a refresh reads a few hundred rows whatever the series count.

- ``shard_members``: one heartbeat per agent (wall-clock ms).
- ``shard_slots``: one row per slot ever claimed: its ``owner`` (NULL: free) and its ``epoch``,
  the **fencing token**: raised by every claim, every handover seal and every release, never
  lowered, so an ``(owner, epoch)`` pair names one tenure of one slot. A detector checkpoint is
  written only in a transaction that finds its slot still at the writer's ``(owner, epoch)``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table

from aiops.state import metadata

__all__ = ["shard_members", "shard_slots"]

shard_members = Table(
    "shard_members",
    metadata,
    Column("member", String(256), primary_key=True),
    Column("heartbeat_ms", BigInteger, nullable=False),
)

shard_slots = Table(
    "shard_slots",
    metadata,
    Column("slot", Integer, primary_key=True, autoincrement=False),
    Column("owner", String(256), nullable=True),
    Column("epoch", BigInteger, nullable=False),
    Column("since_ms", BigInteger, nullable=False),
)
