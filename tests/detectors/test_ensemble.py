"""The ensemble detector with its default members: protocol invariants and its own behaviour."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from aiops.errors import DetectorError
from detectors import create
from detectors.ensemble import DEFAULT_MEMBERS


def _series(n: int = 1500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = 50 + 10 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 1, n)
    x[900:] += 12  # a level shift
    x[1200] = 200  # a spike
    x[300:305] = np.nan  # a gap
    return x


def test_default_members_batch_equals_streaming_and_chunks() -> None:
    x = _series()
    batch = create("ensemble").score(x)
    streaming = create("ensemble")
    stream = np.array([streaming.update(float(v)) for v in x])
    np.testing.assert_allclose(batch, stream, rtol=0, atol=1e-9)
    chunked = create("ensemble")
    parts = np.concatenate([chunked.score(x[a:b]) for a, b in ((0, 1), (1, 700), (700, 1201), (1201, 1500))])
    np.testing.assert_allclose(batch, parts, rtol=0, atol=1e-9)
    det = create("ensemble")
    np.testing.assert_array_equal(batch >= det.threshold, stream >= det.threshold)


def test_causal_and_in_range() -> None:
    x = _series()
    base = create("ensemble").score(x)
    assert ((base >= 0) & (base <= 1)).all()
    assert (base[300:305] == 0).all()  # NaN scores 0
    changed = x.copy()
    changed[1000:] = -changed[1000:] * 3
    other = create("ensemble").score(changed)
    np.testing.assert_array_equal(base[:1000], other[:1000])


def test_finds_the_shift_and_the_spike_once_each() -> None:
    # the surprise as the score: the spike inside the (more surprising) shift is still found
    x = _series()
    det = create("ensemble", rank_window=0, threshold=0.25)
    s, decisions = det.detect(x)
    alarms = np.flatnonzero(decisions)
    assert any(900 <= a < 920 for a in alarms), alarms
    assert any(1200 <= a < 1205 for a in alarms), alarms
    # one alarm per incident: the suppression silences the next `suppress` decisions, not the scores
    assert all(b - a > det.suppress for a, b in zip(alarms, alarms[1:], strict=False))
    assert (s[alarms[0] + 1: alarms[0] + 5] >= det.threshold).any()


def test_ranked_scores_find_incidents_and_transfer_between_noise_shapes() -> None:
    """The rank (the default) finds a spike and a later shift once each, and alarms on a
    heavy-tailed series about as often as on a Gaussian one (the threshold transfers)."""
    x = _series()
    x[1200] = x[1199]
    x[500] = 200  # the spike first, then the shift at 900
    det = create("ensemble")
    s, decisions = det.detect(x)
    alarms = np.flatnonzero(decisions)
    assert any(500 <= a < 505 for a in alarms) and any(900 <= a < 920 for a in alarms), alarms
    assert ((s >= 0) & (s < 1)).all()
    rng = np.random.default_rng(3)
    rates = []
    for noise in (rng.normal(size=6000), rng.standard_t(2, size=6000)):
        ranked = create("ensemble", suppress=0).score(100 + noise)[1000:]
        rates.append(float((ranked >= 0.99).mean()))
    surprise = [float((create("ensemble", suppress=0, rank_window=0).score(100 + noise)[1000:] >= 0.25).mean())
                for noise in (rng.normal(size=6000), rng.standard_t(2, size=6000))]
    assert all(0.002 < r < 0.03 for r in rates), rates
    assert surprise[1] > 5 * max(surprise[0], 1e-4), surprise  # the surprise alone does not transfer


def test_suppression_and_combination_rules() -> None:
    x = np.r_[np.random.default_rng(1).normal(0, 1, 200), np.full(50, 30.0)]
    member = [{"detector": "zscore", "params": {"window": 50}}]
    quiet, quiet_alarms = create("ensemble", members=member, suppress=10, rank_window=0, threshold=0.25).detect(x)
    loud = create("ensemble", members=member, suppress=0, rank_window=0).score(x)
    first = int(np.argmax(quiet_alarms))
    assert first == 200 and not quiet_alarms[201:211].any() and (loud[201:211] > 0).any()
    np.testing.assert_array_equal(quiet, loud)  # suppression mutes decisions, never scores
    # one member at weight 1: 'max' and 'mean' agree; halving the weight halves the score
    np.testing.assert_allclose(create("ensemble", members=member, suppress=0, combine="mean", rank_window=0).score(x),
                               loud)
    half = create("ensemble", members=[{**member[0], "weight": 0.5}], suppress=0, rank_window=0).score(x)
    np.testing.assert_allclose(half, loud / 2)


def test_params_round_trip_and_pickle() -> None:
    det = create("ensemble")
    assert det.get_params()["members"] == [dict(m) for m in DEFAULT_MEMBERS]
    assert create("ensemble", **det.get_params()).get_params() == det.get_params()
    x = _series()
    det.score(x[:1000])
    restored = pickle.loads(pickle.dumps(det))
    np.testing.assert_array_equal(restored.score(x[1000:]), det.score(x[1000:]))


@pytest.mark.parametrize(("params", "needle"), [
    ({"members": []}, "non-empty list"),
    ({"members": "zscore"}, "must be a list"),
    ({"members": [{"params": {}}]}, "members[0] must name a detector"),
    ({"members": ["ensemble"]}, "cannot be an ensemble"),
    ({"members": [{"detector": "zscore", "weight": 0}]}, "weight"),
    ({"members": [{"detector": "zscore", "smooth": 0}]}, "smooth"),
    ({"members": [{"detector": "zscore", "colour": "red"}]}, "unknown key"),
    ({"members": ["nope"]}, "nope"),
    ({"combine": "median"}, "combine"),
    ({"suppress": -1}, "suppress"),
    ({"rank_window": -1}, "rank_window"),
])
def test_bad_parameters_name_themselves(params: dict, needle: str) -> None:
    with pytest.raises(DetectorError, match=None) as info:
        create("ensemble", **params)
    assert needle in str(info.value)
