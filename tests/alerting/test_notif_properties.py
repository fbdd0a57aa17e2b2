"""Properties: the outbox codec round-trips, every renderer copes with any notification, the bucket holds its rate."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from aiops.model import Alert, AlertState
from aiops.notification import Notification, decode_notification, encode_notification
from alerting.notifiers.dingtalk import DingTalkNotifier
from alerting.notifiers.discord import DiscordNotifier
from alerting.notifiers.feishu import FeishuNotifier
from alerting.notifiers.mattermost import MattermostNotifier
from alerting.notifiers.slack import SlackNotifier
from alerting.notifiers.smtp import SmtpNotifier
from alerting.notifiers.teams import TeamsNotifier
from alerting.notifiers.webhook import WebhookNotifier
from alerting.notifiers.wecom import WeComNotifier
from alerting.token_bucket import TokenBucket

text = st.text(max_size=40)
names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,15}", fullmatch=True)
labels = st.dictionaries(names, text, max_size=5).map(lambda d: tuple(sorted(d.items())))
values = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))
alerts = st.builds(Alert, labels=labels, annotations=labels, state=st.sampled_from(list(AlertState)),
                   starts_at_ms=st.integers(0, 2**42), ends_at_ms=st.integers(0, 2**42), value=values,
                   generator_url=st.one_of(st.just(""), st.just("http://x/y")))
notifications = st.builds(Notification, receiver=names, group_key=text, group_labels=labels,
                          alerts=st.lists(alerts, max_size=12).map(tuple), external_url=st.sampled_from(["", "http://d"]),
                          truncated_alerts=st.integers(0, 10_000), held_back=st.integers(0, 10_000),
                          extra=st.dictionaries(names, text, max_size=3))

RENDERERS = [SlackNotifier("r", "http://h/x"), TeamsNotifier("r", "http://h/x"), DiscordNotifier("r", "http://h/x"),
             MattermostNotifier("r", "http://h/x"), FeishuNotifier("r", "http://h/x", secret="s"),
             DingTalkNotifier("r", "http://h/x"), WeComNotifier("r", "http://h/x"), WebhookNotifier("r", "http://h/x"),
             SmtpNotifier("r", host="h", sender="a@b", to=("c@d",))]


def _same_value(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or a == b


@settings(max_examples=40, deadline=None)
@given(notifications)
def test_codec_round_trips(n: Notification) -> None:
    stored = json.loads(json.dumps(encode_notification(n), allow_nan=False))  # what the JSON column keeps
    back = decode_notification(stored)
    assert (back.receiver, back.group_key, back.group_labels, back.external_url, back.truncated_alerts,
            back.held_back, dict(back.extra)) == (n.receiver, n.group_key, n.group_labels, n.external_url,
                                                  n.truncated_alerts, n.held_back, dict(n.extra))
    assert len(back.alerts) == len(n.alerts)
    for a, b in zip(n.alerts, back.alerts, strict=True):
        assert (a.labels, a.annotations, a.state, a.starts_at_ms, a.ends_at_ms, a.generator_url) == (
            b.labels, b.annotations, b.state, b.starts_at_ms, b.ends_at_ms, b.generator_url)
        assert _same_value(a.value, b.value)


@settings(max_examples=30, deadline=None)
@given(notifications)
def test_every_renderer_copes_with_any_notification(n: Notification) -> None:
    for notifier in RENDERERS:
        payload = notifier.render(n)
        json.dumps(payload, allow_nan=False)  # strict JSON: services reject NaN
        if notifier.kind == "slack":
            assert len(payload["blocks"]) <= 50
        if notifier.kind == "discord":
            assert len(payload["embeds"]) <= 10 and len(payload["content"]) <= 2000
        if notifier.kind == "wecom":
            assert len(payload["markdown"]["content"].encode()) <= 4096


@given(st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=60), st.integers(1, 5),
       st.floats(1, 600, allow_nan=False))
def test_bucket_never_exceeds_burst_plus_rate(steps: list[float], burst: int, per_min: float) -> None:
    now = [0.0]
    bucket = TokenBucket(per_min, burst, clock=lambda: now[0])
    taken = 0
    for dt in steps:
        now[0] += dt
        while bucket.take():
            taken += 1
    assert taken <= burst + per_min / 60 * now[0] + 1e-6
