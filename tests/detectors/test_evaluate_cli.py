"""`aiops evaluate` end to end on a few NAB files, and against hand-made outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from detectors import nab
from detectors.evaluate import evaluate, load_labels, load_scored_dir
from tests.conftest import run_cli

FILES = ("realAdExchange/exchange-2_cpc_results.csv", "realTraffic/speed_7578.csv",
         "artificialNoAnomaly/art_daily_no_noise.csv")


@pytest.fixture
def nab_subset(shared_datasets: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Three NAB files (same relative paths) and their windows."""
    root = shared_datasets / "nab"
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    data = tmp_path / "data"
    for rel in FILES:
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "data" / rel, data / rel)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({rel: windows[rel] for rel in FILES}))
    return data, labels


def test_evaluate_nab_subset_end_to_end(nab_subset: tuple[Path, Path], tmp_path: Path) -> None:
    data, labels = nab_subset
    out = tmp_path / "scores"
    r = run_cli("replay", "--input", str(data), "--detector", "zscore", "--param", "window=100", "--output", str(out))
    assert r.returncode == 0, r.stderr

    r = run_cli("evaluate", "--scores", str(out), "--labels", str(labels))
    assert r.returncode == 0, r.stderr
    for word in ("precision", "recall", "F1", "NAB", "exchange-2_cpc_results.csv", "ALL"):
        assert word in r.stdout

    own_json = tmp_path / "own.json"
    r = run_cli("evaluate", "--scores", str(out), "--labels", str(labels), "--json", str(own_json))
    assert r.returncode == 0, r.stderr
    own = json.loads(own_json.read_text())
    r = run_cli("evaluate", "--scores", str(out), "--labels", str(labels), "--optimize-threshold", "--format", "json")
    assert r.returncode == 0, r.stderr
    best = json.loads(r.stdout)

    assert own["decision"] == "is_anomaly" and best["decision"] == "optimized"
    assert [f["path"] for f in own["files"]] == sorted(FILES)
    n_windows = sum(len(w) for w in json.loads(labels.read_text()).values())
    assert own["overall"]["windows"] == n_windows > 0
    # NAB's optimiser picks the best single threshold: never worse than the detector's own decisions
    assert best["overall"]["nab_score"] >= own["overall"]["nab_score"] - 1e-9
    assert 0.0 <= best["threshold"] <= 1.0
    # the figures agree with scoring the same outputs in-process
    report = evaluate(load_scored_dir(out), load_labels(labels), threshold=best["threshold"])
    assert report.overall.nab_score == pytest.approx(best["overall"]["nab_score"])
    no_anomaly = next(f for f in own["files"] if f["path"].startswith("artificialNoAnomaly"))
    assert no_anomaly["windows"] == 0 and no_anomaly["nab_score"] is None
    assert no_anomaly["nab_raw"] == pytest.approx(-0.11 * no_anomaly["false_positives"])


def _write_scores(path: Path, flags: list[int], scores: list[float] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scores = scores or [float(f) for f in flags]
    lines = ["timestamp,value,anomaly_score,is_anomaly"]
    lines += [f"2024-01-01 00:{i:02d}:00,1.0,{s},{f}" for i, (f, s) in enumerate(zip(flags, scores, strict=True))]
    path.write_text("\n".join(lines) + "\n")


def test_metrics_on_hand_made_outputs(tmp_path: Path) -> None:
    # 40 points a minute apart, probation = 6 points; window 00:20..00:23
    labels = tmp_path / "l.json"
    labels.write_text(json.dumps({"a/x.csv": [["2024-01-01 00:20:00.000000", "2024-01-01 00:23:00.000000"]],
                                  "b/y.csv": []}))
    flags_x = [0] * 40
    flags_x[2] = 1  # probationary: ignored
    flags_x[21] = flags_x[22] = 1  # detected one minute after the window starts
    flags_x[35] = 1  # a false positive
    flags_y = [0] * 40
    flags_y[10] = 1
    _write_scores(tmp_path / "s" / "a" / "x.csv", flags_x)
    _write_scores(tmp_path / "s" / "b" / "y.csv", flags_y)
    report = evaluate(load_scored_dir(tmp_path / "s"), load_labels(labels))
    o = report.overall
    assert (o.windows, o.detected, o.false_positives) == (1, 1, 2)
    assert o.precision == pytest.approx(1 / 3) and o.recall == 1.0 and o.f1 == pytest.approx(0.5)
    assert o.mean_delay_s == 60.0
    pos = nab.scaled_sigmoid(-(23 - 21 + 1) / 4) / nab.scaled_sigmoid(-1.0)
    assert o.nab_raw == pytest.approx(pos - 0.11 - 0.11)
    assert o.nab_score == pytest.approx(100 * (o.nab_raw + 1) / 2)


def test_evaluate_errors_name_the_input(tmp_path: Path) -> None:
    labels = tmp_path / "l.json"
    labels.write_text("{not json")
    _write_scores(tmp_path / "s" / "x.csv", [0, 1])
    r = run_cli("evaluate", "--scores", str(tmp_path / "s"), "--labels", str(labels))
    assert r.returncode == 1 and "l.json" in r.stderr
    labels.write_text(json.dumps({"x.csv": [["2024-01-01 00:00:00", "nonsense"]]}))
    r = run_cli("evaluate", "--scores", str(tmp_path / "s"), "--labels", str(labels))
    assert r.returncode == 1 and "nonsense" in r.stderr
    labels.write_text(json.dumps({"x.csv": []}))
    (tmp_path / "s" / "x.csv").write_text("timestamp,value,anomaly_score,is_anomaly\n2024-01-01 00:00:00,1,1.7,1\n")
    r = run_cli("evaluate", "--scores", str(tmp_path / "s"), "--labels", str(labels))
    assert r.returncode == 1 and "x.csv row 1" in " ".join(r.stderr.split())


def test_threshold_flag_uses_scores(tmp_path: Path) -> None:
    labels = tmp_path / "l.json"
    labels.write_text(json.dumps({"x.csv": [["2024-01-01 00:20:00", "2024-01-01 00:23:00"]]}))
    scores = [0.1] * 40
    scores[20] = 0.8
    _write_scores(tmp_path / "s" / "x.csv", [0] * 40, scores)
    r = run_cli("evaluate", "--scores", str(tmp_path / "s"), "--labels", str(labels), "--threshold", "0.5",
                "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["overall"]["nab_score"] == pytest.approx(100.0)
    r = run_cli("evaluate", "--scores", str(tmp_path / "s"), "--labels", str(labels), "--format", "json")
    assert json.loads(r.stdout)["overall"]["nab_score"] == pytest.approx(0.0)
    assert np.isclose(json.loads(r.stdout)["overall"]["recall"], 0.0)
