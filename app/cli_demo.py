"""``aiops demo``: the closed loop on one laptop, nothing to install.

It starts, all on 127.0.0.1: a fake Kubernetes API server (:class:`app.testing.FakeKubernetes`)
with a Deployment ``inference/llm`` of 2 replicas; the simulated GPU inference service
(:mod:`app.sim`) reading that Deployment's ready replicas; and the agent (scrape
collector on the service's ``/metrics``, a threshold rule on p99 latency, an over-provisioning
rule on utilisation, and two playbooks scaling the Deployment out and back in). Then it
drives the load and prints what happens:

    load spike -> latency rises -> alert fires -> playbook scales the Deployment out ->
    pods ready -> latency recovers -> alert resolves -> load back to baseline ->
    over-provisioned -> scale-in after a cooldown -> back at 2 replicas

Like the rest of ``app/cli*.py`` this module wires packages together; nothing imports it.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aiops.bus import ALERTS
from aiops.model import ActionRun, Alert

__all__ = ["DemoTimings", "FAST", "NORMAL", "DemoResult", "run_demo", "MILESTONES"]

NAMESPACE, DEPLOYMENT = "inference", "llm"
BASELINE_RPS, SPIKE_RPS, CAPACITY_RPS = 15.0, 45.0, 10.0
BASE_REPLICAS, MAX_REPLICAS = 2, 8
LATENCY_SLO_S = 1.0

# The story, in the order it must happen; run_demo returns when the last one is seen.
VLLM_PACK = Path(__file__).resolve().parents[1] / "deploy" / "rules" / "vllm.yaml"
"""The vLLM rule pack of a source checkout (absent from a wheel: the demo then runs without it)."""

MILESTONES = ("load_spike", "latency_high", "alert_firing", "scaled_out", "latency_recovered", "alert_resolved",
              "load_baseline", "scale_in_firing", "scaled_in", "back_to_baseline", "scale_in_resolved")


@dataclass(frozen=True, slots=True)
class DemoTimings:
    """How fast the story runs (seconds)."""

    interval_s: float  # scrape and rule evaluation interval
    for_s: float  # how long a rule must hold before its alert fires
    spike_after_s: float  # baseline traffic this long before the spike
    hold_s: float  # traffic stays high this long after the alert resolved
    cooldown_s: float  # the scale-in step waits this long
    pod_ready_delay_s: float  # new pods become Ready after this long
    timeout_s: float  # give up if the story has not ended by then


FAST = DemoTimings(interval_s=0.5, for_s=1.0, spike_after_s=3.0, hold_s=2.0, cooldown_s=3.0,
                   pod_ready_delay_s=0.5, timeout_s=75.0)
NORMAL = DemoTimings(interval_s=1.0, for_s=5.0, spike_after_s=10.0, hold_s=8.0, cooldown_s=15.0,
                     pod_ready_delay_s=2.0, timeout_s=240.0)


@dataclass(slots=True)
class DemoResult:
    """What was seen: each milestone's time since start (seconds), the printed lines."""

    reached: dict[str, float] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(m in self.reached for m in MILESTONES)

    @property
    def missing(self) -> list[str]:
        return [m for m in MILESTONES if m not in self.reached]


