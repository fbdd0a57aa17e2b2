"""The whole console in real headless Chromium, against a real agent run plus the demo.

One served app and one browser for the module: ``aiops demo --fast`` fills a store (scrape of
the simulated service, alerts, scale-out/in runs); a real ``aiops run`` on the same store adds
host metrics, a firing alert and two runs waiting for approval, and serves the API the
dashboard writes through; the test data set adds series whose labels carry ``:``, quotes,
brackets and unicode, GPU series and detector companions. Each page is loaded (no exception, no
console error) and saved as a screenshot under ``docs/img/dashboard/``; silence, approve and
reject are done by clicking. Stopping ``aiops dashboard`` with SIGTERM must take Streamlit with it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml

from aiops.model import Matcher, MatchOp
from aiops.store import SqliteSeriesStore
from tests.conftest import free_port, wait_port
from tests.dashboard.fill import AWKWARD_SERIES, fill

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]  # demo + agent + 6 pages on 2 cores

REPO = Path(__file__).resolve().parents[2]
IMG = REPO / "docs" / "img" / "dashboard"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "tok-secret-123"
INSTANCE = 'edge:9321 "α" [1] ✓'  # the real agent's name: its alert's labels carry ':', quotes, brackets, unicode


@dataclass
class Console:
    url: str
    agent_url: str
    workdir: Path
    page: Any
    errors: list[str]


def _playbook(name: str) -> dict[str, Any]:
    return {"name": name, "description": f"{name}: asks a person first",
            "trigger": {"match": {"alertname": "HostCollectorUp"}},
            "steps": [{"action": "notify", "approval": True,
                       "params": {"receiver": "ops", "message": f"{name} for {{{{ $labels.instance }}}}"}}]}


def _agent_config(work: Path, port: int) -> Path:
    pb = work / "dash-playbooks"
    pb.mkdir()
    for name in ("restart-collector", "drain-host"):
        (pb / f"{name}.yaml").write_text(yaml.safe_dump(_playbook(name)))
    cfg = work / "aiops.yaml"
    cfg.write_text(yaml.safe_dump({
        "store": {"path": "aiops.db"},  # relative: resolved next to this file by the dashboard
        "agent": {"listen_port": port, "api_token": TOKEN, "instance": INSTANCE, "log_level": "WARNING"},
        "collect": {"host": {"enabled": True, "interval_s": 1.0}, "gpu": {"enabled": False}},
        # the playbooks notify "ops": a receiver they name must exist (nothing listens on port 9)
        "alerting": {"evaluation_interval_s": 1.0,
                     "receivers": [{"name": "ops", "type": "webhook", "url": "http://127.0.0.1:9/hook"}],
                     "rules": [
            {"alert": "HostCollectorUp", "expr": 'aiops_collector_up{collector="host"}', "op": ">",
             "threshold": 0.5, "for": 0, "labels": {"severity": "warning"},
             "annotations": {"summary": "the host collector answers (a test alert that always fires)"}}]},
        "remediation": {"playbooks": [str(pb)], "sweep_interval_s": 0.5},
    }))
    return cfg


def _wait(what: str, check: Any, timeout_s: float = 45) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.3)
    raise TimeoutError(f"{what} after {timeout_s}s")


def _api(url: str, **params: str) -> Any:
    resp = httpx.get(url, params=params, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert resp.status_code == 200, resp.text[:500]
    return resp.json()["data"]


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    sync_playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed").sync_playwright
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium not found at {CHROMIUM}: install Debian's chromium (apt-get install chromium)")
    work = tmp_path_factory.mktemp("console")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(work)}
    demo = subprocess.run([sys.executable, "-m", "app", "demo", "--fast", "--workdir", str(work)], env=env,
                          capture_output=True, text=True, timeout=180)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    with SqliteSeriesStore(work / "aiops.db", read_only=True) as st:
        latency = st.select([Matcher("__name__", MatchOp.EQ, "inference_latency_p99_seconds")])[0]
    fill(work / "aiops.db", minutes=30, latency=latency, own_alerts=False)
    agent_port, dash_port = free_port(), free_port()
    cfg = _agent_config(work, agent_port)
    procs: list[subprocess.Popen[bytes]] = []
    log = (work / "processes.log").open("wb")
    try:
        # cwd: the agent reads the relative store path from where it runs (the dashboard: from the config file)
        procs.append(subprocess.Popen([sys.executable, "-m", "app", "run", "-c", str(cfg)], env=env, cwd=work,
                                      stdout=log, stderr=subprocess.STDOUT))
        agent_url = f"http://127.0.0.1:{agent_port}"
        wait_port(agent_port, timeout_s=60)
        _wait("two runs pending approval",
              lambda: len(_api(f"{agent_url}/api/v1/actions", status="pending_approval")) >= 2)
        procs.append(subprocess.Popen([sys.executable, "-m", "app", "dashboard", "-c", str(cfg), "--port",
                                       str(dash_port)], env=env, cwd="/", stdout=log, stderr=subprocess.STDOUT))
        wait_port(dash_port, timeout_s=90)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            # tall: Streamlit scrolls inside its main block, so a full-page shot is the viewport
            context = browser.new_context(viewport={"width": 1440, "height": 1500}, timezone_id="Europe/Paris")
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
            yield Console(f"http://127.0.0.1:{dash_port}", agent_url, work, page, errors)
            browser.close()
        dash = procs.pop()
        children = psutil.Process(dash.pid).children(recursive=True)
        assert any("streamlit" in " ".join(c.cmdline()) for c in children)
        _stop(dash)
        assert dash.returncode is not None
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"aiops dashboard left {alive} running after SIGTERM"
    finally:
        for proc in reversed(procs):
            _stop(proc)
        log.close()


def _open(c: Console, query: str, ready_text: str, shot: str | None = None) -> None:
    c.page.goto(f"{c.url}/?{query}", timeout=60_000)
    c.page.get_by_text(ready_text).first.wait_for(timeout=60_000)
    _settle(c)
    assert c.page.locator("[data-testid='stException']").count() == 0, c.page.locator(
        "[data-testid='stException']").first.inner_text()
    if shot:
        IMG.mkdir(parents=True, exist_ok=True)
        c.page.screenshot(path=str(IMG / f"{shot}.png"), full_page=True)


def _settle(c: Console) -> None:
    """Wait until the script run is over (the status widget says nothing) and charts are drawn."""
    c.page.wait_for_timeout(300)
    c.page.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]') && "
                             "!document.querySelector('[data-testid^=\"stSkeleton\"]')",
                             timeout=60_000)
    c.page.wait_for_timeout(500)


def test_every_page_loads_without_error(console: Console) -> None:
    c = console
    _open(c, "page=overview", "Agents and targets", "overview")
    assert "tok-secret-123" not in c.page.content()
    _open(c, "page=metrics", "series match", "metrics")
    c.page.locator("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg").first.wait_for()
    _open(c, "page=gpus", "Every panel shares the time axis", "gpus")
    _open(c, "page=alerts", "Firing", "alerts")
    _open(c, "page=remediation", "Waiting for approval", "remediation")
    _open(c, "page=tuning", "Setting A")
    c.page.get_by_role("button", name="Run replay").click()
    c.page.get_by_text("YAML for setting A").wait_for(timeout=60_000)
    _settle(c)
    c.page.screenshot(path=str(IMG / "tuning.png"), full_page=True)
    assert c.errors == []


def test_awkward_labels_render(console: Console) -> None:
    c = console
    from urllib.parse import quote

    _open(c, f"series={quote(AWKWARD_SERIES.key, safe='')}", "1 series match", "metrics-awkward-labels")
    c.page.locator("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg").first.wait_for()
    # the stats table holds the series text (grid cells are drawn on a canvas; their DOM copies are hidden)
    c.page.get_by_text("zürich-αβ ✓", exact=False).first.wait_for(state="attached")
    _open(c, "page=alerts&alertname=HostCollectorUp", "Firing")
    assert c.page.get_by_text(INSTANCE).count() >= 1  # a chip with ':', quotes, brackets and unicode
    assert c.errors == []


def test_silence_from_an_alert_in_two_clicks_then_expire(console: Console) -> None:
    c = console
    _open(c, "page=alerts&alertname=HostCollectorUp", "Firing")
    c.page.get_by_role("button", name="Silence").first.click()
    c.page.get_by_text("Would mute 1 current alert").wait_for()
    c.page.get_by_label("Your name").fill("alice")
    c.page.get_by_label("Comment").fill("known, testing")
    _settle(c)
    c.page.screenshot(path=str(IMG / "alerts-silence-form.png"), full_page=True)
    c.page.get_by_role("button", name="Create silence").click()
    c.page.get_by_text("created for 2h").wait_for(timeout=30_000)
    found = _api(f"{c.agent_url}/api/v1/silences")
    # the agent records its authenticated principal as the author; the comment is ours
    mine = [s for s in found if s.get("comment") == "known, testing"]
    assert mine and "HostCollectorUp" in mine[0]["matchersText"] and INSTANCE in str(mine[0]["matchers"])
    c.page.get_by_role("tab", name="Silences").click()
    c.page.get_by_role("button", name="Expire").first.click()
    _wait("silence expired", lambda: all(s["status"]["state"] == "expired" for s in _api(
        f"{c.agent_url}/api/v1/silences") if s.get("comment") == "known, testing"), timeout_s=20)
    assert c.errors == []


def test_approve_and_reject_by_clicking(console: Console) -> None:
    c = console
    _open(c, "page=remediation", "Waiting for approval (2)")
    for verb in ("Approve", "Reject"):
        card = c.page.locator("[data-testid='stForm']").first
        card.get_by_label("Your name").fill("bob")
        card.get_by_label("Reason").fill(f"{verb.lower()} in the browser test")
        _settle(c)
        card.get_by_role("button", name=verb).click()
        done = c.page.locator("[data-testid='stAlertContentSuccess']", has_text=f"{verb.lower().rstrip('e')}ed ")
        refused = c.page.locator("[data-testid='stAlertContentError']")
        try:
            done.or_(refused).first.wait_for(timeout=30_000)
        except Exception:
            c.page.screenshot(path=f"/tmp/dashboard-{verb}-failed.png", full_page=True)
            raise
        assert refused.count() == 0, refused.first.inner_text()
        _settle(c)
    runs = _api(f"{c.agent_url}/api/v1/actions")
    statuses = sorted(r["status"] for r in runs if r["playbook"] in ("restart-collector", "drain-host"))
    assert "rejected" in statuses and any(s in statuses for s in ("approved", "queued", "running", "applied",
                                                                    "verified", "failed"))
    assert c.errors == []
