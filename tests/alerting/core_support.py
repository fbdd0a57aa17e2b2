"""Test support for the alerting core: a fake clock, a recording sink, an engine builder."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from aiops.model import Sample, Series
from aiops.notification import Notification
from aiops.state import StateDB
from aiops.store import SeriesStore
from alerting.config import load_alerting
from alerting.engine import AlertEngine
from alerting.history import AlertHistory
from alerting.settings import AlertingSettings
from alerting.silences import SilenceStore

T0_MS = 1_714_564_800_000  # 2024-05-01T12:00:00Z


@dataclass
class FakeClock:
    """Time that moves only when a test moves it."""

    now: int = T0_MS

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> int:
        self.now += int(seconds * 1000)
        return self.now


@dataclass
class RecordingSink:
    """A NotificationSink that keeps what it was given (the outbox's place in unit tests)."""

    got: list[Notification] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enqueue(self, notification: Notification) -> int:
        with self.lock:
            self.got.append(notification)
            return len(self.got)

    def names(self) -> list[tuple[str, str, list[str]]]:
        """(receiver, status, [alertname/instance ...]) per notification, for readable asserts."""
        return [(n.receiver, n.status, [f"{a.name}/{a.label_dict.get('instance', '')}:{a.state.value}"
                                        for a in n.alerts]) for n in self.got]


def settings(**alerting: Any) -> AlertingSettings:
    return AlertingSettings(**alerting)


def make_engine(db: StateDB, clock: FakeClock, sink: RecordingSink, store: SeriesStore | None = None,
                published: list[Any] | None = None, **alerting: Any) -> AlertEngine:
    alerting.setdefault("route", {"receiver": "chat", "group_by": ["alertname", "instance"], "group_wait": 0,
                                  "group_interval": "1m", "repeat_interval": "1h"})
    config = load_alerting(settings(**alerting), "test.yaml")
    return AlertEngine(config, history=AlertHistory(db), silences=SilenceStore(db), sink=sink, store=store,
                       publish=(published.append if published is not None else None), clock=clock)


def cpu(value: float, ts_ms: int, instance: str = "a") -> Sample:
    return Sample(Series.of("cpu_ratio", instance=instance), ts_ms, value)
