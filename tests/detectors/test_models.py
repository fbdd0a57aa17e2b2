"""iforest, lstm, seasonal, forecast: they catch what they are for, calibration, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aiops.errors import DetectorError
from detectors import ForecastDetector, IForestDetector, LSTMDetector, SeasonalDetector, create
from tests.detectors.detcases import noise

IFOREST = {"train_size": 500, "refit_every": 1000, "train_window": 1000, "n_estimators": 30, "seed": 1}
LSTM = {"window": 16, "hidden": 8, "train_size": 400, "epochs": 4, "seed": 1}


def _false_alarm_rate(s: np.ndarray, level: float) -> float:
    return float((s > level).mean())


# --- iforest ---------------------------------------------------------------------------------


def test_iforest_catches_spike_and_level_shift() -> None:
    x = noise(3000, seed=11)
    x[2000] += 10.0
    x[2500:] += 10.0
    s = create("iforest", **IFOREST).score(x)
    thr = IForestDetector().threshold
    assert s[2000] >= thr and s[2500] >= thr
    assert _false_alarm_rate(s[500:1990], 0.99) < 0.03


def test_iforest_false_alarm_rate_on_noise() -> None:
    s = create("iforest", **IFOREST).score(noise(6000, seed=12))[500:]
    assert 0.002 <= _false_alarm_rate(s, 0.99) <= 0.02


def test_iforest_multivariate_rows() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1500, 3))
    x[1200, :2] += 8.0  # a host-level event: two of its three series jump together
    x[700, 2] = np.nan  # a row with a gap scores 0
    params = {**IFOREST, "n_estimators": 50}
    batch = create("iforest", **params).score(x)
    det = create("iforest", **params)
    stream = np.array([det.update(row) for row in x])
    np.testing.assert_allclose(batch, stream, atol=1e-9, rtol=0)
    assert batch[1200] >= IForestDetector().threshold and batch[700] == 0.0
    with pytest.raises(DetectorError, match="columns"):
        det.score(rng.normal(size=(5, 2)))


# --- lstm -----------------------------------------------------------------------------------


def _wave(n: int, seed: int) -> np.ndarray:
    return np.sin(np.arange(n) / 5.0) + np.random.default_rng(seed).normal(0, 0.1, n)


def test_lstm_catches_spike_and_level_shift() -> None:
    x = _wave(1200, 21)
    x[900] += 1.5
    x[1100:] += 1.5
    s = create("lstm", **LSTM).score(x)
    thr = LSTMDetector().threshold
    assert s[900] >= thr and s[1100] >= thr
    assert _false_alarm_rate(s[420:890], 0.999) < 0.03


def test_lstm_false_alarm_rate_on_noise() -> None:
    s = create("lstm", **LSTM).score(noise(4400, seed=22))[400:]
    assert 0.003 <= _false_alarm_rate(s, 0.99) <= 0.025


def test_lstm_save_and_load_give_the_same_scores(tmp_path: Path) -> None:
    history, later = _wave(600, 23), _wave(300, 24)
    later[150] += 2.0
    det = LSTMDetector(**LSTM).fit(history)
    path = tmp_path / "lstm.pt"
    det.save(path)
    loaded = LSTMDetector.load(path)
    assert loaded.get_params() == det.get_params()
    # a loaded model rebuilds its context from the first `window` points, which score 0.0
    assert (loaded.score(history[-LSTM["window"]:]) == 0.0).all()
    np.testing.assert_allclose(loaded.score(later), det.score(later), atol=1e-9, rtol=0)


def test_lstm_save_unfitted_and_load_garbage_raise(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="unfitted"):
        LSTMDetector().save(tmp_path / "x.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(DetectorError, match="bad.pt"):
        LSTMDetector.load(bad)


def test_lstm_is_seeded() -> None:
    x = _wave(700, 25)
    a = create("lstm", **LSTM).score(x)
    b = create("lstm", **LSTM).score(x)
    c = create("lstm", **{**LSTM, "seed": 2}).score(x)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


# --- seasonal -------------------------------------------------------------------------------


def _daily(days: int, period: int = 48, seed: int = 31) -> np.ndarray:
    t = np.arange(days * period)
    return 20 + 8 * np.sin(2 * np.pi * t / period) + np.random.default_rng(seed).normal(0, 0.5, t.size)


@pytest.mark.parametrize("method", ["median", "stl"])
def test_seasonal_catches_a_value_normal_in_range_but_not_at_this_hour(method: str) -> None:
    x = _daily(10)
    night = 9 * 48 + 36  # the trough of the last day (sin = -1, value ~12)
    x[night] = 27.0  # a daytime value at night: inside the series' range
    x[8 * 48 + 12: 8 * 48 + 14] = np.nan  # a gap keeps the phase
    s = SeasonalDetector(period=48, method=method).score(x)
    assert s[night] >= 0.999
    assert np.nanmin(x) < x[night] < np.nanmax(x)
    plain = create("zscore", window=30).score(x)
    assert plain[night] < 0.999  # why a seasonal model is needed


def test_seasonal_false_alarm_rate() -> None:
    s = SeasonalDetector(period=48).score(_daily(60, seed=32))[3 * 48:]
    assert 0.003 <= _false_alarm_rate(s, 0.99) <= 0.02


def test_seasonal_level_shift_is_caught_then_absorbed() -> None:
    x = _daily(8, seed=33)
    x[6 * 48:] += 10.0
    s = SeasonalDetector(period=48, alpha=0.2).score(x)
    assert s[6 * 48] >= 0.999
    assert (s[7 * 48 + 10:] < 0.999).mean() > 0.95  # the level followed


# --- forecast -------------------------------------------------------------------------------


def test_forecast_time_to_limit_on_a_ramp_with_a_gap() -> None:
    det = ForecastDetector(limit=90.0, horizon_s=3600, step_s=30, window=20)
    x = 50.0 + 0.1 * np.arange(200)  # +0.1 per 30 s; at the end 69.9
    x[190:195] = np.nan  # missed scrapes still take time
    s = det.score(x)
    assert det.time_to_limit_s() == pytest.approx((90.0 - 69.9) / 0.1 * 30, rel=1e-9)
    ttl = det.time_to_limit_series_s(np.array([70.0]))
    assert ttl[0] == pytest.approx(20.0 / 0.1 * 30, rel=1e-6)
    assert s.max() == 0.0  # 6,030 s away: beyond the 3,600 s horizon
    s2 = det.score(70.0 + 0.1 * np.arange(1, 200))
    assert (np.diff(s2) >= -1e-12).all() and s2[-1] == 1.0  # rises as the crossing nears


def test_forecast_down_and_already_past() -> None:
    det = ForecastDetector(limit=10.0, direction="down", horizon_s=600, step_s=60, window=10)
    det.score(100.0 - 10.0 * np.arange(9))  # falling 10 per minute, at 20
    assert det.time_to_limit_s() == pytest.approx(60.0)
    assert det.update(10.0) == 1.0 and det.time_to_limit_s() == 0.0


def test_forecast_noise_far_from_limit_never_alarms() -> None:
    s = ForecastDetector(limit=100.0, horizon_s=3600, step_s=60).score(noise(5000, seed=41, loc=50.0, scale=2.0))
    assert (s < 0.99).all()


def test_forecast_needs_a_limit() -> None:
    with pytest.raises(DetectorError, match="limit is required"):
        create("forecast")


@pytest.mark.parametrize("name,params", [("iforest", IFOREST), ("lstm", LSTM), ("seasonal", {"period": 24}),
                                         ("zscore", {})])
def test_scores_do_not_depend_on_the_unit(name: str, params: dict[str, object]) -> None:
    """Bytes or terabytes, seconds or nanoseconds: the same shape gives the same scores."""
    rng = np.random.default_rng(0)
    shape = 10 + np.sin(np.arange(1500) * 2 * np.pi / 24) + 0.1 * rng.normal(size=1500)
    shape[1300] += 2.0
    scores = [create(name, **params).score(shape * unit) for unit in (1e-12, 1.0, 1e9)]
    for s in scores[1:]:
        np.testing.assert_allclose(s, scores[0], atol=1e-6, rtol=0)
    assert scores[0][1300] >= 0.99
