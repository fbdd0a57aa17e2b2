"""Rule configuration and templates: what loads, what fails at load and how it says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aiops.errors import ConfigError
from alerting.config import load_alerting, parse_route, parse_rules
from alerting.rules import AbsentRule, AnomalyRule, ForecastRule, ThresholdRule, time_to_limit_s
from alerting.settings import AlertingSettings
from alerting.templates import Template, TemplateError
from app.settings import load_settings


def test_every_rule_kind_loads_from_yaml(tmp_path: Path) -> None:
    rules_file = tmp_path / "more.yaml"
    rules_file.write_text("""
groups:
  - name: disk
    rules:
      - alert: DiskFillsSoon
        type: forecast
        expr: disk_used_ratio
        window: 1h
        limit: 0.95
        horizon: 4h
""")
    cfg = tmp_path / "aiops.yaml"
    cfg.write_text(f"""
alerting:
  rule_files: [{rules_file}]
  rules:
    - alert: HighCPU
      expr: 'cpu_ratio{{job="node"}}'
      op: ">="
      threshold: 0.8
      for: 5m
      keep_firing_for: 2m
      labels: {{severity: warning}}
      annotations:
        summary: "CPU {{{{ $value | humanizePercentage }}}} on {{{{ $labels.instance }}}}"
        runbook_url: https://runbooks.example/cpu
    - alert: LatencyAnomaly
      type: anomaly
      detector: zscore
      score: 0.9
      points: 3
      of: 5
    - alert: NodeSilent
      type: absent
      expr: 'up{{job="node"}}'
      silent_for: 2m
