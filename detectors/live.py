"""Live detection in the agent: one detector per (configured detector, matching series).

:class:`DetectionComponent` subscribes to the bus topic ``samples`` behind a bounded queue on its
own thread (:meth:`aiops.bus.Bus.subscribe_queued`): the agent's writer only enqueues, so storage
never waits for a model; when detection falls behind by ``queue_max_samples`` it skips batches
(counted) instead. Every new sample of a series
that a configured detector's selector matches goes through that series' own detector instance
(``update``: score against the state before the point, then learn it). The score is exported as
the gauge ``aiops_anomaly_score{series, detector}``; a score at or above the detector's threshold
is an :class:`~aiops.model.Anomaly`, recorded in the state database and published on the topic
``anomalies`` (where alerting's anomaly rules pick it up).

Detector state survives restarts: each instance is pickled into the state database's key-value
table (``detector/<name>/<series>``) every ``checkpoint_interval_s`` and on stop (only the states
that changed, ``checkpoint_batch`` per transaction), and restored the
first time its series is seen again, so a restart does not re-learn (or re-warm) from scratch.
A checkpoint whose configuration (detector, parameters, threshold) no longer matches is dropped.
Samples at or before the last timestamp a detector has learned are skipped, so a replayed or
duplicated batch is never learned twice. A restored detector first catches up on the stored
samples after its checkpoint (``catchup_s``, ``catchup_points``): those a dead owner learned after
its last checkpoint, and those that arrived during a handover, between the old owner's release
and the new owner's claim, which nobody scored. They are scored; an anomaly among them is
emitted unless one of the same series and detector at or after its time is recorded already
(the previous owner's, for the samples it scored), so the catch-up neither loses nor doubles one.

With ``shard_member`` set (``detect.sharding``), several agents share the work: each scores only
the series of the slots it owns (:mod:`detectors.sharding`: consistent hashing, membership in the
state database), checkpoints and forgets a slot's detectors before handing it over (releasing the
slot only once they are saved), and restores a taken-over slot's detectors from their checkpoints.
Every checkpoint is then written fenced by its slot's claim (owner and epoch as read when it was
pickled), so a checkpoint that was in flight during a handover, or one of an agent that lost its
slots while paused, is refused instead of overwriting its successor's state.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import pickle  # nosec B403 - our own checkpoints (see load)
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import Counter, Gauge

from aiops.bus import ANOMALIES, SAMPLES, QueuedSubscriber
from aiops.columns import SampleColumns
from aiops.detector import Detector
from aiops.errors import AiopsError, ConfigError, StoreError
from aiops.logs import get_logger
from aiops.model import Anomaly, Matcher, Sample, Series, parse_selector
from aiops.protocols import AgentContext
from aiops.state import StateDB
from detectors.settings import DetectorSpec

from .params import resolve_durations
from .registry import create, get
from .replay import median_interval_s
from .sharding import ShardMembership, slot_of

__all__ = ["DetectionComponent", "LOWER_METRIC", "SCORE_METRIC", "UPPER_METRIC", "state_key"]

SCORE_METRIC = "aiops_anomaly_score"  # the dashboard and Grafana chart these three by name
LOWER_METRIC = "aiops_expected_lower"
UPPER_METRIC = "aiops_expected_upper"

log = get_logger("detectors.live")

_STATE_VERSION = 1


def state_key(spec_name: str, series: Series) -> str:
    """The key-value key of one detector instance's checkpoint."""
    return f"detector/{spec_name}/{series.key}"


