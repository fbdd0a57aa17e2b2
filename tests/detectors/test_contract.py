"""The contract every registered detector keeps (like river's test_estimators.py).

batch == streaming, causality, scores in [0, 1], bad input never crashes, parameters round-trip.
"""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiops.detector import Detector
from aiops.errors import DetectorError
from detectors import available, create
from tests.detectors.detcases import FAST_CASES, cases, noise

ALL = cases(available())
SLOW = {"lstm", "iforest", "seasonal", "ensemble"}


def _series() -> st.SearchStrategy[list[float]]:
    """Random series: normal-ish values, big jumps, NaN, +-Inf and runs of NaN (gaps).

    Values are rounded to 1e-6: magnitudes near 1e-160 underflow when squared, a range no
    metric lives in (they still never crash, see test_awkward_series_never_crash).
    """
    value = st.one_of(
        st.floats(-1e3, 1e3, allow_nan=False).map(lambda v: round(v, 6)),
        st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: round(v, 6)),
        st.sampled_from([math.nan, math.inf, -math.inf, 0.0]),
    )
    chunk = st.one_of(
        st.lists(value, min_size=1, max_size=20),
        st.integers(1, 15).map(lambda n: [math.nan] * n),
        st.tuples(st.floats(-100, 100).map(lambda v: round(v, 6)), st.integers(1, 40)).map(lambda t: [t[0]] * t[1]),
    )
    return st.lists(chunk, min_size=0, max_size=12).map(lambda cs: [v for c in cs for v in c])


def _stream(det: Detector, x: np.ndarray) -> np.ndarray:
    return np.array([det.update(float(v)) for v in x], dtype=np.float64)


def _with_context(x: list[float], seed: int = 0) -> np.ndarray:
    """Prefix with enough ordinary data that slow models get past their warm-up."""
    return np.concatenate([noise(150, seed), np.asarray(x, dtype=np.float64)])


@pytest.mark.parametrize("name,params", ALL)
def test_protocol_and_params_round_trip(name: str, params: dict[str, Any]) -> None:
    det = create(name, **params)
    assert isinstance(det, Detector)
    assert det.name == name
    got = det.get_params()
    for key, value in params.items():
        assert got[key] == value
    again = create(name, **got)
    assert again.get_params() == got
    assert 0.0 <= det.threshold <= 1.0


@pytest.mark.parametrize("name,params", ALL)
def test_batch_equals_streaming_and_is_causal(name: str, params: dict[str, Any]) -> None:
    x = noise(400, seed=1)
    x[[50, 51, 120]] = [np.nan, np.inf, -np.inf]
    x[200:230] = np.nan  # a gap
    x[300] += 25.0  # a spike
    x[320:] += 8.0  # a level shift
    batch = create(name, **params).score(x)
    stream = _stream(create(name, **params), x)
    np.testing.assert_allclose(batch, stream, rtol=0, atol=1e-9)
    # causality: the scores of a prefix do not change when points are appended
    prefix = create(name, **params).score(x[:260])
    np.testing.assert_allclose(prefix, batch[:260], rtol=0, atol=1e-9)
    # batch in pieces, mixed with update, is the same as one batch
    det = create(name, **params)
    mixed = np.concatenate([det.score(x[:97]), _stream(det, x[97:140]), det.score(x[140:141]),
                            det.score(x[141:141]), det.score(x[141:])])
    np.testing.assert_allclose(mixed, batch, rtol=0, atol=1e-9)
    assert ((batch >= 0.0) & (batch <= 1.0)).all()
    assert (batch[[50, 51, 120]] == 0.0).all() and (batch[200:230] == 0.0).all()


