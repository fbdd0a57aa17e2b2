"""The dashboard rendered in real headless Chromium against a real store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aiops.model import Sample, Series, now_ms
from aiops.state import StateDB
from aiops.store import SqliteSeriesStore
from dashboard.data import DashboardData, series_frame
from tests.conftest import free_port, wait_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def populated(tmp_path: Path) -> Path:
    store_path = tmp_path / "ts.db"
    t = now_ms()
    with SqliteSeriesStore(store_path) as st:
        s = Series.of("gpu_latency_p99_seconds", deployment="llm")
        st.append([Sample(s, t - 600_000 + i * 10_000, 0.2 + (i % 7) * 0.01) for i in range(60)])
    cfg = tmp_path / "aiops.yaml"
    cfg.write_text(f"store:\n  path: {store_path}\nagent:\n  api_token: tok-secret-123\n")
    db = StateDB(f"sqlite:///{tmp_path / 'ts-state.db'}")
    db.create_all()
    db.audit("planned", action_run_id="r1", playbook="scale-llm")
    db.dispose()
    return cfg


def test_series_frame_and_tables(populated: Path) -> None:
    from aiops.config import load_settings

    data = DashboardData(load_settings(populated))
    found = data.find_series("gpu_latency_p99_seconds")
    assert [s.key for s in found] == ['gpu_latency_p99_seconds{deployment="llm"}']
    store = data.store()
    assert store is not None
    frame = series_frame(store, found, now_ms() - 3_600_000, now_ms(), step_ms=60_000)
    store.close()
    assert frame.shape[1] == 1 and frame.notna().sum().iloc[0] >= 10
    audit = data.table("audit")
    assert audit.loc[0, "playbook"] == "scale-llm"


@pytest.mark.integration
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package 'chromium')")
def test_dashboard_renders_in_headless_chromium(populated: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "app", "dashboard", "--config", str(populated),
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_port(port, timeout_s=90)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"http://127.0.0.1:{port}/?page=metrics&series=gpu_latency_p99_seconds", timeout=60_000)
            page.get_by_text("1 series match").wait_for(timeout=60_000)
            page.locator("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg").first.wait_for(
                timeout=60_000)  # the line chart was drawn
            page.wait_for_timeout(1000)
            page.screenshot(path=str(tmp_path / "metrics.png"))
            if os.environ.get("AIOPS_TEST_SCREENSHOTS"):
                page.screenshot(path=os.environ["AIOPS_TEST_SCREENSHOTS"] + "/metrics.png")
            page.goto(f"http://127.0.0.1:{port}/?page=actions", timeout=60_000)
            page.get_by_text("Audit log").wait_for(timeout=60_000)
            # grid cells are drawn on a canvas: their DOM copies exist but are hidden
            page.get_by_text("scale-llm").first.wait_for(state="attached", timeout=60_000)
            assert "tok-secret-123" not in page.content()
            assert errors == []  # e.g. Vega-Lite refusing a column name would show up here
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
