"""Prometheus remote-write of every collected sample, through a bounded on-disk retry queue.

The agent's writer thread hands each batch to :meth:`RemoteWriter.add` (a dict append). A
sender thread cuts the buffer into segments of at most ``batch_max_samples`` samples, every
``flush_interval_s`` or as soon as a segment is full, encodes each as one snappy-compressed
``WriteRequest`` (:mod:`aiops.remotewrite_proto`) and writes it to ``queue_dir`` as a file
``<seq>-<samples>.rw`` (temporary name, then an atomic rename); then it POSTs the segments
oldest first and deletes each one the endpoint accepted.

Guarantees (like Prometheus' own WAL-backed queue, which we imitate in small):

- **No loss while the endpoint is down**, for as long as the queue has room: a refused or failed
  POST (connection error, timeout, 429, 5xx) keeps the segment and is retried with the kernel's
  one backoff (:func:`aiops.backoff.backoff_s`: doubling from ``backoff_s`` up to
  ``backoff_max_s``, with jitter); the queue survives an agent restart too.
- **Bounded**: past ``max_queue_bytes`` the *oldest* segments are dropped, counted in
  ``aiops_remote_write_samples_dropped_total{reason="queue_full"}`` and logged; the newest data
  is what an SRE needs after an outage.
- **In order**: one segment in flight at a time, oldest first, so each series' samples reach the
  endpoint in time order (Prometheus refuses out-of-order samples).
- A segment the endpoint rejects as malformed (another 4xx) can never succeed: it is dropped,
  ``reason="rejected"``. A crash loses at most the unflushed buffer (``flush_interval_s``).

Examples:
    >>> import tempfile
    >>> from aiops.model import Sample, Series
    >>> w = RemoteWriter("http://127.0.0.1:9/api/v1/write", tempfile.mkdtemp())
    >>> w.add([Sample(Series.of("up"), 1000, 1.0)])
    >>> w.flush(); w.queued_samples
    1
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import SecretStr

from aiops import backoff
from aiops.config import RemoteWriteSettings
from aiops.errors import ConfigError, trim
from aiops.logs import get_logger, url_host
from aiops.model import Sample, Series
from aiops.remotewrite_proto import compress, encode_write_request

if TYPE_CHECKING:
    from aiops.protocols import AgentContext

__all__ = ["RemoteWriter", "RemoteWriteMetrics", "RemoteWriteComponent"]

log = get_logger(__name__)
_SUFFIX = ".rw"


class RemoteWriteMetrics:
    """``aiops_remote_write_*``: samples sent and dropped, queue size, failed sends."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.sent = Counter("aiops_remote_write_samples_sent_total", "Samples the endpoint accepted.",
                            registry=registry)
        self.dropped = Counter("aiops_remote_write_samples_dropped_total", "Samples given up on.", ["reason"],
                               registry=registry)
        self.failures = Counter("aiops_remote_write_failures_total", "Failed sends (retried).", registry=registry)
        self.queue_bytes = Gauge("aiops_remote_write_queue_bytes", "Bytes waiting in the on-disk queue.",
                                 registry=registry)
        self.queue_samples = Gauge("aiops_remote_write_queue_samples", "Samples waiting in the on-disk queue.",
                                   registry=registry)


