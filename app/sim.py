"""A simulated GPU inference service whose latency depends on the Deployment's ready replicas.

The closed loop needs a service that gets slow under load and fast again when remediation adds
replicas. :class:`InferenceSim` is that service, without a GPU: it polls the Deployment's
``status.readyReplicas`` (and its ready pods' names) through the real ``kubernetes`` client from
whatever API server its kubeconfig points to, runs a fluid queueing model, and serves
Prometheus ``/metrics``. Offered load is set at run time (``POST /load {"rps": X}``) or by a
schedule (``--schedule 0:20,30:80,90:20``: 20 rps from t=0 s, 80 rps from 30 s, 20 from 90 s).

The model, per tick of ``dt`` seconds, with ``r`` ready replicas of ``capacity_rps`` each:
capacity ``mu = r * capacity_rps``, utilisation ``rho = load / mu``; the backlog grows by
``(load - mu) * dt`` (never below 0, capped at ``max_queue_s`` seconds of load: the rest is
shed and counted as dropped); p99 latency is ``base_latency_s / (1 - min(rho, 0.99)) + queue / mu``,
capped at ``max_latency_s``, the M/M/1 ``1 / (1 - rho)`` blow-up plus the wait behind the backlog.

Run it: ``python -m app.sim --kubeconfig kc.yaml --namespace prod --deployment llm --port 9400``.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from pydantic import BaseModel, ConfigDict, Field

from aiops.errors import ConfigError, InputError
from aiops.httpapi import HttpApi, Request, Response
from aiops.kubeconfig import kube_api_client
from aiops.logs import get_logger

VLLM_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
TOKENS_PER_REQUEST = 128  # generated tokens of one simulated request

__all__ = ["SimParams", "SimState", "step", "parse_schedule", "InferenceSim", "main"]

log = get_logger("app.sim")
GIB = 1024**3


@dataclass(frozen=True, slots=True)
class SimParams:
    """Constants of the simulated service (rates in requests per second)."""

    capacity_rps: float = 10.0  # what one ready replica serves
    base_latency_s: float = 0.08  # p99 of an idle replica
    max_latency_s: float = 30.0
    max_queue_s: float = 5.0  # backlog cap, in seconds of offered load; beyond it requests are shed
    gpu_memory_base_bytes: int = 14 * GIB  # model weights
    gpu_memory_kv_bytes: int = 40 * GIB  # KV cache at full utilisation
    noise_ratio: float = 0.0  # relative jitter on latency and utilisation (seeded)


@dataclass(frozen=True, slots=True)
class SimState:
    """The model's state after a tick."""

    load_rps: float = 0.0
    ready_replicas: int = 0
    queue: float = 0.0  # requests waiting
    served_rps: float = 0.0
    dropped_rps: float = 0.0
    utilization: float = 0.0  # rho, load over capacity (may exceed 1)
    p99_latency_s: float = 0.0


def step(state: SimState, params: SimParams, load_rps: float, ready_replicas: int, dt_s: float) -> SimState:
    """Advance the queueing model by ``dt_s`` seconds.

    Examples:
        >>> p = SimParams(capacity_rps=10, base_latency_s=0.1)
        >>> s = step(SimState(), p, load_rps=10, ready_replicas=2, dt_s=1.0)
        >>> round(s.p99_latency_s, 3), s.queue
        (0.2, 0.0)
        >>> s = step(s, p, load_rps=30, ready_replicas=2, dt_s=1.0)  # overloaded: backlog builds
        >>> s.queue, s.p99_latency_s > 5
        (10.0, True)
        >>> s = step(s, p, load_rps=30, ready_replicas=6, dt_s=1.0)  # scaled out: backlog drains
        >>> s.queue, round(s.p99_latency_s, 3)
        (0.0, 0.2)
    """
    mu = max(ready_replicas, 0) * params.capacity_rps
    backlog = state.queue + (load_rps - mu) * dt_s
    cap = load_rps * params.max_queue_s
    dropped = max(backlog - cap, 0.0) / dt_s if dt_s > 0 else 0.0
    queue = min(max(backlog, 0.0), cap)
    served = min(load_rps + state.queue / dt_s, mu) if dt_s > 0 else 0.0
    if mu <= 0:
        rho, latency = (float("inf") if load_rps > 0 else 0.0), (params.max_latency_s if load_rps > 0 else 0.0)
    else:
        rho = load_rps / mu
        latency = params.base_latency_s / (1.0 - min(rho, 0.99)) + queue / mu
    return SimState(load_rps=load_rps, ready_replicas=ready_replicas, queue=queue, served_rps=served,
                    dropped_rps=dropped, utilization=rho, p99_latency_s=min(latency, params.max_latency_s))


