"""Kubernetes state collector cost: CPU per 1,000 series rendered, and watch event throughput.

Starts the fake API server with ``--deployments`` Deployments of ``--replicas`` pods each, lets
the collector list and watch them, then times in one run:

- ``collect``: rendering the caches into kube-state-metrics-style series (CPU ms per 1,000
  series), beside the baseline of building the same number of ``Sample`` objects from a list;
- watch: how long until the collector's cache reflects ``--changes`` pod updates streamed by
  the watch (events per second).

The last line is one JSON object: ``series``, ``cpu_ms_per_1000_series``,
``baseline_ms_per_1000_series``, ``watch_events_per_s``.

    python benchmarks/kube_state.py [--deployments 50] [--replicas 10] [--changes 500]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiops.model import Sample, Series  # noqa: E402
from app.testing import FakeKubernetes  # noqa: E402
from collectors.kubernetes import KubernetesStateCollector  # noqa: E402
from collectors.kubesettings import KubernetesStateSettings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deployments", type=int, default=50)
    ap.add_argument("--replicas", type=int, default=10)
    ap.add_argument("--changes", type=int, default=500, help="pod updates streamed through the watch")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    pods = args.deployments * args.replicas
    with FakeKubernetes(pod_ready_delay_s=0.0, controller_interval_s=0.2) as fake:
        for i in range(args.deployments):
            fake.add_deployment("inference", f"svc-{i}", replicas=args.replicas)
        fake.wait_for(lambda: len(fake.pods("inference")) == pods and all(
            p["status"].get("phase") == "Running" for p in fake.pods("inference")), timeout_s=300)
        c = KubernetesStateCollector(KubernetesStateSettings(enabled=True, kubeconfig=fake.kubeconfig_path,
                                                             events=False), api_client=fake.api_client())
        try:
            c.wait_synced(60)
            n_series = len(c.collect(0))
            best = min(_cpu(lambda: c.collect(1)) for _ in range(args.repeats))
            base = min(_cpu(lambda: [Sample(Series.of("kube_x", {"namespace": "inference", "pod": f"p{j}",
                                                                  "phase": "Running"}), 1, 1.0)
                                     for j in range(n_series)]) for _ in range(args.repeats))
            names = [p["metadata"]["name"] for p in fake.pods("inference")]
            t0 = time.monotonic()
            for j in range(args.changes):
                fake.oom_kill("inference", names[j % len(names)], waiting_reason=None)
            pods_inf = next(i for i in c.informers if i.name.startswith("pods"))

            def restarts() -> int:
                return sum(int(cs.restart_count or 0) for p in pods_inf.snapshot()
                           for cs in (p.status.container_statuses or []))

            while restarts() < args.changes and time.monotonic() - t0 < 120:
                time.sleep(0.01)
            watch_s = time.monotonic() - t0
        finally:
            c.close()
    per_k = best / n_series * 1000 * 1000
    base_k = base / n_series * 1000 * 1000
    print(f"{pods} pods, {n_series} series")
    print(f"{'collect (render caches)':32s} {per_k:8.2f} ms CPU per 1,000 series")
    print(f"{'baseline: build Sample objects':32s} {base_k:8.2f} ms CPU per 1,000 series")
    print(f"{'watch: pod updates reflected':32s} {args.changes / watch_s:8.0f} events/s")
    print(json.dumps({"series": n_series, "cpu_ms_per_1000_series": round(per_k, 2),
                      "baseline_ms_per_1000_series": round(base_k, 2),
                      "watch_events_per_s": round(args.changes / watch_s)}))


def _cpu(fn: object) -> float:
    t0 = time.process_time()
    fn()  # type: ignore[operator]
    return time.process_time() - t0


if __name__ == "__main__":
    main()
