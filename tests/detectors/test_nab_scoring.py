"""NAB scoring on small hand-computed cases, and the threshold sweep against brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors import nab

MIN = 60_000


def _file(n: int = 40, windows: tuple[tuple[int, int], ...] = ((20, 23),), probation: float = 0.0) -> nab.NabFile:
    ts = np.arange(n, dtype=np.int64) * MIN
    return nab.prepare_file("f.csv", ts, [(int(ts[a]), int(ts[b])) for a, b in windows], probation_percent=probation)


def _hits(n: int, *idx: int) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[list(idx)] = True
    return out


def _sig(p: float) -> float:
    return 2.0 / (1.0 + math.exp(5.0 * p)) - 1.0


def test_perfect_detector_scores_100_and_null_scores_0() -> None:
    f = _file(windows=((10, 13), (25, 30)))
    perfect = _hits(40, 10, 25)
    assert nab.raw_score(f, perfect) == pytest.approx(2.0)
    assert nab.normalised_score(nab.raw_score(f, perfect), [f]) == pytest.approx(100.0)
    assert nab.normalised_score(nab.raw_score(f, _hits(40)), [f]) == pytest.approx(0.0)
    assert nab.null_score([f]) == -2.0 and nab.perfect_score([f]) == 2.0


def test_one_false_positive_costs_a_fp() -> None:
    f = _file()
    raw = nab.raw_score(f, _hits(40, 20, 3))  # left edge + one FP before any window
    assert raw == pytest.approx(1.0 - 0.11)
    assert nab.normalised_score(raw, [f]) == pytest.approx(100 * (raw + 1) / 2)
    low_fp = nab.PROFILES["reward_low_fp"]
    assert nab.raw_score(f, _hits(40, 20, 3), low_fp) == pytest.approx(1.0 - 0.22)


def test_detection_inside_window_weighs_scaled_sigmoid_of_position() -> None:
    f = _file()  # window 20..23: width 4
    # index 22: position -(23 - 22 + 1) / 4 = -0.5
    assert nab.raw_score(f, _hits(40, 22)) == pytest.approx(_sig(-0.5) / _sig(-1.0))
    # only the first detection in a window counts; later ones cost nothing
    assert nab.raw_score(f, _hits(40, 21, 22, 23)) == pytest.approx(_sig(-0.75) / _sig(-1.0))


def test_false_positive_after_window_costs_less() -> None:
    f = _file()  # window 20..23, width 4
    # index 25: (25 - 23) / (4 - 1) past the right edge
    expected = -1.0 + 0.11 * _sig(2 / 3)
    assert nab.raw_score(f, _hits(40, 25)) == pytest.approx(expected)
    assert -1.11 < expected < -1.0
    # far behind the window (>= 3 widths): the full FP cost
    assert nab.raw_score(f, _hits(40, 33)) == pytest.approx(-1.11)


def test_probationary_period_is_not_scored() -> None:
    assert nab.probationary_length(100) == 15
    assert nab.probationary_length(10_000) == 750
    f = _file(n=100, windows=((5, 8), (50, 55)), probation=0.15)
    assert f.n_windows == 1  # the first window lies in the probationary period
    assert nab.raw_score(f, _hits(100, 2, 5, 50)) == pytest.approx(1.0)


def test_windows_are_matched_by_timestamp_inclusive() -> None:
    ts = np.array([0, 10, 20, 30, 40], dtype=np.int64)
    f = nab.prepare_file("g.csv", ts, [(15, 30)], probation_percent=0.0)
    assert f.windows == ((2, 3),)
    assert list(f.window_of) == [-1, -1, 0, 0, -1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_threshold_sweep_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    files, scores = [], []
    for n in (120, 200, 90):
        a = int(rng.integers(30, n - 20))
        files.append(_file(n=n, windows=((a, a + int(rng.integers(3, 15))),), probation=0.15))
        scores.append(np.round(rng.random(n), 2))  # rounding makes ties, as real scores have
    files.append(_file(n=80, windows=(), probation=0.15))
    scores.append(np.round(rng.random(80), 2))
    thresholds, raw = nab.sweep_thresholds(files, scores)
    for t, r in zip(thresholds[1:], raw[1:], strict=True):
        brute = sum(nab.raw_score(f, s >= t) for f, s in zip(files, scores, strict=True))
        assert r == pytest.approx(brute)
    assert raw[0] == nab.null_score(files)
    best_t, best_raw = nab.best_threshold(files, scores)
    assert best_raw == pytest.approx(max(raw))


def test_rows_out_of_time_order_keep_nab_positions() -> None:
    # like NAB's machine_temperature file: the clock steps back once
    ts = np.array([0, 10, 20, 30, 15, 25, 40, 50], dtype=np.int64)
    f = nab.prepare_file("m.csv", ts, [(20, 30)], probation_percent=0.0)
    assert f.windows == ((2, 3),)  # the rows of the edge timestamps, as NAB finds them
    assert nab.raw_score(f, _hits(8, 2)) == pytest.approx(1.0)
    g = nab.prepare_file("m.csv", ts, [(12, 28)], probation_percent=0.0)
    assert g.windows == ((2, 5),)  # edges not in the file: first row at/after .. last row at/before
