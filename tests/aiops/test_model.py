from __future__ import annotations

import math
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiops.errors import InputError
from aiops.model import Alert, Matcher, MatchOp, Series, fingerprint_of, parse_selector, parse_series

label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True)
label_values = st.text(max_size=12)
labelsets = st.dictionaries(label_names, label_values, max_size=6)
metric_names = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,12}", fullmatch=True)


@given(metric_names, labelsets, st.randoms())
def test_label_order_never_changes_identity_or_fingerprint(name: str, labels: dict[str, str], rnd) -> None:
    items = list(labels.items())
    rnd.shuffle(items)
    a, b = Series.of(name, labels), Series.of(name, dict(items))
    assert a == b and hash(a) == hash(b)
    assert fingerprint_of(labels) == fingerprint_of(items)
    assert Alert.of(labels).fingerprint == Alert.of(dict(items)).fingerprint


@given(metric_names, labelsets)
def test_parse_of_render_is_identity(name: str, labels: dict[str, str]) -> None:
    s = Series.of(name, labels)
    assert parse_series(s.key) == s


def test_fingerprint_matches_alertmanager_fnv64a() -> None:
    # FNV-1a 64 offset basis for the empty label set, as Prometheus' model.emptyLabelSignature
    assert fingerprint_of({}) == "cbf29ce484222325"
    assert len(fingerprint_of({"alertname": "x"})) == 16
    assert fingerprint_of({"a": "b"}) != fingerprint_of({"a": "c"})


def test_series_pickles_across_processes() -> None:
    s = Series.of("m", a="1")
    assert pickle.loads(pickle.dumps(s)) == s


def test_selector_parsing_and_matching() -> None:
    ms = parse_selector('node_cpu_seconds_total{mode!="idle",cpu=~"[01]"}')
    assert ms[0] == Matcher("__name__", MatchOp.EQ, "node_cpu_seconds_total")
    hit = Series.of("node_cpu_seconds_total", mode="user", cpu="1")
    miss = Series.of("node_cpu_seconds_total", mode="idle", cpu="1")
    assert all(m.matches(hit) for m in ms)
    assert not all(m.matches(miss) for m in ms)
    # regexes are anchored, as in Prometheus
    assert not Matcher("cpu", MatchOp.RE, "1").matches(Series.of("x", cpu="10"))
    assert Matcher("cpu", MatchOp.NRE, "1").matches(Series.of("x", cpu="10"))


@pytest.mark.parametrize("bad", ["", "{}", 'x{a=b}', 'x{a="1"', 'x{a=~"("}'])
def test_bad_selectors_raise_input_error_naming_it(bad: str) -> None:
    with pytest.raises(InputError) as err:
        parse_selector(bad)
    assert "selector" in str(err.value) or "matcher" in str(err.value)


def test_nan_and_inf_are_legal_sample_values() -> None:
    from aiops.model import Sample

    s = Sample(Series.of("x"), 0, math.nan)
    assert math.isnan(s.value)
    assert Sample(Series.of("x"), 0, math.inf).value == math.inf
