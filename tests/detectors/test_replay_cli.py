"""The `aiops replay` contract: columns, row order, timestamps as read, exit codes, named errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from detectors import registry
from tests.conftest import run_cli


def _write(path: Path, rows: list[tuple[str, str]], header: str = "timestamp,value") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(f"{t},{v}\n" for t, v in rows), encoding="utf-8")
    return path


def _series(n: int = 300, seed: int = 0, spike_at: int | None = 250) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    values = 10 + rng.normal(0, 1, n)
    if spike_at is not None and spike_at < n:
        values[spike_at] = 40.0
    return [(f"2024-01-01 {i // 60:02d}:{i % 60:02d}:00", f"{v:.4f}") for i, v in enumerate(values)]


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_replay_file_writes_one_row_per_input_row(tmp_path: Path) -> None:
    rows = _series()
    # mixed timestamp forms: written back exactly as read
    rows[0] = ("2024-01-01T00:00:00Z", rows[0][1])
    rows[1] = ("2024-01-01T01:01:00+01:00", rows[1][1])
    rows[2] = ("2024-01-01 00:02:00.000000", rows[2][1])
    src = _write(tmp_path / "in.csv", rows)
    out = tmp_path / "out.csv"
    r = run_cli("replay", "--input", str(src), "--detector", "zscore", "--param", "window=20", "--output", str(out))
    assert r.returncode == 0, r.stderr
    got = _read(out)
    # the contract's four columns first, then the warm-up flag and the per-column score
    assert list(got[0]) == ["timestamp", "value", "anomaly_score", "is_anomaly", "warm", "score_value"]
    assert [g["warm"] for g in got[:21]] == ["0"] * 20 + ["1"]
    assert all(g["score_value"] == g["anomaly_score"] for g in got)
    assert [(g["timestamp"], g["value"]) for g in got] == rows
    scores = np.array([float(g["anomaly_score"]) for g in got])
    flags = np.array([int(g["is_anomaly"]) for g in got])
    assert ((scores >= 0) & (scores <= 1)).all()
    assert set(flags.tolist()) <= {0, 1}
    det = registry.create("zscore", window=20)
    expected = det.score(np.array([float(v) for _, v in rows]))
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-12)  # same detector, same parameters
    np.testing.assert_array_equal(flags, (expected >= det.threshold).astype(int))
    assert flags[250] == 1


def test_replay_directory_mirrors_relative_paths(tmp_path: Path) -> None:
    _write(tmp_path / "in" / "a" / "one.csv", _series(seed=1))
    _write(tmp_path / "in" / "b" / "c" / "two.csv", _series(seed=2, spike_at=None))
    (tmp_path / "in" / "notes.txt").write_text("not a csv")
    r = run_cli("replay", "--input", str(tmp_path / "in"), "--detector", "zscore", "--output", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    outs = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.csv"))
    assert outs == ["a/one.csv", "b/c/two.csv"]
    assert len(_read(tmp_path / "out" / "b" / "c" / "two.csv")) == 300


def test_bad_timestamp_names_file_and_row(tmp_path: Path) -> None:
    rows = _series(20)
    rows[6] = ("yesterday-ish", "1.0")
    src = _write(tmp_path / "dir" / "bad.csv", rows)
    _write(tmp_path / "dir" / "good.csv", _series(20))
    for target in (src, tmp_path / "dir"):
        r = run_cli("replay", "--input", str(target), "--detector", "zscore", "--output", str(tmp_path / "o"))
        assert r.returncode == 1
        err = " ".join(r.stderr.split())
        assert "bad.csv row 7" in err and "yesterday-ish" in err, r.stderr
        assert "Traceback" not in r.stderr


@pytest.mark.parametrize(("content", "needle"), [
    ("time,val\n2024-01-01 00:00:00,1\n", "expected columns 'timestamp,value'"),
    ("timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:01:00,abc\n", "row 2 (line 3): value 'abc'"),
    ("timestamp,value\n2024-01-01 00:00:00\n", "row 1 (line 2): expected 2 fields"),
    ("", "empty file"),
])
def test_malformed_files_fail_with_one_line(tmp_path: Path, content: str, needle: str) -> None:
    src = tmp_path / "x.csv"
    src.write_text(content)
    r = run_cli("replay", "--input", str(src), "--detector", "zscore", "--output", str(tmp_path / "o.csv"))
    assert r.returncode == 1
    assert needle in " ".join(r.stderr.split()) and "x.csv" in r.stderr, r.stderr
    assert not (tmp_path / "o.csv").exists()


def test_missing_values_are_nan_and_score_zero(tmp_path: Path) -> None:
    rows = _series(50, spike_at=None)
    rows[30] = (rows[30][0], "")
    rows[31] = (rows[31][0], "NaN")
    src = _write(tmp_path / "gaps.csv", rows)
    r = run_cli("replay", "--input", str(src), "--detector", "zscore", "--param", "window=10",
                "--output", str(tmp_path / "o.csv"))
    assert r.returncode == 0, r.stderr
    got = _read(tmp_path / "o.csv")
    assert got[30]["value"] == "" and float(got[30]["anomaly_score"]) == 0.0
    assert float(got[31]["anomaly_score"]) == 0.0


def test_unknown_detector_and_bad_param_exit_1(tmp_path: Path) -> None:
    src = _write(tmp_path / "s.csv", _series(20))
    r = run_cli("replay", "--input", str(src), "--detector", "nope", "--output", str(tmp_path / "o.csv"))
    assert r.returncode == 1 and "nope" in r.stderr
    r = run_cli("replay", "--input", str(src), "--detector", "zscore", "--param", "window=-3",
                "--output", str(tmp_path / "o.csv"))
    assert r.returncode == 1 and "window" in r.stderr
    r = run_cli("replay", "--input", str(tmp_path / "absent.csv"), "--detector", "zscore",
                "--output", str(tmp_path / "o.csv"))
    assert r.returncode == 1 and "absent.csv" in r.stderr
    r = run_cli("replay", "--input", str(src), "--detector", "zscore", "--output", str(src))
    assert r.returncode == 1 and "is the input file" in r.stderr
    assert src.read_text().startswith("timestamp,value\n")
    r = run_cli("replay", "--input", str(tmp_path), "--detector", "zscore", "--output", str(tmp_path / "out"))
    assert r.returncode == 1 and "inside --input" in " ".join(r.stderr.split())


def test_threshold_override_changes_decisions_only(tmp_path: Path) -> None:
    src = _write(tmp_path / "s.csv", _series())
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert run_cli("replay", "--input", str(src), "--detector", "zscore", "--output", str(a)).returncode == 0
    assert run_cli("replay", "--input", str(src), "--detector", "zscore", "--threshold", "0.5",
                   "--output", str(b)).returncode == 0
    ra, rb = _read(a), _read(b)
    assert [x["anomaly_score"] for x in ra] == [x["anomaly_score"] for x in rb]
    assert all(int(x["is_anomaly"]) == (float(x["anomaly_score"]) >= 0.5) for x in rb)
    assert sum(int(x["is_anomaly"]) for x in rb) > sum(int(x["is_anomaly"]) for x in ra)
