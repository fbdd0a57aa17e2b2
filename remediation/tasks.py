"""The Celery tasks: ``execute`` (one action run, by id) and ``noop`` (the benchmark's baseline).

Retries follow the style guide: only :class:`~aiops.errors.TemporaryError` is retried, with
doubling, jittered backoff (or the server's ``Retry-After``), at most
``remediation.max_retries`` times; then the run is recorded ``failed``. Everything else was
already recorded by the executor and is not raised to Celery at all, so a failed action never
becomes a poison message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from celery import Celery, Task

from aiops.errors import TemporaryError
from aiops.logs import get_logger
from remediation.celery_app import TASK_EXECUTE, TASK_NOOP
from remediation.executor import Executor, LeaseHeld, backoff_s
from remediation.settings import RemediationSettings

__all__ = ["register_tasks", "celery_dispatch", "set_executor_factory"]

log = get_logger("remediation.tasks")

_lock = threading.Lock()


def set_executor_factory(app: Celery, factory: Callable[[], Executor]) -> None:
    """How a worker process builds its executor (lazily, after a prefork worker forked)."""
    app.aiops_executor_factory = factory
    app.aiops_executor = None


def _executor(app: Celery) -> Executor:
    with _lock:
        ex: Executor | None = getattr(app, "aiops_executor", None)
        if ex is None:
            factory = getattr(app, "aiops_executor_factory", None)
            if factory is None:
                raise RuntimeError("remediation worker started without an executor (use 'aiops worker')")
            ex = app.aiops_executor = factory()
        return ex


def celery_dispatch(app: Celery, queue: str) -> Callable[[str, float], None]:
    """A dispatch function sending ``execute(run_id)`` to ``queue`` after ``delay_s``."""

    def dispatch(run_id: str, delay_s: float = 0.0) -> None:
        app.send_task(TASK_EXECUTE, args=[run_id], queue=queue, countdown=delay_s or None)

    return dispatch


def register_tasks(app: Celery) -> None:
    """Register the remediation tasks on ``app``."""

    # Celery ships no type hints: its decorator is untyped
    @app.task(bind=True, name=TASK_EXECUTE, acks_late=True, reject_on_worker_lost=True,  # type: ignore[untyped-decorator]
              max_retries=None)
    def execute(self: Task, action_run_id: str) -> str:
        ex = _executor(app)
        settings: RemediationSettings = ex.settings
        try:
            return ex.execute(action_run_id)
        except LeaseHeld as exc:
            if self.request.retries >= settings.max_retries * 4:
                log.warning("action_lease_wait_abandoned", action_run_id=action_run_id, error=str(exc))
                return "leased-elsewhere"
            raise self.retry(exc=exc, countdown=exc.delay_s) from None
        except TemporaryError as exc:
            attempt = int(self.request.retries)
            if attempt >= settings.max_retries:
                ex.fail(action_run_id, f"gave up after {attempt + 1} attempts: {exc}")
                return "failed"
            delay = exc.delay_s if exc.delay_s is not None else backoff_s(attempt, settings)
            raise self.retry(exc=exc, countdown=delay) from None

    @app.task(name=TASK_NOOP, acks_late=True)  # type: ignore[untyped-decorator]
    def noop(value: Any = None) -> Any:
        return value
