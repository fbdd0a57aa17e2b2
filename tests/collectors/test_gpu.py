"""The GPU collector over a stand-in NVML module (two fake GPUs), and over the real binding."""

from __future__ import annotations

from typing import Any

import pynvml
import pytest

import collectors.gpu as gpu_module
from aiops.errors import CollectError
from aiops.protocols import Collector
from collectors import GpuCollector
from collectors.settings import GpuCollectorSettings
from tests.collectors.fake_nvml import FakeGpu, FakeNvml


class Recorder:
    """Stands in for the module's structlog logger and keeps every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **kw: self.events.append((event, kw))

    def named(self, event: str) -> list[dict[str, Any]]:
        return [kw for e, kw in self.events if e == event]


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(gpu_module, "log", rec)
    return rec


def two_gpus() -> FakeNvml:
    h100 = FakeGpu("GPU-aaaa", "NVIDIA H100 80GB HBM3", processes=[(4242, 6 * 2**30), (4343, None)])
    # a board without ECC, page retirement, row remapping or XID events
    t4 = FakeGpu("GPU-bbbb", "Tesla T4", util_gpu=5, ecc=None, retired=None, remapped=None, xid_supported=False,
                 mem_total=16 * 2**30, mem_used=2**30)
    nv = FakeNvml([h100, t4])
    nv.process_names[4242] = "/usr/bin/python3"
    return nv


def _by(samples) -> dict[tuple[str, str], list]:
    out: dict[tuple[str, str], list] = {}
    for s in samples:
        out.setdefault((s.series.name.removeprefix("aiops_gpu_"), s.series.get("gpu")), []).append(s)
    return out


def test_two_gpus_all_metrics_with_labels(logs: Recorder) -> None:
    nv = two_gpus()
    c = GpuCollector(GpuCollectorSettings(), instance="node-1", nvml=nv)
    assert isinstance(c, Collector) and (c.name, c.target) == ("gpu", "node-1")
    samples = c.collect(1000)
    by = _by(samples)
    [util] = by[("utilisation_ratio", "0")]
    assert util.value == 0.5 and util.ts_ms == 1000
    assert util.series.label_dict == {"gpu": "0", "uuid": "GPU-aaaa", "name": "NVIDIA H100 80GB HBM3",
                                      "instance": "node-1"}
    assert by[("utilisation_ratio", "1")][0].value == 0.05
    assert by[("memory_utilisation_ratio", "0")][0].value == 0.2
    assert by[("memory_used_bytes", "0")][0].value == 8 * 2**30
    assert by[("memory_total_bytes", "1")][0].value == 16 * 2**30
    assert by[("temperature_celsius", "0")][0].value == 61
    assert by[("power_watts", "0")][0].value == 250.0
    assert by[("power_limit_watts", "0")][0].value == 700.0
    assert by[("energy_joules_total", "0")][0].value == 123_456.0
    assert by[("sm_clock_hertz", "0")][0].value == 1980e6
    assert by[("memory_clock_hertz", "0")][0].value == 2619e6
    ecc = {(s.series.get("type"), s.series.get("scope")): s.value for s in by[("ecc_errors_total", "0")]}
    assert ecc == {("corrected", "volatile"): 3, ("corrected", "aggregate"): 10,
                   ("uncorrected", "volatile"): 0, ("uncorrected", "aggregate"): 1}
    assert {s.series.get("cause"): s.value for s in by[("retired_pages", "0")]} == {"single_bit": 2, "double_bit": 0}
    assert {s.series.get("type"): s.value for s in by[("remapped_rows", "0")]} == {"correctable": 1,
                                                                                   "uncorrectable": 0}
    assert by[("xid_errors_total", "0")][0].value == 0
    # GPU 1 does not support ECC & co: those metrics are skipped, the rest is there
    for missing in ("ecc_errors_total", "retired_pages", "retired_pages_pending", "remapped_rows", "xid_errors_total"):
        assert (missing, "1") not in by, missing
    assert ("temperature_celsius", "1") in by
    # per-process memory: pid + process name; a process without a memory figure is skipped
    [proc] = by[("process_memory_used_bytes", "0")]
    assert (proc.series.get("pid"), proc.series.get("process"), proc.value) == ("4242", "python3", 6 * 2**30)
    assert logs.named("gpu_initialised")[0]["gpus"] == 2
    assert not logs.named("gpu_metric_failed")


def test_not_supported_is_not_asked_again() -> None:
    nv = two_gpus()
    c = GpuCollector(GpuCollectorSettings(), nvml=nv)
    c.collect(0)
    first = nv.calls["nvmlDeviceGetTotalEccErrors"]
    c.collect(1)
    # GPU 0 answers its 4 counters again; GPU 1 said NotSupported once and is not asked again
    assert nv.calls["nvmlDeviceGetTotalEccErrors"] == first + 4
    assert first == 4 + 1


def test_per_process_off() -> None:
    c = GpuCollector(GpuCollectorSettings(per_process=False), nvml=two_gpus())
    assert not any(s.series.name == "aiops_gpu_process_memory_used_bytes" for s in c.collect(0))


def test_xid_events_are_counted() -> None:
    nv = two_gpus()
    c = GpuCollector(GpuCollectorSettings(), nvml=nv)
    c.collect(0)
    nv.raise_xid(0, 79)
    nv.raise_xid(0, 48)
    by = _by(c.collect(1))
    assert by[("xid_errors_total", "0")][0].value == 2
    assert by[("last_xid", "0")][0].value == 48


def test_other_nvml_errors_skip_the_metric_and_log_once(logs: Recorder) -> None:
    nv = two_gpus()
    c = GpuCollector(GpuCollectorSettings(), nvml=nv)
    nv.fail_next["nvmlDeviceGetPowerUsage"] = pynvml.NVML_ERROR_NO_PERMISSION
    by = _by(c.collect(0))
    assert ("power_watts", "0") not in by and ("power_watts", "1") in by
    assert [e["metric"] for e in logs.named("gpu_metric_failed")] == ["power"]
    assert ("power_watts", "0") in _by(c.collect(1))  # transient: asked again next time


def test_no_driver_logs_once_and_retries_rarely(logs: Recorder) -> None:
    nv = FakeNvml([], init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    now = [1000.0]
    c = GpuCollector(GpuCollectorSettings(retry_init_s=300), nvml=nv, clock=lambda: now[0])
    for i in range(20):
        now[0] += 10
        assert c.collect(i) == []
    assert nv.calls["nvmlInit"] == 1  # no retry storm
    now[0] += 300
    assert c.collect(99) == []
    assert nv.calls["nvmlInit"] == 2
    assert len(logs.named("gpu_unavailable")) == 1
    # the driver comes back: the next retry finds the GPUs
    nv.init_error = None
    nv.gpus = two_gpus().gpus
    now[0] += 301
    assert any(s.series.name == "aiops_gpu_utilisation_ratio" for s in c.collect(100))


def test_zero_devices_is_unavailable(logs: Recorder) -> None:
    nv = FakeNvml([])
    c = GpuCollector(GpuCollectorSettings(), nvml=nv)
    assert c.collect(0) == [] and c.collect(1) == []
    assert logs.named("gpu_unavailable")[0]["error"] == "NVML reports no GPU"
    assert not nv.initialised  # shut down again


def test_driver_lost_mid_run_is_a_collect_error_then_reinit(logs: Recorder) -> None:
    nv = two_gpus()
    now = [0.0]
    c = GpuCollector(GpuCollectorSettings(retry_init_s=60), nvml=nv, clock=lambda: now[0])
    assert c.collect(0)
    nv.fail_next["nvmlDeviceGetUtilizationRates"] = pynvml.NVML_ERROR_UNINITIALIZED
    with pytest.raises(CollectError, match="NVML stopped working"):
        c.collect(1)
    now[0] += 61
    assert c.collect(2)
    assert nv.calls["nvmlInit"] == 2
    c.close()
    assert not nv.initialised


def test_real_binding_on_a_machine_without_gpu(logs: Recorder) -> None:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this machine has a working NVML; the no-GPU path is covered by the fake")
    c = GpuCollector(GpuCollectorSettings())
    assert c.collect(0) == [] and c.collect(1) == []
    assert len(logs.named("gpu_unavailable")) == 1
    c.close()
