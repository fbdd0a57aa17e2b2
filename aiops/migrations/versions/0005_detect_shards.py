"""detect_shards: shard membership and slot claims in tables of their own (``detectors/tables.py``).

Copies the rows that 0004 and before kept in ``kv`` (``detect/member/<id>``: ``{"heartbeat_ms"}``,
``detect/slot/<n>``: ``{"owner", "since_ms"}``) into ``shard_members`` and ``shard_slots``
(epoch 1). The claims leave ``kv``; the heartbeats stay, so that an agent of 0005 started in a
rolling update sees at once that older agents still score (``detectors/sharding.py`` waits for
them, then deletes those rows). The downgrade copies both back.

Revision ID: 0005_detect_shards
Revises: 0004_alerting_inbox
Create Date: 2026-12-01
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision: str = "0005_detect_shards"
down_revision: str | None = "0004_alerting_inbox"
branch_labels: str | None = None
depends_on: str | None = None

_MEMBER = "detect/member/"
_SLOT = "detect/slot/"

_kv = sa.table("kv", sa.column("key", sa.String), sa.column("value", sa.LargeBinary),
               sa.column("updated_ms", sa.BigInteger))


def upgrade() -> None:
    members = op.create_table('shard_members',
    sa.Column('member', sa.String(length=256), nullable=False),
    sa.Column('heartbeat_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('member')
    )
    slots = op.create_table('shard_slots',
    sa.Column('slot', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('owner', sa.String(length=256), nullable=True),
    sa.Column('epoch', sa.BigInteger(), nullable=False),
    sa.Column('since_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('slot')
    )
    conn = op.get_bind()
    old = conn.execute(sa.select(_kv.c.key, _kv.c.value, _kv.c.updated_ms)
                       .where(sa.or_(_kv.c.key.like(_MEMBER + "%"), _kv.c.key.like(_SLOT + "%")))).all()
    member_rows, slot_rows = [], []
    for key, value, updated_ms in old:
        key = str(key)
        try:
            data = json.loads(bytes(value))
            if key.startswith(_MEMBER):
                member_rows.append({"member": key[len(_MEMBER):], "heartbeat_ms": int(data["heartbeat_ms"])})
            else:
                slot_rows.append({"slot": int(key[len(_SLOT):]), "owner": str(data["owner"]), "epoch": 1,
                                  "since_ms": int(data.get("since_ms", updated_ms))})
        except (ValueError, KeyError, TypeError):
            continue  # not a row sharding wrote: left where it is
        if key.startswith(_SLOT):
            conn.execute(sa.delete(_kv).where(_kv.c.key == key))
    if member_rows:
        op.bulk_insert(members, member_rows)
    if slot_rows:
        op.bulk_insert(slots, slot_rows)


def downgrade() -> None:
    conn = op.get_bind()
    rows = [{"key": _MEMBER + str(m), "value": json.dumps({"heartbeat_ms": int(b)}).encode(), "updated_ms": int(b)}
            for m, b in conn.execute(sa.text("SELECT member, heartbeat_ms FROM shard_members")).all()]
    rows += [{"key": _SLOT + str(s), "value": json.dumps({"owner": o, "since_ms": int(t)}).encode(),
              "updated_ms": int(t)}
             for s, o, t in conn.execute(sa.text("SELECT slot, owner, since_ms FROM shard_slots "
                                                 "WHERE owner IS NOT NULL")).all()]
    if rows:
        conn.execute(sa.delete(_kv).where(_kv.c.key.in_([r["key"] for r in rows])))  # heartbeats kept by upgrade
        op.bulk_insert(_kv, rows)
    op.drop_table('shard_slots')
    op.drop_table('shard_members')
