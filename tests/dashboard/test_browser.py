"""The whole console in real headless Chromium, against a real agent run plus the demo.

One served app and one browser for the module: ``aiops demo --fast`` fills a store (scrape of
the simulated service, alerts, scale-out/in runs); a real ``aiops run`` on the same store adds
host metrics, a firing alert and two runs waiting for approval, and serves the API the
dashboard writes through; the test data set adds series whose labels carry ``:``, quotes,
brackets and unicode, GPU series and detector companions. Each page is loaded (no exception, no
console error) and saved as a screenshot under ``docs/img/dashboard/``; silence, approve and
reject are done by clicking; the demo's latency alert shows its root causes with their paths
drawn; a viewer logged in on a second dashboard (``dashboard.users``) sees no write control.
Stopping ``aiops dashboard`` with SIGTERM must take Streamlit with it.

Time: the servers start and Chromium launches while the demo plays; waits are on Streamlit's
own "script run over" marker and drawn charts, never fixed sleeps.
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
    viewer_url: str  # the same store and agent, served with dashboard.users: a login is needed
    new_page: Any  # () -> a page in a fresh browser context (a new Streamlit session)


VIEWER = ("vic", "viewer-pass-123")


def _playbook(name: str) -> dict[str, Any]:
    return {"name": name, "description": f"{name}: asks a person first",
            "trigger": {"match": {"alertname": "HostCollectorUp"}},
            "steps": [{"action": "notify", "approval": True,
                       "params": {"receiver": "ops", "message": f"{name} for {{{{ $labels.instance }}}}"}}]}


def _configs(work: Path, port: int) -> tuple[Path, Path]:
    """The agent's config (it holds the dashboard logins the agent checks) and a login-free
    dashboard config on the same store and agent (a loopback dashboard: the local operator)."""
    from aiops.httpauth import hash_password

    pb = work / "dash-playbooks"
    pb.mkdir()
    for name in ("restart-collector", "drain-host"):
        (pb / f"{name}.yaml").write_text(yaml.safe_dump(_playbook(name)))
    store = {"path": "aiops.db"}  # relative: resolved next to the config file by the dashboard
    agent = {"listen_port": port, "api_token": TOKEN, "instance": INSTANCE, "log_level": "WARNING"}
    cfg = work / "aiops.yaml"
    cfg.write_text(yaml.safe_dump({
        "store": store, "agent": agent,
        "dashboard": {"users": [{"name": VIEWER[0], "role": "viewer", "password_hash": hash_password(VIEWER[1])}]},
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
    local = work / "dashboard-local.yaml"
    local.write_text(yaml.safe_dump({"store": store, "agent": agent}))
    return cfg, local


def _wait(what: str, check: Any, timeout_s: float = 45) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise TimeoutError(f"{what} after {timeout_s}s")


def _api(url: str, method: str = "GET", body: Any = None, **params: str) -> Any:
    resp = httpx.request(method, url, params=params, json=body, headers={"Authorization": f"Bearer {TOKEN}"},
                         timeout=10)
    assert resp.status_code < 300, resp.text[:500]
    return resp.json().get("data", resp.json())


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _watch(page: Any, errors: list[str]) -> Any:
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    return page


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """Everything that waits runs side by side: both dashboards start (and their first page run
    imports the app) and Chromium launches while the demo plays its story; then the test data set
    and the real agent run."""
    sync_playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed").sync_playwright
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium not found at {CHROMIUM}: install Debian's chromium (apt-get install chromium)")
    work = tmp_path_factory.mktemp("console")
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(work)}
    agent_port, dash_port, viewer_port = free_port(), free_port(), free_port()
    cfg, local_cfg = _configs(work, agent_port)
    procs: list[subprocess.Popen[bytes]] = []
    demo: subprocess.Popen[bytes] | None = None
    log = (work / "processes.log").open("wb")
    try:
        demo = subprocess.Popen([sys.executable, "-m", "app", "demo", "--fast", "--workdir", str(work)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for config, port in ((local_cfg, dash_port), (cfg, viewer_port)):
            procs.append(subprocess.Popen([sys.executable, "-m", "app", "dashboard", "-c", str(config), "--port",
                                           str(port)], env=env, cwd="/", stdout=log, stderr=subprocess.STDOUT))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            errors: list[str] = []

            def new_page() -> Any:
                # tall: Streamlit scrolls inside its main block, so a full-page shot is the viewport
                context = browser.new_context(viewport={"width": 1440, "height": 1500}, timezone_id="Europe/Paris")
                return _watch(context.new_page(), errors)

            page = new_page()
            for port in (dash_port, viewer_port):  # the first run of the app script imports it: do it now
                wait_port(port, timeout_s=90)
                page.goto(f"http://127.0.0.1:{port}/", timeout=60_000)
                page.get_by_text("aiops console").first.wait_for(timeout=60_000)
            out, _ = demo.communicate(timeout=180)
            assert demo.returncode == 0, out[-3000:].decode(errors="replace")
            with SqliteSeriesStore(work / "aiops.db", read_only=True) as st:
                latency = st.select([Matcher("__name__", MatchOp.EQ, "inference_latency_p99_seconds")])[0]
            fill(work / "aiops.db", minutes=30, latency=latency, own_alerts=False)
            # cwd: the agent reads the relative store path from where it runs (the dashboard: from the config file)
            procs.insert(0, subprocess.Popen([sys.executable, "-m", "app", "run", "-c", str(cfg)], env=env, cwd=work,
                                             stdout=log, stderr=subprocess.STDOUT))
            agent_url = f"http://127.0.0.1:{agent_port}"
            wait_port(agent_port, timeout_s=60)
            _wait("two runs pending approval",
                  lambda: len(_api(f"{agent_url}/api/v1/actions", status="pending_approval")) >= 2)
            errors.clear()  # the warm-up pages had no store yet
            yield Console(f"http://127.0.0.1:{dash_port}", agent_url, work, page, errors,
                          f"http://127.0.0.1:{viewer_port}", new_page)
            browser.close()
        for dash in (procs.pop(), procs.pop()):
            children = psutil.Process(dash.pid).children(recursive=True)
            assert any("streamlit" in " ".join(c.cmdline()) for c in children)
            _stop(dash)
            assert dash.returncode is not None
            gone, alive = psutil.wait_procs(children, timeout=10)
            assert not alive, f"aiops dashboard left {alive} running after SIGTERM"
    finally:
        if demo is not None and demo.poll() is None:
            demo.kill()
            demo.communicate()
        for proc in reversed(procs):
            _stop(proc)
        log.close()


# The script has finished its run (Streamlit's own marker on the app root), no skeleton waits for
# data, and every chart and graph has drawn.
SETTLED = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (document.querySelector('[data-testid^="stSkeleton"]')) return false;
  for (const c of document.querySelectorAll('[data-testid="stVegaLiteChart"]'))
    if (!c.querySelector('canvas, svg')) return false;
  for (const g of document.querySelectorAll('[data-testid="stGraphVizChart"]'))
    if (!g.querySelector('svg')) return false;
  return true;
}"""


