"""What the pages' table cells and one-liners say: times, spans, open runs, missing readings.

Pure functions over the rows the pages read (no Streamlit session: the browser's zone is UTC).
"""

from __future__ import annotations

import pandas as pd

from dashboard.health import TargetHealth
from dashboard.ui import ago, duration, run_end, until
from dashboard.views.overview import NOT_REPORTED, gpu_rows, target_table
from dashboard.views.remediation import run_table

NOW = pd.Timestamp("2026-12-01 15:00:00", tz="UTC")


def _t(seconds: float) -> pd.Timestamp:
    return NOW + pd.Timedelta(seconds=seconds)


def _run(status: str, created: float, started: float | None = None, finished: float | None = None,
         **extra: object) -> dict[str, object]:
    return {"id": "0123456789abcdef", "status": status, "playbook": "pb", "step": 0, "action": "notify",
            "created": _t(created), "started": None if started is None else _t(started),
            "finished": None if finished is None else _t(finished), "approved_by": None, "dry_run": False,
            "error": None, **extra}


def test_spans_and_relative_times_read_as_people_say_them() -> None:
    assert [duration(s) for s in (0, 0.4, 1, 45, 89, 300, 4000, 9000, 200_000, -5)] == \
        ["< 1 s", "< 1 s", "1 s", "45 s", "89 s", "5 min", "67 min", "2.5 h", "2.3 d", "< 1 s"]
    assert ago(_t(-16), NOW) == "16 s ago" and ago(_t(-300), NOW) == "5 min ago"
    assert ago(NOW, NOW) == "just now" and ago(_t(3), NOW) == "just now"  # not "0s ago"
    assert ago(None) == "–"
    assert until(_t(3540), NOW) == "in 59 min (15:59)" and until(_t(-60), NOW) == "passed (14:59)"


def test_a_run_still_open_says_what_it_does_and_for_how_long() -> None:
    assert run_end(_run("running", -60, started=-12), NOW) == "still running · 12 s so far"
    assert run_end(_run("pending_approval", -240), NOW) == "still waiting · 4 min so far"
    assert run_end(_run("queued", -5), NOW) == "still queued · 5 s so far"
    assert run_end(_run("applied", -90, started=-80), NOW) == "still verifying · 80 s so far"
    assert run_end(_run("running", -30), NOW) == "still running · 30 s so far"  # no start recorded: since created


def test_a_finished_run_says_when_and_how_long_it_took() -> None:
    assert run_end(_run("verified", -60, started=-59, finished=-56), NOW) == "14:59:04 (took 3 s)"
    assert run_end(_run("rejected", -300, finished=-60), NOW) == "14:59:00 (took 4 min)"
    assert run_end(_run("applied", -9, started=-2, finished=-1.7), NOW) == "14:59:58 (took < 1 s)"
    over_midnight = {**_run("verified", 0), "created": pd.Timestamp("2026-11-30 23:59:00", tz="UTC"),
                     "finished": pd.Timestamp("2026-12-01 00:01:00", tz="UTC")}
    assert run_end(over_midnight) == "2026-12-01 00:01:00 (took 2 min)"
    assert run_end(_run("skipped", -10)) == "not run (skipped)" and run_end(_run("dry_run", -10)) == "not run (dry run)"


def test_runs_table_has_no_none_cells_and_short_ids() -> None:
    runs = [_run("pending_approval", -4), _run("running", -20, started=-10), _run("verified", -60, -59, -57)]
    table = run_table(runs, NOW)
    assert list(table["finished"]) == ["still waiting · 4 s so far", "still running · 10 s so far",
                                       "14:59:03 (took 2 s)"]
    assert not table.isna().any().any() and "None" not in table.astype(str).to_numpy()
    assert set(table["id"]) == {"01234567"}
    assert "error" not in table  # an empty column only costs width
    assert "error" in run_table([*runs, _run("failed", -9, -8, -7, error="boom")], NOW)


def test_targets_table_times_are_short_and_relative() -> None:
    found = [TargetHealth("scrape", "http://127.0.0.1:9999/metrics", "agent-1", False, _t(-16), _t(-125)),
             TargetHealth("host", "edge", "agent-1", True, NOW, None)]
    table = target_table(found, NOW)
    assert list(table["state"]) == ["DOWN", "up"]
    assert list(table["last seen"]) == ["16 s ago", "just now"]
    assert list(table["down since"]) == ["2 min ago", ""]


