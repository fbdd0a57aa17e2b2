"""Page logic through Streamlit's AppTest against a filled store and state database."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.settings import load_settings
from dashboard.access import IDENTITY_KEY, Identity
from dashboard.data import DashboardData, DataUnavailable, _sqlite_message, load_dashboard_settings
from tests.dashboard.fill import AWKWARD_SERIES, LATENCY, fill, write_config

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
PAGES = ["overview", "metrics", "gpus", "alerts", "remediation", "tuning"]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("dash")
    fill(tmp / "ts.db")
    return write_config(tmp, tmp / "ts.db", agent_port=1)  # nothing listens on port 1: writes fail clearly


_COMPONENTS: list[object] = []


def _new(timeout_s: float = 60) -> AppTest:
    """An AppTest sharing one component registry: building it scans every installed package's
    metadata (~2 s each time on this machine), and the dashboard uses no custom components."""
    at = AppTest.from_file(APP, default_timeout=timeout_s)
    if _COMPONENTS:
        at._bidi_component_manager = _COMPONENTS[0]  # type: ignore[assignment]  # private: a test speed-up only
    return at


def _remember(at: AppTest) -> None:
    if not _COMPONENTS and at._bidi_component_manager is not None:
        _COMPONENTS.append(at._bidi_component_manager)


def _app(config: Path, page: str, identity: Identity | None = None, **params: str) -> AppTest:
    at = _new()
    at.session_state["aiops_config"] = str(config)
    if identity is not None:
        at.session_state[IDENTITY_KEY] = identity
    at.query_params["page"] = page
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    _remember(at)
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [s.value for s in at.subheader]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_on_real_data(filled: Path, page: str) -> None:
    at = _app(filled, page)
    assert not at.error, [e.value for e in at.error]


@pytest.mark.parametrize("page", PAGES)
def test_no_store_is_a_message_not_a_traceback(tmp_path: Path, page: str) -> None:
    cfg = write_config(tmp_path, tmp_path / "never.db", agent_port=1)
    at = _app(cfg, page)
    shown = " ".join(i.value for i in at.info)
    assert "no agent has" in shown and "aiops run" in shown
    assert not (tmp_path / "never-state.db").exists()  # the dashboard creates nothing


def test_store_of_another_version_and_locked_store_say_so(tmp_path: Path) -> None:
    store = tmp_path / "ts.db"
    with sqlite3.connect(store) as c:
        c.execute("CREATE TABLE something_else (x)")
    at = _app(write_config(tmp_path, store, agent_port=1), "metrics")
    assert "another version" in at.error[0].value
    # a real lock: another connection holds an exclusive transaction
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sqlite3.OperationalError) as info:
            sqlite3.connect(tmp_path / "locked.db", timeout=0).execute("SELECT * FROM t")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _sqlite_message(info.value, "store", "x").kind == "locked"


def test_relative_store_path_follows_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "other").mkdir()
    cfg = tmp_path / "other" / "aiops.yaml"
    cfg.write_text("store:\n  path: data/aiops.db\n")
    monkeypatch.chdir(tmp_path)
    settings, path = load_dashboard_settings("other/aiops.yaml")
    assert settings.store.path == (tmp_path / "other" / "data" / "aiops.db").resolve()
    assert path == cfg.resolve()
    assert load_settings(None).store.path == Path("aiops-data/aiops.db")  # the agent's default is untouched


def test_awkward_label_values_chart_as_data_not_field_names(filled: Path) -> None:
    at = _app(filled, "metrics", series=AWKWARD_SERIES.key)
    charts = at.get("vega_lite_chart")
    assert charts, "no chart drawn"
    spec = json.loads(charts[0].proto.spec)
    text = json.dumps(spec)
    assert "46635" not in text.split('"datasets"')[0]  # not in any encoding
    fields = {enc["field"] for layer in spec.get("layer", [spec]) for enc in layer.get("encoding", {}).values()
              if isinstance(enc, dict) and "field" in enc}
    assert fields <= {"t", "value", "label", "start", "end", "lower", "upper", "detector", "score", "playbook",
                      "action", "status", "alertname", "severity"}
    assert "1 series match" in _texts(at)


def test_explorer_says_when_more_series_match_than_are_drawn(filled: Path) -> None:
    at = _new()
    at.session_state["aiops_config"] = str(filled)
    at.session_state["f_max"] = 1
    at.query_params.update({"page": "metrics", "series": "aiops_collector_up"})
    at.run()
    assert any("Showing 1 of 2 matching series" in w.value for w in at.warning)


def test_explorer_draws_anomalies_band_score_and_alert_period(filled: Path) -> None:
    at = _app(filled, "metrics", series=LATENCY.key)
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    assert len(specs) == 2  # one panel per unit: the latency (seconds) and the detector's score (ratio)
    latency, score = (json.dumps(s) for s in specs)
    assert '"rect"' in latency and '"rect"' in score  # the alert period, on every panel
    assert '"area"' in latency  # the expected band
    assert '"point"' in latency  # anomaly markers
    assert "seconds" in latency and "ratio (0" in score
    assert "time (UTC)" in score and "time (UTC)" not in latency  # the time axis is titled once, at the bottom
    domains = [layer["encoding"]["x"]["scale"]["domain"] for s in specs for layer in s["layer"]
               if "scale" in layer["encoding"].get("x", {})]
    assert len(domains) == 2 and domains[0] == domains[1]  # one time domain: the panels line up


def test_alerts_are_apart_and_silence_form_is_prefilled(filled: Path) -> None:
    # AppTest binds no address: without users the dashboard is read-only there, so act as the local operator
    at = _app(filled, "alerts", identity=Identity("", "operator"))
    heads = [s.value for s in at.subheader]
    assert any("Firing (1)" in h for h in heads)
    assert any("Pending (1)" in h for h in heads)
    assert any("Resolved in the last hour (1)" in h for h in heads)
    silence = next(b for b in at.button if b.label == "Silence")
    silence.click().run()
    matchers = at.text_area(key="sil_matchers").value
    assert 'alertname="' in matchers and "severity=" in matchers
    assert any("Would mute 1 current alert" in m.value for m in at.markdown)
    at.text_input(key="sil_who").input("alice")  # a form field: sent with the submit click
    next(b for b in at.button if b.label == "Create silence").click().run()
    # nothing listens on port 1: the message says so instead of a traceback
    assert any("unreachable" in e.value for e in at.error)


def test_notifications_say_which_were_not_sent(filled: Path) -> None:
    at = _app(filled, "alerts")
    frame = next(d.value for d in at.dataframe if "receiver" in d.value and "sent" in d.value)
    by = dict(zip(frame["receiver"], frame["sent"], strict=True))
    assert by["pager"] == "not sent"  # failed three times: no time, and no "None" cell
    assert by["ops-slack"][:4].isdigit() and len(by["ops-slack"]) == len("2026-12-01 15:00:00")


def test_history_chips_leave_out_what_has_its_own_column(filled: Path) -> None:
    at = _app(filled, "alerts")
    frame = next(d.value for d in at.dataframe if "labels" in d.value and "state" in d.value)
    chips = [c for row in frame["labels"] for c in row]
    assert "instance=127.0.0.1:9999" in chips  # the series' labels stay...
    assert not [c for c in chips if c.startswith(("alertname=", "severity="))]  # ...the rule's have columns
    assert "note" not in frame and "silenced by" not in frame  # no row has one: no empty columns


def test_filters_come_from_the_url(filled: Path) -> None:
    at = _app(filled, "alerts", alertname="SlowPath")
    heads = [s.value for s in at.subheader]
    assert any("Pending (1)" in h for h in heads) and not any("Firing" in h for h in heads)
    at = _app(filled, "alerts", severity="critical")
    assert any("Resolved" in h for h in [s.value for s in at.subheader])


def test_viewer_sees_no_write_controls(filled: Path) -> None:
    viewer = Identity("vic", "viewer")
    at = _app(filled, "alerts", identity=viewer)
    assert not [b for b in at.button if "Silence" in b.label or b.label == "Expire"]
    at = _app(filled, "remediation", identity=viewer)
    labels = [b.label for b in at.button]
    assert "Approve" not in labels and "Reject" not in labels and not [x for x in labels if "kill switch" in x]
    assert any("operator role" in c.value for c in at.caption)
    operator = _app(filled, "remediation", identity=Identity("op", "operator"))
    assert "Approve" in [b.label for b in operator.button]


def test_remediation_lists_pending_runs_and_details(filled: Path) -> None:
    at = _app(filled, "remediation", run="run-done-1")
    text = _texts(at)
    assert "Waiting for approval (2)" in text
    assert "`2` → `8`" in text  # before/after of the verified scale-out
    runs = next(d.value for d in at.dataframe if "finished" in d.value and "playbook" in d.value)
    waiting = runs[runs["status"] == "waiting for approval"]
    # a run that has not finished says what it does and for how long: no empty, NaT or "None" cell
    assert len(waiting) == 2 and waiting["finished"].str.match(r"still waiting · \d+ s so far").all(), runs
    assert runs["finished"].notna().all() and runs["id"].str.len().max() == 8
    assert any("finished " in c.value and "(took " in c.value for c in at.caption)  # the selected run's times


def test_tuning_replays_a_stored_series(filled: Path) -> None:
    at = _new()
    at.session_state["aiops_config"] = str(filled)
    at.query_params["page"] = "tuning"
    at.run()
    at.selectbox(key="t_metric").select(LATENCY.name).run()
    at.button(key="t_run").click().run()
    assert not at.exception
    assert any("detect:" in c.value for c in at.code)
    assert at.get("vega_lite_chart")


def test_tuning_scores_labelled_csv() -> None:
    from dashboard.views.tuning import label_metrics, replay, windows_from_labels

    rng = np.random.default_rng(0)
    values = rng.normal(0, 1, 3000)
    values[2000:2010] += 12
    ts = np.arange(3000, dtype=np.int64) * 60_000
    labels = np.zeros(3000, dtype=int)
    labels[1995:2030] = 1
    windows = windows_from_labels(ts, labels)
    assert windows == [(1995 * 60_000, 2029 * 60_000)]
    got = replay("zscore", {"window": 60}, values)
    m = label_metrics(ts, windows, got.flagged)
    assert m["detected"] == 1 and m["recall"] == 1.0 and m["NAB score"] is not None


def test_every_detector_gets_a_form() -> None:
    from dashboard.params import param_specs
    from detectors import registry

    for name in registry.available():
        specs = param_specs(registry.get(name))
        assert specs or name == "ensemble", name
        for p in specs:
            assert p.kind in ("bool", "int", "float", "choice", "str")
            if p.kind in ("int", "float") and p.default is not None:
                assert p.low <= p.default <= p.high, (name, p)


def test_data_unavailable_kinds(tmp_path: Path) -> None:
    data = DashboardData(load_settings(write_config(tmp_path, tmp_path / "x.db", 1)))
    with pytest.raises(DataUnavailable) as info, data.store():
        pass
    assert info.value.kind == "missing"


def test_storm_summary_link_window(filled: Path) -> None:
    from aiops.model import now_ms

    now = now_ms()
    at = _app(filled, "alerts", since_ms=str(now - 120_000), until_ms=str(now))
    heads = [s.value for s in at.subheader]
    assert any("between" in i.value for i in at.info)
    assert any("Firing (1)" in h for h in heads)  # still firing: active in the window
    assert not any("Resolved" in h for h in heads)  # resolved 5 min ago: outside


def _latency_fp() -> str:
    from tests.dashboard.fill import _alert

    return _alert("InferenceLatencyHigh", "page", dict(LATENCY.labels))[0]


def test_alert_page_ranks_root_causes_and_draws_their_paths(filled: Path) -> None:
    from tests.dashboard.fill import RCA_CAUSES, SYMPTOM

    at = _app(filled, "alerts")
    assert any("Likely cause: **deployment/inference/llm (pod/inference/llm-0)**" in m.value for m in at.markdown)
    next(b for b in at.button if "Details" in b.label).click().run()  # the firing latency alert's card comes first
    assert not at.exception and at.query_params["alert"] == _latency_fp()
    text = _texts(at)
    assert "Most likely: deployment/inference/llm (pod/inference/llm-0)" in text
    assert f"Symptom `{SYMPTOM}`" in text
    table = at.dataframe[0].value
    assert list(table["metric"]) == [c["metric"] for c in RCA_CAUSES]  # ranked as stored, best first
    # the path's cell is short (the hops' components, no namespace); the expander has every hop in full
    assert list(table["path to the symptom"]) == ["→ symptom", "→ pod/llm-0 → symptom", "same component, no edge"]
    assert table["component"].iloc[1] == "node/gpu-node-1" and table["workload"].iloc[0] == "deployment/llm"
    full = next(e for e in at.expander if "Every cause in full" in e.label)
    details = "\n".join(m.value for m in full.markdown)
    assert f"`pod/inference/llm-0:inference_queue_depth` → `{SYMPTOM}` (symptom)" in details
    assert "**#1** `inference_gpu_utilization_ratio` in `pod/inference/llm-0` (deployment/inference/llm)" in details
    dot = at.get("graphviz_chart")[0].proto.spec
    assert "cluster" in dot and "symptom: inference_latency_p99_seconds" in dot and '"#1 inference_gpu_utilization' \
        in dot and "node/gpu-node-1" in dot
    assert dot.count("->") == 4  # pod -> symptom; node -> pod's queue -> symptom; the deployment's own metric
    assert dot.count("same component") == 1


def test_alert_page_without_a_ranking_says_why(filled: Path) -> None:
    from tests.dashboard.fill import AWKWARD, _alert

    at = _app(filled, "alerts", alert=_alert("SlowPath", "warning", AWKWARD)[0])
    assert any("No root-cause ranking stored" in i.value for i in at.info)
    at = _app(filled, "alerts", alert="0000000000000000")
    assert any("No alert with fingerprint" in i.value for i in at.info)


def test_path_graph_escapes_names_and_keeps_colons_in_components() -> None:
    from dashboard.causes import path_dot

    record = {"symptom": "svc/a:lat", "causes": [
        {"component": "instance/10.0.0.1:9100", "metric": 'up{x="a\\"b"}', "score": 1.0, "z": 1.0,
         "path": ['instance/10.0.0.1:9100:up{x="a\\"b"}', "svc/a:lat"]}]}
    dot = path_dot(record)
    assert 'label="instance/10.0.0.1:9100"' in dot  # the component whole, not split at its port
    assert '#1 up{x=\\"a\\\\\\"b\\"}' in dot and dot.count("->") == 1


def test_gpu_table_leaves_out_pods_that_went_away(tmp_path: Path) -> None:
    from aiops.model import Sample, Series, now_ms
    from aiops.store import SqliteSeriesStore
    from dashboard.health import gpu_table

    now = now_ms()
    live = Series.of("inference_gpu_utilization_ratio", pod="llm-1", deployment="llm")
    gone = Series.of("inference_gpu_utilization_ratio", pod="llm-7", deployment="llm")
    with SqliteSeriesStore(tmp_path / "ts.db") as store:  # llm-7 scaled away: its last sample is a staleness NaN
        store.append([Sample(live, now - 5000, 0.7), Sample(gone, now - 60_000, 0.5), Sample(gone, now - 5000,
                                                                                                float("nan"))])
        table = gpu_table(store, now)
    assert list(table["gpu"]) == ["llm-1"]
