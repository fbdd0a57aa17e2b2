"""The localiser ranks the upstream cause first, stays causal and bounded, and explains itself."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops.errors import InputError
from rca import CausalGraph, RcaCase, RcaParams, changepoint_probs, find_onset, localize
from tests.rca.helpers import CHAIN_EDGES, STEP_MS, chain_case


def test_upstream_cause_outranks_its_larger_downstream_effects() -> None:
    case = chain_case()
    result = localize(case, CausalGraph.of(CHAIN_EDGES))
    names = [c.name for c in result.causes]
    assert names[0] == "db:cpu"
    top = result.causes[0]
    # the evidence: the path to the symptom, the onset near the injected shift, residual score
    assert top.path == ("db:cpu", "feature:latency", "api:latency")
    assert top.onset_ms == int(case.timestamps_ms[240])
    assert top.z > 4
    # the symptom moved as much as its cause, but its parent explains it
    symptom = next(c for c in result.causes if c.name == "api:latency")
    assert symptom.marginal_z > 0.8 * top.marginal_z
    assert symptom.z < 4


def test_without_a_graph_the_largest_change_wins() -> None:
    """BARO's setting: no graph, robust change scores alone."""
    result = localize(chain_case(), None)
    assert {c.name for c in result.causes[:3]} == {"db:cpu", "feature:latency", "api:latency"}
    assert result.causes[-1].name == "api:gc_pause"


def test_metric_level_graph_and_component_graph_agree() -> None:
    comp = localize(chain_case(1), CausalGraph.of(CHAIN_EDGES))
    edges = [("db:cpu", "feature:latency"), ("feature:latency", "api:latency")]
    metric = localize(chain_case(1), CausalGraph.of(edges))
    assert comp.causes[0].name == metric.causes[0].name == "db:cpu"


def test_onset_is_found_before_the_alert() -> None:
    case = chain_case(2)
    result = localize(case, CausalGraph.of(CHAIN_EDGES))
    assert result.onset_ms == int(case.timestamps_ms[240])  # alert at 242


def test_data_after_the_window_is_never_read() -> None:
    """Causality: garbage after end_ms cannot change the ranking."""
    case = chain_case(3)
    end = int(case.timestamps_ms[250])
    clean = localize(dataclasses.replace(case, end_ms=end), CausalGraph.of(CHAIN_EDGES))
    values = case.values.copy()
    values[251:, 3] = 1e9  # the unrelated metric explodes after the window
    dirty = localize(dataclasses.replace(case, values=values, end_ms=end), CausalGraph.of(CHAIN_EDGES))
    assert [c.name for c in clean.causes] == [c.name for c in dirty.causes]
    assert [c.score for c in clean.causes] == pytest.approx([c.score for c in dirty.causes])


def test_max_hops_limits_candidates_to_the_symptoms_neighbourhood() -> None:
    result = localize(chain_case(), CausalGraph.of(CHAIN_EDGES), RcaParams(max_hops=1))
    assert {c.name for c in result.causes} == {"api:latency", "feature:latency"}


def test_cycles_in_the_graph_are_fine() -> None:
    """Topologies have cycles; every walk terminates and every metric is ranked."""
    result = localize(chain_case(4), CausalGraph.of([*CHAIN_EDGES, ("api", "db")]))
    assert len(result.causes) == 4
    assert all(np.isfinite(c.score) for c in result.causes)
    assert result.causes[0].path  # the path to the symptom exists around the cycle


def test_missing_points_and_infinities_do_not_crash() -> None:
    case = chain_case(5)
    values = case.values.copy()
    values[::7, 1] = np.nan
    values[100, 0] = np.inf
    values[:, 3] = np.nan  # a metric with no data at all scores 0
    result = localize(dataclasses.replace(case, values=values), CausalGraph.of(CHAIN_EDGES))
    assert result.causes[0].name == "db:cpu"
    assert next(c for c in result.causes if c.name == "api:gc_pause").score == 0.0


def test_too_little_history_is_an_input_error() -> None:
    case = chain_case()
    with pytest.raises(InputError, match="min_train_points"):
        localize(dataclasses.replace(case, onset_ms=int(case.timestamps_ms[3])), None)
    with pytest.raises(InputError, match="symptom"):
        localize(dataclasses.replace(case, symptom="nope:x"), None)


def test_parameters_are_checked_by_name() -> None:
    with pytest.raises(InputError, match="train_points"):
        RcaParams(train_points=1)
    with pytest.raises(InputError, match="std_floor"):
        RcaParams(std_floor=float("nan"))


def test_time_budget_degrades_to_marginal_scores() -> None:
    result = localize(chain_case(), CausalGraph.of(CHAIN_EDGES), RcaParams(timeout_s=1e-9))
    assert result.params["degraded"] is True
    assert len(result.causes) == 4


def test_changepoint_probabilities_peak_at_the_shift() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    x[120:] += 5
    p = changepoint_probs(x)
    assert int(np.argmax(p)) == 120
    assert 0.0 <= p.min() and p.max() <= 1.0
    assert find_onset(x, 125) == 120
    assert find_onset(rng.normal(size=200), 150) == 150  # nothing clear: the alert itself


@settings(max_examples=25, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.just(float("nan"))),
                min_size=40, max_size=80))
def test_any_values_rank_without_raising(column: list[float]) -> None:
    n = len(column)
    ts = np.arange(n, dtype=np.int64) * STEP_MS
    rng = np.random.default_rng(0)
    values = np.c_[np.asarray(column, dtype=float), rng.normal(size=n)]
    case = RcaCase(ts, values, ("a:x", "b:y"), alert_ms=int(ts[n - 5]), symptom="b:y")
    result = localize(case, CausalGraph.of([("a", "b")]))
    assert len(result.causes) == 2
    assert all(np.isfinite(c.score) for c in result.causes)