class RemoteWriter:
    """Spools samples to ``queue_dir`` and sends them to a remote-write endpoint.

    Args:
        url: the endpoint, e.g. ``http://prometheus:9090/api/v1/write``.
        queue_dir: directory of the on-disk queue (created; segments left by a previous run are sent).
        bearer_token: sent as ``Authorization: Bearer``.
        headers: extra headers (``X-Scope-OrgID`` for Mimir/Cortex tenants).
        external_labels: added to every series (a series' own label of the same name wins).
        max_queue_bytes: most bytes the queue may hold; the oldest segments go first past it.
        batch_max_samples: most samples in one segment (one POST).
        flush_interval_s: longest time a sample waits in memory before it is spooled.
        timeout_s: limit of one POST.
        backoff_s: first retry delay after a failed POST; doubles up to ``backoff_max_s``.
        registry: where the metrics go (None: not registered anywhere).
        transport: an httpx transport (tests).
    """

    def __init__(self, url: str, queue_dir: str | Path, *, bearer_token: SecretStr | None = None,
                 headers: Mapping[str, str] | None = None, external_labels: Mapping[str, str] | None = None,
                 max_queue_bytes: int = 512 * 2**20, batch_max_samples: int = 5000, flush_interval_s: float = 1.0,
                 timeout_s: float = 10.0, backoff_s: float = 0.5, backoff_max_s: float = 30.0,
                 registry: CollectorRegistry | None = None, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url
        self.host = url_host(url)
        self.dir = Path(queue_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_queue_bytes = max_queue_bytes
        self.batch_max_samples = batch_max_samples
        self.flush_interval_s = flush_interval_s
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self.metrics = RemoteWriteMetrics(registry)
        self._extra = tuple(sorted((external_labels or {}).items()))
        self._labels: dict[Series, bytes] = {}
        hdrs = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
                "X-Prometheus-Remote-Write-Version": "0.1.0", "User-Agent": "aiops-remote-write/0.1",
                **(headers or {})}
        if bearer_token is not None:
            hdrs["Authorization"] = f"Bearer {bearer_token.get_secret_value()}"
        self._client = httpx.Client(headers=hdrs, timeout=httpx.Timeout(timeout_s), transport=transport)
        self._lock = threading.Lock()  # buffer and segment list
        self._buffer: dict[Series, list[tuple[int, float]]] = {}
        self._buffered = 0
        self._buffered_since = 0.0
        self._segments: list[tuple[int, int, int, Path]] = []  # (seq, samples, bytes, path), oldest first
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._load()

    # --- the queue -------------------------------------------------------------------------

    def _load(self) -> None:
        for tmp in self.dir.glob("*.tmp"):
            tmp.unlink(missing_ok=True)  # a segment whose write a crash interrupted
        for path in self.dir.glob(f"*{_SUFFIX}"):
            seq, _, n = path.stem.partition("-")
            if seq.isdigit() and n.isdigit():
                self._segments.append((int(seq), int(n), path.stat().st_size, path))
        self._segments.sort()
        if self._segments:
            log.info("remote_write_queue_resumed", target=self.host, segments=len(self._segments),
                     samples=self.queued_samples)
        self._gauges()

    def _gauges(self) -> None:
        self.metrics.queue_bytes.set(sum(s[2] for s in self._segments))
        self.metrics.queue_samples.set(sum(s[1] for s in self._segments))

    @property
    def queued_samples(self) -> int:
        """Samples spooled to disk and not yet accepted by the endpoint."""
        with self._lock:
            return sum(s[1] for s in self._segments)

    @property
    def pending_samples(self) -> int:
        """Samples not yet accepted: spooled plus still in memory."""
        with self._lock:
            return sum(s[1] for s in self._segments) + self._buffered

    def add(self, samples: Sequence[Sample]) -> None:
        """Take a batch (the writer thread's call: cheap, never blocks on the network)."""
        with self._lock:
            if not self._buffered:
                self._buffered_since = time.monotonic()
            buf = self._buffer
            for s in samples:
                points = buf.get(s.series)
                if points is None:
                    buf[s.series] = [(s.ts_ms, s.value)]
                else:
                    points.append((s.ts_ms, s.value))
            self._buffered += len(samples)
            full = self._buffered >= self.batch_max_samples
            overfull = self._buffered >= 20 * self.batch_max_samples
        if overfull:  # the sender is stuck in a slow POST: spool here rather than grow memory
            self.flush()
        elif full:
            self._wake.set()

    def flush(self) -> None:
        """Spool everything in memory to the on-disk queue, in segments of ``batch_max_samples``."""
        with self._lock:
            buf, self._buffer, self._buffered = self._buffer, {}, 0
        segment: dict[Series, list[tuple[int, float]]] = {}
        count = 0
        for series, points in buf.items():
            for i in range(0, len(points), self.batch_max_samples):
                part = points[i:i + self.batch_max_samples]
                if count + len(part) > self.batch_max_samples and segment:
                    self._spool(segment, count)
                    segment, count = {}, 0
                segment[series] = part
                count += len(part)
        if segment:
            self._spool(segment, count)

    def _spool(self, segment: dict[Series, list[tuple[int, float]]], count: int) -> None:
        data = compress(encode_write_request(segment, self._extra, self._labels))
        with self._lock:
            seq = self._segments[-1][0] + 1 if self._segments else 1
            path = self.dir / f"{seq:016d}-{count}{_SUFFIX}"
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # readers never see a half-written segment
            self._segments.append((seq, count, len(data), path))
            dropped = 0
            while sum(s[2] for s in self._segments) > self.max_queue_bytes and len(self._segments) > 1:
                _, n, _, old = self._segments.pop(0)
                old.unlink(missing_ok=True)
                dropped += n
            self._gauges()
        if dropped:
            self.metrics.dropped.labels("queue_full").inc(dropped)
            log.warning("remote_write_queue_full", target=self.host, dropped_samples=dropped,
                        max_queue_bytes=self.max_queue_bytes)

    # --- sending ---------------------------------------------------------------------------

    def send_next(self) -> bool | None:
        """POST the oldest segment: True sent (or dropped as rejected), False failed (kept), None: queue empty."""
        with self._lock:
            if not self._segments:
                return None
            seq, n, size, path = self._segments[0]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        status = 0
        if data:
            try:
                resp = self._client.post(self.url, content=data)
                status = resp.status_code
            except httpx.HTTPError as exc:
                self.metrics.failures.inc()
                log.warning("remote_write_failed", target=self.host, error=trim(str(exc)), queued_samples=n)
                return False
            if status == 429 or status >= 500:
                self.metrics.failures.inc()
                log.warning("remote_write_failed", target=self.host, status=status, error=trim(resp.text))
                return False
            if status >= 300:  # malformed or refused for good (out of order, bad labels): never succeeds
                self.metrics.dropped.labels("rejected").inc(n)
                log.error("remote_write_rejected", target=self.host, status=status, error=trim(resp.text),
                          dropped_samples=n)
            else:
                self.metrics.sent.inc(n)
        with self._lock:
            if self._segments and self._segments[0][0] == seq:
                self._segments.pop(0)
            self._gauges()
        path.unlink(missing_ok=True)
        return True

    def _flush_if_due(self) -> None:
        with self._lock:
            due = self._buffered and (self._buffered >= self.batch_max_samples or
                                      time.monotonic() - self._buffered_since >= self.flush_interval_s)
        if due:
            self.flush()

    def _run(self) -> None:
        failures = 0  # consecutive failed POSTs: the retry number for the kernel's one backoff
        while not self._stop.is_set():
            self._flush_if_due()
            sent = self.send_next()
            if sent is True:
                failures = 0
                continue
            if sent is None:
                wait_s = self.flush_interval_s
            else:
                wait_s = backoff.backoff_s(failures, initial_s=self.backoff_s, max_s=self.backoff_max_s)
                failures += 1
            deadline = time.monotonic() + wait_s
            while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
                self._wake.wait(min(left, self.flush_interval_s))
                self._wake.clear()
                self._flush_if_due()  # keep spooling while the endpoint is down
                if sent is None and self.queued_samples:
                    break

    def start(self) -> None:
        """Start the sender thread."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="aiops-remote-write", daemon=True)
            self._thread.start()

    def stop(self, drain_s: float = 2.0) -> None:
        """Spool what is in memory, try to send the queue for up to ``drain_s``, stop; the rest waits on disk."""
        self.flush()
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30.0)
            self._thread = None
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline and self.send_next():
            pass
        with contextlib.suppress(Exception):
            self._client.close()
        if self.queued_samples:
            log.info("remote_write_queue_kept", target=self.host, samples=self.queued_samples)


class RemoteWriteComponent:
    """The agent's side: every batch on the bus ``samples`` topic goes to a :class:`RemoteWriter`.

    Args:
        settings: ``store.remote_write``.
        store_path: ``store.path``; the queue defaults to ``remote-write/`` beside it.
    """

    name = "remote_write"

    def __init__(self, settings: RemoteWriteSettings, store_path: Path) -> None:
        if settings.url is None:
            raise ConfigError("store.remote_write.url: required to enable remote-write")
        self.settings = settings
        self.queue_dir = settings.queue_dir or store_path.parent / "remote-write"
        self.writer: RemoteWriter | None = None

    def start(self, ctx: AgentContext) -> None:
        rw = self.settings
        assert rw.url is not None  # checked in __init__
        self.writer = RemoteWriter(
            rw.url, self.queue_dir, bearer_token=rw.bearer_token,
            headers={k: v.get_secret_value() for k, v in rw.headers.items()},
            external_labels=rw.external_labels, max_queue_bytes=rw.max_queue_bytes,
            batch_max_samples=rw.batch_max_samples, flush_interval_s=rw.flush_interval_s, timeout_s=rw.timeout_s,
            backoff_max_s=rw.backoff_max_s, registry=ctx.registry)
        ctx.bus.subscribe("samples", self.writer.add)
        self.writer.start()
        log.info("remote_write_started", target=self.writer.host, queue_dir=str(self.queue_dir),
                 queued_samples=self.writer.queued_samples)

    def stop(self) -> None:
        if self.writer is not None:
            self.writer.stop()