def demo_config(workdir: Path, kubeconfig: Path, metrics_url: str, t: DemoTimings) -> dict[str, Any]:
    """The agent's configuration (written to ``workdir/aiops-demo.yaml`` for the curious)."""
    sel = f'{{namespace="{NAMESPACE}",deployment="{DEPLOYMENT}"}}'
    scale = {"kind": "Deployment", "name": "{{ $labels.deployment }}", "namespace": "{{ $labels.namespace }}",
             "min_replicas": BASE_REPLICAS, "max_replicas": MAX_REPLICAS}
    playbooks = [
        {"name": "scale-out-inference",
         "description": "p99 latency above the SLO: quadruple the replicas, then verify latency recovers.",
         "trigger": {"match": {"alertname": "InferenceLatencyHigh"}},
         "steps": [{"action": "k8s_scale", "params": {**scale, "replicas": "x4"},
                    "verify": {"query": f"inference_latency_p99_seconds{sel}", "below": LATENCY_SLO_S,
                               "within_s": 60, "poll_s": t.interval_s}}],
         "guards": {"cooldown_s": 4 * t.cooldown_s, "max_replicas_change": MAX_REPLICAS - BASE_REPLICAS,
                    "namespaces": [NAMESPACE]}},
        {"name": "scale-in-inference",
         "description": "Over-provisioned: after a cooldown, return to the baseline replicas.",
         "trigger": {"match": {"alertname": "InferenceOverProvisioned"}},
         "steps": [{"action": "k8s_scale", "delay_s": t.cooldown_s,
                    "params": {**scale, "replicas": str(BASE_REPLICAS)}}],
         "guards": {"cooldown_s": 4 * t.cooldown_s, "namespaces": [NAMESPACE]}},
    ]
    pb_dir = workdir / "playbooks"
    pb_dir.mkdir(parents=True, exist_ok=True)
    for pb in playbooks:
        (pb_dir / f"{pb['name']}.yaml").write_text(yaml.safe_dump(pb, sort_keys=False), encoding="utf-8")
    return {
        "agent": {"listen_port": 0, "log_level": "WARNING", "instance": "demo"},
        "store": {"path": str(workdir / "aiops.db")},
        "collect": {"host": {"enabled": False}, "gpu": {"enabled": False},
                    "scrape": [{"url": metrics_url, "job": "inference", "interval_s": t.interval_s,
                                "timeout_s": 2.0, "jitter_s": 0.0, "preset": ["vllm"]}],
                    # kube-state-metrics-style series of the fake cluster, through list + watch
                    "kubernetes": {"enabled": True, "kubeconfig": str(kubeconfig), "namespaces": [NAMESPACE],
                                   "interval_s": t.interval_s, "jitter_s": 0.0, "watch_timeout_s": 30}},
        "alerting": {
            "evaluation_interval_s": t.interval_s,
            # the vLLM rule pack as shipped (the simulated service also speaks vLLM's metric names)
            "rule_files": [str(VLLM_PACK)] if VLLM_PACK.is_file() else [],
            "rules": [
                {"alert": "InferenceLatencyHigh", "expr": f"inference_latency_p99_seconds{sel}", "op": ">",
                 "threshold": LATENCY_SLO_S, "for": t.for_s, "labels": {"severity": "page"},
                 "annotations": {"summary": 'p99 latency {{ $value | printf "%.2f" }}s above the 1s SLO'}},
                {"alert": "InferenceOverProvisioned", "expr": f"inference_utilization_ratio{sel}", "op": "<",
                 "threshold": 0.4, "for": t.for_s, "labels": {"severity": "info"},
                 "annotations": {"summary": "utilisation {{ $value | humanizePercentage }} below 40%"}},
            ],
        },
        # root causes of each firing alert over the cluster's topology and the scraped series
        "topology": {"kubernetes": True, "kubeconfig": str(kubeconfig), "namespaces": [NAMESPACE]},
        "rca": {"enabled": True, "lookback_s": 600, "window_s": 60, "max_hops": 3},
        "remediation": {"playbooks": [str(pb_dir)], "kubeconfig": str(kubeconfig),
                        "request_timeout_s": 5.0, "sweep_interval_s": t.interval_s},
    }


def _alert_text(a: Alert, name: str, value: str) -> str:
    """``Name (severity): summary`` when firing; ``Name after 1.8s (last value 0.83)`` when it ends."""
    severity = a.label_dict.get("severity", "")
    head = f"{name} ({severity})" if severity else name
    if a.state.value == "firing" and a.annotation_dict.get("summary"):
        return f"{head}: {a.annotation_dict['summary']}"
    if a.ends_at_ms and a.starts_at_ms:
        return f"{head} after {(a.ends_at_ms - a.starts_at_ms) / 1000:.1f}s (last value {value})"
    return f"{head} (value {value})"