def parse_schedule(text: str) -> list[tuple[float, float]]:
    """Parse ``"0:20,30:80,90:20"`` into sorted ``(t_s, rps)`` steps.

    Raises:
        InputError: a step is not ``seconds:rps`` with non-negative numbers.

    Examples:
        >>> parse_schedule("30:80, 0:20")
        [(0.0, 20.0), (30.0, 80.0)]
    """
    steps = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            t, rps = (float(x) for x in part.split(":"))
        except ValueError:
            raise InputError(f"--schedule: step {part!r} is not SECONDS:RPS (e.g. 30:80)") from None
        if t < 0 or rps < 0:
            raise InputError(f"--schedule: step {part!r} has a negative time or rate")
        steps.append((t, rps))
    return sorted(steps)


class LoadRequest(BaseModel):
    """Body of ``POST /load``."""

    model_config = ConfigDict(extra="forbid")
    rps: float = Field(ge=0, le=1e6, description="offered load, requests per second")


class InferenceSim:
    """The simulated service: API poller, model ticker and HTTP server (``/metrics``, ``/load``).

    Args:
        api_client: a ``kubernetes.client.ApiClient`` for the cluster running the Deployment.
        namespace, deployment: the Deployment whose ready replicas serve the load.
        port: HTTP port on ``host`` (0 picks a free one; read :attr:`port`).
        base_rps: offered load until changed; ``schedule`` overrides it over time.
        poll_interval_s: how often replicas are read from the API; ``tick_s``: model step.
    """

    def __init__(self, api_client: Any, namespace: str, deployment: str, port: int = 0, host: str = "127.0.0.1",
                 base_rps: float = 10.0, schedule: Sequence[tuple[float, float]] = (),
                 params: SimParams | None = None, poll_interval_s: float = 1.0, tick_s: float = 0.1,
                 seed: int = 0) -> None:
        from kubernetes import client

        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.namespace, self.deployment = namespace, deployment
        self.params = params or SimParams()
        self.schedule = list(schedule)
        self.poll_interval_s, self.tick_s = poll_interval_s, tick_s
        self._rng = random.Random(seed)  # nosec B311 - simulated noise
        self._lock = threading.Lock()
        self._load_rps = base_rps
        self._state = SimState(load_rps=base_rps)
        self._pods: list[str] = []
        self._served_total = 0.0
        self._dropped_total = 0.0
        self._api_errors_total = 0
        self._api_up = 0
        self._stop = threading.Event()
        self._started = time.monotonic()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._host = host
        self._server = _make_api(self, host, port)
        self._server.bind()
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> InferenceSim:
        self._started = time.monotonic()
        self.poll_once()
        self._server.start()
        for target, name in ((self._poll_loop, "sim-poll"), (self._tick_loop, "sim-tick")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        log.info("sim_started", url=self.url, namespace=self.namespace, deployment=self.deployment)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.stop()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> InferenceSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- inputs ------------------------------------------------------------------------------

    def set_load(self, rps: float) -> None:
        """Offer ``rps`` requests per second from now on (drops any remaining schedule)."""
        with self._lock:
            self._load_rps = float(rps)
            self.schedule = []

    def _scheduled_load(self) -> float:
        elapsed = time.monotonic() - self._started
        load = self._load_rps
        for t, rps in self.schedule:
            if elapsed >= t:
                load = rps
        return load

    def poll_once(self) -> None:
        """Read the Deployment's ready replicas and ready pods from the API server."""
        try:
            dep = self.apps.read_namespaced_deployment(self.deployment, self.namespace, _request_timeout=5)
            ready = int(dep.status.ready_replicas or 0) if dep.status else 0
            labels = (dep.spec.selector.match_labels or {}) if dep.spec and dep.spec.selector else {}
            selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            pods = self.core.list_namespaced_pod(self.namespace, label_selector=selector, _request_timeout=5).items
            names = sorted(str(p.metadata.name) for p in pods if p.metadata and p.status and any(
                c.type == "Ready" and c.status == "True" for c in (p.status.conditions or [])))
        except Exception as exc:  # any API or network failure: keep the last known replicas, say so
            with self._lock:
                self._api_errors_total += 1
                self._api_up = 0
            log.warning("replicas_poll_failed", deployment=f"{self.namespace}/{self.deployment}",
                        error=str(exc)[:256])
            return
        if len(names) != ready:  # pods list and status may disagree for a moment; status wins
            names = (names + [f"{self.deployment}-replica-{i}" for i in range(ready)])[:ready]
        with self._lock:
            self._api_up = 1
            self._pods = names
            self._state = replace(self._state, ready_replicas=ready)

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            self.poll_once()

    def _tick_loop(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.tick_s):
            now = time.monotonic()
            self.tick(now - last)
            last = now

    def tick(self, dt_s: float) -> SimState:
        """Advance the model by ``dt_s`` with the current load and replicas."""
        with self._lock:
            self._state = step(self._state, self.params, self._scheduled_load(), self._state.ready_replicas, dt_s)
            self._served_total += self._state.served_rps * dt_s
            self._dropped_total += self._state.dropped_rps * dt_s
            return self._state

    def snapshot(self) -> dict[str, Any]:
        """The current state as JSON-able values (``GET /state``)."""
        with self._lock:
            s = self._state
            return {"load_rps": self._scheduled_load(), "ready_replicas": s.ready_replicas, "queue": s.queue,
                    "served_rps": s.served_rps, "dropped_rps": s.dropped_rps,
                    "utilization": None if s.utilization == float("inf") else s.utilization,
                    "p99_latency_s": s.p99_latency_s, "pods": list(self._pods), "api_up": self._api_up}

    # --- /metrics (a custom collector: per-pod series vanish with their pods) ----------------

    def _vllm_metrics(self, s: Any, rho: float, served: float) -> Iterable[Metric]:
        """The same service under vLLM's metric names, so the vLLM rule pack applies as it would in production."""
        labels = ["model_name", "namespace", "deployment"]
        where = [VLLM_MODEL, self.namespace, self.deployment]
        concurrency = s.served_rps * max(s.p99_latency_s, 0.0) / 3.0  # Little's law on the mean (~p99/3)
        for kind, name, doc, value in (
            ("gauge", "vllm:num_requests_waiting", "Number of requests waiting to be processed.", s.queue),
            ("gauge", "vllm:num_requests_running", "Number of requests currently running on GPU.", concurrency),
            ("gauge", "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", min(rho * 0.97, 1.0)),
            ("counter", "vllm:generation_tokens", "Generation tokens processed.", served * TOKENS_PER_REQUEST),
        ):
            fam = _vllm_family(kind, name, doc, labels)
            fam.add_metric(where, value)
            yield fam

    def _jitter(self, value: float) -> float:
        if self.params.noise_ratio <= 0:
            return value
        return max(value * (1.0 + self._rng.gauss(0.0, self.params.noise_ratio)), 0.0)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            s, pods = self._state, list(self._pods)
            served, dropped, errors, up = self._served_total, self._dropped_total, self._api_errors_total, self._api_up
        labels = ["namespace", "deployment"]
        where = [self.namespace, self.deployment]

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=labels)
            g.add_metric(where, value)
            return g

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            c = CounterMetricFamily(name, doc, labels=labels)
            c.add_metric(where, value)
            return c

        # No ready replica under load is saturation, not idleness: never invite a scale-in then.
        rho = min(s.utilization, 1.0) if s.ready_replicas else (1.0 if s.load_rps > 0 else 0.0)
        yield gauge("inference_offered_load_rps", "Requests per second offered to the service.", s.load_rps)
        yield gauge("inference_request_rate_rps", "Requests per second served.", s.served_rps)
        yield counter("inference_requests", "Requests served.", served)
        yield counter("inference_requests_dropped", "Requests shed because the backlog was full.", dropped)
        yield gauge("inference_queue_depth", "Requests waiting for a replica.", s.queue)
        yield gauge("inference_latency_p99_seconds", "99th percentile request latency.", self._jitter(s.p99_latency_s))
        yield gauge("inference_ready_replicas", "Ready replicas serving requests (from the Kubernetes API).",
                    s.ready_replicas)
        yield gauge("inference_utilization_ratio", "Offered load over capacity, capped at 1.", rho)
        yield gauge("inference_kube_api_up", "1 when the last read of the Deployment succeeded.", up)
        yield counter("inference_kube_api_errors", "Failed reads of the Deployment.", errors)
        yield from self._vllm_metrics(s, rho, served)
        util = GaugeMetricFamily("inference_gpu_utilization_ratio", "GPU utilisation of a replica, 0 to 1.",
                                 labels=[*labels, "pod"])
        mem = GaugeMetricFamily("inference_gpu_memory_used_bytes", "GPU memory used by a replica.",
                                labels=[*labels, "pod"])
        for pod in pods:
            u = min(self._jitter(rho), 1.0)
            util.add_metric([*where, pod], u)
            mem.add_metric([*where, pod], self.params.gpu_memory_base_bytes + u * self.params.gpu_memory_kv_bytes)
        yield util
        yield mem


