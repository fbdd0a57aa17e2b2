"""The shared `smooth` and `refractory` options (detectors.alarms.TrailingMean / Refractory) do what they claim."""

from __future__ import annotations

import numpy as np
import pytest

from aiops.errors import DetectorError
from detectors import create
from detectors.alarms import Refractory, TrailingMean
from tests.detectors.detcases import noise


def _alarms(s: np.ndarray, threshold: float = 0.999) -> np.ndarray:
    return np.flatnonzero(s >= threshold)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_smoothing_suppresses_a_single_point_blip(seed: int) -> None:
    x = noise(1500, seed=seed)
    x[1000] += 6.0  # one 6-sigma point: the raw z-score flags it
    raw = create("zscore", window=200).score(x)
    smoothed = create("zscore", window=200, smooth=50).score(x)
    assert raw[1000] >= 0.999
    assert not _alarms(smoothed[1000:1050]).size  # in the average it is 0.12 sigma of noise, 0.85 of the average's


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_smoothing_finds_a_small_sustained_shift_early(seed: int) -> None:
    x = noise(1500, seed=seed)
    x[1000:] += 1.5  # 1.5 sigma: a raw point rarely reaches 3.3 sigma
    raw = create("zscore", window=400).score(x)
    smoothed = create("zscore", window=400, smooth=30).score(x)
    assert raw[1000:1030].max() < 0.999 or _alarms(raw[1000:1030]).size <= 3
    first = _alarms(smoothed[1000:])
    assert first.size and first[0] < 30  # 1.5 * sqrt(30) ~ 8 sigma of the average once it is full


def test_refractory_gives_one_alarm_per_sustained_incident() -> None:
    x = noise(2400, seed=31)
    x[1000:1100] += 10.0  # two incidents, each 100 points long
    x[1800:1900] += 10.0
    raw = create("zscore", window=300).score(x)
    det = create("zscore", window=300, refractory=150)
    scores, decided = det.detect(x)
    muted = np.flatnonzero(decided)
    assert _alarms(raw[1000:1100]).size > 20  # without: most points of the incident alarm
    assert [a - 1000 for a in muted if 1000 <= a < 1150] == [0]
    assert [a - 1800 for a in muted if 1800 <= a < 1950] == [0]  # the period ended: the next incident alarms
    np.testing.assert_array_equal(scores, raw)  # the scores are never muted
    stream = create("zscore", window=300, refractory=150)
    pairs = [stream.detect_one(float(v)) for v in x]
    np.testing.assert_allclose([p[0] for p in pairs], scores, rtol=0, atol=1e-9)
    assert [p[1] for p in pairs] == decided.tolist()


def test_refractory_counts_points_with_gaps_and_spans_calls() -> None:
    r = Refractory(3)
    first = r.batch(np.array([False, True, True]))
    assert first.tolist() == [False, True, False]
    assert r.one(True) is False and r.one(False) is False  # a gap (never positive) counts as a point
    assert r.one(True) is True


def test_trailing_mean_skips_gaps_and_matches_streaming() -> None:
    x = noise(300, seed=41)
    x[[5, 6, 100]] = [np.nan, np.inf, np.nan]
    batch = TrailingMean(7).batch(x)
    one = TrailingMean(7)
    stream = np.array([one.one(float(v)) for v in x])
    np.testing.assert_allclose(batch, stream, rtol=1e-15, atol=0)
    assert np.isnan(batch[[5, 6, 100]]).all()
    fin = x[np.isfinite(x)]
    assert batch[-1] == pytest.approx(fin[-7:].mean(), rel=1e-12)
    assert batch[101] == pytest.approx(np.r_[x[94:100], x[101]].mean(), rel=1e-12)  # the gap at 100 is skipped


def test_defaults_leave_scores_unchanged_and_fit_clears_the_refractory_period() -> None:
    x = noise(600, seed=51)
    x[500] += 12.0
    plain = create("zscore", window=50).score(x)
    np.testing.assert_array_equal(create("zscore", window=50, smooth=1, refractory=0).score(x), plain)
    assert create("zscore").get_params()["smooth"] == 1 and create("zscore").get_params()["refractory"] == 0
    hist = noise(300, seed=52)
    hist[-1] += 15.0  # the history ends with an alarm
    live = noise(5, seed=53)
    live[0] += 15.0
    s, decided = create("zscore", window=100, refractory=50).fit(hist).detect(live)
    assert s[0] >= 0.999 and decided[0]  # not muted by the history's alarm


@pytest.mark.parametrize("bad", [{"smooth": 0}, {"smooth": 2.5}, {"refractory": -1}, {"refractory": True}])
def test_bad_option_values_name_the_option(bad: dict[str, object]) -> None:
    (name,) = bad
    with pytest.raises(DetectorError, match=name):
        create("zscore", **bad)


_OTHERS = [
    ("seasonal", {"period": 24, "train_periods": 3}),
    ("iforest", {"train_size": 200, "train_window": 300, "n_estimators": 20, "seed": 1}),
    ("lstm", {"train_size": 200, "window": 8, "hidden": 4, "epochs": 2, "seed": 1}),
]


@pytest.mark.parametrize("name,params", _OTHERS)
def test_other_detectors_take_the_same_options(name: str, params: dict[str, object]) -> None:
    t = np.arange(900)
    x = noise(900, seed=61, scale=0.3) + np.sin(t * 2 * np.pi / 24)
    x[600:660] += 8.0  # a sustained incident
    plain = create(name, **params).score(x)
    scores, decided = create(name, **params, refractory=100).detect(x)
    thr = create(name, **params).threshold
    first = int(_alarms(plain, thr)[0])
    np.testing.assert_array_equal(scores, plain)  # the refractory never changes a score
    assert decided[first] and not decided[first + 1: first + 101].any()
    assert _alarms(plain[600:700], thr).size > 1  # the incident alarms on several points without
    muted = np.flatnonzero(decided)
    assert (np.diff(muted) > 100).all() and ((muted >= 600) & (muted < 700)).sum() <= 1
    # smooth=k is the same detector fed the k-point trailing mean
    np.testing.assert_allclose(create(name, **params, smooth=4).score(x),
                               create(name, **params).score(TrailingMean(4).batch(x)), rtol=0, atol=1e-12)

def test_smoothing_needs_univariate_rows() -> None:
    det = create("iforest", train_size=64, train_window=100, n_estimators=5, smooth=3)
    with pytest.raises(DetectorError, match="smooth"):
        det.score(np.ones((10, 2)))


def test_smoothed_profile_still_sees_a_single_spike_at_full_size() -> None:
    """With ``score_point`` (the default) the raw point is scored beside its trailing mean: an
    8-sigma spike, a 1.6-sigma blip of the 5-point mean, still scores as an anomaly."""
    rng = np.random.default_rng(4)
    train, x = rng.normal(size=5000), rng.normal(size=600)
    x[300] += 8.0
    both = create("profile").fit(train).score(x)
    mean_only = create("profile", score_point=False).fit(train).score(x)
    assert both[300] >= 0.999 and mean_only[300] < 0.999
    assert int((both >= 0.999).sum()) <= 3  # the spike (and the means it lifts), nothing else
    with pytest.raises(DetectorError, match="score_point"):
        create("profile", score_point="yes")