def _open(c: Console, query: str, ready_text: str, shot: str | None = None, page: Any = None) -> None:
    page = page or c.page
    page.goto(f"{c.url}/?{query}", timeout=60_000)
    page.get_by_text(ready_text).first.wait_for(timeout=60_000)
    _settle(c, page)
    assert page.locator("[data-testid='stException']").count() == 0, page.locator(
        "[data-testid='stException']").first.inner_text()
    if shot:
        _shot(page, shot)


def _shot(page: Any, name: str) -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMG / f"{name}.png"), full_page=True)


def _settle(c: Console, page: Any = None) -> None:
    """Wait until the script run is over and what it drew is on screen (no fixed sleeps)."""
    page = page or c.page
    page.wait_for_function(SETTLED, timeout=60_000, polling=50)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


# Each grid on the page: its scrolled and visible widths (a wider content is cut off at the right
# edge), its headers, and its cells' text (Glide draws the cells on a canvas; these are the hidden
# DOM copies it keeps for accessibility: an empty string where the canvas draws a grey "None").
TABLES = """() => [...document.querySelectorAll('[data-testid="stDataFrame"]')].map(d => {
  const s = d.querySelector('.dvn-scroller');
  return {scroll_w: s ? s.scrollWidth : 0, client_w: s ? s.clientWidth : 0,
          heads: [...d.querySelectorAll('th')].map(t => t.innerText.trim()),
          rows: [...d.querySelectorAll('tbody tr')]
            .map(r => [...r.querySelectorAll('td')].map(t => t.innerText.trim()))};
})"""


