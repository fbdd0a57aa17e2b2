"""Host metrics through psutil: CPU, load, memory, swap, disks, filesystems, network, processes.

Metric names follow node_exporter's spirit with an ``aiops_host_`` prefix and units in the
name; every series carries ``instance`` (the host name). CPU utilisation is computed from
``cpu_times`` deltas between two collections, so it is a true average over the interval rather
than psutil's instantaneous percent; the baseline is taken when the collector is built, so
the first collection already reports utilisation since then.

Examples:
    >>> from collectors.settings import HostCollectorSettings
    >>> c = HostCollector(HostCollectorSettings(), instance="demo")
    >>> names = {s.series.name for s in c.collect(0)}
    >>> {"aiops_host_load1", "aiops_host_memory_used_bytes"} <= names
    True
    >>> c.close()
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Mapping
from typing import Any

import psutil

from aiops.errors import CollectError
from aiops.logs import get_logger
from aiops.model import Sample, Series
from collectors.settings import HostCollectorSettings

__all__ = ["HostCollector", "PSEUDO_FILESYSTEMS"]

log = get_logger("collectors.host")

P = "aiops_host_"

# CPU modes exported; guest/guest_nice are already counted inside user/nice on Linux.
_CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")

PSEUDO_FILESYSTEMS = frozenset({
    # node_exporter's default fs-types-exclude, minus overlay (a container's root is overlay)
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "devtmpfs",
    "fusectl", "hugetlbfs", "iso9660", "mqueue", "nsfs", "proc", "procfs", "pstore", "rpc_pipefs",
    "securityfs", "selinuxfs", "squashfs", "erofs", "sysfs", "tracefs", "efivarfs", "ramfs", "fuse.lxcfs",
    "fuse.gvfsd-fuse", "fuse.portal", "nfsd", "devfs", "tmpfs",
})
"""Filesystem types that hold no user data; their usage is not exported."""

_PSEUDO_MOUNT_PREFIXES = ("/dev", "/proc", "/sys", "/run/credentials/", "/var/lib/docker/", "/var/lib/containers/",
                          "/snap/")

_SKIP_DISK_PREFIXES = ("loop", "ram")


def _pseudo_mount(mountpoint: str) -> bool:
    if mountpoint in ("/dev", "/proc", "/sys"):
        return True
    return any(mountpoint.startswith(p if p.endswith("/") else p + "/") for p in _PSEUDO_MOUNT_PREFIXES)


class HostCollector:
    """Collects this machine's metrics through psutil.

    Args:
        settings: schedule and options (``per_cpu``).
        instance: value of the ``instance`` label (default: the host name).
        psutil_module: the psutil module; a stand-in may be passed in tests.
    """

    name = "host"

    def __init__(self, settings: HostCollectorSettings, instance: str | None = None,
                 psutil_module: Any = psutil) -> None:
        self._ps = psutil_module
        self.instance = instance or socket.gethostname()
        self.target = self.instance
        self.interval_s = settings.interval_s
        self.timeout_s = settings.timeout_s
        self.jitter_s = settings.jitter_s
        self.per_cpu = settings.per_cpu
        self._series: dict[tuple[str, tuple[tuple[str, str], ...]], Series] = {}
        self._prev_total: Any = None
        self._prev_per_cpu: list[Any] | None = None
        self._warned: set[str] = set()
        try:  # the baseline: the first collection reports utilisation since now
            self._prev_total = self._ps.cpu_times()
            self._prev_per_cpu = self._ps.cpu_times(percpu=True) if self.per_cpu else None
        except Exception as exc:  # pragma: no cover - psutil works everywhere we run
            log.warning("host_cpu_baseline_failed", error=str(exc))

    # --- helpers ---------------------------------------------------------------------------

    def _s(self, name: str, labels: Mapping[str, str] | None = None) -> Series:
        """The Series for ``name`` + ``labels`` + instance, cached: the same few hundred every time."""
        extra = tuple(labels.items()) if labels else ()
        key = (name, extra)
        s = self._series.get(key)
        if s is None:
            s = self._series[key] = Series.of(P + name, dict(extra), instance=self.instance)
        return s

    def _part(self, what: str, fn: Any, out: list[Sample], ts: int) -> None:
        """Run one part; a failing part is logged once and skipped, the rest still reports."""
        try:
            fn(out, ts)
        except Exception as exc:
            if what not in self._warned:
                self._warned.add(what)
                log.warning("host_metric_failed", part=what, error=str(exc))

    # --- parts ---------------------------------------------------------------------------

    def _cpu(self, out: list[Sample], ts: int) -> None:
        ps = self._ps
        total = ps.cpu_times()
        per = ps.cpu_times(percpu=True) if self.per_cpu else None
        if self._prev_total is not None:
            self._cpu_ratios(out, ts, "total", self._prev_total, total)
        if per is not None and self._prev_per_cpu is not None and len(per) == len(self._prev_per_cpu):
            for i, (a, b) in enumerate(zip(self._prev_per_cpu, per, strict=True)):
                self._cpu_ratios(out, ts, str(i), a, b)
        self._prev_total, self._prev_per_cpu = total, per
        out.append(Sample(self._s("cpu_count"), ts, float(ps.cpu_count() or 0)))

    def _cpu_ratios(self, out: list[Sample], ts: int, cpu: str, before: Any, after: Any) -> None:
        deltas = {}
        for mode in _CPU_MODES:
            if hasattr(after, mode):
                deltas[mode] = max(0.0, getattr(after, mode) - getattr(before, mode))
        elapsed = sum(deltas.values())
        if elapsed <= 0:  # no tick between the two readings: nothing to report yet
            return
        for mode, d in deltas.items():
            out.append(Sample(self._s("cpu_utilisation_ratio", {"cpu": cpu, "mode": mode}), ts, d / elapsed))

    def _load(self, out: list[Sample], ts: int) -> None:
        l1, l5, l15 = self._ps.getloadavg()
        out += [Sample(self._s("load1"), ts, float(l1)), Sample(self._s("load5"), ts, float(l5)),
                Sample(self._s("load15"), ts, float(l15))]

    def _memory(self, out: list[Sample], ts: int) -> None:
        vm = self._ps.virtual_memory()
        out += [
            Sample(self._s("memory_total_bytes"), ts, float(vm.total)),
            Sample(self._s("memory_available_bytes"), ts, float(vm.available)),
            Sample(self._s("memory_used_bytes"), ts, float(vm.used)),
            Sample(self._s("memory_utilisation_ratio"), ts, float(vm.percent) / 100.0),
        ]
        sw = self._ps.swap_memory()
        out += [
            Sample(self._s("swap_total_bytes"), ts, float(sw.total)),
            Sample(self._s("swap_used_bytes"), ts, float(sw.used)),
            Sample(self._s("swap_in_bytes_total"), ts, float(sw.sin)),
            Sample(self._s("swap_out_bytes_total"), ts, float(sw.sout)),
        ]

    def _disks(self, out: list[Sample], ts: int) -> None:
        counters = self._ps.disk_io_counters(perdisk=True) or {}
        for dev, c in counters.items():
            if dev.startswith(_SKIP_DISK_PREFIXES):
                continue
            lab = {"device": dev}
            out += [
                Sample(self._s("disk_read_bytes_total", lab), ts, float(c.read_bytes)),
                Sample(self._s("disk_written_bytes_total", lab), ts, float(c.write_bytes)),
                Sample(self._s("disk_reads_completed_total", lab), ts, float(c.read_count)),
                Sample(self._s("disk_writes_completed_total", lab), ts, float(c.write_count)),
            ]
            busy = getattr(c, "busy_time", None)  # Linux/FreeBSD only; ms
            if busy is not None:
                out.append(Sample(self._s("disk_io_time_seconds_total", lab), ts, busy / 1000.0))

    def _filesystems(self, out: list[Sample], ts: int) -> None:
        seen: set[str] = set()
        deadline = time.monotonic() + self.timeout_s / 2  # a hung network mount must not stall the rest
        for part in self.filesystems():
            if part.mountpoint in seen:
                continue
            seen.add(part.mountpoint)
            if time.monotonic() > deadline:
                log.warning("host_filesystems_truncated", mountpoint=part.mountpoint, timeout_s=self.timeout_s)
                break
            try:
                usage = self._ps.disk_usage(part.mountpoint)
            except OSError:  # unmounted meanwhile, or no permission: not ours to report
                continue
            lab = {"mountpoint": part.mountpoint, "device": part.device, "fstype": part.fstype}
            out += [
                Sample(self._s("filesystem_size_bytes", lab), ts, float(usage.total)),
                Sample(self._s("filesystem_used_bytes", lab), ts, float(usage.used)),
                Sample(self._s("filesystem_free_bytes", lab), ts, float(usage.free)),
            ]

    def filesystems(self) -> list[Any]:
        """Mounted filesystems holding data: pseudo types and system mount points left out."""
        return [p for p in self._ps.disk_partitions(all=True)
                if p.fstype not in PSEUDO_FILESYSTEMS and not _pseudo_mount(p.mountpoint)
                and not (p.fstype == "overlay" and p.mountpoint != "/")]

    def _network(self, out: list[Sample], ts: int) -> None:
        counters = self._ps.net_io_counters(pernic=True) or {}
        for dev, c in counters.items():
            lab = {"device": dev}
            for name, value in (
                ("receive_bytes_total", c.bytes_recv), ("transmit_bytes_total", c.bytes_sent),
                ("receive_packets_total", c.packets_recv), ("transmit_packets_total", c.packets_sent),
                ("receive_errors_total", c.errin), ("transmit_errors_total", c.errout),
                ("receive_drop_total", c.dropin), ("transmit_drop_total", c.dropout),
            ):
                out.append(Sample(self._s("network_" + name, lab), ts, float(value)))

    def _processes(self, out: list[Sample], ts: int) -> None:
        out.append(Sample(self._s("processes"), ts, float(len(self._ps.pids()))))
        out.append(Sample(self._s("boot_time_seconds"), ts, float(self._ps.boot_time())))

    # --- Collector -------------------------------------------------------------------------

    def collect(self, now_ms: int) -> list[Sample]:
        """One reading of every part; a part that fails is skipped (logged once).

        Raises:
            CollectError: when no part at all could be read.
        """
        out: list[Sample] = []
        for what, fn in self._parts():
            self._part(what, fn, out, now_ms)
        if not out:
            raise CollectError(f"host {self.instance}: psutil returned nothing (pid {os.getpid()})")
        return out

    def _parts(self) -> Iterable[tuple[str, Any]]:
        return (("cpu", self._cpu), ("load", self._load), ("memory", self._memory), ("disk", self._disks),
                ("filesystem", self._filesystems), ("network", self._network), ("processes", self._processes))

    def close(self) -> None:
        """Nothing to release; psutil holds no resources between calls."""
