"""Dispatch that never blocks the caller: runs are queued in the state DB, published from a thread.

The alert engine publishes alert changes under its lock and the remediation component starts
playbooks in that call. Celery's publish retries while the broker is down (57 s seen), so
publishing there froze alerting and the HTTP API. Here the run is already recorded ``queued``
in the state DB when :class:`BackgroundDispatch` is called; the call only appends the id to an
in-memory queue, and one thread publishes. A publish that fails flags the run
``dispatch_failed`` and the sweeper sends it again; a run lost after it was published (a broker
restarted without persistence, a worker killed while holding a prefetched task) stays
``queued`` and is sent again by the sweeper once ``requeue_after_s`` passed without a worker
taking it. The run's lease keeps every extra delivery from executing it twice.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from aiops.errors import AiopsError, trim
from aiops.logs import get_logger
from aiops.model import now_ms
from aiops.state import StateDB
from remediation.runs import RunStore

__all__ = ["BackgroundDispatch"]

log = get_logger("remediation.dispatch")

Send = Callable[[str, float], None]


class BackgroundDispatch:
    """A dispatch function that returns at once and publishes with ``send`` on its own thread.

    Args:
        send: the real publisher (``celery_dispatch``), which may block or raise.
        db: the state DB, where publish failures and times are noted on the run.
    """

    def __init__(self, send: Send, db: StateDB) -> None:
        self.send = send
        self.runs = RunStore(db)
        self._queue: queue.Queue[tuple[str, float] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="remediation-dispatch", daemon=True)
        self._thread.start()

    def __call__(self, run_id: str, delay_s: float = 0.0) -> None:
        self._queue.put((run_id, delay_s))

    @property
    def backlog(self) -> int:
        """Run ids waiting to be published."""
        return self._queue.qsize()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            run_id, delay_s = item
            # noted before the publish: once published, a worker may be writing the run's plan
            self._note(run_id, dispatch_failed=False, dispatched_ms=now_ms())
            try:
                self.send(run_id, delay_s)
            except Exception as exc:  # broker down: flagged, the sweeper sends it again
                log.error("action_dispatch_failed", action_run_id=run_id, error=trim(str(exc), 300))
                self._note(run_id, dispatch_failed=True, error=trim(str(exc), 300))

    def _note(self, run_id: str, error: str | None = None, **extra: object) -> None:
        try:
            self.runs.merge_extra(run_id, **extra)
            if error is not None:
                self.runs.audit(run_id, self.runs.get(run_id).playbook, "dispatch_failed", detail={"error": error})
        except AiopsError as exc:
            log.error("action_dispatch_unrecorded", action_run_id=run_id, error=str(exc))

    def close(self, timeout_s: float = 5.0) -> None:
        """Publish what is queued (bounded by ``timeout_s``), then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout_s)
