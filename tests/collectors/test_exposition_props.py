"""Properties of the exposition parser: what the text format renders, it parses back."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from aiops.model import Series
from collectors import ExpositionParser

NAME = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,20}", fullmatch=True)
LABEL = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,10}", fullmatch=True).filter(
    lambda s: s not in ("job", "instance") and not s.startswith("__"))
VALUE_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
VALUE = st.floats(allow_nan=True, allow_infinity=True)


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return repr(x)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.tuples(NAME, st.dictionaries(LABEL, VALUE_TEXT, max_size=4).map(
    lambda d: tuple(sorted(d.items())))), VALUE, min_size=1, max_size=20))
def test_render_then_parse_round_trips(data: dict) -> None:
    lines = []
    for (name, labels), value in data.items():
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
        lines.append(f"{name}{{{inner}}} {_fmt(value)}" if labels else f"{name} {_fmt(value)}")
    parser = ExpositionParser({"job": "j"})
    for _round in range(2):  # the second parse goes through the cache
        got = {s.series: s.value for s in parser.parse("\n".join(lines) + "\n", 7)}
        want = {Series.of(name, dict(labels), job="j"): value for (name, labels), value in data.items()}
        assert got.keys() == want.keys()
        for k, v in want.items():
            assert (math.isnan(v) and math.isnan(got[k])) or got[k] == v


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(LABEL.filter(lambda s: s != "le"), VALUE_TEXT, VALUE), min_size=1, max_size=10,
                unique_by=lambda t: t[1]))
def test_parses_what_prometheus_client_renders(rows: list[tuple[str, str, float]]) -> None:
    registry = CollectorRegistry()
    g = Gauge("prop_gauge", "A gauge.", ["key"], registry=registry)
    for _label, key, value in rows:
        g.labels(key).set(value)
    text = generate_latest(registry).decode()
    got = {s.series.get("key"): s.value for s in ExpositionParser().parse(text, 0)}
    assert set(got) == {key for _l, key, _v in rows}
    for _label, key, value in rows:
        assert (math.isnan(value) and math.isnan(got[key])) or got[key] == value
