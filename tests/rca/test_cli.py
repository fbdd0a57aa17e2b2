"""``aiops rca --input DIR --graph FILE --output FILE``: the fixed form, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aiops.timeutil import format_ts_ms
from rca import CausalGraph, localize
from rca.caseio import read_case
from tests.rca.helpers import CHAIN_EDGES, chain_case

REPO = Path(__file__).resolve().parents[2]


def write_case(d: Path) -> Path:
    case = chain_case()
    d.mkdir(parents=True, exist_ok=True)
    lines = ["timestamp," + ",".join(case.names)]
    for i, t in enumerate(case.timestamps_ms):
        cells = ["" if i == 7 and j == 1 else f"{v:.6g}" for j, v in enumerate(case.values[i])]
        lines.append(format_ts_ms(int(t)) + "," + ",".join(cells))
    (d / "data.csv").write_text("\n".join(lines) + "\n")
    (d / "info.json").write_text(json.dumps({"alert_time": case.alert_ms / 1000, "symptom": case.symptom}))
    return d


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command line, as a benchmark calls it (a fresh interpreter)."""
    return subprocess.run([sys.executable, "-m", "app", "rca", *args], cwd=REPO, text=True, capture_output=True,
                          timeout=120)


def run_inprocess(*args: str) -> subprocess.CompletedProcess[str]:
    """The same typer app in this process (the error cases; saves an interpreter start each)."""
    from typer.testing import CliRunner

    from app.cli import app

    res = CliRunner().invoke(app, ["rca", *args])
    return subprocess.CompletedProcess(args, res.exit_code, res.stdout, res.stderr)


def test_cli_contract_ranks_the_cause_first(tmp_path: Path) -> None:
    case_dir = write_case(tmp_path / "case")
    graph = tmp_path / "graph.json"
    graph.write_text(json.dumps({"nodes": ["db", "feature", "api"], "edges": [list(e) for e in CHAIN_EDGES]}))
    out = tmp_path / "out.json"
    proc = run("--input", str(case_dir), "--graph", str(graph), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    ranked = json.loads(out.read_text())
    assert [r["component"] for r in ranked[:1]] == ["db"]
    assert ranked[0]["metric"] == "cpu"
    assert ranked[0]["evidence"]["path"] == ["db:cpu", "feature:latency", "api:latency"]
    scores = [r["score"] for r in ranked]
    assert scores == sorted(scores, reverse=True)
    assert {"component", "metric", "score"} <= set(ranked[0])
    # the same ranking as the library call on the parsed files
    api = localize(read_case(case_dir), CausalGraph.of(CHAIN_EDGES))
    assert [f"{r['component']}:{r['metric']}" for r in ranked] == [c.name for c in api.causes]


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: (d / "info.json").write_text('{"symptom": "api:latency"}'), "info.json field alert_time"),
        (lambda d: (d / "info.json").write_text('{"alert_time": "soon", "symptom": "api:latency"}'),
         "info.json field alert_time"),
        (lambda d: (d / "info.json").write_text('{"alert_time": 1700014520, "symptom": "web:x"}'),
         "info.json field symptom"),
        (lambda d: (d / "info.json").write_text("{"), "info.json line 1"),
        (lambda d: (d / "data.csv").write_text("time,a:b\n1,2\n"), "data.csv field timestamp"),
        (lambda d: (d / "data.csv").write_text("timestamp,nocolon\n1,2\n"), "data.csv field 'nocolon'"),
        (lambda d: (d / "data.csv").write_text((d / "data.csv").read_text().replace(",", ",x", 9)[:100000]),
         "data.csv row 2"),
        (lambda d: (d / "data.csv").unlink(), "data.csv: file not found"),
    ],
)
def test_a_bad_file_is_one_line_naming_file_and_field(tmp_path: Path, mutate: object, needle: str) -> None:
    case_dir = write_case(tmp_path / "case")
    mutate(case_dir)  # type: ignore[operator]
    proc = run_inprocess("--input", str(case_dir), "--output", str(tmp_path / "o.json"))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]


def test_a_bad_graph_names_the_edge(tmp_path: Path) -> None:
    case_dir = write_case(tmp_path / "case")
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps({"nodes": [], "edges": [["db", "api"], ["db"]]}))
    proc = run_inprocess("--input", str(case_dir), "--graph", str(graph), "--output", str(tmp_path / "o.json"))
    assert proc.returncode == 1
    assert "g.json field edges[1]" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_epoch_and_iso_times_read_the_same(tmp_path: Path) -> None:
    d = write_case(tmp_path / "case")
    a = read_case(d)
    info = json.loads((d / "info.json").read_text())
    info["alert_time"] = format_ts_ms(int(info["alert_time"] * 1000))
    (d / "info.json").write_text(json.dumps(info))
    b = read_case(d)
    assert a.alert_ms == b.alert_ms
    assert np.isnan(a.values[7, 1])  # an empty cell is a missing point


