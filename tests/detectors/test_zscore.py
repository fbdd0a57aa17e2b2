"""zscore: catches spikes and shifts, calibrated false-alarm rate, streaming numerics."""

from __future__ import annotations

import numpy as np
import pytest

from aiops.errors import DetectorError
from detectors import ZScoreDetector, create
from tests.detectors.detcases import noise


@pytest.mark.parametrize("params", [{}, {"robust": True}, {"seasonal_period": 24}])
def test_catches_a_spike_and_a_level_shift(params: dict[str, object]) -> None:
    x = noise(2000, seed=5) + 3 * np.sin(np.arange(2000) * 2 * np.pi / 24)
    x[1500] += 15.0
    x[1700:] += 20.0
    s = create("zscore", window=40, **params).score(x)
    det = ZScoreDetector()
    assert s[1500] >= det.threshold
    assert s[1700] >= det.threshold


@pytest.mark.parametrize("params", [{"window": 30}, {"window": 10}, {"window": 100, "min_periods": 5}])
def test_false_alarm_rate_on_gaussian_noise(params: dict[str, object]) -> None:
    s = create("zscore", **params).score(noise(200_000, seed=7, loc=50.0, scale=4.0))
    s = s[100:]
    assert 0.007 <= (s > 0.99).mean() <= 0.013
    assert 0.0004 <= (s > 0.999).mean() <= 0.0016


def test_robust_window_ignores_an_outlier_inside_it() -> None:
    x = noise(200, seed=1)
    x[100] = 1e4  # inflates a plain std for the next 30 points; not the median / MAD
    x[110] += 8.0
    plain = create("zscore").score(x)
    robust = create("zscore", robust=True).score(x)
    assert plain[110] < 0.9 < 0.999 <= robust[110]


def test_streaming_survives_cancellation() -> None:
    """A huge spike leaving the window must not leave rounding garbage in the running sums."""
    x = np.r_[noise(100, seed=2) + 1e9, [1e15], noise(200, seed=3) + 1e9]
    det = create("zscore", window=30)
    stream = np.array([det.update(v) for v in x])
    np.testing.assert_allclose(stream, create("zscore", window=30).score(x), atol=1e-9, rtol=0)
    assert (stream[140:] < 0.9999).all()


def test_parameters_are_validated_with_the_value() -> None:
    with pytest.raises(DetectorError, match="window.*got: 1"):
        ZScoreDetector(window=1)
    with pytest.raises(DetectorError, match="min_periods.*got: 50"):
        ZScoreDetector(window=30, min_periods=50)
    with pytest.raises(DetectorError, match="robust"):
        ZScoreDetector(robust="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["wave_on_offset", "steep_trend", "tiny_noise_on_huge_level"])
def test_batch_equals_streaming_on_drifting_data(kind: str) -> None:
    t = np.arange(5000.0)
    x = {
        "wave_on_offset": 1e6 + 50 * np.sin(2 * np.pi * t / 288) + noise(5000, seed=4),
        "steep_trend": 1e3 * t + noise(5000, seed=5),
        "tiny_noise_on_huge_level": 1e9 + noise(5000, seed=6) * 1e-3,
    }[kind]
    det = create("zscore")
    stream = np.array([det.update(v) for v in x])
    np.testing.assert_allclose(create("zscore").score(x), stream, atol=1e-9, rtol=0)
