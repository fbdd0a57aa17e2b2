"""Named leases in the state DB: one holder at a time among every process on the database.

A lease is a row of ``leases`` (name, owner, until_ms). :meth:`Lease.renew` takes it when it
is free or expired and extends it when we hold it, in one conditional ``UPDATE`` (or the
first ``INSERT``), so two processes can never both win the same term. The holder renews it
every third of its length; a holder that dies stops renewing and another takes the lease
once it ran out.

:attr:`Lease.held` is the holder's own, conservative view: it counts from the moment *before*
the renewing statement was sent and ends ``margin`` early, so a holder stops acting before any
other process can take the lease, as long as the clocks of the processes agree within
``margin_s`` (wall clocks decide expiry in the database).

Examples:
    >>> from aiops.state import StateDB
    >>> db = StateDB("sqlite://"); db.create_all()
    >>> a, b = Lease(db, "rules", "agent-a", 6.0), Lease(db, "rules", "agent-b", 6.0)
    >>> a.renew(), b.renew(), a.held, b.held
    (True, False, True, False)
    >>> a.release(); b.renew()
    True
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from aiops.errors import StoreError
from aiops.state import StateDB, leases

__all__ = ["Lease"]


class Lease:
    """One named lease, as seen by one would-be holder.

    Args:
        db: the state database shared by the contenders.
        name: what the lease guards (``alerting/rules``).
        owner: this holder's unique id (host, pid and a random part).
        ttl_s: how long a term lasts without renewal.
        margin_s: how much earlier than the database the holder considers its term over.
        clock: wall-clock seconds (stamps ``until_ms`` in the database).
    """

    def __init__(self, db: StateDB, name: str, owner: str, ttl_s: float, margin_s: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.name = name
        self.owner = owner
        self.ttl_s = float(ttl_s)
        self.margin_s = float(margin_s if margin_s is not None else min(1.0, ttl_s / 4))
        self.clock = clock
        self._valid_until = 0.0  # monotonic

    @property
    def held(self) -> bool:
        """Whether we hold the lease now (our own, conservative view)."""
        return time.monotonic() < self._valid_until

    def renew(self) -> bool:
        """Take or extend the lease; returns whether we hold it. A database error counts as not held."""
        started = time.monotonic()
        now_ms = int(self.clock() * 1000)
        until_ms = now_ms + int(self.ttl_s * 1000)
        t = leases
        try:
            with self.db.begin() as conn:
                won = conn.execute(update(t).where(t.c.name == self.name,
                                                   or_(t.c.owner == self.owner, t.c.until_ms < now_ms))
                                   .values(owner=self.owner, until_ms=until_ms)).rowcount == 1
                exists = won or conn.execute(select(t.c.name).where(t.c.name == self.name)).first() is not None
            if not exists:
                won = self._insert(now_ms, until_ms)
        except StoreError:
            won = False
        self._valid_until = started + self.ttl_s - self.margin_s if won else 0.0
        return won

    def _insert(self, now_ms: int, until_ms: int) -> bool:
        try:
            with self.db.engine.begin() as conn:
                conn.execute(insert(leases).values(name=self.name, owner=self.owner, until_ms=until_ms,
                                                   acquired_ms=now_ms))
            return True
        except IntegrityError:
            return False  # another contender inserted it first
        except SQLAlchemyError:
            return False

    def release(self) -> None:
        """Give the lease up at once (a clean shutdown), so another contender need not wait it out."""
        self._valid_until = 0.0
        try:
            with self.db.begin() as conn:
                conn.execute(update(leases).where(leases.c.name == self.name, leases.c.owner == self.owner)
                             .values(until_ms=0))
        except StoreError:
            pass

    def holder(self) -> tuple[str, int] | None:
        """The current holder and the end of its term (ms), or None."""
        with self.db.begin() as conn:
            row = conn.execute(select(leases.c.owner, leases.c.until_ms).where(leases.c.name == self.name)).first()
        return None if row is None else (str(row[0]), int(row[1]))