def _one_line(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(("info", "needles"), [
    ({"alert_time": "now", "symptom": "api:latency"}, ["info.json field alert_time", "'now'"]),
    ({"alert_time": "-1h", "symptom": "api:latency"}, ["info.json field alert_time", "'-1h'"]),
    ({"alert_time": None, "symptom": "api:latency"}, ["info.json field alert_time"]),
    ({"alert_time": 1_700_000_240, "symptom": "api:latency"},  # 4 rows in: too little normal history
     ["info.json field alert_time", "only 4 rows of normal history"]),
    ({"alert_time": 1_700_000_240, "symptom": "api:latency", "onset_time": 1_700_000_120},
     ["info.json field onset_time", "normal history"]),
    ({"alert_time": 1_700_014_520, "symptom": "api"}, ["info.json field symptom", "'api'"]),
    ({"alert_time": 1_700_014_520}, ["info.json field symptom"]),
])
def test_info_json_errors_name_the_field(tmp_path: Path, info: dict[str, object], needles: list[str]) -> None:
    case_dir = write_case(tmp_path / "case")
    (case_dir / "info.json").write_text(json.dumps(info))
    out = tmp_path / "o.json"
    _one_line(run_inprocess("--input", str(case_dir), "--output", str(out)), *needles)
    assert not out.exists()


@pytest.mark.parametrize(("param", "needle"), [
    ("train_points=abc", "--param train_points='abc': expected an integer"),
    ("max_hops=1.5", "--param max_hops='1.5': expected an integer or null"),
    ("ridge=x", "--param ridge='x': expected a number"),
    ("timeout_s=nan", "rca parameter timeout_s"),
    ("nosuch=1", "--param 'nosuch=1'"),
])
def test_bad_params_are_one_line_naming_the_key(tmp_path: Path, param: str, needle: str) -> None:
    case_dir = write_case(tmp_path / "case")
    _one_line(run_inprocess("--input", str(case_dir), "--param", param, "--output", str(tmp_path / "o.json")), needle)


def test_typed_params_parse_as_their_field(tmp_path: Path) -> None:
    case_dir = write_case(tmp_path / "case")
    out = tmp_path / "o.json"
    proc = run_inprocess("--input", str(case_dir), "--param", "max_hops=null", "--param", "train_points=1e3",
                         "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())[0]["component"] == "db"


def test_spreadsheet_bom_crlf_header_case_and_unicode_names_read(tmp_path: Path) -> None:
    case_dir = write_case(tmp_path / "case")
    text = (case_dir / "data.csv").read_text().replace("db:", "数据库:").replace("api:", "séoul-api:")
    text = "Timestamp" + text[len("timestamp"):]
    (case_dir / "data.csv").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    info = json.loads((case_dir / "info.json").read_text())
    (case_dir / "info.json").write_text(json.dumps({**info, "symptom": "séoul-api:latency"}), encoding="utf-8")
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps({"nodes": [], "edges": [["数据库:cpu", "feature:latency"],
                                                        ["feature", "séoul-api"]]}, ensure_ascii=False))
    out = tmp_path / "o.json"
    proc = run_inprocess("--input", str(case_dir), "--graph", str(graph), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    ranked = json.loads(out.read_text(encoding="utf-8"))
    assert (ranked[0]["component"], ranked[0]["metric"]) == ("数据库", "cpu")
    assert ranked[0]["evidence"]["path"] == ["数据库:cpu", "feature:latency", "séoul-api:latency"]


def test_graph_nodes_unknown_to_the_data_are_a_warning_not_a_silence(tmp_path: Path) -> None:
    case_dir = write_case(tmp_path / "case")
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps({"nodes": ["cache"], "edges": [["ghost", "api"], ["db", "feature"],
                                                             ["feature", "api"]]}))
    out = tmp_path / "o.json"
    proc = run_inprocess("--input", str(case_dir), "--graph", str(graph), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    warning = next(line for line in proc.stderr.splitlines() if line.startswith("warning:"))
    assert "g.json: 2 of 5 nodes" in warning and "cache, ghost" in warning
    assert json.loads(out.read_text())[0]["component"] == "db"  # the known edges still count


def test_output_goes_to_a_new_directory_or_fails_without_a_half_file(tmp_path: Path) -> None:
    case_dir = write_case(tmp_path / "case")
    out = tmp_path / "results" / "2024" / "o.json"
    proc = run_inprocess("--input", str(case_dir), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())[0]["component"] in {"db", "feature", "api"}
    blocker = tmp_path / "file"
    blocker.write_text("")
    _one_line(run_inprocess("--input", str(case_dir), "--output", str(blocker / "o.json")), "o.json", "cannot write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case", "file", "results"]


def test_without_output_stdout_is_the_json_alone(tmp_path: Path) -> None:
    case_dir = write_case(tmp_path / "case")
    proc = run_inprocess("--input", str(case_dir))
    assert proc.returncode == 0, proc.stderr
    ranked = json.loads(proc.stdout)  # the summary line went to stderr
    assert ranked[0]["component"] == "db" and "rca:" in proc.stderr


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda lines: [], "data.csv: empty"),
    (lambda lines: lines[:1], "data.csv: no data rows"),
    (lambda lines: [lines[0], lines[1], lines[1], *lines[2:]], "data.csv row 3 field timestamp: not after"),
    (lambda lines: [lines[0], lines[2], lines[1], *lines[3:]], "data.csv row 3 field timestamp: not after"),
    (lambda lines: [lines[0], "now" + lines[1][lines[1].index(","):], *lines[2:]], "data.csv row 2 field timestamp"),
    (lambda lines: [lines[0], "", lines[1], "", lines[2] + ",x", *lines[3:]], "data.csv row 5: 6 fields"),
])
def test_bad_data_csv_rows_name_the_row(tmp_path: Path, edit: object, needle: str) -> None:
    case_dir = write_case(tmp_path / "case")
    lines = (case_dir / "data.csv").read_text().splitlines()
    (case_dir / "data.csv").write_text("\n".join(edit(lines)) + "\n")  # type: ignore[operator]
    _one_line(run_inprocess("--input", str(case_dir), "--output", str(tmp_path / "o.json")), needle)
    assert not (tmp_path / "o.json").exists()
