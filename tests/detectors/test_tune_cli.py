"""`aiops tune`: sweeps a grid over labelled files and prints a config snippet that loads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from app.settings import load_settings
from detectors.tune import combinations, parse_grid, tune
from tests.conftest import run_cli


def _labelled(tmp_path: Path) -> tuple[Path, Path]:
    """Three noisy series with one level shift each; windows around the shifts."""
    windows = {}
    for k in range(3):
        rng = np.random.default_rng(k)
        x = 10 + rng.normal(0, 1, 600)
        at = 400 + 30 * k
        x[at:] += 6
        rel = f"set{k % 2}/s{k}.csv"
        path = tmp_path / "data" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = [f"2024-01-0{1 + i // 288} {(i % 288) * 5 // 60:02d}:{(i % 288) * 5 % 60:02d}:00" for i in range(600)]
        path.write_text("timestamp,value\n" + "".join(f"{t},{v:.4f}\n" for t, v in zip(stamp, x, strict=True)))
        windows[rel] = [[stamp[at - 20], stamp[at + 20]]]
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(windows))
    return tmp_path / "data", labels


def test_grid_parsing_and_random_draws() -> None:
    grid = parse_grid(["window=10,50,100", "robust=true,false", "mode=a"])
    assert grid == {"window": [10, 50, 100], "robust": [True, False], "mode": ["a"]}
    assert len(combinations(grid)) == 6
    drawn = combinations(grid, random_n=4, seed=1)
    assert len(drawn) == 4 and len({json.dumps(d, sort_keys=True) for d in drawn}) == 4
    assert drawn == combinations(grid, random_n=4, seed=1)


def test_tune_ranks_settings_by_nab(tmp_path: Path) -> None:
    data, labels = _labelled(tmp_path)
    results = tune(data, labels, "zscore", {"window": [5, 100]}, workers=1)
    assert [r.params["window"] for r in results] == [100, 5]  # a 5-point window cannot see a level shift well
    assert results[0].metric == results[0].nab_score and results[0].metric > results[1].metric
    assert 0.0 < results[0].threshold <= 1.0


def test_tune_reports_progress_once_per_combination(tmp_path: Path) -> None:
    data, labels = _labelled(tmp_path)
    for workers in (1, 2):
        steps: list[int] = []
        tune(data, labels, "zscore", {"window": [5, 30, 100]}, workers=workers, progress=steps.append)
        assert steps == [1, 1, 1]


def test_tune_cli_prints_a_snippet_that_loads(tmp_path: Path) -> None:
    data, labels = _labelled(tmp_path)
    r = run_cli("tune", "--input", str(data), "--labels", str(labels), "--detector", "zscore",
                "--grid", "window=20,100", "--param", "min_periods=10", "--metric", "f1")
    assert r.returncode == 0, r.stderr
    assert "window" in r.stderr  # the ranking table
    snippet = yaml.safe_load(r.stdout)
    entry = snippet["detect"]["detectors"][0]
    assert entry["detector"] == "zscore" and entry["params"]["min_periods"] == 10
    assert entry["params"]["window"] in (20, 100) and 0 <= entry["threshold"] <= 1
    entry["selector"] = "cpu"
    config = tmp_path / "aiops.yaml"
    config.write_text(yaml.safe_dump(snippet))
    assert load_settings(config).detect.detectors[0].params == entry["params"]


def test_tune_errors_are_one_line(tmp_path: Path) -> None:
    data, labels = _labelled(tmp_path)
    r = run_cli("tune", "--input", str(data), "--labels", str(labels), "--detector", "zscore", "--grid", "window")
    assert r.returncode == 1 and "--grid 'window'" in r.stderr
    r = run_cli("tune", "--input", str(data), "--labels", str(labels), "--detector", "zscore",
                "--grid", "window=10", "--metric", "auc")
    assert r.returncode == 1 and "auc" in r.stderr
