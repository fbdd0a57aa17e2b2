"""`aiops replay` with several value columns, `--train` history, durations and the warm-up column."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from aiops.errors import DetectorError
from detectors.params import resolve_durations
from detectors.registry import get
from detectors.replay import replay_file, replay_path
from tests.conftest import run_cli
from tests.detectors.detcases import noise


def _write(path: Path, start_min: int, cols: dict[str, np.ndarray]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(next(iter(cols.values())))
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", *cols])
        for i in range(n):
            m = start_min + i
            w.writerow([f"2024-01-{1 + m // 1440:02d} {m // 60 % 24:02d}:{m % 60:02d}:00",
                        *(repr(float(c[i])) for c in cols.values())])
    return path


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_several_columns_score_per_column_and_name_the_shifted_one(tmp_path: Path) -> None:
    train = _write(tmp_path / "train.csv", 0, {"cpu": noise(600, 1), "mem": noise(600, 2), "disk": noise(600, 3)})
    mem = noise(300, 5)
    mem[150:250] += 6.0  # a sustained shift of one metric
    src = _write(tmp_path / "test.csv", 600, {"cpu": noise(300, 4), "mem": mem, "disk": noise(300, 6)})
    res = replay_file(src, tmp_path / "out.csv", "profile", {"halflife": 500}, train_path=train)
    got = _read(tmp_path / "out.csv")
    assert list(got[0]) == ["timestamp", "cpu", "mem", "disk", "anomaly_score", "is_anomaly", "warm",
                            "score_cpu", "score_mem", "score_disk"]
    assert res.rows == 300 and all(g["warm"] == "1" for g in got)  # fitted on the train file: warm at once
    per = np.array([[float(g[f"score_{c}"]) for c in ("cpu", "mem", "disk")] for g in got])
    combined = np.array([float(g["anomaly_score"]) for g in got])
    np.testing.assert_allclose(combined, per.max(axis=1))
    assert (per[150:250, 1] >= 0.999).mean() > 0.9  # the whole shift keeps scoring
    assert per[150:250].mean(axis=0).argmax() == 1  # and its column ranks first
    assert sum(int(g["is_anomaly"]) for g in got[150:250]) >= 1


def test_multivariate_detector_sees_rows_and_train_directory_mirrors_input(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        _write(tmp_path / "train" / sub / "h.csv", 0, {"x": noise(400, 1), "y": noise(400, 2)})
        _write(tmp_path / "in" / sub / "h.csv", 400, {"x": noise(100, 3), "y": noise(100, 4)})
    params = {"train_size": 100, "train_window": 300, "n_estimators": 10, "refit_every": 0}
    out = replay_path(tmp_path / "in", tmp_path / "out", "iforest", params, workers=1, train_path=tmp_path / "train")
    assert len(out) == 2
    got = _read(tmp_path / "out" / "a" / "h.csv")
    assert len(got) == 100 and {"score_x", "score_y"} <= set(got[0]) and got[0]["warm"] == "1"
    (tmp_path / "train" / "b" / "h.csv").unlink()
    with pytest.raises(Exception, match="mirror"):
        replay_path(tmp_path / "in", tmp_path / "out2", "iforest", params, workers=1, train_path=tmp_path / "train")


def test_durations_become_points_at_the_series_interval(tmp_path: Path) -> None:
    cls = get("zscore")
    assert resolve_durations(cls, {"window": "6h", "refractory": "1h"}, 300.0) == {"window": 72, "refractory": 12}
    assert resolve_durations(cls, {"window": 30}, 300.0) == {"window": 30}  # points stay points
    with pytest.raises(DetectorError, match="window.*duration"):
        resolve_durations(cls, {"window": "6h"}, None)
    with pytest.raises(DetectorError, match="duration"):
        cls(window="6h")
    src = _write(tmp_path / "m.csv", 0, {"value": noise(200, 1)})  # one point a minute
    replay_file(src, tmp_path / "o.csv", "zscore", {"window": "30m"})
    got = _read(tmp_path / "o.csv")
    assert [g["warm"] for g in got[29:31]] == ["0", "1"]  # 30 minutes = 30 points


def test_a_file_shorter_than_the_warm_up_warns(tmp_path: Path) -> None:
    src = _write(tmp_path / "short.csv", 0, {"value": noise(10, 1)})
    res = replay_file(src, tmp_path / "o.csv", "zscore", {"window": 30})
    assert res.warnings and "warm-up" in res.warnings[0]
    assert all(g["warm"] == "0" and float(g["anomaly_score"]) == 0.0 for g in _read(tmp_path / "o.csv"))


def test_evaluate_with_per_row_labels(tmp_path: Path) -> None:
    mem = noise(300, 5)
    mem[150:250] += 6.0
    _write(tmp_path / "train.csv", 0, {"cpu": noise(600, 1), "mem": noise(600, 2)})
    _write(tmp_path / "in" / "host.csv", 600, {"cpu": noise(300, 4), "mem": mem})
    labels = np.zeros(300, dtype=int)
    labels[150:250] = 1
    _write(tmp_path / "labels" / "host_label.csv", 600, {"label": labels})
    lab = (tmp_path / "labels" / "host_label.csv").read_text().replace("1.0", "1").replace("0.0", "0")
    (tmp_path / "labels" / "host_label.csv").write_text(lab)
    replay_file(tmp_path / "in" / "host.csv", tmp_path / "out" / "host.csv", "profile", {"halflife": 500, "smooth": 1},
                train_path=tmp_path / "train.csv")
    r = run_cli("evaluate", "--scores", str(tmp_path / "out"), "--labels", str(tmp_path / "labels"), "--format", "json")
    assert r.returncode == 0, r.stderr
    overall = json.loads(r.stdout)["overall"]
    assert overall["rows"] == 300 and overall["anomalous_rows"] == 100
    assert overall["best_f1"] > 0.9 and overall["best_adjusted_f1"] >= overall["best_f1"]
    assert overall["recall"] > 0.9 and overall["alarm_precision"] == 1.0