def _tables(page: Any) -> list[dict[str, Any]]:
    return [{**t, "cols": [dict(zip(t["heads"], r, strict=False)) for r in t["rows"]]} for t in page.evaluate(TABLES)]


def _table_with(page: Any, head: str) -> dict[str, Any]:
    """The grid with a column ``head``, once Glide has written its DOM copy (after the first draw)."""
    page.wait_for_function("""h => [...document.querySelectorAll('[data-testid="stDataFrame"] th')]
                                    .some(t => t.innerText.trim() === h)""", arg=head, timeout=30_000, polling=100)
    return next(t for t in _tables(page) if head in t["heads"])


# The widest cell text of each column of the grid with a column ``head``, in px as the grid draws
# it: measured on a canvas with the grid's own cell font (Glide's --gdg-* variables), plus the
# cell's padding on both sides. A cell wider than its column is cut at the column's edge.
CELL_WIDTHS = """async h => {
  await document.fonts.ready;
  const d = [...document.querySelectorAll('[data-testid="stDataFrame"]')]
    .find(d => [...d.querySelectorAll('th')].some(t => t.innerText.trim() === h));
  const styled = [d, ...d.querySelectorAll('*')].find(e => getComputedStyle(e).getPropertyValue('--gdg-font-family'));
  const css = getComputedStyle(styled), v = n => css.getPropertyValue(n).trim();
  const ctx = document.createElement('canvas').getContext('2d');
  ctx.font = `${v('--gdg-base-font-style')} ${v('--gdg-font-family')}`;
  const pad = 2 * parseFloat(v('--gdg-cell-horizontal-padding') || '8');
  const heads = [...d.querySelectorAll('th')].map(t => t.innerText.trim()), widest = {};
  for (const r of d.querySelectorAll('tbody tr'))
    [...r.querySelectorAll('td')].forEach((t, i) => {
      widest[heads[i]] = Math.max(widest[heads[i]] || 0, Math.ceil(ctx.measureText(t.innerText.trim()).width + pad));
    });
  return {font: ctx.font, widest};
}"""


def test_every_page_loads_without_error(console: Console) -> None:
    c = console
    _open(c, "page=overview", "Agents and targets", "overview")
    assert "tok-secret-123" not in c.page.content()
    targets = _table_with(c.page, "down since")
    assert targets["scroll_w"] <= targets["client_w"], targets  # every column on screen, "down since" included
    down = [r for r in targets["cols"] if r["state"] == "DOWN"]
    assert down and all(r["down since"].endswith(" ago") for r in down), targets
    gpus = _table_with(c.page, "GPU / pod")
    assert gpus["cols"] and all(v not in ("", "None", "nan") for r in gpus["cols"] for v in r.values()), gpus
    _open(c, "page=metrics", "series match", "metrics")
    c.page.locator("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg").first.wait_for()
    _open(c, "page=gpus", "Every panel shares the time axis", "gpus")
    _open(c, "page=alerts", "Firing", "alerts")
    _open(c, "page=remediation", "Waiting for approval", "remediation")
    runs = _table_with(c.page, "finished")
    assert runs["scroll_w"] <= runs["client_w"], runs
    waiting = [r for r in runs["cols"] if r["status"] == "waiting for approval"]
    # a run still open says so and for how long (the grid drew a grey "None" there)
    assert len(waiting) >= 2 and all(r["finished"].startswith("still waiting · ") for r in waiting), runs
    assert all(r["finished"] for r in runs["cols"]), runs
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