@pytest.mark.parametrize("name,params", ALL)
def test_fit_then_batch_equals_fit_then_streaming(name: str, params: dict[str, Any]) -> None:
    hist, x = noise(200, seed=2), noise(120, seed=3)
    x[60] += 30.0
    batch = create(name, **params).fit(hist).score(x)
    stream = _stream(create(name, **params).fit(hist), x)
    np.testing.assert_allclose(batch, stream, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name,params", ALL)
def test_pickled_state_goes_on_scoring_the_same(name: str, params: dict[str, Any]) -> None:
    """The live agent checkpoints detectors with pickle and restores them after a restart."""
    x = noise(360, seed=4)
    x[330] += 20.0
    det = create(name, **params)
    det.score(x[:300])
    clone = pickle.loads(pickle.dumps(det))
    np.testing.assert_allclose(clone.score(x[300:]), det.score(x[300:]), atol=1e-9, rtol=0)


@pytest.mark.parametrize("name,params", ALL)
def test_hypothesis_random_series(name: str, params: dict[str, Any]) -> None:
    examples = 4 if name in SLOW else 40

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(_series())
    def check(values: list[float]) -> None:
        x = _with_context(values) if name in SLOW else np.asarray(values, dtype=np.float64)
        batch = create(name, **params).score(x)
        assert batch.shape == x.shape
        assert ((batch >= 0.0) & (batch <= 1.0)).all()
        assert (batch[~np.isfinite(x)] == 0.0).all()
        stream = _stream(create(name, **params), x)
        np.testing.assert_allclose(batch, stream, rtol=0, atol=1e-9)

    check()


@pytest.mark.parametrize("name,params", ALL)
@pytest.mark.parametrize("kind", ["empty", "one", "short", "all_nan", "flat", "flat_then_step", "huge", "inf", "tiny"])
def test_awkward_series_never_crash(name: str, params: dict[str, Any], kind: str) -> None:
    x = {
        "empty": np.array([]),
        "one": np.array([1.0]),
        "short": np.array([1.0, 2.0, np.nan]),
        "all_nan": np.full(300, np.nan),
        "flat": np.full(300, 5.0),
        "flat_then_step": np.r_[np.full(200, 5.0), np.full(100, 50.0)],
        "huge": np.r_[noise(200) * 1e12, [1e15]],
        "inf": np.r_[noise(200), [np.inf] * 50, noise(50)],
        "tiny": np.r_[0.0, np.full(60, 1e-161), noise(100) * 1e-300],
    }[kind]
    det = create(name, **params)
    s = det.score(x)
    assert s.shape == x.shape and np.isfinite(s).all() and ((s >= 0) & (s <= 1)).all()
    for v in x[:50]:
        u = det.update(float(v))
        assert 0.0 <= u <= 1.0
    if kind == "flat":
        assert (s == 0.0).all(), "a flat line is not anomalous"
    refit = create(name, **params).fit(x)  # fit on the awkward series itself, then go on
    after = refit.score(noise(40, seed=9))
    assert np.isfinite(after).all() and ((after >= 0) & (after <= 1)).all()


@pytest.mark.parametrize("name,params", ALL)
def test_bad_parameters_and_values_raise_detector_error(name: str, params: dict[str, Any]) -> None:
    with pytest.raises(DetectorError, match="threshold"):
        create(name, **{**params, "threshold": 1.5})
    with pytest.raises(DetectorError, match="no_such_param"):
        create(name, **{**params, "no_such_param": 1})
    with pytest.raises(DetectorError):
        create(name, **params).update("not a number")  # type: ignore[arg-type]


def test_unknown_detector_names_the_choices() -> None:
    with pytest.raises(DetectorError, match="nope.*zscore"):
        create("nope")


def test_every_detector_has_fast_test_parameters() -> None:
    missing = [n for n in available() if n not in FAST_CASES and n != "ensemble"]
    assert not missing


FIRST = [c for c in ALL if c.id.endswith("-0")]


@pytest.mark.parametrize("name,params", FIRST)
def test_fit_on_history_then_several_columns_batch_equals_streaming(name: str, params: dict[str, Any]) -> None:
    """What `aiops replay --train` does with a multi-column file equals the live agent's updates."""
    from detectors.multi import ColumnSet

    hist = np.column_stack([noise(200, seed=s) for s in (5, 6, 7)])
    x = np.column_stack([noise(120, seed=s) for s in (8, 9, 10)])
    x[60, 1] += 30.0
    x[70:75, 2] = np.nan
    batch = ColumnSet(lambda: create(name, **params), 3)
    batch.fit(hist)
    scores, flags, per = batch.detect(x)
    stream = ColumnSet(lambda: create(name, **params), 3)
    stream.fit(hist)
    rows = [stream.detect(x[i: i + 1]) for i in range(x.shape[0])]
    np.testing.assert_allclose(np.concatenate([r[0] for r in rows]), scores, rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.concatenate([r[2] for r in rows]), per, rtol=0, atol=1e-9)
    assert np.concatenate([r[1] for r in rows]).tolist() == flags.tolist()
    assert per.shape == (120, 3) and ((per >= 0) & (per <= 1)).all()
