"""NVIDIA GPU metrics through NVML (``pynvml`` from nvidia-ml-py).

Per GPU, with labels ``gpu`` (index), ``uuid``, ``name`` and ``instance``:

| metric | unit / meaning |
|---|---|
| ``aiops_gpu_utilisation_ratio`` | share of time a kernel ran, 0..1 |
| ``aiops_gpu_memory_utilisation_ratio`` | share of time device memory was read or written, 0..1 |
| ``aiops_gpu_memory_used_bytes``, ``aiops_gpu_memory_total_bytes`` | framebuffer memory |
| ``aiops_gpu_temperature_celsius`` | core temperature |
| ``aiops_gpu_power_watts``, ``aiops_gpu_power_limit_watts`` | draw and enforced limit |
| ``aiops_gpu_energy_joules_total`` | energy since the driver loaded |
| ``aiops_gpu_sm_clock_hertz``, ``aiops_gpu_memory_clock_hertz`` | current clocks |
| ``aiops_gpu_ecc_errors_total{type,scope}`` | corrected/uncorrected, volatile/aggregate |
| ``aiops_gpu_retired_pages{cause}``, ``aiops_gpu_retired_pages_pending`` | page retirement (pre-Ampere) |
| ``aiops_gpu_remapped_rows{type}``, ``..._pending``, ``aiops_gpu_remapping_failed`` | row remapping (Ampere+) |
| ``aiops_gpu_xid_errors_total``, ``aiops_gpu_last_xid`` | critical XID events seen since the collector started |
| ``aiops_gpu_process_memory_used_bytes{pid,process}`` | per process (``per_process``) |

A metric the GPU does not support (``NVMLError_NotSupported``) is skipped, and not asked
for again. On a machine without a GPU or driver (``nvmlInit`` fails, or no device), the
collector logs ``gpu_unavailable`` once and returns nothing; it retries ``nvmlInit`` at most
every ``retry_init_s`` seconds, so a host without GPUs costs nothing and floods nothing.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pynvml

from aiops.errors import CollectError
from aiops.logs import get_logger
from aiops.model import Sample, Series
from collectors.settings import GpuCollectorSettings

__all__ = ["GpuCollector"]

log = get_logger("collectors.gpu")

P = "aiops_gpu_"
_MHZ = 1e6


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


@dataclass(slots=True)
class _Device:
    index: int
    handle: Any
    labels: dict[str, str]
    unsupported: set[str] = field(default_factory=set)
    series: dict[tuple[str, tuple[tuple[str, str], ...]], Series] = field(default_factory=dict)
    xid_total: int = 0
    last_xid: int | None = None

    def s(self, name: str, **extra: str) -> Series:
        key = (name, tuple(extra.items()))
        got = self.series.get(key)
        if got is None:
            got = self.series[key] = Series.of(P + name, self.labels, **extra)
        return got


class GpuCollector:
    """Collects NVIDIA GPU metrics through NVML.

    Args:
        settings: schedule and options (``per_process``, ``retry_init_s``).
        instance: value of the ``instance`` label (default: the host name).
        nvml: the NVML binding; a stand-in module may be passed in tests.
        clock: monotonic seconds (tests drive the init retry with it).
    """

    name = "gpu"

    def __init__(self, settings: GpuCollectorSettings, instance: str | None = None, nvml: Any = pynvml,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.nvml = nvml
        self.instance = instance or socket.gethostname()
        self.target = self.instance
        self.interval_s = settings.interval_s
        self.timeout_s = settings.timeout_s
        self.jitter_s = settings.jitter_s
        self.per_process = settings.per_process
        self.retry_init_s = settings.retry_init_s
        self._clock = clock
        self._devices: list[_Device] | None = None
        self._next_init = 0.0
        self._unavailable_logged = False
        self._events: Any = None
        self._warned: set[str] = set()

    # --- init ------------------------------------------------------------------------------

    def _init(self) -> bool:
        """Initialise NVML and list devices; False (quietly, after one log) when impossible."""
        if self._devices is not None:
            return True
        now = self._clock()
        if now < self._next_init:
            return False
        self._next_init = now + self.retry_init_s
        nv = self.nvml
        try:
            nv.nvmlInit()
        except nv.NVMLError as exc:
            self._unavailable(str(exc) or type(exc).__name__)
            return False
        try:
            devices = [self._device(i) for i in range(nv.nvmlDeviceGetCount())]
        except nv.NVMLError as exc:
            self._shutdown()
            self._unavailable(f"listing devices failed: {exc}")
            return False
        if not devices:
            self._shutdown()
            self._unavailable("NVML reports no GPU")
            return False
        self._devices = devices
        self._register_xid_events()
        self._unavailable_logged = False
        log.info("gpu_initialised", gpus=len(devices), names=sorted({d.labels["name"] for d in devices}))
        return True

    def _unavailable(self, why: str) -> None:
        if not self._unavailable_logged:
            self._unavailable_logged = True
            log.info("gpu_unavailable", error=why, retry_s=self.retry_init_s)

    def _device(self, index: int) -> _Device:
        nv = self.nvml
        h = nv.nvmlDeviceGetHandleByIndex(index)
        labels = {"gpu": str(index), "uuid": _text(nv.nvmlDeviceGetUUID(h)), "name": _text(nv.nvmlDeviceGetName(h)),
                  "instance": self.instance}
        return _Device(index, h, labels)

    def _register_xid_events(self) -> None:
        nv = self.nvml
        try:
            self._events = nv.nvmlEventSetCreate()
        except nv.NVMLError:
            self._events = None
            return
        for d in self._devices or ():
            try:
                nv.nvmlDeviceRegisterEvents(d.handle, nv.nvmlEventTypeXidCriticalError, self._events)
            except nv.NVMLError:  # NotSupported on many consumer boards: no XID series for it
                d.unsupported.add("xid")

    def _shutdown(self) -> None:
        nv = self.nvml
        if self._events is not None:
            try:
                nv.nvmlEventSetFree(self._events)
            except nv.NVMLError:
                pass
            self._events = None
        try:
            nv.nvmlShutdown()
        except nv.NVMLError:
            pass

    # --- collection --------------------------------------------------------------------------

    def collect(self, now_ms: int) -> list[Sample]:
        """Read every GPU; ``[]`` when there is none.

        Raises:
            CollectError: NVML failed as a whole mid-collection (driver gone); it is
                re-initialised at the next retry.
        """
        if not self._init():
            return []
        nv = self.nvml
        out: list[Sample] = []
        try:
            self._drain_xid_events()
            for d in self._devices or ():
                self._collect_device(d, now_ms, out)
        except (nv.NVMLError_Uninitialized, nv.NVMLError_DriverNotLoaded, nv.NVMLError_LibRmVersionMismatch) as exc:
            self._devices = None
            self._shutdown()
            raise CollectError(f"gpu {self.instance}: NVML stopped working: {exc}") from None
        return out

    def _read(self, d: _Device, metric: str, fn: Callable[[], Any]) -> Any:
        """One NVML call for one metric; None when unsupported (remembered) or failing (logged once)."""
        if metric in d.unsupported:
            return None
        nv = self.nvml
        try:
            return fn()
        except nv.NVMLError_NotSupported:
            d.unsupported.add(metric)
        except (nv.NVMLError_Uninitialized, nv.NVMLError_DriverNotLoaded, nv.NVMLError_LibRmVersionMismatch):
            raise
        except nv.NVMLError as exc:
            key = f"{d.index}:{metric}"
            if key not in self._warned:
                self._warned.add(key)
                log.warning("gpu_metric_failed", gpu=d.index, metric=metric, error=str(exc))
        return None

    def _collect_device(self, d: _Device, ts: int, out: list[Sample]) -> None:
        nv, h = self.nvml, d.handle

        def put(name: str, value: float | None, **extra: str) -> None:
            if value is not None:
                out.append(Sample(d.s(name, **extra), ts, float(value)))

        util = self._read(d, "utilisation", lambda: nv.nvmlDeviceGetUtilizationRates(h))
        if util is not None:
            put("utilisation_ratio", util.gpu / 100.0)
            put("memory_utilisation_ratio", util.memory / 100.0)
        mem = self._read(d, "memory", lambda: nv.nvmlDeviceGetMemoryInfo(h))
        if mem is not None:
            put("memory_used_bytes", mem.used)
            put("memory_total_bytes", mem.total)
        put("temperature_celsius", self._read(d, "temperature",
                                              lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)))
        power = self._read(d, "power", lambda: nv.nvmlDeviceGetPowerUsage(h))
        put("power_watts", None if power is None else power / 1000.0)
        limit = self._read(d, "power_limit", lambda: nv.nvmlDeviceGetEnforcedPowerLimit(h))
        put("power_limit_watts", None if limit is None else limit / 1000.0)
        energy = self._read(d, "energy", lambda: nv.nvmlDeviceGetTotalEnergyConsumption(h))
        put("energy_joules_total", None if energy is None else energy / 1000.0)
        sm = self._read(d, "sm_clock", lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM))
        put("sm_clock_hertz", None if sm is None else sm * _MHZ)
        memclk = self._read(d, "memory_clock", lambda: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM))
        put("memory_clock_hertz", None if memclk is None else memclk * _MHZ)
        self._errors(d, put)
        if "xid" not in d.unsupported and self._events is not None:
            put("xid_errors_total", d.xid_total)
            if d.last_xid is not None:
                put("last_xid", d.last_xid)
        if self.per_process:
            self._processes(d, put)

    def _errors(self, d: _Device, put: Callable[..., None]) -> None:
        nv, h = self.nvml, d.handle
        for etype, ename in ((nv.NVML_MEMORY_ERROR_TYPE_CORRECTED, "corrected"),
                             (nv.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, "uncorrected")):
            for counter, scope in ((nv.NVML_VOLATILE_ECC, "volatile"), (nv.NVML_AGGREGATE_ECC, "aggregate")):
                n = self._read(d, "ecc", partial(nv.nvmlDeviceGetTotalEccErrors, h, etype, counter))
                put("ecc_errors_total", n, type=ename, scope=scope)
        for cause, cname in ((nv.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS, "single_bit"),
                             (nv.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR, "double_bit")):
            pages = self._read(d, "retired_pages", partial(nv.nvmlDeviceGetRetiredPages, h, cause))
            put("retired_pages", None if pages is None else len(pages), cause=cname)
        pending = self._read(d, "retired_pages", lambda: nv.nvmlDeviceGetRetiredPagesPendingStatus(h))
        put("retired_pages_pending", pending)
        rows = self._read(d, "remapped_rows", lambda: nv.nvmlDeviceGetRemappedRows(h))
        if rows is not None:
            corr, unc, is_pending, failed = rows
            put("remapped_rows", corr, type="correctable")
            put("remapped_rows", unc, type="uncorrectable")
            put("remapped_rows_pending", 1 if is_pending else 0)
            put("remapping_failed", 1 if failed else 0)

    def _processes(self, d: _Device, put: Callable[..., None]) -> None:
        nv, h = self.nvml, d.handle
        used: dict[int, int] = {}
        for what, fn in (("compute_processes", nv.nvmlDeviceGetComputeRunningProcesses),
                         ("graphics_processes", nv.nvmlDeviceGetGraphicsRunningProcesses)):
            for p in self._read(d, what, partial(fn, h)) or ():
                mem = getattr(p, "usedGpuMemory", None)
                if mem is not None:  # None: not available (e.g. under MIG or Windows WDDM)
                    used[int(p.pid)] = max(used.get(int(p.pid), 0), int(mem))
        for pid, mem in sorted(used.items()):
            put("process_memory_used_bytes", mem, pid=str(pid), process=self._process_name(pid))

    def _process_name(self, pid: int) -> str:
        nv = self.nvml
        try:
            return _text(nv.nvmlSystemGetProcessName(pid)).rsplit("/", 1)[-1]
        except nv.NVMLError:
            return ""

    def _drain_xid_events(self) -> None:
        if self._events is None or not self._devices:
            return
        nv = self.nvml
        by_handle = {id(d.handle): d for d in self._devices}
        for _ in range(1000):  # bounded: a storm of events must not stall the collection
            try:
                event = nv.nvmlEventSetWait(self._events, 0)
            except nv.NVMLError_Timeout:
                return
            except nv.NVMLError_NotSupported:
                self._events = None
                return
            d = by_handle.get(id(event.device))
            if d is None:
                d = next((x for x in self._devices if x.handle == event.device), None)
            if d is not None and event.eventType == nv.nvmlEventTypeXidCriticalError:
                d.xid_total += 1
                d.last_xid = int(event.eventData)
                log.warning("gpu_xid_seen", gpu=d.index, uuid=d.labels["uuid"], xid=d.last_xid)

    def close(self) -> None:
        """Shut NVML down if it was initialised."""
        if self._devices is not None:
            self._devices = None
            self._shutdown()
