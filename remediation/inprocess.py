"""The in-process executor: the same action runs, without a broker, on threads of the agent.

Used when ``remediation.broker_url`` is not set, so the quick start needs no Redis. It offers
what the Celery path offers except surviving the agent's death: delays (``countdown``), retries
with the same backoff, and the final ``failed`` record.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from aiops.errors import TemporaryError
from aiops.logs import get_logger
from remediation.executor import Executor, LeaseHeld, backoff_s

__all__ = ["InProcessRunner"]

log = get_logger("remediation.inprocess")


class InProcessRunner:
    """Runs action runs on a small thread pool.

    Args:
        executor: the executor (its ``dispatch`` should be this runner's :meth:`dispatch`).
        threads: pool size.
    """

    def __init__(self, executor: Executor, threads: int = 4) -> None:
        self.executor = executor
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="aiops-remediation")
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._pending: set[str] = set()  # ids waiting or running here: a re-send by the sweeper is a no-op

    def dispatch(self, run_id: str, delay_s: float = 0.0) -> None:
        """Execute ``run_id`` after ``delay_s`` seconds."""
        if self._stopped.is_set():
            return
        with self._lock:
            if run_id in self._pending:
                return
            self._pending.add(run_id)
        if delay_s > 0:
            timer = threading.Timer(delay_s, self._submit, args=(run_id,))
            timer.daemon = True
            with self._lock:
                self._timers.add(timer)
            timer.start()
        else:
            self._submit(run_id)

    def _submit(self, run_id: str) -> None:
        if not self._stopped.is_set():
            self._pool.submit(self._run, run_id)

    def _run(self, run_id: str) -> None:
        try:
            self._run_until_done(run_id)
        finally:
            with self._lock:
                self._pending.discard(run_id)

    def _run_until_done(self, run_id: str) -> None:
        settings = self.executor.settings
        attempt = 0
        while not self._stopped.is_set():
            try:
                self.executor.execute(run_id)
                return
            except LeaseHeld as exc:
                delay = exc.delay_s or 1.0
            except TemporaryError as exc:
                if attempt >= settings.max_retries:
                    self.executor.fail(run_id, f"gave up after {attempt + 1} attempts: {exc}")
                    return
                delay = exc.delay_s if exc.delay_s is not None else backoff_s(attempt, settings)
                attempt += 1
            except Exception as exc:  # never let a bug kill the pool thread silently
                log.exception("action_run_crashed", action_run_id=run_id, error=str(exc))
                return
            if self._stopped.wait(delay):
                return

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stopped.set()
        self.executor.stopping.set()  # a verification wait must not hold the agent's shutdown
        with self._lock:
            for t in self._timers:
                t.cancel()
            self._timers.clear()
        deadline = time.monotonic() + timeout_s
        self._pool.shutdown(wait=False, cancel_futures=True)
        for t in list(getattr(self._pool, "_threads", ())):
            t.join(max(0.0, deadline - time.monotonic()))
