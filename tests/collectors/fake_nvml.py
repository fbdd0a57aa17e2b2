"""A stand-in for the ``pynvml`` module: fake GPUs behind NVML's Python API.

Only the functions the GPU collector calls exist; anything else raises AttributeError, so a
new NVML call in the collector fails the tests loudly. Error classes and constants are the
real ones from nvidia-ml-py, raised the way the real binding raises them
(``NVMLError(NVML_ERROR_NOT_SUPPORTED)`` becomes ``NVMLError_NotSupported``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pynvml as real


def _err(code: int) -> real.NVMLError:
    return real.NVMLError(code)


@dataclass
class FakeGpu:
    uuid: str
    name: str
    util_gpu: int = 50
    util_mem: int = 20
    mem_used: int = 8 * 2**30
    mem_total: int = 80 * 2**30
    temp_c: int = 61
    power_mw: int = 250_000
    limit_mw: int = 700_000
    energy_mj: int = 123_456_000
    sm_mhz: int = 1980
    mem_mhz: int = 2619
    ecc: dict[tuple[int, int], int] | None = field(
        default_factory=lambda: {(0, 0): 3, (0, 1): 10, (1, 0): 0, (1, 1): 1})
    retired: dict[int, int] | None = field(default_factory=lambda: {1: 2, 2: 0})
    remapped: tuple[int, int, bool, bool] | None = (1, 0, False, False)
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    xid_supported: bool = True


class FakeNvml:
    """The ``pynvml`` surface the collector uses, over a list of :class:`FakeGpu`."""

    def __init__(self, gpus: list[FakeGpu], init_error: int | None = None) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.initialised = False
        self.calls: dict[str, int] = {}
        self.events: deque[Any] = deque()
        self.fail_next: dict[str, int] = {}  # function name -> NVML error code to raise once
        self.process_names: dict[int, str] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith(("NVML", "nvmlEventType")):
            return getattr(real, name)  # constants and error classes are the real ones
        raise AttributeError(f"fake pynvml has no {name}")

    def _call(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if name != "nvmlInit" and not self.initialised:
            raise _err(real.NVML_ERROR_UNINITIALIZED)
        code = self.fail_next.pop(name, None)
        if code is not None:
            raise _err(code)

    def _gpu(self, handle: Any) -> FakeGpu:
        return self.gpus[handle.index]

    # --- lifecycle ---
    def nvmlInit(self) -> None:  # noqa: N802 - NVML's names
        self._call("nvmlInit")
        if self.init_error is not None:
            raise _err(self.init_error)
        self.initialised = True

    def nvmlShutdown(self) -> None:  # noqa: N802
        self._call("nvmlShutdown")
        self.initialised = False

    # --- devices ---
    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        self._call("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:  # noqa: N802
        self._call("nvmlDeviceGetHandleByIndex")
        return SimpleNamespace(index=index)

    def nvmlDeviceGetUUID(self, h: Any) -> str:  # noqa: N802
        self._call("nvmlDeviceGetUUID")
        return self._gpu(h).uuid

    def nvmlDeviceGetName(self, h: Any) -> bytes:  # noqa: N802 - older bindings return bytes
        self._call("nvmlDeviceGetName")
        return self._gpu(h).name.encode()

    def nvmlDeviceGetUtilizationRates(self, h: Any) -> Any:  # noqa: N802
        self._call("nvmlDeviceGetUtilizationRates")
        g = self._gpu(h)
        return SimpleNamespace(gpu=g.util_gpu, memory=g.util_mem)

    def nvmlDeviceGetMemoryInfo(self, h: Any) -> Any:  # noqa: N802
        self._call("nvmlDeviceGetMemoryInfo")
        g = self._gpu(h)
        return SimpleNamespace(total=g.mem_total, used=g.mem_used, free=g.mem_total - g.mem_used)

    def nvmlDeviceGetTemperature(self, h: Any, sensor: int) -> int:  # noqa: N802
        self._call("nvmlDeviceGetTemperature")
        assert sensor == real.NVML_TEMPERATURE_GPU
        return self._gpu(h).temp_c

    def nvmlDeviceGetPowerUsage(self, h: Any) -> int:  # noqa: N802
        self._call("nvmlDeviceGetPowerUsage")
        return self._gpu(h).power_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, h: Any) -> int:  # noqa: N802
        self._call("nvmlDeviceGetEnforcedPowerLimit")
        return self._gpu(h).limit_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, h: Any) -> int:  # noqa: N802
        self._call("nvmlDeviceGetTotalEnergyConsumption")
        return self._gpu(h).energy_mj

    def nvmlDeviceGetClockInfo(self, h: Any, clock: int) -> int:  # noqa: N802
        self._call("nvmlDeviceGetClockInfo")
        g = self._gpu(h)
        return {real.NVML_CLOCK_SM: g.sm_mhz, real.NVML_CLOCK_MEM: g.mem_mhz}[clock]

    def nvmlDeviceGetTotalEccErrors(self, h: Any, etype: int, counter: int) -> int:  # noqa: N802
        self._call("nvmlDeviceGetTotalEccErrors")
        g = self._gpu(h)
        if g.ecc is None:
            raise _err(real.NVML_ERROR_NOT_SUPPORTED)
        return g.ecc[(etype, counter)]

    def nvmlDeviceGetRetiredPages(self, h: Any, cause: int) -> list[int]:  # noqa: N802
        self._call("nvmlDeviceGetRetiredPages")
        g = self._gpu(h)
        if g.retired is None:
            raise _err(real.NVML_ERROR_NOT_SUPPORTED)
        n = g.retired[{real.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS: 1,
                       real.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR: 2}[cause]]
        return [0x1000 * i for i in range(n)]

    def nvmlDeviceGetRetiredPagesPendingStatus(self, h: Any) -> int:  # noqa: N802
        self._call("nvmlDeviceGetRetiredPagesPendingStatus")
        if self._gpu(h).retired is None:
            raise _err(real.NVML_ERROR_NOT_SUPPORTED)
        return 0

    def nvmlDeviceGetRemappedRows(self, h: Any) -> tuple[int, int, bool, bool]:  # noqa: N802
        self._call("nvmlDeviceGetRemappedRows")
        rows = self._gpu(h).remapped
        if rows is None:
            raise _err(real.NVML_ERROR_NOT_SUPPORTED)
        return rows

    def nvmlDeviceGetComputeRunningProcesses(self, h: Any) -> list[Any]:  # noqa: N802
        self._call("nvmlDeviceGetComputeRunningProcesses")
        return [SimpleNamespace(pid=pid, usedGpuMemory=mem) for pid, mem in self._gpu(h).processes]

    def nvmlDeviceGetGraphicsRunningProcesses(self, h: Any) -> list[Any]:  # noqa: N802
        self._call("nvmlDeviceGetGraphicsRunningProcesses")
        return []

    def nvmlSystemGetProcessName(self, pid: int) -> str:  # noqa: N802
        self._call("nvmlSystemGetProcessName")
        if pid not in self.process_names:
            raise _err(real.NVML_ERROR_NOT_FOUND)
        return self.process_names[pid]

    # --- events ---
    def nvmlEventSetCreate(self) -> Any:  # noqa: N802
        self._call("nvmlEventSetCreate")
        return SimpleNamespace(registered=[])

    def nvmlEventSetFree(self, es: Any) -> None:  # noqa: N802
        self._call("nvmlEventSetFree")

    def nvmlDeviceRegisterEvents(self, h: Any, types: int, es: Any) -> None:  # noqa: N802
        self._call("nvmlDeviceRegisterEvents")
        if not self._gpu(h).xid_supported:
            raise _err(real.NVML_ERROR_NOT_SUPPORTED)
        es.registered.append(h)

    def nvmlEventSetWait(self, es: Any, timeout_ms: int) -> Any:  # noqa: N802
        self._call("nvmlEventSetWait")
        if not self.events:
            raise _err(real.NVML_ERROR_TIMEOUT)
        index, xid = self.events.popleft()
        handle = next(h for h in es.registered if h.index == index)
        return SimpleNamespace(device=handle, eventType=real.nvmlEventTypeXidCriticalError, eventData=xid)

    def raise_xid(self, index: int, xid: int) -> None:
        self.events.append((index, xid))