class _Story:
    """Collects what happens, prints it in order, and drives the load."""

    def __init__(self, emit: Callable[[str], None], sim: Any, fake: Any, runs: Any, t: DemoTimings) -> None:
        self.emit, self.sim, self.fake, self.t = emit, sim, fake, t
        self.result = DemoResult()
        self.started = time.monotonic()
        self.inbox: queue.Queue[Alert] = queue.Queue()
        self.runs = runs
        self.run_status: dict[str, str] = {}
        self.seen_events: set[str] = set()
        self.ready = BASE_REPLICAS
        self.resolved_at: float | None = None
        self.state: Any = None  # the agent's state DB: the stored root causes are read from it
        self.rca_pending: dict[str, tuple[str, int]] = {}  # fingerprint -> (alert name, startsAt)

    def now(self) -> float:
        return time.monotonic() - self.started

    def say(self, what: str, text: str, milestone: str | None = None) -> None:
        line = f"+{self.now():6.1f}s  {what:<16} {text}"
        self.result.lines.append(line)
        self.emit(line)
        if milestone and milestone not in self.result.reached:
            self.result.reached[milestone] = self.now()

    def on_alerts(self, alerts: Sequence[Alert]) -> None:
        for a in alerts:
            self.inbox.put(a)

    def poll_runs(self) -> None:
        """Print each action run's status changes (the executor writes them to the state DB)."""
        for run in reversed(self.runs.list(limit=50)):
            if self.run_status.get(run.id) != run.status.value:
                self.run_status[run.id] = run.status.value
                self._action(run.as_action_run())

    def _alert(self, a: Alert) -> None:
        name = a.label_dict.get("alertname", "?")
        value = f"{a.value:.2f}" if a.value is not None else "-"
        state = a.state.value
        if name == "InferenceLatencyHigh":
            ms = "alert_firing" if state == "firing" else "alert_resolved" if state == "resolved" else None
        elif name == "InferenceOverProvisioned" and "load_baseline" in self.result.reached:
            ms = "scale_in_firing" if state == "firing" else "scale_in_resolved" if state == "resolved" else None
        else:
            ms = None
        if state == "resolved":
            # The agent saw it through a scrape; make sure what caused it is told first.
            self._observe()
            if ms == "alert_resolved" and "latency_recovered" not in self.result.reached \
                    and "scaled_out" in self.result.reached and a.value is not None:
                self._recovered(a.value, " (as scraped)")
        self.say(f"ALERT {state.upper()}", _alert_text(a, name, value), ms)
        if state == "firing" and name == "InferenceLatencyHigh":
            self.rca_pending[str(a.fingerprint)] = (name, a.starts_at_ms)
        if ms == "alert_resolved":
            self.resolved_at = self.now()

    def _poll_rca(self) -> None:
        """Print the ranked root causes once the agent's rca component has stored them."""
        if self.state is None:
            return
        from rca.live import format_causes
        from rca.tables import read_alert_rca

        for fp, (name, starts) in list(self.rca_pending.items()):
            rec = read_alert_rca(self.state, fp, starts)
            if rec is None:
                continue
            del self.rca_pending[fp]
            text = format_causes(rec["causes"]) if rec["causes"] else f"no ranking ({rec['error']})"
            self.say("RCA", f"{name}: {text}", "rca_ranked")

    def _action(self, r: ActionRun) -> None:
        res = dict(r.result or {})
        detail = r.error or (f"(replicas {res['from']} -> {res['replicas']})" if {"from", "replicas"} <= res.keys()
                             else json.dumps(res) if res else "")
        if r.status.value == "queued" and r.extra.get("delay_s"):
            detail = f"(starts in {float(r.extra['delay_s']):g}s: the step's delay_s)"
        replicas = dict(r.params).get("replicas", "")
        self.say("PLAYBOOK", f"{r.playbook}: {r.action}{f' replicas={replicas}' if replicas != '' else ''} -> "
                 f"{r.status.value} {detail}".rstrip())

    def step(self) -> None:
        """One pass: alerts, action runs, the cluster and the service; then drive the load."""
        while True:
            try:
                self._alert(self.inbox.get_nowait())
            except queue.Empty:
                break
        self.poll_runs()
        self._poll_rca()
        self._observe()
        reached = self.result.reached
        if "load_spike" not in reached and self.now() >= self.t.spike_after_s:
            self.sim.set_load(SPIKE_RPS)
            self.say("LOAD", f"spike: {BASELINE_RPS:.0f} -> {SPIKE_RPS:.0f} rps "
                     f"(capacity {self.ready * CAPACITY_RPS:.0f} rps)", "load_spike")
        calm_since = self.resolved_at
        if calm_since is not None and "load_baseline" not in reached and self.now() >= calm_since + self.t.hold_s:
            self.sim.set_load(BASELINE_RPS)
            self.say("LOAD", f"back to baseline: {SPIKE_RPS:.0f} -> {BASELINE_RPS:.0f} rps", "load_baseline")

    def _observe(self) -> None:
        """Scaling events of the Deployment, then the service's replicas and latency."""
        reached = self.result.reached
        for ev in self.fake.events(NAMESPACE, DEPLOYMENT):
            if ev["metadata"]["name"] in self.seen_events or ev["reason"] != "ScalingReplicaSet":
                continue
            self.seen_events.add(ev["metadata"]["name"])
            if "from" in ev["message"]:
                up = "Scaled up" in ev["message"]
                ms = "scaled_out" if up else ("scaled_in" if "load_baseline" in reached else None)
                self.say("KUBERNETES", ev["message"], ms)
        snap = self.sim.snapshot()
        if snap["ready_replicas"] != self.ready:
            self.ready = snap["ready_replicas"]
            self.say("SERVICE", f"ready replicas now {self.ready} (p99 {snap['p99_latency_s']:.2f}s)")
            if self.ready == BASE_REPLICAS and "scaled_in" in reached:
                self.say("DONE", f"back to {BASE_REPLICAS} replicas at baseline load", "back_to_baseline")
        p99 = snap["p99_latency_s"]
        if "load_spike" in reached and "latency_high" not in reached and p99 > LATENCY_SLO_S:
            self.say("SERVICE", f"p99 latency {p99:.2f}s > {LATENCY_SLO_S:.0f}s SLO, {snap['queue']:.0f} requests "
                     "queued", "latency_high")
        if "scaled_out" in reached and "latency_recovered" not in reached and p99 < LATENCY_SLO_S:
            self._recovered(p99, f", {snap['queue']:.0f} requests queued")

    def _recovered(self, p99: float, extra: str = "") -> None:
        # cut, not rounded: 0.997s is under the 1s SLO and must not print as "1.00s"
        self.say("SERVICE", f"p99 latency back under the SLO: {math.floor(p99 * 100) / 100:.2f}s{extra}",
                 "latency_recovered")