def test_viewer_sees_no_write_controls(console: Console) -> None:
    c = console
    silence = _api(f"{c.agent_url}/api/v1/silences", "POST",  # an active silence: an Expire button's place
                   {"matchers": ['alertname="NoSuchAlert"'], "duration": "1h", "comment": "viewer test",
                    "createdBy": "test"})
    page = c.new_page()
    try:
        page.goto(f"{c.viewer_url}/?page=alerts", timeout=60_000)
        page.get_by_label("User", exact=True).fill(VIEWER[0])
        page.get_by_label("Password", exact=True).fill(VIEWER[1])
        page.get_by_role("button", name="Log in").click()
        page.get_by_text(f"{VIEWER[0]} · role: viewer").wait_for(timeout=30_000)
        # pages switch inside the session (a reload would log out), through the sidebar
        page.get_by_text("Firing").first.wait_for(timeout=30_000)
        _settle(c, page)
        assert page.get_by_role("button", name="Details").count() >= 1  # the cards are there...
        assert page.get_by_role("button", name="Silence").count() == 0  # ...without their write control
        page.get_by_role("tab", name="Silences").click()
        page.get_by_text('alertname="NoSuchAlert"').first.wait_for()
        assert page.get_by_role("button", name="Expire").count() == 0
        page.get_by_role("button", name="Remediation").click()
        # before the approve/reject test: the two runs still wait, each without its decision form
        page.get_by_text("Waiting for approval (2)").wait_for(timeout=30_000)
        assert page.get_by_text("Approval needs the operator role").count() == 2
        _settle(c, page)
        _shot(page, "remediation-viewer")
        for name in ("Approve", "Reject", "Engage kill switch", "Release kill switch"):
            assert page.get_by_role("button", name=name).count() == 0, name
        assert page.get_by_text("Kill switch off").count() == 1  # the same facts, read-only
        assert c.errors == []
    finally:
        page.context.close()
        _api(f"{c.agent_url}/api/v1/silences/{silence['id']}", "DELETE")


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


def test_alert_page_shows_root_causes_and_their_paths(console: Console) -> None:
    from aiops.state import StateDB
    from dashboard.causes import path_dot
    from rca.tables import latest_alert_rca

    c = console
    db = StateDB(f"sqlite:///{c.workdir / 'aiops-state.db'}")
    try:
        ranked = [r for r in latest_alert_rca(db) if r["causes"]
                  and r["symptom"].endswith(":inference_latency_p99_seconds")]
    finally:
        db.dispose()
    assert ranked, "the demo's latency alert was not ranked"
    top = ranked[0]["causes"][0]
    assert top["workload"] == "deployment/inference/llm"  # the saturated deployment first
    _open(c, f"page=alerts&alert={ranked[0]['fingerprint']}", "Where it started", "alert-root-causes")
    c.page.get_by_text("Most likely: deployment/inference/llm").wait_for()
    graph = c.page.locator("[data-testid='stGraphVizChart'] svg")
    dot = path_dot(ranked[0])
    assert graph.locator("g.cluster").count() == dot.count("subgraph cluster_") >= 1  # components as boxes
    assert graph.locator("g.edge").count() == dot.count("->") >= 1  # every path (or same-component line) drawn
    assert graph.get_by_text("symptom: inference_latency_p99_seconds").count() == 1
    assert graph.get_by_text(f"#1 {top['metric']}").count() == 1
    table = _table_with(c.page, "path to the symptom")
    # every column on screen, the path included: no sideways scrolling to see where a cause sits
    assert table["scroll_w"] <= table["client_w"], table
    # and no cell is cut at its column's edge: the metric and path read whole (long ones shortened)
    from dashboard.views.alert_detail import CAUSE_WIDTHS

    drawn = c.page.evaluate(CELL_WIDTHS, "path to the symptom")
    # the text columns (the DOM copies of number and time cells hold the raw value, not what is drawn)
    cut = {k: (drawn["widest"][k], CAUSE_WIDTHS[k]) for k in ("metric", "component", "workload", "z (σ)",
                                                              "path to the symptom")
           if drawn["widest"][k] > CAUSE_WIDTHS[k]}
    assert not cut, (drawn, cut)
    assert len(table["cols"]) == min(10, len(ranked[0]["causes"])) and all(r["path to the symptom"]
                                                                          for r in table["cols"]), table
    # every name and hop in full, in the expander under the table (it wraps)
    full = c.page.locator("[data-testid='stExpander']").filter(has_text="Every cause in full")
    full.get_by_text("Every cause in full").click()
    full.locator("li").first.wait_for()
    first = full.locator("li").first.inner_text()
    assert top["metric"] in first and top["component"] in first and all(h in first for h in top["path"]), first
    assert c.errors == []

