"""Count log records consumed from Kafka topics (Fluentd, Fluent Bit, Vector, ... as producers).

A consumer group (``confluent-kafka``) with auto-commit off: each collection polls up to
``max_messages_per_collection`` records and counts them; their offsets are committed only in
:meth:`KafkaLogCollector.acknowledge`, which the agent calls once the counts are stored. An agent
that dies in between is redelivered those records by the group (at-least-once, never a lost
record); counters are totals, so a redelivered collection shows as a brief overcount of one
collection's records, not as a gap.

Records are JSON objects (the line in ``record_field``, Fluent Bit's ``log``) or plain text.
No Kafka broker runs in the test environment: the tests use ``mockafka``'s in-memory consumer
through the ``consumer`` argument, so everything above the client runs as in production.
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

from aiops.errors import CollectError
from aiops.logs import get_logger
from aiops.model import Sample
from collectors.logcount import LogCounter
from collectors.logsettings import KafkaLogSource

__all__ = ["KafkaLogCollector", "ConsumerLike"]

log = get_logger("collectors.logkafka")


class ConsumerLike(Protocol):
    """The part of ``confluent_kafka.Consumer`` used here."""

    def subscribe(self, topics: list[str]) -> None: ...

    def poll(self, timeout: float | None = None) -> Any: ...

    def commit(self, message: Any = None, asynchronous: bool = True) -> Any: ...

    def close(self) -> None: ...


def _consumer(settings: KafkaLogSource) -> ConsumerLike:
    from confluent_kafka import Consumer  # imported when a Kafka source is configured

    conf: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": settings.group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "security.protocol": settings.security_protocol,
    }
    if settings.sasl_username:
        conf.update({"sasl.mechanisms": "PLAIN", "sasl.username": settings.sasl_username,
                     "sasl.password": settings.sasl_password.get_secret_value() if settings.sasl_password else ""})
    # confluent-kafka's stubs overload poll/commit more narrowly than the Protocol states
    consumer: ConsumerLike = Consumer(conf)  # type: ignore[assignment]
    return consumer


class KafkaLogCollector:
    """Counts the records of one ``collect.logs`` entry of ``type: kafka``.

    Args:
        settings: brokers, topics, group, parsing, labels, schedule.
        consumer: a ready consumer (tests); default: a ``confluent_kafka.Consumer``.
    """

    name = "logs"

    def __init__(self, settings: KafkaLogSource, consumer: ConsumerLike | None = None) -> None:
        self.settings = settings
        self.target = settings.name
        self.interval_s = settings.interval_s
        self.timeout_s = settings.timeout_s
        self.jitter_s = settings.jitter_s
        self.counter = LogCounter(settings.name, settings.parsing, settings.labels)
        self.consumer = consumer or _consumer(settings)
        self.consumer.subscribe(list(settings.topics))
        self._uncommitted: dict[tuple[str, int], Any] = {}  # (topic, partition) -> last message polled
        self.records = 0

    def collect(self, now_ms: int) -> list[Sample]:
        """Poll new records, count them, return the running counts.

        Raises:
            CollectError: the consumer reported an error (the counts so far ride on it).
        """
        deadline = time.monotonic() + self.timeout_s * 0.8
        error: str | None = None
        for _ in range(self.settings.max_messages_per_collection):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            msg = self.consumer.poll(timeout=min(0.2, remaining))
            if msg is None:
                break
            err = msg.error()
            if err is not None:
                error = str(err)
                break
            self._count(msg.value())
            self._uncommitted[(msg.topic(), msg.partition())] = msg
            self.records += 1
        samples = self.counter.samples(now_ms)
        if error is not None:
            raise CollectError(f"kafka {self.settings.name}: {error}", samples=samples)
        return samples

    def _count(self, value: bytes | None) -> None:
        if value is None:
            return
        field = self.settings.record_field
        if field and value[:1] == b"{":
            try:
                record = json.loads(value)
            except ValueError:
                record = None
            if isinstance(record, dict) and isinstance(record.get(field), str):
                for line in record[field].encode("utf-8", "surrogatepass").split(b"\n"):
                    self.counter.feed_one(line)
                return
        for line in value.split(b"\n"):
            self.counter.feed_one(line)

    def acknowledge(self) -> None:
        """The agent stored the counts: commit the offsets of what they include."""
        for msg in list(self._uncommitted.values()):
            try:
                self.consumer.commit(message=msg, asynchronous=False)
            except Exception as exc:  # the broker keeps the old offset: records come again
                log.warning("kafka_commit_failed", source=self.settings.name, error=str(exc))
                return
        self._uncommitted.clear()

    def close(self) -> None:
        self.consumer.close()