""")
    settings = load_settings(cfg)
    config = load_alerting(settings.alerting, str(cfg))
    kinds = [type(r) for r in config.rules]
    assert kinds == [ThresholdRule, AnomalyRule, AbsentRule, ForecastRule]
    high = config.rules[0]
    assert isinstance(high, ThresholdRule)
    assert (high.op, high.threshold, high.for_s, high.keep_firing_for_s) == (">=", 0.8, 300.0, 120.0)
    labels = high.element_labels(None, instance="a:9100")
    assert dict(high.render(labels, 0.873)) == {"summary": "CPU 87.3% on a:9100",
                                                "runbook_url": "https://runbooks.example/cpu"}
    absent = config.rules[2]
    assert isinstance(absent, AbsentRule) and absent.absent_labels() == {"job": "node"}


@pytest.mark.parametrize(("raw", "message"), [
    ({"alert": "X", "expr": "cpu", "threshold": 1, "annotations": {"summary": "{{ $valeu }}"}},
     "alerting.rules[0] (X).annotations.summary: '{{ $valeu }}': unknown variable '$valeu'"),
    ({"alert": "X", "expr": "cpu", "threshold": 1, "annotations": {"description": "{{ $value | shout }}"}},
     "alerting.rules[0] (X).annotations.description:"),
    ({"alert": "X", "expr": "cpu", "threshold": 1, "annotations": {"summary": "{{ $value "}},
     "alerting.rules[0] (X).annotations.summary: '{{ $value ': unclosed"),
    ({"alert": "X", "expr": "cpu", "threshold": 1, "for": "soon"},
     "alerting.rules[0] (X).for: expected a duration like '5m', got 'soon' (test.yaml)"),
    ({"alert": "X", "expr": "cpu", "threshold": 1, "op": "=>"}, "alerting.rules[0] (X).op: expected one of"),
    ({"alert": "X", "expr": "cpu{", "threshold": 1}, "alerting.rules[0] (X).expr: selector 'cpu{'"),
    ({"alert": "X", "type": "anomaly", "points": 4, "of": 3}, "alerting.rules[0] (X).points: 4 is more than of=3"),
    ({"alert": "X", "type": "magic"}, "alerting.rules[0] (X).type: expected one of threshold, anomaly"),
    ({"alert": "X", "expr": "cpu"}, "alerting.rules[0] (X).threshold: Field required"),
])
def test_bad_rules_fail_at_load_naming_rule_and_field(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_rules([raw], "test.yaml")
    assert message in str(err.value)
    assert "test.yaml" in str(err.value)


def test_duplicate_rule_and_unknown_receiver_are_config_errors() -> None:
    rule = {"alert": "X", "expr": "cpu", "threshold": 1}
    with pytest.raises(ConfigError, match="defined twice"):
        load_alerting(AlertingSettings(rules=[rule, rule]))
    with pytest.raises(ConfigError, match=r"receiver\(s\) \['pager'\] not defined"):
        parse_route({"receiver": "chat", "routes": [{"receiver": "pager"}]}, "x.yaml", ["chat"])


@pytest.mark.parametrize(("source", "value", "labels", "expected"), [
    ("{{ $value }}", 0.5, {}, "0.5"),
    ("{{ $labels.instance }}/{{ $labels.missing }}!", None, {"instance": "a"}, "a/!"),
    ('{{ $labels["job"] | toUpper }}', None, {"job": "node"}, "NODE"),
    ("{{ $value | humanize }}B", 2_500_000.0, {}, "2.5MB"),
    ("{{ $value | humanizeDuration }}", 3725.0, {}, "1h 2m 5s"),
    ('{{ $value | printf "%.3f" }}', 1 / 3, {}, "0.333"),
    ("{{ $value }}", float("nan"), {}, "NaN"),
    ("{{ $value | humanizePercentage }}", float("inf"), {}, "+Inf"),
    ("{{ $rule }} fired", None, {}, "R fired"),
])
def test_templates_render(source: str, value: float | None, labels: dict[str, str], expected: str) -> None:
    assert Template.compile(source).render(value, labels, "R") == expected


def test_template_errors() -> None:
    for bad in ["{{ }}", "{{ $value | nope }}", "}} x", "{{ $labels. }}", '{{ printf "%q" $value }}']:
        with pytest.raises(TemplateError):
            Template.compile(bad)


def test_time_to_limit_linear_trend() -> None:
    ts = np.arange(0, 600_000, 60_000, dtype=np.int64)  # 10 points, one a minute
    rising = 0.5 + 0.01 * np.arange(10)  # +1% a minute, 0.59 now
    ttl = time_to_limit_s(ts, rising, 0.95, now_ms=540_000)
    assert ttl == pytest.approx(36 * 60, rel=1e-6)
    falling = 100.0 - 2.0 * np.arange(10)
    assert time_to_limit_s(ts, falling, 10.0, 540_000, direction="below") == pytest.approx(36 * 60, rel=1e-6)
    assert time_to_limit_s(ts, falling, 200.0, 540_000) is None  # moving away from an upper limit
    assert time_to_limit_s(ts, np.full(10, 0.99), 0.95, 540_000) == 0.0  # already past
    noisy = rising.copy()
    noisy[3] = np.nan
    assert time_to_limit_s(ts, noisy, 0.95, 540_000) == pytest.approx(36 * 60, rel=1e-6)
    assert time_to_limit_s(ts[:1], rising[:1], 0.95, 0) is None


def test_receivers_check_and_wiring() -> None:
    receivers = [{"name": "ops", "type": "webhook", "url": "http://127.0.0.1:9/hook"}]
    rules = [{"alert": "X", "expr": "cpu", "threshold": 1}]
    cfg = load_alerting(AlertingSettings(rules=rules, receivers=receivers), check_receivers=True)
    assert cfg.route.receiver == "ops"  # no route: everything to the first receiver
    with pytest.raises(ConfigError, match="silence_receiver: 'pager' not defined"):
        load_alerting(AlertingSettings(rules=rules, receivers=receivers, silence_receiver="pager"),
                      check_receivers=True)
    from app.settings import Settings
    from app.wiring import build_components

    names = [c.name for c in build_components(Settings(alerting=AlertingSettings(rules=rules, receivers=receivers)))]
    assert names == ["alerting"]
    assert build_components(Settings()) == [] or "alerting" not in [c.name for c in build_components(Settings())]