def merge_config(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``overlay`` over ``base``: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for k, v in overlay.items():
        out[k] = merge_config(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def run_demo(workdir: Path, timings: DemoTimings = NORMAL, emit: Callable[[str], None] = print,
             overlay: dict[str, Any] | None = None) -> DemoResult:
    """Run the closed loop once; returns when the story ends or ``timings.timeout_s`` passed."""
    from aiops.logs import configure_logging

    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "demo.log"
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        with open(log_path, "a", encoding="utf-8") as log_file:
            configure_logging("INFO", stream=log_file)  # the terminal shows the timeline, the file the logs
            result = _run(workdir, timings, emit, log_path, overlay or {})
    finally:
        root.handlers, _ = saved
        root.setLevel(saved[1])
    if not result.complete:
        emit(f"demo incomplete after {timings.timeout_s:.0f}s: never saw {', '.join(result.missing)} "
             f"(see {log_path})")
    return result


def _run(workdir: Path, timings: DemoTimings, emit: Callable[[str], None], log_path: Path,
         overlay: dict[str, Any]) -> DemoResult:
    from app.agent import Agent
    from app.settings import load_settings
    from app.sim import InferenceSim, SimParams
    from app.testing import FakeKubernetes
    from app.wiring import build_collectors, build_components
    from remediation import RunStore

    with FakeKubernetes(timings.pod_ready_delay_s) as fake:
        for i in range(3):
            fake.add_node(f"gpu-node-{i}", labels={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, gpus=4)
        fake.add_deployment(NAMESPACE, DEPLOYMENT, replicas=BASE_REPLICAS, labels={"app": DEPLOYMENT})
        fake.wait_ready(NAMESPACE, DEPLOYMENT, BASE_REPLICAS, timeout_s=30)
        params = SimParams(capacity_rps=CAPACITY_RPS, base_latency_s=0.08, max_queue_s=3.0, noise_ratio=0.02)
        with InferenceSim(fake.api_client(), NAMESPACE, DEPLOYMENT, base_rps=BASELINE_RPS, params=params,
                          poll_interval_s=min(timings.interval_s, 1.0)) as sim:
            config = merge_config(demo_config(workdir, fake.kubeconfig_path, f"{sim.url}/metrics", timings), overlay)
            config_path = workdir / "aiops-demo.yaml"
            config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
            settings = load_settings(config_path)
            agent = Agent(settings, build_collectors(settings), build_components(settings))
            story = _Story(emit, sim, fake, RunStore(agent.state), timings)
            story.state = agent.state
            agent.bus.subscribe(ALERTS, story.on_alerts)
            emit(f"cluster {fake.url} (fake), Deployment {NAMESPACE}/{DEPLOYMENT} x{BASE_REPLICAS}; "
                 f"service {sim.url}/metrics; config {config_path}; logs {log_path}")
            agent.start()
            try:
                story.say("AGENT", f"started: scrape every {timings.interval_s}s, p99 SLO {LATENCY_SLO_S:.0f}s, "
                          f"baseline {BASELINE_RPS:.0f} rps on {BASE_REPLICAS} replicas")
                deadline = time.monotonic() + timings.timeout_s
                while not story.result.complete and time.monotonic() < deadline:
                    story.step()
                    time.sleep(0.1)
                story.step()
                _report_signals(story, agent)
            finally:
                agent.stop()
    return story.result


def _report_signals(story: _Story, agent: Any) -> None:
    """What the vLLM rule pack and the Kubernetes state collector saw during the run."""
    from aiops.model import parse_selector

    alerting = next((c for c in agent.components if c.name == "alerting"), None)
    engine = getattr(alerting, "engine", None)
    if engine is not None and VLLM_PACK.is_file():
        states: dict[str, str] = {}
        for d in engine.alerts():
            name = d["alert"].name
            if name.startswith("Vllm"):
                states[name] = d["alert"].state.value
        rules = [r for r in engine.config.rules if r.name.startswith("Vllm")]
        seen = ", ".join(f"{n} {st}" for n, st in sorted(states.items())) or "none pending or firing"
        story.say("VLLM PACK", f"{len(rules)} rules evaluated on the vllm:* series; {seen}")
    store = agent.store
    for selector, what in ((f'kube_deployment_status_replicas_available{{deployment="{DEPLOYMENT}"}}',
                            "available replicas"),
                           ('kube_pod_status_phase{phase="Running"}', "pods Running")):
        series = store.select(parse_selector(selector))
        values = [[v for v in store.read(s, 0, 2**62).values.tolist() if v == v] for s in series]
        if "phase" in selector:  # one series per pod: count the pods ever seen Running
            figure = sum(1 for vs in values if 1.0 in vs)
        else:
            figure = int(max((max(vs, default=0.0) for vs in values), default=0.0))
        story.say("KUBERNETES", f"{what}: peak {figure} (kube-state series from list + watch)")
