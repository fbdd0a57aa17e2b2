"""The fixed ``aiops replay`` / ``aiops evaluate`` forms on awkward input and on the shared data sets.

Each case either works as docs/replay.md says or fails with exit 1 and one line naming the file
(and row), with nothing written. Most run the typer app in this process (an interpreter start
costs a second); the real-data case runs the command line as a benchmark does.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_cli

HEADER = "timestamp,value"


def invoke(*args: str) -> subprocess.CompletedProcess[str]:
    """``aiops ARGS`` through the typer app in this process."""
    from typer.testing import CliRunner

    from app.cli import app

    res = CliRunner().invoke(app, list(args))
    return subprocess.CompletedProcess(args, res.exit_code, res.stdout, res.stderr)


def _rows(n: int = 40) -> list[str]:
    return [f"2024-01-01 {i // 60:02d}:{i % 60:02d}:00,{10 + (i % 7) * 0.1:.2f}" for i in range(n)]


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _one_line_error(r: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(("content", "needles"), [
    ("timestamp,timestamp\n2024-01-01 00:00:00,1\n", ["x.csv row 0 (header)", "'timestamp' appears twice"]),
    ("timestamp,anomaly_score\n2024-01-01 00:00:00,1\n", ["x.csv row 0 (header)", "'anomaly_score' would clash"]),
    ("timestamp,cpu,score_cpu\n2024-01-01 00:00:00,1,2\n", ["x.csv row 0 (header)", "'score_cpu' would clash"]),
    (f"{HEADER}\nnow,1\n", ["x.csv row 1 (line 2)", "timestamp 'now'"]),
    (f"{HEADER}\n-1h,1\n", ["x.csv row 1 (line 2)", "timestamp '-1h'"]),
    (f"{HEADER}\n2024-01-01 00:00:00,1\n\n2024-01-01 00:01:00,x\n", ["x.csv row 2 (line 4)", "value 'x'"]),
    ("timestamp;value\n2024-01-01 00:00:00;1\n", ["x.csv row 0 (header)"]),
    ("timestamp\n2024-01-01 00:00:00\n", ["x.csv row 0 (header)"]),
])
def test_bad_input_is_one_line_naming_file_and_row(tmp_path: Path, content: str, needles: list[str]) -> None:
    src = tmp_path / "x.csv"
    src.write_text(content, encoding="utf-8")
    out = tmp_path / "o.csv"
    _one_line_error(invoke("replay", "--input", str(src), "--detector", "zscore", "--output", str(out)), *needles)
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


def test_blank_lines_are_no_rows_and_value_is_spelled_as_the_contract(tmp_path: Path) -> None:
    src = tmp_path / "x.csv"
    src.write_text("Timestamp,Value\r\n" + "\r\n".join(_rows(5)) + "\r\n\r\n", encoding="utf-8")
    out = tmp_path / "o.csv"
    r = invoke("replay", "--input", str(src), "--detector", "zscore", "--output", str(out))
    assert r.returncode == 0, r.stderr
    got = _read(out)
    assert list(got[0])[:4] == ["timestamp", "value", "anomaly_score", "is_anomaly"]
    assert len(got) == 5


@pytest.mark.parametrize("stamps", [
    ["1704067200", "1704067260", "1704067320"],  # epoch seconds
    ["1704067200000", "1704067260000", "1704067320000"],  # epoch ms
    ["2024-01-01T02:00:00+02:00", "2024-01-01T00:01:00Z", "2024-01-01T00:02:00.000-00:00"],  # zones
])
def test_epoch_and_zoned_timestamps_replay_and_evaluate_alike(tmp_path: Path, stamps: list[str]) -> None:
    src = tmp_path / "in" / "s.csv"
    src.parent.mkdir()
    src.write_text(HEADER + "\n" + "".join(f"{t},{i}\n" for i, t in enumerate(stamps)), encoding="utf-8")
    out = tmp_path / "out"
    assert invoke("replay", "--input", str(src.parent), "--detector", "zscore", "--output", str(out)).returncode == 0
    assert [g["timestamp"] for g in _read(out / "s.csv")] == stamps  # as read
    # a window on the middle row, in another notation: evaluate reads the output's timestamps as replay did
    labels = tmp_path / "w.json"
    labels.write_text(json.dumps({"s.csv": [["2024-01-01 00:01:00", "2024-01-01T00:01:00Z"]]}))
    r = invoke("evaluate", "--scores", str(out), "--labels", str(labels), "--threshold", "0", "--format", "json")
    assert r.returncode == 0, r.stderr
    overall = json.loads(r.stdout)["overall"]
    assert overall["windows"] == 1 and overall["detected"] == 1


def test_timestamps_that_do_not_increase_replay_in_file_order_with_a_warning(tmp_path: Path) -> None:
    rows = _rows(6)
    rows[3], rows[4] = rows[4], rows[3]
    src = tmp_path / "x.csv"
    src.write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "o.csv"
    r = invoke("replay", "--input", str(src), "--detector", "zscore", "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert "x.csv row 5: timestamp '2024-01-01 00:03:00' goes back" in " ".join(r.stderr.split())
    assert [g["timestamp"] + "," + g["value"] for g in _read(out)] == rows


def test_a_bad_file_in_a_directory_leaves_no_output(tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "a").mkdir(parents=True)
    (src / "a" / "good.csv").write_text(HEADER + "\n" + "\n".join(_rows()) + "\n", encoding="utf-8")
    (src / "b.csv").write_text(HEADER + "\n" + "\n".join(_rows()) + "\n", encoding="utf-8")
    (src / "z.csv").write_text(HEADER + "\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00,abc\n", encoding="utf-8")
    out = tmp_path / "out"
    _one_line_error(invoke("replay", "--input", str(src), "--detector", "zscore", "--workers", "1",
                           "--output", str(out)), "z.csv row 2 (line 3)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # no output, no staging left
    (src / "z.csv").unlink()
    r = invoke("replay", "--input", str(src), "--detector", "zscore", "--workers", "1", "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv")) == ["a/good.csv", "b.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]


def test_an_unwritable_output_is_one_line(tmp_path: Path) -> None:
    src = tmp_path / "x.csv"
    src.write_text(HEADER + "\n" + "\n".join(_rows()) + "\n", encoding="utf-8")
    blocker = tmp_path / "file"
    blocker.write_text("")
    _one_line_error(invoke("replay", "--input", str(src), "--detector", "zscore",
                           "--output", str(blocker / "o.csv")), "--output", "o.csv", "cannot write")


def test_evaluate_refuses_a_threshold_outside_0_1_and_relative_window_times(tmp_path: Path) -> None:
    src = tmp_path / "x.csv"
    src.write_text(HEADER + "\n" + "\n".join(_rows()) + "\n", encoding="utf-8")
    out = tmp_path / "o.csv"
    assert invoke("replay", "--input", str(src), "--detector", "zscore", "--output", str(out)).returncode == 0
    labels = tmp_path / "w.json"
    labels.write_text(json.dumps({"o.csv": [["2024-01-01 00:05:00", "2024-01-01 00:06:00"]]}))
    _one_line_error(invoke("evaluate", "--scores", str(out), "--labels", str(labels), "--threshold", "5"),
                    "--threshold 5")
    labels.write_text(json.dumps({"o.csv": [["now", "now"]]}))
    _one_line_error(invoke("evaluate", "--scores", str(out), "--labels", str(labels)), "w.json", "'now'")
    rows_labels = tmp_path / "l.csv"
    rows_labels.write_text("timestamp,label\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00,\n")
    _one_line_error(invoke("evaluate", "--scores", str(out), "--labels", str(rows_labels)),
                    "l.csv row 2: label '' must be 0 or 1")


def test_real_nab_and_smd_files_through_the_command_line(tmp_path: Path, shared_datasets: Path) -> None:
    """A benchmark's calls: NAB file -> evaluate with its windows; SMD .csv.gz with --train into a directory."""
    nab = shared_datasets / "nab"
    src = nab / "data" / "realKnownCause" / "ec2_request_latency_system_failure.csv"  # 11 rows go back in time
    out = tmp_path / "nab" / "realKnownCause"
    out.mkdir(parents=True)
    r = run_cli("replay", "--input", str(src), "--detector", "zscore", "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""  # logs and summaries go to stderr
    got = _read(out / src.name)
    with src.open(newline="", encoding="utf-8") as fh:
        want = list(csv.DictReader(fh))
    assert [(g["timestamp"], g["value"]) for g in got] == [(w["timestamp"], w["value"]) for w in want]
    windows = nab / "labels" / "combined_windows.json"
    r = run_cli("evaluate", "--scores", str(tmp_path / "nab"), "--labels", str(windows), "--format", "json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)  # stdout is the JSON alone
    assert [f["path"] for f in report["files"]] == [f"realKnownCause/{src.name}"]
    assert report["overall"]["windows"] == 3

    smd = shared_datasets / "smd" / "machine-1-2"
    if not smd.is_dir():
        pytest.skip(f"SMD absent at {smd}")
    smd_out = tmp_path / "smd"
    smd_out.mkdir()
    r = invoke("replay", "--input", str(smd / "test.csv.gz"), "--train", str(smd / "train.csv.gz"),
               "--detector", "zscore", "--output", str(smd_out))
    assert r.returncode == 0, r.stderr
    assert [p.name for p in smd_out.iterdir()] == ["test.csv"]  # a plain CSV, not one named .gz
    header = (smd_out / "test.csv").open(encoding="utf-8").readline().strip().split(",")
    assert header[:2] == ["timestamp", "m01"] and header[39:42] == ["anomaly_score", "is_anomaly", "warm"]
    assert header[42:] == [f"score_m{i:02d}" for i in range(1, 39)]
    r = invoke("evaluate", "--scores", str(smd_out), "--labels", str(smd), "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["overall"]["anomalous_rows"] > 0


def test_train_with_the_same_columns_in_another_order_fits_each_column_on_its_own(tmp_path: Path) -> None:
    def write(path: Path, header: str, n: int, shift: float) -> Path:
        lines = [header] + [f"{1_704_067_200 + 60 * i},{10 + (i % 5) + shift},{100 - (i % 3)}" for i in range(n)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    src = write(tmp_path / "in.csv", "timestamp,cpu,mem", 60, 0.0)
    ordered = write(tmp_path / "t1.csv", "timestamp,cpu,mem", 200, 0.5)
    swapped = tmp_path / "t2.csv"  # the same history, columns swapped
    rows = [line.split(",") for line in ordered.read_text().splitlines()]
    swapped.write_text("\n".join(f"{r[0]},{r[2]},{r[1]}" for r in rows) + "\n", encoding="utf-8")
    outs = []
    for i, train in enumerate((ordered, swapped)):
        out = tmp_path / f"o{i}.csv"
        r = invoke("replay", "--input", str(src), "--train", str(train), "--detector", "zscore", "--output", str(out))
        assert r.returncode == 0, r.stderr
        outs.append(out.read_text())
    assert outs[0] == outs[1]
    bad = tmp_path / "t3.csv"
    bad.write_text("timestamp,cpu,disk\n1704067200,1,2\n", encoding="utf-8")
    _one_line_error(invoke("replay", "--input", str(src), "--train", str(bad), "--detector", "zscore",
                           "--output", str(tmp_path / "o.csv")), "t3.csv", "differ")


def test_one_scored_file_meets_its_windows_by_name(tmp_path: Path, shared_datasets: Path) -> None:
    nab = shared_datasets / "nab"
    src = nab / "data" / "realKnownCause" / "nyc_taxi.csv"
    out = tmp_path / "nyc_taxi.csv"
    assert invoke("replay", "--input", str(src), "--detector", "zscore", "--output", str(out)).returncode == 0
    r = invoke("evaluate", "--scores", str(out), "--labels", str(nab / "labels" / "combined_windows.json"),
               "--format", "json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert [f["path"] for f in report["files"]] == ["realKnownCause/nyc_taxi.csv"]
    assert report["overall"]["windows"] == 5
    r = invoke("evaluate", "--scores", str(out), "--labels", str(nab / "labels" / "combined_windows.json"))
    assert r.returncode == 0, r.stderr
    assert len([line for line in r.stderr.splitlines() if line.startswith("warning:")]) == 1  # one summary line


def test_a_directory_of_only_gz_files_says_how_to_read_them(tmp_path: Path) -> None:
    import gzip

    src = tmp_path / "in"
    src.mkdir()
    with gzip.open(src / "a.csv.gz", "wt", encoding="utf-8") as fh:
        fh.write(HEADER + "\n" + "\n".join(_rows()) + "\n")
    _one_line_error(invoke("replay", "--input", str(src), "--detector", "zscore", "--output", str(tmp_path / "o")),
                    "no .csv files found", "--input FILE", "a.csv.gz")


def test_windows_keys_written_with_a_leading_dot_slash_match(tmp_path: Path) -> None:
    src = tmp_path / "in" / "sub" / "x.csv"
    src.parent.mkdir(parents=True)
    src.write_text(HEADER + "\n" + "\n".join(_rows()) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    r = invoke("replay", "--input", str(tmp_path / "in"), "--detector", "zscore", "--output", str(out))
    assert r.returncode == 0, r.stderr
    labels = tmp_path / "w.json"
    labels.write_text(json.dumps({"./sub/x.csv": [["2024-01-01 00:30:00", "2024-01-01 00:35:00"]]}))
    r = invoke("evaluate", "--scores", str(out), "--labels", str(labels), "--format", "json")
    assert r.returncode == 0, r.stderr
    assert [f["path"] for f in json.loads(r.stdout)["files"]] == ["sub/x.csv"]


def test_a_bad_data_timestamp_lists_only_the_forms_a_file_may_hold(tmp_path: Path) -> None:
    src = tmp_path / "x.csv"
    src.write_text(f"{HEADER}\n2024/01/01 00:00:00,1\n", encoding="utf-8")
    line = _one_line_error(invoke("replay", "--input", str(src), "--detector", "zscore",
                                  "--output", str(tmp_path / "o.csv")), "x.csv row 1 (line 2)", "'2024/01/01 00:00:00'")
    assert "now" not in line and "-1h" not in line


def test_a_duration_on_a_file_without_an_interval_names_the_file(tmp_path: Path) -> None:
    src = tmp_path / "one.csv"
    src.write_text(f"{HEADER}\n2024-01-01 00:00:00,1\n", encoding="utf-8")
    _one_line_error(invoke("replay", "--input", str(src), "--detector", "zscore", "--param", "window=6h",
                           "--output", str(tmp_path / "o.csv")), "one.csv: zscore: window '6h'")
    assert not (tmp_path / "o.csv").exists()


def test_an_output_named_gz_is_compressed_and_evaluates(tmp_path: Path) -> None:
    import gzip

    src = tmp_path / "x.csv"
    src.write_text(HEADER + "\n" + "\n".join(_rows()) + "\n", encoding="utf-8")
    out = tmp_path / "x.csv.gz"
    assert invoke("replay", "--input", str(src), "--detector", "zscore", "--output", str(out)).returncode == 0
    with gzip.open(out, "rt", encoding="utf-8") as fh:
        assert fh.readline().startswith("timestamp,value,anomaly_score,is_anomaly")
    labels = tmp_path / "l.csv"
    labels.write_text("timestamp,label\n2024-01-01 00:30:00,1\n", encoding="utf-8")
    r = invoke("evaluate", "--scores", str(out), "--labels", str(labels), "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["overall"]["rows"] == 40


def test_a_value_column_beside_others_is_the_one_series_and_the_rest_are_ignored(tmp_path: Path) -> None:
    src = tmp_path / "x.csv"
    lines = ["host,timestamp,value,is_anomaly"] + [f"a,{r},0" for r in _rows()]  # e.g. Yahoo's inline labels
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "o.csv"
    r = invoke("replay", "--input", str(src), "--detector", "zscore", "--output", str(out))
    assert r.returncode == 0, r.stderr
    got = _read(out)
    assert list(got[0]) == ["timestamp", "value", "anomaly_score", "is_anomaly", "warm", "score_value"]
    assert [g["timestamp"] + "," + g["value"] for g in got] == _rows()
