"""The Celery application of remediation: broker, result backend and delivery guarantees.

Actions travel as tasks whose only argument is the action run id. ``task_acks_late`` with
``task_reject_on_worker_lost`` means a task is acknowledged only after it finished: a worker
killed mid-action leaves its task unacknowledged, and the broker hands it to another worker
(Redis: after ``visibility_timeout``; RabbitMQ: when the connection drops). The run's lease and
stored plan (see :mod:`remediation.executor`) make that second delivery apply nothing twice.
``worker_prefetch_multiplier=1`` keeps a busy worker from hoarding tasks others could run.

Examples:
    >>> from remediation.settings import RemediationSettings
    >>> app = make_celery(RemediationSettings(broker_url="redis://127.0.0.1:6399/0"))
    >>> app.conf.task_acks_late, app.conf.task_reject_on_worker_lost, app.conf.result_backend
    (True, True, 'redis://127.0.0.1:6399/0')
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from celery import Celery

from aiops.errors import ConfigError
from remediation.settings import RemediationSettings

__all__ = ["make_celery", "check_timeouts", "TASK_EXECUTE", "TASK_NOOP"]

TASK_EXECUTE = "aiops.remediation.execute"
TASK_NOOP = "aiops.remediation.noop"


def celery_config(settings: RemediationSettings) -> dict[str, Any]:
    """Celery settings derived from the remediation section."""
    if settings.broker_url is None:
        raise ConfigError("remediation.broker_url: not set; without a broker actions run in the agent (no worker)")
    broker = settings.broker_url.get_secret_value()
    backend = settings.result_backend.get_secret_value() if settings.result_backend else None
    if backend is None and broker.startswith(("redis://", "rediss://")):
        backend = broker
    return {
        "broker_url": broker,
        "result_backend": backend,
        "task_default_queue": settings.queue,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "result_expires": 3600,
        "broker_connection_retry_on_startup": True,
        # kombu sweeps unacknowledged messages back every interval x throttle seconds (100 s by
        # default); scan every interval instead, and tie the interval to the visibility timeout so
        # a killed worker's task is back within ~1.2 x visibility_timeout
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout_s,
            "unacked_restore_interval": max(1, min(10, int(settings.visibility_timeout_s / 5))),
            "unacked_restore_throttle": 1,
        },
        "result_backend_transport_options": {"visibility_timeout": settings.visibility_timeout_s},
        "task_track_started": False,
        "enable_utc": True,
    }


def check_timeouts(settings: RemediationSettings, playbooks: Iterable[Any] = ()) -> None:
    """Refuse timeouts that cannot fit in the Redis visibility timeout.

    Redis hands an unacknowledged task to another worker once ``visibility_timeout_s`` passed,
    whether its worker is dead or not, and a countdown task (``delay_s``) counts from when it
    was sent. The run's lease keeps such an early second delivery from acting twice, but a
    configuration where it happens on every run is a mistake to catch at start.

    Raises:
        ConfigError: naming the setting (or the playbook step) that does not fit.
    """
    if settings.broker_url is None or not settings.broker_url.get_secret_value().startswith(("redis", "rediss")):
        return
    vt = settings.visibility_timeout_s
    for key, value in (("run_lease_s", settings.run_lease_s), ("request_timeout_s", settings.request_timeout_s)):
        if value >= vt:
            raise ConfigError(f"remediation.visibility_timeout_s: {vt:g}s must exceed remediation.{key} "
                              f"({value:g}s), or Redis redelivers the tasks of live workers")
    for pb in playbooks:
        for i, step in enumerate(pb.steps):
            if step.delay_s >= vt:
                raise ConfigError(f"{pb.source or pb.name}: steps[{i}].delay_s: {step.delay_s:g}s is not under "
                                  f"remediation.visibility_timeout_s ({vt:g}s): Redis would deliver the delayed "
                                  f"task again before it is due")


def make_celery(settings: RemediationSettings) -> Celery:
    """A Celery app for ``settings`` with the remediation tasks registered on it.

    Raises:
        ConfigError: no broker, or timeouts that do not fit (:func:`check_timeouts`).
    """
    check_timeouts(settings)
    app = Celery("aiops", set_as_current=False)
    app.conf.update(celery_config(settings))
    from remediation.tasks import register_tasks

    register_tasks(app)
    return app
