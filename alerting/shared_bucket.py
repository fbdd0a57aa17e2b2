"""A token bucket kept in the state database, so agents sharing it share one rate limit.

The bucket of receiver ``r`` is the ``kv`` row ``outbox/bucket/r`` holding
``{"tokens": float, "at_s": float}``. :meth:`SharedTokenBucket.take` reads it with
``SELECT ... FOR UPDATE`` (PostgreSQL; SQLite has one writer anyway), refills it for the time
passed, takes a token and writes it back in one transaction: two agents never spend the same
token, so a channel sees at most ``burst + per_min`` messages a minute however many agents run.

Examples:
    >>> from aiops.state import StateDB
    >>> db = StateDB("sqlite://"); db.create_all()
    >>> t = [100.0]
    >>> a = SharedTokenBucket(db, "ops", per_min=60, burst=2, clock=lambda: t[0])
    >>> b = SharedTokenBucket(db, "ops", per_min=60, burst=2, clock=lambda: t[0])
    >>> a.take(), b.take(), a.take(), b.available()
    (True, True, False, 0.0)
    >>> t[0] += 1.0; b.take()
    True
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import insert, select, update

from aiops.errors import StoreError
from aiops.state import StateDB, kv

__all__ = ["SharedTokenBucket"]


class SharedTokenBucket:
    """Same interface as :class:`~alerting.token_bucket.TokenBucket`, state in the database.

    Args:
        state: the state database (its ``kv`` table).
        receiver: whose bucket.
        per_min: refill rate in tokens per minute (> 0).
        burst: bucket size (default: ``per_min``, at least 1).
        clock: wall-clock seconds (shared by every agent, so not monotonic).
    """

    unlimited = False

    def __init__(self, state: StateDB, receiver: str, per_min: float, burst: int | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.key = f"outbox/bucket/{receiver}"
        self.per_s = per_min / 60.0
        self.capacity = float(max(1, burst if burst is not None else int(per_min) or 1))
        self._clock = clock
        try:
            with state.begin() as conn:
                if conn.execute(select(kv.c.key).where(kv.c.key == self.key)).first() is None:
                    conn.execute(insert(kv).values(key=self.key, value=self._dump(self.capacity, clock()),
                                                   updated_ms=int(clock() * 1000)))
        except StoreError:
            pass  # another agent created it at the same moment (or the DB is down: take() will say)

    @staticmethod
    def _dump(tokens: float, at_s: float) -> bytes:
        return json.dumps({"tokens": tokens, "at_s": at_s}).encode()

    def _refilled(self, raw: Any, now: float) -> float:
        if raw is None:
            return self.capacity
        data = json.loads(bytes(raw))
        elapsed = max(0.0, now - float(data["at_s"]))
        return min(self.capacity, float(data["tokens"]) + elapsed * self.per_s)

    def available(self) -> float:
        with self.state.begin() as conn:
            raw = conn.execute(select(kv.c.value).where(kv.c.key == self.key)).scalar()
        return self._refilled(raw, self._clock())

    def _change(self, delta: float, need: float) -> bool:
        now = self._clock()
        with self.state.begin() as conn:
            raw = conn.execute(select(kv.c.value).where(kv.c.key == self.key).with_for_update()).scalar()
            tokens = self._refilled(raw, now)
            if tokens < need:
                return False
            value = self._dump(min(self.capacity, tokens + delta), now)
            if raw is None:
                conn.execute(insert(kv).values(key=self.key, value=value, updated_ms=int(now * 1000)))
            else:
                conn.execute(update(kv).where(kv.c.key == self.key).values(value=value, updated_ms=int(now * 1000)))
        return True

    def take(self) -> bool:
        """Take one token if there is one (atomically across agents)."""
        return self._change(-1.0, 1.0)

    def give_back(self) -> None:
        """Return a token taken for a row another agent claimed first."""
        self._change(+1.0, 0.0)

    def wait_s(self) -> float:
        tokens = self.available()
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.per_s
