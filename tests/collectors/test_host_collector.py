"""The host collector against this machine's real psutil."""

from __future__ import annotations

import math
import time
from collections import defaultdict

import psutil

from aiops.protocols import Collector
from collectors import HostCollector, build_collectors
from collectors.settings import CollectSettings, HostCollectorSettings


def _by_name(samples):
    out = defaultdict(list)
    for s in samples:
        out[s.series.name].append(s)
    return out


def test_host_collector_is_a_collector_with_instance_on_every_series() -> None:
    c = HostCollector(HostCollectorSettings(interval_s=7, timeout_s=3, jitter_s=0.1), instance="node-a")
    assert isinstance(c, Collector)
    assert (c.name, c.target, c.interval_s, c.timeout_s, c.jitter_s) == ("host", "node-a", 7, 3, 0.1)
    samples = c.collect(123)
    assert samples
    assert all(s.ts_ms == 123 for s in samples)
    assert all(s.series.get("instance") == "node-a" for s in samples)
    assert all(s.series.name.startswith("aiops_host_") for s in samples)
    c.close()


def test_host_collector_exports_each_family() -> None:
    c = HostCollector(HostCollectorSettings())
    time.sleep(0.05)
    by = _by_name(c.collect(1000))
    for name in ("aiops_host_load1", "aiops_host_load5", "aiops_host_load15", "aiops_host_memory_total_bytes",
                 "aiops_host_memory_available_bytes", "aiops_host_memory_used_bytes", "aiops_host_swap_total_bytes",
                 "aiops_host_swap_used_bytes", "aiops_host_processes", "aiops_host_network_receive_bytes_total",
                 "aiops_host_network_transmit_errors_total", "aiops_host_filesystem_size_bytes",
                 "aiops_host_cpu_count"):
        assert name in by, name
    [total] = by["aiops_host_memory_total_bytes"]
    assert total.value == float(psutil.virtual_memory().total)
    # the loopback interface exists everywhere we run
    assert "lo" in {s.series.get("device") for s in by["aiops_host_network_receive_bytes_total"]}
    # the root filesystem is there; pseudo filesystems are not
    fs = by["aiops_host_filesystem_size_bytes"]
    assert "/" in {s.series.get("mountpoint") for s in fs}
    assert not {"proc", "sysfs", "tmpfs", "cgroup2", "devpts"} & {s.series.get("fstype") for s in fs}
    assert not any(s.series.get("mountpoint").startswith(("/proc", "/sys")) for s in fs)
    [procs] = by["aiops_host_processes"]
    assert procs.value > 1


def test_cpu_utilisation_ratios_sum_to_one_per_cpu() -> None:
    c = HostCollector(HostCollectorSettings(per_cpu=True))
    c.collect(0)
    # burn a little CPU so that at least one tick passes between the readings
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        sum(i * i for i in range(1000))
    by_cpu: dict[str, float] = defaultdict(float)
    modes = set()
    for s in c.collect(1):
        if s.series.name == "aiops_host_cpu_utilisation_ratio":
            assert 0.0 <= s.value <= 1.0
            by_cpu[s.series.get("cpu")] += s.value
            modes.add(s.series.get("mode"))
    assert "total" in by_cpu
    assert {"user", "system", "idle"} <= modes
    for cpu, total in by_cpu.items():
        assert math.isclose(total, 1.0, abs_tol=1e-6), cpu
    assert set(by_cpu) - {"total"} <= {str(i) for i in range(psutil.cpu_count() or 1)}


def test_per_cpu_off_exports_only_total() -> None:
    c = HostCollector(HostCollectorSettings(per_cpu=False))
    c.collect(0)
    time.sleep(0.2)
    cpus = {s.series.get("cpu") for s in c.collect(1) if s.series.name == "aiops_host_cpu_utilisation_ratio"}
    assert cpus <= {"total"}


class _BrokenPsutil:
    """psutil whose network part fails: the other parts still report."""

    def __getattr__(self, name):
        if name == "net_io_counters":
            def fail(**_kw):
                raise OSError("no /proc/net/dev")
            return fail
        return getattr(psutil, name)


def test_one_failing_part_does_not_sink_the_collection() -> None:
    c = HostCollector(HostCollectorSettings(), psutil_module=_BrokenPsutil())
    names = {s.series.name for s in c.collect(0)}
    assert "aiops_host_load1" in names
    assert not any(n.startswith("aiops_host_network_") for n in names)


def test_build_collectors_honours_enabled_flags() -> None:
    on = build_collectors(CollectSettings(), instance="x")
    assert [c.name for c in on] == ["host", "gpu"]
    assert [c.target for c in on] == ["x", "x"]
    every = build_collectors(CollectSettings.model_validate({
        "scrape": [{"url": "http://a:9100/metrics"}, {"url": "https://b/metrics", "job": "b"}],
        "probe": [{"url": "https://c/healthz"}],
        "prometheus": [{"url": "http://prom:9090", "queries": ["up"]}],
    }))
    assert [(c.name, c.target) for c in every][2:] == [
        ("scrape", "a:9100"), ("scrape", "b:443"), ("probe", "https://c/healthz"), ("prometheus", "prom:9090")]
    assert all(isinstance(c, Collector) for c in every)
    for c in every:
        c.close()
    off = build_collectors(CollectSettings.model_validate({"host": {"enabled": False}, "gpu": {"enabled": False}}))
    assert off == []
