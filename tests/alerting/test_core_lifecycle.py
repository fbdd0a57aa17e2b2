"""The alert state machine: pending -> firing after `for`, resolved, keep_firing_for, fingerprints."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aiops.model import AlertState, fingerprint_of
from alerting.lifecycle import Lifecycle
from alerting.rules import ThresholdRule

RULE = ThresholdRule(name="HighCPU", for_s=300, op=">", threshold=0.8)
LABELS = (("alertname", "HighCPU"), ("instance", "a"))


def states(changes: list) -> list[str]:  # type: ignore[type-arg]
    return [c.alert.state.value for c in changes]


def test_pending_becomes_firing_only_after_for() -> None:
    lc = Lifecycle()
    assert states(lc.observe(RULE, LABELS, True, 0.9, 0)) == ["pending"]
    assert lc.observe(RULE, LABELS, True, 0.9, 299_999) == []
    fired = lc.observe(RULE, LABELS, True, 0.95, 300_000)
    assert states(fired) == ["firing"]
    assert fired[0].previous is AlertState.PENDING
    assert fired[0].alert.starts_at_ms == 0  # Prometheus: startsAt is when it became active
    assert fired[0].alert.fingerprint == fingerprint_of(dict(LABELS))
    assert lc.observe(RULE, LABELS, True, 0.95, 360_000) == []  # no repeated transitions


def test_pending_that_clears_goes_inactive_and_restarts_the_for_clock() -> None:
    lc = Lifecycle()
    lc.observe(RULE, LABELS, True, 0.9, 0)
    assert states(lc.observe(RULE, LABELS, False, 0.1, 200_000)) == ["inactive"]
    assert len(lc) == 0
    assert states(lc.observe(RULE, LABELS, True, 0.9, 250_000)) == ["pending"]
    assert lc.observe(RULE, LABELS, True, 0.9, 500_000) == []  # only 250 s of the new streak
    assert states(lc.observe(RULE, LABELS, True, 0.9, 550_000)) == ["firing"]


def test_resolved_is_announced_with_end_time_and_rule_can_fire_again() -> None:
    rule = ThresholdRule(name="HighCPU", op=">", threshold=0.8)  # for: 0
    lc = Lifecycle(retention_s=60)
    assert states(lc.observe(rule, LABELS, True, 0.9, 0)) == ["firing"]
    resolved = lc.observe(rule, LABELS, False, 0.2, 10_000)
    assert states(resolved) == ["resolved"]
    assert resolved[0].alert.ends_at_ms == 10_000
    assert states(lc.observe(rule, LABELS, True, 0.9, 20_000)) == ["firing"]
    lc.observe(rule, LABELS, False, 0.2, 30_000)
    assert lc.forget_resolved(60_000) == 0
    assert lc.forget_resolved(90_001) == 1 and len(lc) == 0


def test_keep_firing_for_holds_a_flapping_alert() -> None:
    rule = ThresholdRule(name="HighCPU", op=">", threshold=0.8, keep_firing_for_s=120)
    lc = Lifecycle()
    transitions = []
    # a metric flapping around its threshold every 30 s for 10 minutes
    for i in range(20):
        transitions += states(lc.observe(rule, LABELS, i % 2 == 0, 0.9 if i % 2 == 0 else 0.7, i * 30_000))
    assert transitions == ["firing"]  # one page, not ten
    # then it stays low: resolved once keep_firing_for has passed since it last held
    last_active = 18 * 30_000
    assert lc.observe(rule, LABELS, False, 0.5, last_active + 119_000) == []
    assert states(lc.observe(rule, LABELS, False, 0.5, last_active + 120_000)) == ["resolved"]


def test_sweep_resolves_elements_a_full_evaluation_did_not_see() -> None:
    rule = ThresholdRule(name="HighCPU", op=">", threshold=0.8)
    other = (("alertname", "HighCPU"), ("instance", "b"))
    lc = Lifecycle()
    lc.observe(rule, LABELS, True, 0.9, 0)
    lc.observe(rule, other, True, 0.9, 0)
    gone = lc.sweep(rule, {fingerprint_of(LABELS)}, 15_000)
    assert [(dict(c.alert.labels)["instance"], c.alert.state.value) for c in gone] == [("b", "resolved")]


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), st.text(max_size=8), max_size=6))
def test_fingerprint_ignores_label_order(labels: dict[str, str]) -> None:
    rule = ThresholdRule(name="R", op=">", threshold=0)
    lc1, lc2 = Lifecycle(), Lifecycle()
    a = lc1.observe(rule, tuple(sorted(labels.items())), True, 1.0, 0)
    b = lc2.observe(rule, tuple(sorted(labels.items(), reverse=True)), True, 1.0, 0)
    assert a[0].alert.fingerprint == b[0].alert.fingerprint == fingerprint_of(labels)
