"""Silences: matchers plus a time window, with author and comment, kept in the state DB.

The CLI, the HTTP API (and later the dashboard) create and expire them; the engine asks
:meth:`SilenceStore.silencing` whether an alert is muted. Other processes (``aiops silence add``
against the database) write the same table, so the in-memory view refreshes every few seconds.

Examples:
    >>> from aiops.state import StateDB
    >>> from alerting.matchers import parse_matchers
    >>> db = StateDB("sqlite://"); db.create_all()
    >>> store = SilenceStore(db)
    >>> s = store.add(parse_matchers(['alertname="HighCPU"']), 0, 3_600_000, "ana", "deploy", now_ms=0)
    >>> store.silencing((("alertname", "HighCPU"),), now_ms=60_000) == s.id
    True
    >>> store.expire(s.id, now_ms=120_000).state(120_000)
    'expired'
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from aiops.errors import InputError
from aiops.model import Labels, Matcher, Series
from aiops.state import StateDB
from aiops.timeutil import format_ts_ms
from alerting.matchers import format_matcher, matcher_from_json, matcher_to_json, matches_all
from alerting.tables import silences

_EMPTY = Series("", ())  # every label reads as "": a silence all of whose matchers match it mutes everything
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

__all__ = ["Silence", "SilenceStore", "SilenceNotFound"]


class SilenceNotFound(InputError):
    """No silence has this id."""


@dataclass(frozen=True, slots=True)
class Silence:
    """Mutes alerts matching all ``matchers`` from ``starts_at_ms`` to ``ends_at_ms`` (UTC ms)."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at_ms: int
    ends_at_ms: int
    created_by: str
    comment: str
    created_ms: int
    expired_ms: int | None = None

    def state(self, now_ms: int) -> str:
        """``pending``, ``active`` or ``expired`` at ``now_ms``."""
        if self.expired_ms is not None or self.ends_at_ms <= now_ms:
            return "expired"
        return "pending" if self.starts_at_ms > now_ms else "active"

    def mutes(self, labels: Labels, now_ms: int) -> bool:
        return self.state(now_ms) == "active" and matches_all(self.matchers, labels)

    def to_json(self, now_ms: int) -> dict[str, Any]:
        """Alertmanager API v2's shape, plus ``matchersText`` for people."""
        return {
            "id": self.id, "matchers": [matcher_to_json(m) for m in self.matchers],
            "matchersText": ",".join(format_matcher(m) for m in self.matchers),
            "startsAt": format_ts_ms(self.starts_at_ms), "endsAt": format_ts_ms(self.ends_at_ms),
            "createdBy": self.created_by, "comment": self.comment,
            "status": {"state": self.state(now_ms)},
            "expiredAt": format_ts_ms(self.expired_ms) if self.expired_ms is not None else None,
        }


def _row_to_silence(r: Any) -> Silence:
    return Silence(str(r.id), tuple(matcher_from_json(m) for m in r.matchers), int(r.starts_at_ms),
                   int(r.ends_at_ms), str(r.created_by), str(r.comment or ""), int(r.created_ms),
                   None if r.expired_ms is None else int(r.expired_ms))


class SilenceStore:
    """Silences in the state DB, with a cached view of the unexpired ones.

    Args:
        db: the state database.
        refresh_s: how old the cached view may get before it is re-read (other writers).
    """

    def __init__(self, db: StateDB, refresh_s: float = 2.0) -> None:
        self.db = db
        self.refresh_ms = int(refresh_s * 1000)
        self._lock = threading.Lock()
        self._cache: list[Silence] = []
        self._loaded_ms: int | None = None

    def add(self, matchers: Sequence[Matcher], starts_at_ms: int, ends_at_ms: int, created_by: str,
            comment: str = "", now_ms: int = 0) -> Silence:
        """Create a silence.

        Raises:
            InputError: without matchers, without an author, or ending before it starts or before now.
        """
        if not matchers:
            raise InputError("silence: give at least one matcher, e.g. alertname=\"HighCPU\"")
        if all(m.matches(_EMPTY) for m in matchers):
            raise InputError("silence: every matcher matches the empty label set, so it would mute every alert; "
                             "give at least one matcher that does not match \"\" (e.g. alertname=\"HighCPU\")")
        for m in matchers:
            if not _LABEL_NAME.fullmatch(m.label):
                raise InputError(f"silence: matcher label {m.label[:64]!r} is not [a-zA-Z_][a-zA-Z0-9_]*")
        if not created_by.strip():
            raise InputError("silence: give an author (--author / createdBy)")
        if ends_at_ms <= starts_at_ms:
            raise InputError(f"silence: ends ({format_ts_ms(ends_at_ms)}) before it starts "
                             f"({format_ts_ms(starts_at_ms)})")
        if now_ms and ends_at_ms <= now_ms:
            raise InputError(f"silence: ends in the past ({format_ts_ms(ends_at_ms)})")
        s = Silence(uuid.uuid4().hex, tuple(matchers), starts_at_ms, ends_at_ms, created_by, comment, now_ms)
        with self.db.begin() as conn:
            conn.execute(insert(silences).values(
                id=s.id, matchers=[matcher_to_json(m) for m in s.matchers], starts_at_ms=s.starts_at_ms,
                ends_at_ms=s.ends_at_ms, created_by=s.created_by, comment=s.comment, created_ms=s.created_ms,
            ))
        self._invalidate()
        return s

    def get(self, silence_id: str) -> Silence:
        with self.db.begin() as conn:
            row = conn.execute(select(silences).where(silences.c.id == silence_id)).first()
        if row is None:
            raise SilenceNotFound(f"silence {silence_id!r} not found")
        return _row_to_silence(row)

    def expire(self, silence_id: str, now_ms: int) -> Silence:
        """Expire a silence now; expiring an expired one changes nothing.

        Raises:
            SilenceNotFound: for an unknown id.
        """
        s = self.get(silence_id)
        if s.state(now_ms) == "expired":
            return s
        with self.db.begin() as conn:
            conn.execute(update(silences).where(silences.c.id == silence_id).values(expired_ms=now_ms))
        self._invalidate()
        return self.get(silence_id)

    def find(self, now_ms: int, state: str | None = None) -> list[Silence]:
        """Every silence, newest first; ``state`` keeps only pending/active/expired ones."""
        with self.db.begin() as conn:
            rows = conn.execute(select(silences).order_by(silences.c.created_ms.desc())).all()
        out = [_row_to_silence(r) for r in rows]
        return [s for s in out if state is None or s.state(now_ms) == state]

    def silencing(self, labels: Labels, now_ms: int) -> str | None:
        """The id of an active silence muting ``labels``, or None."""
        for s in self.unexpired(now_ms):
            if s.mutes(labels, now_ms):
                return str(s.id)
        return None

    def _invalidate(self) -> None:
        with self._lock:
            self._loaded_ms = None

    def unexpired(self, now_ms: int) -> list[Silence]:
        """Active and pending silences (a view at most ``refresh_s`` old)."""
        with self._lock:
            if self._loaded_ms is not None and abs(now_ms - self._loaded_ms) < self.refresh_ms:
                return self._cache
        with self.db.begin() as conn:
            rows = conn.execute(select(silences).where(silences.c.expired_ms.is_(None),
                                                       silences.c.ends_at_ms > now_ms)).all()
        fresh = [_row_to_silence(r) for r in rows]
        with self._lock:
            self._cache, self._loaded_ms = fresh, now_ms
        return fresh
