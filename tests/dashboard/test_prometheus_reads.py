"""The dashboard in a pod of its own (the ``ha`` overlay) charts what the agents remote-wrote.

With ``store.read.prometheus_url`` and no store file, the dashboard's store is a real
``prometheus`` read through :class:`~aiops.promstore.PrometheusSeriesStore`: the explorer's metric
list, label values, series selection and chart frames come from it; an unreachable Prometheus is
a clear "cannot be read" message, not a stack trace.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from aiops.model import Sample, Series, now_ms
from aiops.remotewrite import RemoteWriter
from dashboard import series
from dashboard.data import DashboardData, DataUnavailable
from dashboard.settings import DashboardConfig
from tests.conftest import free_port
from tests.prometheus_server import PrometheusServer


def _settings(tmp_path: Path, url: str) -> DashboardConfig:
    return DashboardConfig.model_validate({"store": {"path": str(tmp_path / "absent.db"),
                                                     "read": {"prometheus_url": url}}})


@pytest.mark.integration
def test_dashboard_charts_series_from_prometheus(tmp_path: Path) -> None:
    prom = PrometheusServer(tmp_path)
    prom.start()
    writer = RemoteWriter(f"{prom.url}/api/v1/write", tmp_path / "queue", flush_interval_s=0.1,
                          registry=CollectorRegistry())
    writer.start()
    try:
        start = now_ms() - 60_000
        gpus = [Series.of("dash_gpu_utilization_ratio", gpu=str(g), node="n1") for g in range(2)]
        writer.add([Sample(s, start + k * 1000, 0.1 * g + k / 100) for k in range(60) for g, s in enumerate(gpus)])
        deadline = time.monotonic() + 30
        while writer.pending_samples and time.monotonic() < deadline:
            time.sleep(0.1)
        data = DashboardData(_settings(tmp_path, prom.url))
        with data.store() as store:
            assert "dash_gpu_utilization_ratio" in series.metric_names(store)
            assert series.label_values(store, "dash_gpu_utilization_ratio")["gpu"] == ["0", "1"]
            shown = series.select(store, "dash_gpu_utilization_ratio", {"gpu": ["1"]})
            assert shown == [gpus[1]]
            frame = series.long_frame(store, shown, start, start + 59_000)
            assert len(frame) == 60 and frame["value"].iloc[-1] == pytest.approx(0.1 + 0.59)
    finally:
        writer.stop()
        prom.stop()
    with pytest.raises(DataUnavailable, match="cannot be read"), \
            DashboardData(_settings(tmp_path, f"http://127.0.0.1:{free_port()}")).store():
        pass