def _vllm_family(kind: str, name: str, doc: str, labels: list[str]) -> Any:
    return (GaugeMetricFamily if kind == "gauge" else CounterMetricFamily)(name, doc, labels=labels)


def _make_api(sim: InferenceSim, host: str, port: int) -> HttpApi:
    """``/metrics``, ``/healthz``, ``GET /state`` and ``GET|POST /load`` on the one HTTP base.

    The routes are public: the simulator is a test double on 127.0.0.1, and ``POST /load``
    changes only the simulated traffic.
    """
    api = HttpApi(host, port, registry=sim.registry, title="simulated inference service")

    def state(_req: Request) -> Response:
        """The simulation's current state."""
        return Response.json(sim.snapshot())

    def set_load(req: Request) -> Response:
        """Set the offered load (requests per second)."""
        body: LoadRequest = req.data
        sim.set_load(body.rps)
        log.info("load_changed", rps=body.rps)
        return Response.json(sim.snapshot())

    api.route("GET", "/state", state, role=None)
    api.route("GET", "/load", state, role=None)
    api.route("POST", "/load", set_load, role=None, body=LoadRequest)
    return api


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m app.sim``: run the simulated service until SIGTERM or Ctrl-C."""
    from aiops.logs import configure_logging

    ap = argparse.ArgumentParser(prog="python -m app.sim", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then ~/.kube/config)")
    ap.add_argument("--namespace", default="default", help="namespace of the Deployment")
    ap.add_argument("--deployment", required=True, help="Deployment whose ready replicas serve the load")
    ap.add_argument("--host", default="127.0.0.1", help="listen address")
    ap.add_argument("--port", type=int, default=9400, help="listen port of /metrics and /load (0: free port)")
    ap.add_argument("--base-rps", type=float, default=10.0, help="offered load, requests per second")
    ap.add_argument("--schedule", default="", help="load steps SECONDS:RPS,... e.g. 0:20,30:80,90:20")
    ap.add_argument("--capacity-rps", type=float, default=10.0, help="requests per second one replica serves")
    ap.add_argument("--base-latency-s", type=float, default=0.08, help="p99 latency of an idle replica, seconds")
    ap.add_argument("--poll-interval-s", type=float, default=1.0, help="seconds between reads of the Deployment")
    ap.add_argument("--noise", type=float, default=0.02, help="relative jitter of latency and utilisation")
    ap.add_argument("--seed", type=int, default=0, help="seed of the jitter")
    args = ap.parse_args(argv)
    configure_logging("INFO")
    try:
        schedule = parse_schedule(args.schedule)
    except InputError as exc:
        ap.error(str(exc))
    try:
        api_client = kube_api_client(args.kubeconfig)
    except ConfigError as exc:
        ap.error(str(exc))
    params = SimParams(capacity_rps=args.capacity_rps, base_latency_s=args.base_latency_s, noise_ratio=args.noise)
    sim = InferenceSim(api_client, args.namespace, args.deployment, port=args.port, host=args.host,
                       base_rps=args.base_rps, schedule=schedule, params=params,
                       poll_interval_s=args.poll_interval_s, seed=args.seed)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with sim:
        print(json.dumps({"event": "sim_listening", "url": sim.url}), flush=True)
        try:
            done.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
