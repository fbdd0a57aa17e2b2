"""The agent loop behind ``aiops run``: schedules collectors, writes the store, runs components.

Each collector runs on its own thread at its interval (plus jitter). What it returns, together
with its own health (``aiops_collector_up``, ``aiops_collector_duration_seconds``,
``aiops_collector_samples``), goes through a bounded queue to one writer thread that appends
batches to the store and publishes them on the bus for the components (live detection, rule
evaluation, remediation). A collector that raises, hangs or returns garbage only costs its own
target an ``up=0``; nothing takes the agent down. SIGTERM or SIGINT stops it cleanly: collectors
stop, the queue is flushed to the store, components stop, and ``run`` returns 0.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from aiops.agentapi import build_agent_api
from aiops.bus import SAMPLES, Bus
from aiops.columns import SampleColumns, concat_samples
from aiops.errors import AiopsError
from aiops.httpapi import HttpApi
from aiops.logs import get_logger
from aiops.model import Sample, Series, now_ms
from aiops.protocols import AgentContext, Collector, Component
from aiops.state import StateDB
from aiops.store import SqliteSeriesStore
from app.settings import Settings

__all__ = ["Agent", "AgentMetrics"]

log = get_logger("app.agent")

_WRITE_BATCH_MAX = 50_000  # samples per store transaction
_QUEUE_MAX = 1_000  # collected batches waiting for the writer; beyond it collectors wait


class AgentMetrics:
    """The agent's own metrics, exported on ``/metrics``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge("aiops_collector_up", "1 if the last collection succeeded, else 0.",
                        ["collector", "target"], registry=registry)
        self.duration = Histogram("aiops_collector_duration_seconds", "Time one collection took.",
                                  ["collector", "target"], registry=registry,
                                  buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.errors = Counter("aiops_collector_errors_total", "Collections that failed.",
                              ["collector", "target"], registry=registry)
        self.samples = Counter("aiops_samples_ingested_total", "Samples written to the store.", registry=registry)
        self.write_seconds = Histogram("aiops_store_write_duration_seconds", "Time of one store append.",
                                       registry=registry)
        self.store_bytes = Gauge("aiops_store_size_bytes", "Size of the store on disk.", registry=registry)
        self.store_series = Gauge("aiops_store_series", "Series in the store.", registry=registry)
        self.queue_depth = Gauge("aiops_ingest_queue_batches", "Collected batches waiting to be written.",
                                 registry=registry)
        self.info = Gauge("aiops_agent_info", "Agent identity.", ["instance", "version"], registry=registry)


def _health_samples(c: Collector, instance: str, ts_ms: int, ok: bool, duration_s: float, n: int) -> list[Sample]:
    labels = {"collector": c.name, "target": c.target, "instance": instance}
    return [
        Sample(Series.of("aiops_collector_up", labels), ts_ms, 1.0 if ok else 0.0),
        Sample(Series.of("aiops_collector_duration_seconds", labels), ts_ms, duration_s),
        Sample(Series.of("aiops_collector_samples", labels), ts_ms, float(n)),
    ]


class Agent:
    """The monitoring agent.

    Args:
        settings: the loaded configuration.
        collectors: what to collect, each on its own schedule.
        components: live parts fed from the bus (detection, alerting, remediation).
        store: the time-series store (opened from settings if not given).
        state: the state database (opened from settings if not given).
    """

    def __init__(
        self,
        settings: Settings,
        collectors: Sequence[Collector],
        components: Sequence[Component] = (),
        store: SqliteSeriesStore | None = None,
        state: StateDB | None = None,
    ) -> None:
        self.settings = settings
        self.instance = settings.agent.instance or socket.gethostname()
        self.collectors = list(collectors)
        self.components = list(components)
        self.store = store or SqliteSeriesStore(settings.store.path,
                                                rollup_step_ms=int(settings.store.rollup_step_s * 1000))
        self.state = state or StateDB(settings.store.state_db_url())
        self.state.create_all()
        self.bus = Bus()
        self.registry = CollectorRegistry()
        self.metrics = AgentMetrics(self.registry)
        self.api: HttpApi = build_agent_api(settings, self.registry)
        self.api.health = self._health
        # one entry per collection: its blocks (the samples, as columns for scrapes, and health)
        self._queue: queue.Queue[list[Sequence[Sample]] | None] = queue.Queue(maxsize=_QUEUE_MAX)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._writer: threading.Thread | None = None
        self._started_ms = 0
        self._last_maintenance = time.monotonic()
        self.ctx = AgentContext(settings, self.store, self.state, self.bus, self.registry, self.api, {})

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the HTTP server, the components, the writer and one thread per collector."""
        self._started_ms = now_ms()
        self.metrics.info.labels(self.instance, _version()).set(1)
        for comp in self.components:
            comp.start(self.ctx)
        self.api.start()
        self._writer = threading.Thread(target=self._write_loop, name="aiops-writer", daemon=True)
        self._writer.start()
        for c in self.collectors:
            t = threading.Thread(target=self._collect_loop, args=(c,), name=f"collect-{c.name}", daemon=True)
            t.start()
            self._threads.append(t)
        log.info("agent_started", instance=self.instance, collectors=len(self.collectors),
                 components=[c.name for c in self.components], listen=self.api.url, store=str(self.store.path))

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop collecting, flush what was collected, stop components; idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))
        self._queue.put(None)  # the writer drains everything before this marker, then exits
        if self._writer is not None:
            self._writer.join(max(0.1, deadline - time.monotonic()))
        for comp in reversed(self.components):
            try:
                comp.stop()
            except Exception as exc:
                log.exception("component_stop_failed", component=comp.name, error=str(exc))
        for c in self.collectors:
            try:
                c.close()
            except Exception as exc:
                log.warning("collector_close_failed", collector=c.name, error=str(exc))
        self.api.stop()
        self.store.fold()
        self.store.close()
        self.state.dispose()
        log.info("agent_stopped", instance=self.instance)

    def run_forever(self, duration_s: float | None = None) -> int:
        """Start, wait for SIGTERM/SIGINT (or ``duration_s``), stop; returns the exit code 0."""
        stop_requested = threading.Event()

        def _on_signal(signum: int, _frame: Any) -> None:
            log.info("signal_received", signal=signal.Signals(signum).name)
            stop_requested.set()

        previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            stop_requested.wait(duration_s)
        finally:
            self.stop()
            for s, h in previous.items():
                signal.signal(s, h)
        return 0

    # --- collection --------------------------------------------------------------------------

    def _collect_loop(self, c: Collector) -> None:
        rng = random.Random(hash((c.name, c.target)))  # nosec B311 - schedule jitter, not a secret
        # spread first collections over one jitter so that many targets do not fire at once
        if self._stop.wait(rng.uniform(0, c.jitter_s)):
            return
        while not self._stop.is_set():
            started = time.monotonic()
            self._collect(c)
            elapsed = time.monotonic() - started
            delay = max(0.0, c.interval_s - elapsed) + rng.uniform(0, c.jitter_s)
            if self._stop.wait(delay):
                return

    def collect_once(self, c: Collector) -> list[Sample]:
        """Run one collection of ``c`` and queue its samples plus its health samples."""
        return list(concat_samples(self._collect(c)))

    def _collect(self, c: Collector) -> list[Sequence[Sample]]:
        ts = now_ms()
        started = time.perf_counter()
        ok = True
        samples: Sequence[Sample] = []
        try:
            samples = c.collect(ts)
            if not isinstance(samples, SampleColumns):
                samples = list(samples)
        except AiopsError as exc:
            ok = False
            samples = list(getattr(exc, "samples", ()))  # staleness markers, partial imports
            log.warning("collect_failed", collector=c.name, target=c.target, error=str(exc))
        except Exception as exc:  # a collector bug is one target's problem, never the agent's
            ok = False
            log.exception("collect_crashed", collector=c.name, target=c.target, error=str(exc))
        duration = time.perf_counter() - started
        self.metrics.up.labels(c.name, c.target).set(1 if ok else 0)
        self.metrics.duration.labels(c.name, c.target).observe(duration)
        if not ok:
            self.metrics.errors.labels(c.name, c.target).inc()
        # columns are valid by construction (typed arrays); plain samples are checked one by one
        clean = samples if isinstance(samples, SampleColumns) else [s for s in samples if _valid(s)]
        if len(clean) != len(samples):
            log.warning("samples_dropped", collector=c.name, target=c.target, dropped=len(samples) - len(clean))
        health = _health_samples(c, self.instance, ts, ok, duration, len(clean))
        blocks: list[Sequence[Sample]] = [clean, health] if len(clean) else [health]
        acknowledge = getattr(c, "acknowledge", None)
        if callable(acknowledge):  # log collectors save offsets / commit only once this batch is stored
            blocks.append(_StoredHook(acknowledge, c))
        while not self._stop.is_set():
            try:
                self._queue.put(blocks, timeout=0.5)
                break
            except queue.Full:
                continue
        else:
            self._queue.put(blocks)  # stopping: the writer still drains this one
        return blocks

    def ingest(self, samples: Sequence[Sample]) -> None:
        """Queue samples from outside the collectors (imports, tests, the demo)."""
        self._queue.put([samples if isinstance(samples, SampleColumns) else list(samples)])

    # --- writing -------------------------------------------------------------------------

    def _write_loop(self) -> None:
        done = False
        while not done:
            try:
                first = self._queue.get(timeout=1.0)
            except queue.Empty:
                self._maybe_maintain()
                continue
            blocks: list[Sequence[Sample]] = []
            size = 0
            if first is None:
                done = True
            else:
                blocks.extend(first)
                size += sum(len(b) for b in first)
            # coalesce whatever else is waiting into one transaction
            while size < _WRITE_BATCH_MAX and not done:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    done = True
                else:
                    blocks.extend(nxt)
                    size += sum(len(b) for b in nxt)
            self.metrics.queue_depth.set(self._queue.qsize())
            if size:
                self._write(blocks, size)
            self._maybe_maintain()

    def _write(self, blocks: list[Sequence[Sample]], size: int) -> None:
        started = time.perf_counter()
        try:
            self.store.append_batches(blocks)
        except AiopsError as exc:
            log.error("store_write_failed", samples=size, error=str(exc))
            return
        self.metrics.write_seconds.observe(time.perf_counter() - started)
        self.metrics.samples.inc(size)
        for block in blocks:
            if isinstance(block, _StoredHook):
                block.run()
        # subscribers get each block as a Sequence[Sample]; columns build Sample objects only
        # for what a subscriber iterates
        for block in blocks:
            if len(block):
                self.bus.publish(SAMPLES, block)

    def _maybe_maintain(self) -> None:
        every = self.settings.store.maintenance_interval_s
        if time.monotonic() - self._last_maintenance < every:
            return
        self._last_maintenance = time.monotonic()
        try:
            s = self.settings.store
            stats = self.store.apply_retention(now_ms(), int(s.retention_raw_s * 1000),
                                               int(s.retention_rollup_s * 1000))
            compacted = self.store.compact()
            self.store.vacuum(truncate_wal=False)  # never wait for a dashboard's long read
            self.metrics.store_bytes.set(self.store.size_bytes())
            self.metrics.store_series.set(self.store.series_count())
            log.info("store_maintained", compacted_chunks=compacted, **stats)
        except AiopsError as exc:
            log.error("store_maintenance_failed", error=str(exc))

    def _health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "instance": self.instance,
            "uptime_s": (now_ms() - self._started_ms) / 1000,
            "collectors": len(self.collectors),
            "queue_batches": self._queue.qsize(),
            "pid": os.getpid(),
        }


class _StoredHook(tuple[Sample, ...]):
    """An empty block riding with a collection: the writer calls ``callback`` once the batch is stored."""

    callback: Callable[[], None]
    collector: Collector

    def __new__(cls, callback: Callable[[], None], collector: Collector) -> _StoredHook:
        hook = super().__new__(cls, ())
        hook.callback, hook.collector = callback, collector
        return hook

    def run(self) -> None:
        try:
            self.callback()
        except Exception as exc:  # offsets not saved: the next acknowledgement saves them
            log.warning("collector_acknowledge_failed", collector=self.collector.name,
                        target=self.collector.target, error=str(exc))


def _valid(s: object) -> bool:
    """A sample the store can hold: a Series, an int timestamp, a real number (NaN/±Inf allowed)."""
    return (
        isinstance(s, Sample)
        and isinstance(s.series, Series)
        and isinstance(s.ts_ms, int)
        and not isinstance(s.ts_ms, bool)
        and isinstance(s.value, (float, int))
        and not isinstance(s.value, bool)
    )


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("aiops")
    except Exception:
        return "dev"