def test_gpu_rows_say_not_reported_instead_of_none() -> None:
    table = pd.DataFrame([
        {"node": "n1", "gpu": "llm-1", "model": "llm", "util": 0.75, "mem_used": 47.5e9, "source": "service"},
        {"node": "gpu-node-1", "gpu": "0", "model": "H100", "util": 0.55, "mem_used": 40e9, "temp_c": 64.0,
         "xid": 0.0, "source": "nvml"}])
    rows = gpu_rows(table)
    assert list(rows.columns) == ["node", "GPU / pod", "model", "utilisation", "memory used", "temperature",
                                  "XID errors"]  # ECC: no row reports it
    assert rows.iloc[0].tolist()[4:] == ["47.5 GB", NOT_REPORTED, NOT_REPORTED]
    assert rows.iloc[1].tolist()[4:] == ["40.0 GB", "64 °C", "0"]
    assert not rows.isna().any().any()


def test_root_cause_cells_fit_their_columns_and_keep_both_ends() -> None:
    from dashboard.causes import (
        COMPONENT_CHARS,
        METRIC_CHARS,
        WORKLOAD_CHARS,
        abbreviate,
        cause_details,
        cause_rows,
        short_metric,
        short_path,
    )

    symptom = "deployment/inference/llm:inference_latency_p99_seconds"
    pod = "pod/inference/llm-652196d49b-2"
    long_metric = 'vllm:num_requests_running{model_name="meta-llama/Llama-3.1-8B-Instruct"}'
    record = {"symptom": symptom, "causes": [
        {"component": pod, "metric": long_metric, "score": 5.8e7, "z": 5.9e7, "workload": "deployment/inference/llm",
         "path": [f"{pod}:{long_metric}", f"{pod}:inference_queue_depth",
                  "service/inference/llm-gateway-with-a-very-long-name:request_rate", symptom]},
        {"component": "node/gpu-node-1", "metric": "node_load1", "score": 2.0, "z": 2.0, "workload": None,
         "path": []}]}
    rows = cause_rows(record)
    # the label set gives way first: two metrics with the same labels still read apart
    assert rows["metric"].iloc[0] == "vllm:num_requests_running{…}" and len(rows["metric"].iloc[0]) <= METRIC_CHARS
    assert short_metric("up{instance='10.0.0.1:9100',job='node-exporter'}", 24) == "up{instance='…exporter'}"
    assert short_metric('vllm:num_requests_waiting{model_name="x/very-long-model-name"}', 28) == \
        "vllm:num_requests_waiting{…}"
    assert short_metric("a_very_long_metric_name_without_any_labels_at_all", 20) == "a_very_lon…ls_at_all"
    assert short_metric("a_very_long_metric_name_with_labels{a='b'}", 20) == "a_very_l…h_labels{…}"
    assert rows["component"].iloc[0] == "pod/llm-652196d49b-2" and len(rows["component"].iloc[0]) <= COMPONENT_CHARS
    assert rows["workload"].iloc[0] == "deployment/llm" and len(rows["workload"].iloc[0]) <= WORKLOAD_CHARS
    # the pod's own next metric is no new place; the long service name is cut in the middle
    assert rows["path to the symptom"].iloc[0] == "→ service/…ng-name → symptom"
    hops = [f"pod/ns/p{i}:m" for i in range(5)]
    assert short_path([*hops, symptom], "pod/ns/p0", symptom) == "→ pod/p1 → … → symptom"  # over PATH_CHARS
    assert rows["path to the symptom"].iloc[1] == "no edge to the symptom"  # not in the symptom's component
    assert short_path([], "deployment/inference/llm", symptom) == "same component, no edge"
    assert abbreviate("abc", 3) == "abc" and abbreviate("abcdef", 5) == "ab…ef"
    details = cause_details(record)
    assert f"`{long_metric}` in `{pod}` (deployment/inference/llm)" in details[0]
    assert "`service/inference/llm-gateway-with-a-very-long-name:request_rate`" in details[0]
    assert details[0].endswith(f"`{symptom}` (symptom)") and details[1].endswith("no edge to the symptom")
