"""Watch support of the fake Kubernetes API: a journal of changes and ``?watch=true`` streams.

Every object store of :class:`~app.testing.FakeKubernetes` is a :class:`JournaledObjects`: adding
an object records ``ADDED``, removing it records ``DELETED`` (with a fresh resourceVersion, as
the API server gives deletions), and :meth:`WatchJournal.modified` (called from ``_bump``)
records ``MODIFIED``. A watch from ``resourceVersion=N`` replays the journal's events after
``N`` and then follows new ones until ``timeoutSeconds``; a version older than the journal keeps
(``compact``) is answered like etcd compaction on a real server: one ``ERROR`` event with a
``410 Expired`` Status, after which a client must list again.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["WatchJournal", "JournaledObjects", "WatchEvent"]

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class WatchEvent:
    rv: int
    plural: str
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj


class WatchJournal:
    """The last ``keep`` changes of every resource, and a condition to wait for new ones.

    Args:
        next_rv: returns a new cluster-wide resourceVersion (the fake's counter).
        keep: events kept; older versions get 410 Expired.
    """

    def __init__(self, next_rv: Callable[[], int], keep: int = 10_000) -> None:
        self._next_rv = next_rv
        self._events: deque[WatchEvent] = deque(maxlen=keep)
        self._cond = threading.Condition()
        self.compacted_rv = 0  # versions at or below this are gone

    def record(self, plural: str, type_: str, obj: Obj, rv: int | None = None) -> None:
        """Journal one change of ``obj`` (a snapshot is taken)."""
        snap = copy.deepcopy(obj)
        if rv is None:
            rv = int(snap.get("metadata", {}).get("resourceVersion") or 0)
        else:
            snap.setdefault("metadata", {})["resourceVersion"] = str(rv)
        with self._cond:
            if len(self._events) == self._events.maxlen and self._events:
                self.compacted_rv = max(self.compacted_rv, self._events[0].rv)
            self._events.append(WatchEvent(rv, plural, type_, snap))
            self._cond.notify_all()

    def deleted(self, plural: str, obj: Obj) -> None:
        self.record(plural, "DELETED", obj, rv=self._next_rv())

    def compact(self) -> None:
        """Forget every event so far: open watches and any resumed from an older version get 410 (tests)."""
        with self._cond:
            self.compacted_rv = self._next_rv()
            self._events.clear()
            self._cond.notify_all()

    def follow(self, plural: str, since_rv: int, timeout_s: float, stopping: threading.Event,
               accept: Callable[[Obj], bool]) -> Iterator[Obj]:
        """Watch events (``{"type", "object"}``) of ``plural`` after ``since_rv``, until ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        last = since_rv
        while not stopping.is_set():
            if last and last < self.compacted_rv:
                yield {"type": "ERROR", "object": {
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 410,
                    "reason": "Expired", "message": f"too old resource version: {last} ({self.compacted_rv})"}}
                return
            with self._cond:
                batch = [e for e in self._events if e.rv > last]
                if not batch:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    self._cond.wait(min(remaining, 0.25))
                    continue
            for e in batch:
                last = max(last, e.rv)
                if e.plural == plural and accept(e.obj):
                    yield {"type": e.type, "object": e.obj}


class JournaledObjects(dict[tuple[str | None, str], Obj]):
    """One resource's objects by (namespace, name); additions and removals go to the journal."""

    def __init__(self, plural: str, journal: WatchJournal) -> None:
        super().__init__()
        self.plural = plural
        self.journal = journal

    def __setitem__(self, key: tuple[str | None, str], obj: Obj) -> None:
        change = "ADDED" if key not in self else "MODIFIED" if self[key] is not obj else None
        super().__setitem__(key, obj)
        if change is not None:
            self.journal.record(self.plural, change, obj)

    def __delitem__(self, key: tuple[str | None, str]) -> None:
        obj = self[key]
        super().__delitem__(key)
        self.journal.deleted(self.plural, obj)

    def pop(self, key: tuple[str | None, str], *default: Any) -> Any:
        if key in self:
            obj = self[key]
            super().__delitem__(key)
            self.journal.deleted(self.plural, obj)
            return obj
        if default:
            return default[0]
        raise KeyError(key)
