"""Localisation on live alerts: the store's data around the alerting component, ranked, stored.

:class:`RcaService` answers "why did this alert fire?" for an alert (or a time and a series):
it assembles the topology, takes the components within ``rca.max_hops`` relations of the
alerting one, reads their series from the store over ``rca.lookback_s`` up to now, resamples
them on one grid (counters become per-step increases), ranks the causes with
:func:`rca.localize` over the topology's cause→effect edges and stores the result in
``alert_rca``. :class:`RcaComponent` runs it in the agent: once per alert episode when the alert
starts firing (in its own thread, never the publisher's), and registers the annotator that gives
notifications and playbooks the top causes (kernel contract :mod:`aiops.annotations`).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from aiops.annotations import register_annotator, unregister_annotator
from aiops.bus import ALERTS
from aiops.errors import AiopsError, InputError
from aiops.logs import get_logger
from aiops.model import Alert, AlertState, Series, parse_selector, parse_series
from aiops.protocols import AgentContext
from rca.learn import learn_relations
from rca.localize import RcaParams, localize
from rca.model import RcaCase, RcaResult
from rca.settings import RcaSettings, TopologySettings
from rca.tables import cause_records, read_alert_rca, save_alert_rca
from rca.topology import Relation, Topology
from rca.topology_sources import assemble, component_of, metric_of

__all__ = ["RcaService", "RcaComponent", "format_causes"]

log = get_logger("rca.live")
_COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")
MAX_SERIES = 400  # candidate series read per localisation: bounds the time of one run
MAX_POINTS = 4000  # grid points per series: a longer span gets a coarser step


class RcaService:
    """Localise alerts over the store's data.

    Args:
        settings: the ``rca`` section.
        topology: the ``topology`` section.
        store: the time-series store (``select`` and ``read``).
        state: the state DB (``alert_rca``), or ``None`` to store nothing.
        api_client: Kubernetes ``ApiClient`` for the topology, when ``topology.kubernetes``.
        clock: seconds since the epoch.
    """

    def __init__(self, settings: RcaSettings, topology: TopologySettings, store: Any, state: Any = None,
                 api_client: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.settings, self.topology_settings = settings, topology
        self.store, self.state, self.api_client, self.clock = store, state, api_client, clock
        self._topo: tuple[float, Topology] | None = None
        self._lock = threading.Lock()

    def topology(self, max_age_s: float = 30.0) -> Topology:
        """The assembled topology, rebuilt when older than ``max_age_s``."""
        now = self.clock()
        with self._lock:
            if self._topo is None or now - self._topo[0] > max_age_s:
                self._topo = (now, assemble(self.topology_settings, self.store.select([]), self.api_client))
            return self._topo[1]

    def symptom_of(self, alert: Alert) -> Series:
        """The alerting series: the ``series`` annotation, else the stored series its labels match."""
        text = alert.annotation_dict.get("series", "")
        if text:
            try:
                return parse_series(text)
            except AiopsError:
                pass
        lab = {k: v for k, v in alert.labels if k not in ("alertname", "severity")}
        sel = "{" + ",".join(f'{k}="{v}"' for k, v in sorted(lab.items())) + "}"
        found = self.store.select(parse_selector(sel)) if lab else []
        if not found:
            raise InputError(f"alert {alert.fingerprint}: no stored series matches its labels {sel}")
        return found[0]  # type: ignore[no-any-return]

    def localize_series(self, symptom: Series, at_ms: int, end_ms: int | None = None) -> tuple[RcaResult, Topology]:
        """Rank the causes of ``symptom``'s anomaly around ``at_ms`` with data up to ``end_ms`` (now)."""
        s = self.settings
        now = int(self.clock() * 1000)
        end = min(now if end_ms is None else end_ms, at_ms + int(s.window_s * 1000))
        start = at_ms - int(s.lookback_s * 1000)
        topo = self.topology()
        comp, _ = component_of(symptom)
        learn = self.topology_settings.learn
        near = topo.neighbourhood(comp.id, s.max_hops) | {comp.id}
        pool = sorted(near)
        if learn.enabled:  # learned edges may connect components no source relates: test the nearest others too
            hops = topo.distances(comp.id)
            others = sorted((c for c in topo.metrics if c not in near), key=lambda c: (hops.get(c, 1_000), c))
            pool += others[:max(0, learn.max_components - len(pool))]
        chosen: dict[str, Series] = {f"{comp.id}:{metric_of(symptom)}": symptom}
        for c in pool:
            for metric, series in sorted(topo.metrics.get(c, {}).items()):
                if len(chosen) >= MAX_SERIES:
                    break
                chosen.setdefault(f"{c}:{metric}", series)
        names, columns = self._read_columns(chosen.items(), start, end, min_points=1)
        symptom_name = f"{comp.id}:{metric_of(symptom)}"
        if symptom_name not in names:
            raise InputError(f"series {symptom.key}: no samples between {start} and {end}")
        grid = _grid(columns, start, end, s.step_s)
        if len(grid) < 8:
            raise InputError(f"series {symptom.key}: only {len(grid)} points between {start} and {end}")
        values = np.column_stack([_resample(ts, v, grid, counter) for ts, v, counter in columns])
        if learn.enabled:
            topo = topo.with_relations(self.learned(names, values, comp.id, topo))
            near = topo.neighbourhood(comp.id, s.max_hops) | {comp.id}
            keep = [i for i, n in enumerate(names) if n.partition(":")[0] in near]
            names, values = [names[i] for i in keep], values[:, keep]
        case = RcaCase(grid, values, tuple(names), alert_ms=min(max(at_ms, int(grid[0])), int(grid[-1])),
                       symptom=symptom_name, end_ms=end)
        lookback = max(1, int(np.searchsorted(grid, at_ms)) // 2)
        params = RcaParams(train_points=len(grid), window_points=len(grid), timeout_s=s.timeout_s,
                           min_train_points=5, onset_lookback_points=min(60, lookback))
        return localize(case, topo.causal_graph(), params), topo

    def learned(self, names: Sequence[str], values: np.ndarray, near: str, topo: Topology) -> list[Relation]:
        """Learned relations between the components of ``names`` (columns of ``values``), new ones only.

        At most ``topology.learn.max_components`` components take part, the nearest to ``near``
        (the alerting one) first.
        """
        cfg = self.topology_settings.learn
        by_comp: dict[str, dict[str, np.ndarray]] = {}
        for i, name in enumerate(names):
            c, _, metric = name.partition(":")
            by_comp.setdefault(c, {})[metric] = values[:, i]
        hops = topo.distances(near)
        keep = sorted(by_comp, key=lambda c: (hops.get(c, 1_000), c))[:cfg.max_components]
        known = {frozenset(r.causal()) for r in topo.relations}
        found = learn_relations({c: by_comp[c] for c in keep}, max_lag=cfg.max_lag, alpha=cfg.alpha,
                                max_metrics=cfg.max_metrics)
        return [r for r in found if frozenset((r.src, r.dst)) not in known]

    def learn_topology(self, start_ms: int, end_ms: int) -> Topology:
        """The topology plus edges learned from every component's stored series in ``[start_ms, end_ms]``."""
        topo = self.topology(max_age_s=0)
        chosen = [(f"{c}:{m}", series) for c in sorted(topo.metrics) for m, series in sorted(topo.metrics[c].items())]
        names, columns = self._read_columns(chosen[:MAX_SERIES], start_ms, end_ms, min_points=3)
        if not columns:
            return topo
        grid = _grid(columns, start_ms, end_ms, self.settings.step_s)
        values = np.column_stack([_resample(ts, v, grid, counter) for ts, v, counter in columns])
        hub = max(topo.components, key=lambda c: (len(topo.neighbourhood(c, 1)), c)) if topo.components else ""
        return topo.with_relations(self.learned(names, values, hub, topo))

    def _read_columns(self, chosen: Iterable[tuple[str, Series]], start_ms: int, end_ms: int,
                      min_points: int) -> tuple[list[str], list[tuple[Any, Any, bool]]]:
        """Names and ``(ts, values, is_counter)`` of the ``chosen`` series with at least ``min_points``
        samples in ``[start_ms, end_ms]``."""
        names, columns = [], []
        for name, series in chosen:
            data = self.store.read(series, start_ms, end_ms)
            if len(data) >= min_points:
                names.append(name)
                columns.append((data.ts_ms, data.values, series.name.endswith(_COUNTER_SUFFIXES)))
        return names, columns

    @staticmethod
    def records(result: RcaResult, topo: Topology, limit: int = 20) -> list[dict[str, Any]]:
        """The stored form of the best causes, each with the workload (Deployment/StatefulSet) it rolls up to."""
        workloads = {c.component: topo.owner_workload(c.component) for c in result.causes[:limit]}
        return cause_records(result, workloads, limit)

    def analyze(self, alert: Alert) -> dict[str, Any]:
        """Localise ``alert``, store the result in ``alert_rca`` and return the stored record."""
        started = self.clock()
        fp, starts = str(alert.fingerprint), int(alert.starts_at_ms or started * 1000)
        try:
            result, topo = self.localize_series(self.symptom_of(alert), starts)
        except AiopsError as exc:
            log.warning("rca_failed", fingerprint=fp, error=str(exc)[:200])
            record = {"fingerprint": fp, "starts_at_ms": starts, "symptom": "", "causes": [], "error": str(exc)}
            if self.state is not None:
                save_alert_rca(self.state, fp, starts, int(self.clock() * 1000), "", [], None,
                               self.clock() - started, str(exc)[:500])
            return record
        causes = self.records(result, topo)
        if self.state is not None:
            save_alert_rca(self.state, fp, starts, int(self.clock() * 1000), result.symptom, causes,
                           result.onset_ms, result.duration_s)
        log.info("rca_ranked", fingerprint=fp, duration_s=round(result.duration_s, 3),
                 top=causes[0]["component"] if causes else "")
        return {"fingerprint": fp, "starts_at_ms": starts, "symptom": result.symptom, "causes": causes,
                "onset_ms": result.onset_ms, "error": None}

    def annotations(self, alert: Alert) -> dict[str, str]:
        """The annotator: the stored (or, if none yet, freshly computed) top causes as strings."""
        if alert.state is not AlertState.FIRING:
            return {}
        rec = read_alert_rca(self.state, str(alert.fingerprint), alert.starts_at_ms) if self.state else None
        if rec is None:
            rec = self.analyze(alert)
        return annotations_of(rec.get("causes") or [], self.settings.top_k)


def annotations_of(causes: Sequence[Mapping[str, Any]], top_k: int = 3) -> dict[str, str]:
    """``rca`` (the message line) and ``rca_top_*`` values from stored causes."""
    if not causes:
        return {}
    top = causes[0]
    workload = str(top.get("workload") or top["component"])
    parts = workload.split("/")
    kind, namespace, name = (parts[0], parts[1], "/".join(parts[2:])) if len(parts) > 2 else \
        (parts[0], "", parts[-1])
    return {
        "rca": format_causes(causes, top_k),
        "rca_top_component": str(top["component"]),
        "rca_top_metric": str(top["metric"]),
        "rca_top_workload": workload,
        "rca_top_kind": kind,
        "rca_top_namespace": namespace,
        "rca_top_name": name,
        "rca_top_score": f"{float(top['score']):.3g}",
    }


def format_causes(causes: Sequence[Mapping[str, Any]], top_k: int = 3) -> str:
    """``Likely causes: 1. deployment/inference/llm: inference_offered_load_rps (z 9.1); 2. ...``."""
    parts = []
    for i, c in enumerate(causes[:top_k], 1):
        where = str(c["component"])
        if c.get("workload") and c["workload"] != where:
            where = f"{c['workload']} ({where})"
        parts.append(f"{i}. {where}: {c['metric']} (z {float(c['z']):.1f})")
    return "Likely causes: " + "; ".join(parts)


def _grid(columns: list[tuple[Any, Any, bool]], start: int, end: int, step_s: float) -> Any:
    if step_s > 0:
        step = int(step_s * 1000)
    else:
        # the symptom's own scrape interval (columns[0]): series sampled on change are sparser
        ts0 = columns[0][0]
        step = int(max(float(np.median(np.diff(ts0))), 1.0)) if len(ts0) > 2 else 60_000
    first = max(start, min(int(ts[0]) for ts, _, _ in columns))
    step = max(step, (end - first) // MAX_POINTS + 1)
    return np.arange(first, end + 1, step, dtype=np.int64)


def _resample(ts: Any, values: Any, grid: Any, counter: bool) -> Any:
    """The last sample at or before each grid point (NaN before the first); counters as increases."""
    idx = np.searchsorted(ts, grid, side="right") - 1
    out = np.where(idx >= 0, values[np.clip(idx, 0, None)], np.nan).astype(np.float64)
    if counter:
        inc = np.diff(out, prepend=np.nan)
        inc[inc < 0] = np.nan  # a reset
        return inc
    return out


class RcaComponent:
    """The agent part: localise every alert that starts firing, once per episode, off the bus thread."""

    name = "rca"

    def __init__(self, settings: RcaSettings, topology: TopologySettings, api_client: Any = None) -> None:
        self.settings, self.topology_settings, self.api_client = settings, topology, api_client
        self.service: RcaService | None = None
        self._queue: queue.Queue[Alert | None] = queue.Queue(maxsize=1000)
        self._thread: threading.Thread | None = None
        self._seen: set[tuple[str, int]] = set()

    def start(self, ctx: AgentContext) -> None:
        ctx.state.create_all()  # alert_rca, whatever was imported when the agent created the others
        self.service = RcaService(self.settings, self.topology_settings, ctx.store, ctx.state, self.api_client)
        ctx.bus.subscribe(ALERTS, self._on_alerts)
        register_annotator(self.service.annotations)
        self._thread = threading.Thread(target=self._run, name="rca", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self.service is not None:
            unregister_annotator(self.service.annotations)
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)

    def _on_alerts(self, alerts: Sequence[Alert]) -> None:
        for a in alerts:
            key = (str(a.fingerprint), a.starts_at_ms)
            if a.state is AlertState.FIRING and key not in self._seen:
                self._seen.add(key)
                try:
                    self._queue.put_nowait(a)
                except queue.Full:
                    log.warning("rca_skipped", fingerprint=str(a.fingerprint), error="queue full")

    def _run(self) -> None:
        while True:
            a = self._queue.get()
            if a is None or self.service is None:
                return
            try:
                self.service.analyze(a)
            except Exception as exc:  # a failure costs this alert's RCA, never the agent
                log.exception("rca_failed", fingerprint=str(a.fingerprint), error=str(exc)[:200])