def _spec_digest(spec: DetectorSpec) -> str:
    text = json.dumps({"detector": spec.detector, "params": spec.params, "threshold": spec.threshold},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _FairLock:
    """A reentrant lock that a thread waiting for it gets before its holder can take it again.

    Python's locks are not fair: a thread that releases a lock and asks for it again at once
    nearly always wins. Detection that is behind does exactly that, batch after batch, so a
    handover or a checkpoint waiting for the lock waited for minutes on a starved machine (61 s
    measured at 30,000 series), long enough for the group to reshuffle again. Here a waiter first
    takes the turnstile, so the holder, on its way back, queues behind it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._turnstile = threading.Lock()
        self._owner: int | None = None
        self._depth = 0

    def __enter__(self) -> _FairLock:
        me = threading.get_ident()
        if self._owner == me:  # only this thread ever sets _owner to its own id
            self._depth += 1
            return self
        with self._turnstile:
            self._lock.acquire()
        self._owner, self._depth = me, 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()


@dataclass(slots=True)
class _Instance:
    detector: Detector
    last_ts_ms: int
    changes: int = 0  # state changes so far (samples learned, a fit on history)
    saved: int = 0  # ``changes`` as of the last checkpoint that committed (not: that was pickled)
    restored: bool = False  # resumed from a checkpoint (after a restart or a shard handover)
    # built at the first sample, then reused on every update (the per-sample hot path):
    gauge: Any = None  # the aiops_anomaly_score child of this series and detector
    outputs: tuple[Series, Series, Series] | None = None  # score, lower, upper series (write_scores)

    @property
    def dirty(self) -> bool:
        """Changed since its last committed checkpoint: a checkpoint still being written does not count,
        so a handover meanwhile saves the detector itself (the fencing refuses the older write)."""
        return self.changes != self.saved


@dataclass(slots=True)
class _Saved:
    """What one :meth:`DetectionComponent._save` did."""

    saved: int = 0
    failed: set[tuple[str, Series]] = field(default_factory=set)  # not written: the database failed
    fenced: set[int] = field(default_factory=set)  # slots not ours (any more): their rows not written


class _Outputs:
    """The scores and bands of one batch, as columns: no object per written sample (at 100,000
    series, three ``Sample`` objects per update kept the garbage collector busy)."""

    __slots__ = ("series", "ts_ms", "values")

    def __init__(self) -> None:
        self.series: list[Series] = []
        self.ts_ms: list[int] = []
        self.values: list[float] = []

    def add(self, series: Series, ts_ms: int, value: float) -> None:
        self.series.append(series)
        self.ts_ms.append(ts_ms)
        self.values.append(value)

    def add3(self, series: tuple[Series, Series, Series], ts_ms: int, values: tuple[float, float, float]) -> None:
        self.series.extend(series)
        self.ts_ms.extend((ts_ms, ts_ms, ts_ms))
        self.values.extend(values)


def _output_series(series: Series, detector: str) -> tuple[Series, Series, Series]:
    """The score and expected-band series written for ``series`` scored by ``detector``."""
    labels = {**series.label_dict, "metric": series.name, "detector": detector}
    return Series.of(SCORE_METRIC, labels), Series.of(LOWER_METRIC, labels), Series.of(UPPER_METRIC, labels)


@dataclass(frozen=True, slots=True)
class _Watch:
    spec: DetectorSpec
    matchers: tuple[Matcher, ...]
    digest: str

    def selects(self, series: Series) -> bool:
        return all(m.matches(series) for m in self.matchers)


class DetectionComponent:
    """The agent's live detection (see the module docstring).

    Args:
        specs: configured detectors (``settings.detect.detectors``).
        checkpoint_interval_s: seconds between two checkpoints of changed detector state.
        queue_max_samples: samples waiting for detection at most; beyond it new batches are
            dropped (``aiops_detect_dropped_samples_total``) rather than slowing ingest.
        checkpoint_batch: detector states pickled and written per transaction: a checkpoint
            holds the detection lock for one batch at a time and never builds every blob at once.
        score_chunk: samples scored per hold of the detection lock: a handover or a checkpoint
            waits for one chunk at most, not for a whole collection of every series.
        catchup_s, catchup_points: a restored detector first scores the stored samples after its
            checkpoint, of the last ``catchup_s`` before its first new sample and at most
            ``catchup_points`` of them (0: off; see the module docstring).

    Raises:
        ConfigError: a bad selector, an unknown detector or bad parameters, naming the entry.
    """

    name = "detect"

    def __init__(self, specs: Sequence[DetectorSpec], checkpoint_interval_s: float = 60.0, *,
                 shard_member: str | None = None, shard_slots: int = 256, shard_heartbeat_s: float = 3.0,
                 shard_ttl_s: float = 15.0, queue_max_samples: int = 2_000_000,
                 checkpoint_batch: int = 500, score_chunk: int = 2000, fit_history_s: float = 0.0,
                 fit_history_points: int = 20000, catchup_s: float = 0.0, catchup_points: int = 1000,
                 write_scores: bool = False) -> None:
        self.checkpoint_interval_s = checkpoint_interval_s
        self.catchup_s = catchup_s
        self.catchup_points = catchup_points
        self.fit_history_s = fit_history_s
        self.fit_history_points = fit_history_points
        self.write_scores = write_scores
        self.shard_member = shard_member
        self._shard_opts = {"slots": shard_slots, "heartbeat_s": shard_heartbeat_s, "ttl_s": shard_ttl_s}
        self.shard: ShardMembership | None = None
        self._scoring: frozenset[int] = frozenset()  # slots scored now (sharded only)
        self.desired: frozenset[int] = frozenset()  # slots the ring gives us (sharded only)
        self._slot: dict[Series, int] = {}
        self.scored = 0  # detector updates made (benchmarks, tests)
        watches = []
        for i, spec in enumerate(specs):
            where = f"detect.detectors[{i}] ({spec.name})"
            try:
                matchers = tuple(parse_selector(spec.selector))
                self._new_detector(spec)  # fail at start, not at the first sample
            except AiopsError as exc:
                raise ConfigError(f"{where}: {exc}") from exc
            watches.append(_Watch(spec, matchers, _spec_digest(spec)))
        names = [w.spec.name for w in watches]
        if len(set(names)) != len(names):
            raise ConfigError(f"detect.detectors: names must be unique, got {names}")
        self._watches = watches
        self._instances: dict[tuple[str, Series], _Instance] = {}
        self._routes: dict[Series, list[_Watch]] = {}  # which watches select a series (cached)
        self._lock = _FairLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._member_thread: threading.Thread | None = None
        self._beat_thread: threading.Thread | None = None
        self._state: StateDB | None = None
        self._ctx: AgentContext | None = None
        self._gauge: Gauge | None = None
        self._inbox: QueuedSubscriber | None = None
        self.queue_max_samples = int(queue_max_samples)
        self.checkpoint_batch = int(checkpoint_batch)
        self.score_chunk = max(1, int(score_chunk))

    @staticmethod
    def _new_detector(spec: DetectorSpec, interval_s: float | None = 60.0) -> Detector:
        """A fresh detector; durations in its parameters become points at ``interval_s``."""
        det = create(spec.detector, **resolve_durations(get(spec.detector), spec.params, interval_s))
        if spec.threshold is not None:
            det.threshold = float(spec.threshold)
        return det

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, ctx: AgentContext) -> None:
        self._ctx = ctx
        self._state = ctx.state
        self._gauge = Gauge("aiops_anomaly_score", "Latest anomaly score of a series (0..1, higher is more "
                            "anomalous) by detector.", ["series", "detector"], registry=ctx.registry)
        if self.shard_member is not None:
            self.shard = ShardMembership(ctx.state, self.shard_member, **self._shard_opts)  # type: ignore[arg-type]
            self._owned_gauge = Gauge("aiops_detect_shard_slots", "Detection slots this agent owns.",
                                      registry=ctx.registry)
            self._members_gauge = Gauge("aiops_detect_shard_members", "Live agents sharing detection.",
                                        registry=ctx.registry)
            self.rebalance()  # own our slots before the first sample
        self._dropped = Counter("aiops_detect_dropped_samples_total", "Samples live detection skipped because "
                                "its queue was full (ingest never waits for a detector).", registry=ctx.registry)
        # detection runs on its own thread behind a bounded queue: the writer only enqueues
        self._inbox = ctx.bus.subscribe_queued(SAMPLES, self.on_samples, name="detect",
                                               max_items=self.queue_max_samples, on_drop=self._dropped.inc)
        self._stop.clear()
        self._thread = threading.Thread(target=self._checkpoint_loop, name="detect-checkpoint", daemon=True)
        self._thread.start()
        if self.shard is not None:
            self._member_thread = threading.Thread(target=self._member_loop, name="detect-shard", daemon=True)
            self._member_thread.start()
            self._beat_thread = threading.Thread(target=self._beat_loop, name="detect-heartbeat", daemon=True)
            self._beat_thread.start()
        log.info("detection_started", detectors=[w.spec.name for w in self._watches])

    def stop(self) -> None:
        if self._inbox is not None:
            self._inbox.stop()  # score what was queued before the last checkpoint
        self._stop.set()
        for thread in (self._thread, self._member_thread, self._beat_thread):
            if thread is not None:
                thread.join(timeout=10)
        self.checkpoint()
        if self.shard is not None:
            with self._lock:
                self._scoring = frozenset()
            try:
                self.shard.leave()  # successors take our slots at their next refresh, not after the TTL
            except StoreError as exc:
                log.warning("shard_leave_failed", error=str(exc))
        log.info("detection_stopped", instances=len(self._instances))

    # --- sharding --------------------------------------------------------------------------

    def _slot_of(self, series: Series) -> int:
        slot = self._slot.get(series)
        if slot is None:
            assert self.shard is not None
            slot = self._slot[series] = slot_of(series, self.shard.slots)
        return slot

    def rebalance(self) -> None:
        """Heartbeat; hand over the slots the ring moved away (seal, checkpoint, release); take free ones.

        A leaving slot is released only once its detectors are saved: when the save fails, the
        slot stays ours and its detectors are scored again (the next round retries), so its next
        owner never restores a checkpoint older than the state we dropped. The self-fencing and
        the TTL still apply: a member whose heartbeats lapse loses the slot like any other.
        """
        shard = self.shard
        if shard is None:
            return
        t0 = time.perf_counter()
        try:
            view = shard.refresh()
        except StoreError as exc:  # fencing stops our scoring if this lasts ttl/2
            log.warning("shard_refresh_failed", member=shard.member_id, error=str(exc))
            return
        t1 = time.perf_counter()
        lost = view.owned - view.desired
        self.desired = view.desired
        with self._lock:
            t2 = time.perf_counter()
            self._scoring = view.owned - lost
            gone = [key for key in self._instances if self._slot_of(key[1]) not in self._scoring]
            handed = {key: self._instances.pop(key) for key in gone}
        t3 = t4 = time.perf_counter()
        kept: set[int] = set()
        released: set[int] = set()
        if lost:  # nobody scores the handed detectors any more: their pickling needs no lock
            leaving = {k: v for k, v in handed.items() if self._slot_of(k[1]) in lost}
            try:
                sealed = shard.seal(lost)  # a checkpoint pickled before this is refused from now on
            except StoreError as exc:
                log.error("shard_handover_deferred", member=shard.member_id, slots=len(lost), detectors=len(leaving),
                          reason="seal failed: slots kept, retried at the next refresh", error=str(exc))
                sealed, kept = {}, set(lost)
            if sealed:
                outcome = self._save(leaving, live=False, tokens=sealed)
                unsaved = {self._slot_of(k[1]) for k in outcome.failed}
                kept = set(sealed) & unsaved
                released = set(sealed) - unsaved - outcome.fenced
                if kept:
                    log.error("shard_handover_deferred", member=shard.member_id, slots=len(kept),
                              detectors=sum(1 for k in leaving if self._slot_of(k[1]) in kept),
                              reason="checkpoint not saved: slots kept and scored, retried at the next refresh")
            t4 = time.perf_counter()
            if kept:
                with self._lock:  # still ours: nobody else may claim them, so we go on scoring them
                    for key, inst in leaving.items():
                        if self._slot_of(key[1]) in kept:
                            self._instances.setdefault(key, inst)
                    self._scoring = self._scoring | (kept & shard.owned)
            if released:
                try:
                    shard.release(released)
                except StoreError as exc:  # saved, so the next round's release loses nothing
                    log.warning("shard_release_failed", member=shard.member_id, slots=len(released), error=str(exc))
        if lost or view.owned != view.desired:
            log.info("shard_rebalanced", member=shard.member_id, members=len(view.members), owned=len(view.owned),
                     desired=len(view.desired), released=len(released), kept=len(kept), refresh_s=round(t1 - t0, 3),
                     lock_wait_s=round(t2 - t1, 3), save_s=round(t4 - t3, 3),
                     release_s=round(time.perf_counter() - t4, 3), handed=len(handed))
        self._owned_gauge.set(len(self._scoring))
        self._members_gauge.set(len(view.members))

    # --- samples -----------------------------------------------------------------------------

    def on_samples(self, samples: Sequence[Sample]) -> None:
        """Score new samples; record and publish anomalies (the bus calls this)."""
        found: list[Anomaly] = []
        out = _Outputs()  # scores and bands for the store (write_scores)
        sharded = self.shard is not None
        # self-fencing: past ttl/2 without a heartbeat, owns_now() is empty and nothing is scored;
        # after a lapse past the ttl only the claims a refresh found still ours count again
        allowed = self.shard.owns_now() if self.shard is not None else frozenset()
        for i in range(0, len(samples), self.score_chunk):
            chunk = samples[i:i + self.score_chunk]
            with self._lock:  # one chunk at a time: a handover waiting for the lock gets it next
                scoring = self._scoring & allowed
                found += self._prefetch(chunk, scoring if sharded else None, out)
                for sample in chunk:
                    if sharded and self._slot_of(sample.series) not in scoring:
                        continue  # another agent's slot
                    watches = self._routes.get(sample.series)
                    if watches is None:
                        watches = [w for w in self._watches if w.selects(sample.series)]
                        self._routes[sample.series] = watches
                    for watch in watches:
                        anomaly = self._score(watch, sample, out)
                        if anomaly is not None:
                            found.append(anomaly)
        if out.series and self._ctx is not None:
            try:
                self._ctx.store.append(SampleColumns.of(out.series, out.ts_ms, out.values))
            except StoreError as exc:
                log.error("scores_not_written", error=str(exc), count=len(out.series))
        if not found:
            return
        if self._state is not None:
            try:
                self._state.record_anomalies(found)
            except StoreError as exc:  # still publish: alerting must hear of it
                log.error("anomalies_not_recorded", error=str(exc), count=len(found))
        if self._ctx is not None:
            self._ctx.bus.publish(ANOMALIES, found)

    def _prefetch(self, samples: Sequence[Sample], scoring: frozenset[int] | None, out: _Outputs) -> list[Anomaly]:
        """Restore the detectors of every series new to us in this batch, 1,000 checkpoints per query.

        A shard takeover or a restart brings thousands of series at once; one ``kv_get`` each
        would stall the batch for seconds on a remote database. Each restored detector catches
        up on the stored samples since its checkpoint (:meth:`_catch_up`); returns the anomalies
        found among them that nobody recorded yet.
        """
        missing: dict[tuple[str, Series], tuple[_Watch, int]] = {}
        for sample in samples:
            if scoring is not None and self._slot_of(sample.series) not in scoring:
                continue
            watches = self._routes.get(sample.series)
            if watches is None:
                watches = [w for w in self._watches if w.selects(sample.series)]
                self._routes[sample.series] = watches
            for watch in watches:
                key = (watch.spec.name, sample.series)
                if key not in self._instances and key not in missing:
                    missing[key] = (watch, sample.ts_ms)
        if not missing:
            return []
        blobs: dict[str, bytes] = {}
        if self._state is not None:
            try:
                blobs = self._state.kv_get_many([state_key(n, s) for n, s in missing])
            except StoreError as exc:
                log.warning("detector_state_unreadable", count=len(missing), error=str(exc))
        restored = 0
        found: list[Anomaly] = []
        behind: list[tuple[_Watch, Series, _Instance, int]] = []
        for (name, series), (watch, ts_ms) in missing.items():
            inst = self._restore(watch, series, blobs.get(state_key(name, series)), ts_ms)
            restored += inst.restored
            self._instances[(name, series)] = inst
            if inst.restored:
                behind.append((watch, series, inst, ts_ms))
        caught_up = self._catch_up(behind, out, found) if behind else 0
        if restored:
            log.info("detector_states_restored", count=restored, new=len(missing) - restored, caught_up=caught_up,
                     caught_up_anomalies=len(found))
        return self._unrecorded(found) if found else []

    def _catch_up(self, behind: Sequence[tuple[_Watch, Series, _Instance, int]], out: _Outputs,
                  found: list[Anomaly]) -> int:
        """Score the stored samples of each restored ``(watch, series, instance, now_ms)`` after its
        checkpoint and before ``now_ms``, read for all of them in one store query.

        Bounded: the last ``catchup_points`` of the last ``catchup_s``. Returns how many were scored;
        their anomalies go to ``found``.
        """
        ctx = self._ctx
        if ctx is None or ctx.store is None or self.catchup_s <= 0 or self.catchup_points <= 0:
            return 0
        spans = [(watch, series, inst, max(inst.last_ts_ms + 1, now_ms - int(self.catchup_s * 1000)), now_ms - 1)
                 for watch, series, inst, now_ms in behind if inst.last_ts_ms < now_ms - 1]
        if not spans:
            return 0
        try:  # one range covering every span; each takes its own part
            data = ctx.store.read_many(list(dict.fromkeys(sp[1] for sp in spans)), min(sp[3] for sp in spans),
                                       max(sp[4] for sp in spans))
        except StoreError as exc:  # resume from the checkpoints alone, as without a catch-up
            log.warning("detector_catch_up_unreadable", count=len(spans), error=str(exc))
            return 0
        scored = 0
        for watch, series, _, start, end in spans:
            got = data[series]
            lo = int(np.searchsorted(got.ts_ms, start, side="left"))
            hi = int(np.searchsorted(got.ts_ms, end, side="right"))
            lo = max(lo, hi - self.catchup_points)
            for t, v in zip(got.ts_ms[lo:hi].tolist(), got.values[lo:hi].tolist(), strict=True):
                anomaly = self._score(watch, Sample(series, int(t), float(v)), out)
                if anomaly is not None:
                    found.append(anomaly)
            scored += hi - lo
        return scored

    def _unrecorded(self, found: list[Anomaly]) -> list[Anomaly]:
        """The catch-up anomalies of ``found`` not already recorded by whoever scored their samples first.

        A dead owner scored (and recorded the anomalies of) the samples after its last
        checkpoint; the catch-up scores them again from the same state, so it finds the same
        ones: any at or before the latest recorded anomaly of its series and detector is one of
        those. Those of the handover gap (nobody scored them) are later than any recorded.
        """
        if self._state is None:
            return found
        earliest: dict[str, int] = {}  # series -> its earliest catch-up anomaly
        for a in found:
            earliest[a.series.key] = min(earliest.get(a.series.key, a.ts_ms), a.ts_ms)
        latest: dict[tuple[str, str], int] = {}
        try:
            for key, since in sorted(earliest.items()):
                for row in self._state.list_anomalies(since_ms=since, series=key, limit=10_000):
                    mark = (key, str(row["detector"]))
                    latest[mark] = max(latest.get(mark, since - 1), int(row["ts_ms"]))
        except StoreError as exc:  # rather a duplicate than a loss
            log.warning("anomalies_unreadable", count=len(found), error=str(exc))
            return found
        fresh = [a for a in found if a.ts_ms > latest.get((a.series.key, a.detector), a.ts_ms - 1)]
        if len(fresh) < len(found):
            log.info("detector_catch_up_anomalies_known", count=len(found) - len(fresh))
        return fresh

    def _score(self, watch: _Watch, sample: Sample, out: _Outputs) -> Anomaly | None:
        key = (watch.spec.name, sample.series)
        inst = self._instances.get(key)
        if inst is None:  # not prefetched: only when the batch was not seen by _prefetch
            inst = self._restore(watch, sample.series, None, sample.ts_ms)
            self._instances[key] = inst
        if sample.ts_ms <= inst.last_ts_ms:
            return None  # already learned (a duplicate, or replayed after a restart)
        det = inst.detector
        band = None
        if self.write_scores:
            band_of = getattr(det, "expected_band", None)
            band = band_of() if band_of is not None else None  # what was expected before this point
        try:
            detect_one = getattr(det, "detect_one", None)
            if detect_one is not None:  # our detectors: the refractory mutes decisions, not scores
                score, decided = detect_one(sample.value)
                score = float(score)
            else:
                score = float(det.update(sample.value))
                decided = score >= float(det.threshold)
        except Exception as exc:  # one broken series must not stop detection of the others
            log.warning("detector_update_failed", detector=watch.spec.name, series=sample.series.key,
                        error=str(exc)[:200])
            return None
        inst.last_ts_ms = sample.ts_ms
        inst.changes += 1
        self.scored += 1
        if not math.isfinite(score):
            score = 0.0
        if self._gauge is not None:
            gauge = inst.gauge
            if gauge is None:
                gauge = inst.gauge = self._gauge.labels(sample.series.key, watch.spec.name)
            gauge.set(score)
        if self.write_scores:
            outputs = inst.outputs
            if outputs is None:
                outputs = inst.outputs = _output_series(sample.series, watch.spec.name)
            ts = sample.ts_ms
            if band is None:
                out.add(outputs[0], ts, score)
            else:
                out.add3(outputs, ts, (score, band[0], band[1]))
        if not decided:
            return None
        return Anomaly(sample.series, sample.ts_ms, sample.value, score, watch.spec.name, float(det.threshold))

    # --- persistence -----------------------------------------------------------------------

    def _fresh(self, watch: _Watch, series: Series, now_ms: int) -> _Instance:
        """A new detector, fitted on the series' stored history before ``now_ms`` (fit_history_s)."""
        ctx = self._ctx
        if ctx is None or self.fit_history_s <= 0 or self.fit_history_points <= 0:
            return _Instance(self._new_detector(watch.spec), -(2**63))
        try:
            data = ctx.store.read(series, now_ms - int(self.fit_history_s * 1000), now_ms - 1)
        except StoreError as exc:
            log.warning("detector_history_unreadable", detector=watch.spec.name, series=series.key, error=str(exc))
            return _Instance(self._new_detector(watch.spec), -(2**63))
        ts, values = data.ts_ms[-self.fit_history_points:], data.values[-self.fit_history_points:]
        det = self._new_detector(watch.spec, median_interval_s(ts) if ts.size > 1 else 60.0)
        if ts.size == 0:
            return _Instance(det, -(2**63))
        try:
            det.fit(values)
        except Exception as exc:  # a history the detector cannot learn: start fresh instead
            log.warning("detector_history_not_fitted", detector=watch.spec.name, series=series.key,
                        error=str(exc)[:200])
            return _Instance(self._new_detector(watch.spec), -(2**63))
        log.info("detector_fitted_on_history", detector=watch.spec.name, series=series.key, points=int(ts.size))
        return _Instance(det, int(ts[-1]), changes=1)

    def _restore(self, watch: _Watch, series: Series, blob: bytes | None, now_ms: int = 2**62) -> _Instance:
        """The detector of ``series`` from its checkpoint ``blob`` if it still fits the configuration, else fresh."""
        if blob is None:
            return self._fresh(watch, series, now_ms)
        try:
            # our own checkpoint, written by this agent into its own state database
            saved: dict[str, Any] = pickle.loads(blob)  # nosec B301
            if saved.get("version") != _STATE_VERSION or saved.get("digest") != watch.digest:
                log.info("detector_state_discarded", detector=watch.spec.name, series=series.key,
                         reason="configuration changed")
                return self._fresh(watch, series, now_ms)
            log.debug("detector_state_restored", detector=watch.spec.name, series=series.key)
            return _Instance(saved["detector"], int(saved["last_ts_ms"]), restored=True)
        except Exception as exc:
            log.warning("detector_state_discarded", detector=watch.spec.name, series=series.key,
                        reason="unreadable", error=str(exc)[:200])
            return self._fresh(watch, series, now_ms)

    def checkpoint(self) -> int:
        """Persist every detector whose state changed since the last checkpoint; returns how many."""
        with self._lock:
            dirty = {key: inst for key, inst in self._instances.items() if inst.dirty}
        return self._save(dirty).saved

    def _save(self, instances: dict[tuple[str, Series], _Instance], live: bool = True,
              tokens: dict[int, int] | None = None) -> _Saved:
        """Checkpoint ``instances`` (the dirty ones), ``checkpoint_batch`` per transaction.

        ``live``: the instances may be scored meanwhile, so each batch is pickled under the
        detection lock; handed-over ones (already forgotten) are not. The lock is never held
        during the write. A detector counts as saved (``saved``) only once its row committed: a
        handover that runs while a periodic checkpoint is still writing saves the detectors of
        that write again, under the sealed epoch, and the fencing refuses the older write.

        Sharded, every checkpoint is written fenced (:meth:`ShardMembership.put_checkpoints`)
        with its slot's epoch as read when it was pickled (``tokens``: the sealed epochs of a
        handover); one of a slot not ours is not written at all.
        """
        done = _Saved()
        if self._state is None:
            return done
        shard = self.shard
        digests = {w.spec.name: w.digest for w in self._watches}
        keys = list(instances)
        started = time.perf_counter()
        step = max(1, self.checkpoint_batch)
        for i in range(0, len(keys), step):
            batch = keys[i:i + step]
            blobs: list[tuple[int, int, str, bytes]] = []  # (slot, epoch, key, blob); slot/epoch 0 unsharded
            pickled: list[tuple[_Instance, int, int]] = []  # (instance, its changes as pickled, slot)
            with self._lock if live else contextlib.nullcontext():  # detection waits one batch at most
                held = (tokens if tokens is not None else shard.tokens()) if shard is not None else {}
                for key in batch:
                    inst = instances[key]
                    if not inst.dirty:
                        continue
                    spec_name, series = key
                    slot = epoch = 0
                    if shard is not None:
                        slot = self._slot_of(series)
                        if slot not in held:  # lost the slot: a writer that lost it must not write
                            done.fenced.add(slot)
                            continue
                        epoch = held[slot]
                    state = {"version": _STATE_VERSION, "digest": digests[spec_name], "last_ts_ms": inst.last_ts_ms,
                             "detector": inst.detector}
                    try:
                        blobs.append((slot, epoch, state_key(spec_name, series),
                                      pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)))
                    except Exception as exc:
                        log.warning("detector_state_not_saved", detector=spec_name, series=series.key, error=str(exc))
                        continue
                    pickled.append((inst, inst.changes, slot))
            try:
                if shard is None:
                    self._state.kv_put_many([(k, b) for _, _, k, b in blobs])
                    refused: set[int] = set()
                else:
                    refused = shard.put_checkpoints(blobs)
            except StoreError as exc:  # still dirty: tried again at the next checkpoint (or handover)
                log.error("detector_state_not_saved", count=len(blobs), error=str(exc))
                done.failed.update(keys[i:])
                return done
            done.fenced |= refused
            with self._lock:  # committed: saved as of when pickled (a fenced row is not)
                for inst, changes, slot in pickled:
                    if slot not in refused:
                        inst.saved = max(inst.saved, changes)
                        done.saved += 1
        if done.saved:
            log.debug("detector_state_saved", count=done.saved, duration_s=round(time.perf_counter() - started, 3))
        return done

    def _checkpoint_loop(self) -> None:
        while not self._stop.wait(self.checkpoint_interval_s):
            try:
                self.checkpoint()
            except Exception as exc:
                log.exception("checkpoint_failed", error=str(exc))

    def _beat_loop(self) -> None:
        """Only the heartbeat, on a thread of its own: a long handover (checkpointing thousands of
        detectors) must neither make the others think we died nor fence us."""
        assert self.shard is not None
        while not self._stop.wait(self.shard.heartbeat_s / 2):
            try:
                t0 = time.perf_counter()
                self.shard.heartbeat()
                if time.perf_counter() - t0 > self.shard.heartbeat_s / 2:
                    log.warning("shard_heartbeat_slow", member=self.shard.member_id,
                                duration_s=round(time.perf_counter() - t0, 3))
            except StoreError as exc:
                log.warning("shard_heartbeat_failed", member=self.shard.member_id, error=str(exc))

    def _member_loop(self) -> None:
        """Handovers: release what the ring moved away, claim what became free."""
        assert self.shard is not None
        while not self._stop.wait(self.shard.heartbeat_s):
            try:
                self.rebalance()
            except Exception as exc:
                log.exception("shard_rebalance_failed", error=str(exc))
