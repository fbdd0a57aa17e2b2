"""Receivers parse from settings into typed models; bad entries name receivers[i].field, never a secret."""

from __future__ import annotations

import pytest

from aiops.errors import ConfigError
from alerting.notifiers import build_notifier, parse_receivers
from alerting.settings import AlertingSettings

HOOK = "https://hooks.slack.com/services/T000/B000/SUPERSECRET"


def test_every_type_parses_and_builds() -> None:
    entries = [
        {"name": "slack", "type": "slack", "webhook_url": HOOK, "channel": "#a", "rate_limit_per_min": 5},
        {"name": "teams", "type": "teams", "webhook_url": "https://prod.workflows.example/x?sig=S"},
        {"name": "discord", "type": "discord", "webhook_url": "https://discord.com/api/webhooks/1/t"},
        {"name": "mm", "type": "mattermost", "webhook_url": "https://mm.example/hooks/k"},
        {"name": "feishu", "type": "feishu", "webhook_url": "https://open.feishu.cn/h/t", "secret": "s"},
        {"name": "ding", "type": "dingtalk", "webhook_url": "https://oapi.dingtalk.com/robot/send?access_token=t",
         "secret": "SECx", "at_mobiles": ["1"]},
        {"name": "wecom", "type": "wecom", "webhook_url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"},
        {"name": "hook", "type": "webhook", "url": "https://am.example/hook", "headers": {"Authorization": "B x"}},
        {"name": "mail", "type": "email", "to": ["a@example.org"], "from": "aiops@example.org",
         "smarthost": "smtp.example.org:587", "starttls": True, "password": "pw"},
        {"name": "tg", "type": "apprise", "url": "tgram://123456789:abcdefg_hijklmnop/12345"},
    ]
    cfgs = parse_receivers(AlertingSettings(receivers=entries).receivers)
    assert [c.type for c in cfgs] == ["slack", "teams", "discord", "mattermost", "feishu", "dingtalk", "wecom",
                                      "webhook", "email", "apprise"]
    assert "SUPERSECRET" not in repr(cfgs[0])
    kinds = [build_notifier(c, base_url="http://dash").kind for c in cfgs]
    assert kinds == ["slack", "teams", "discord", "mattermost", "feishu", "dingtalk", "wecom", "webhook",
                     "email", "apprise"]
    assert build_notifier(cfgs[0]).target == "https://hooks.slack.com"
    from alerting.notifiers import Notifier

    assert all(isinstance(build_notifier(c), Notifier) for c in cfgs)  # the protocol, attributes included


@pytest.mark.parametrize(("entry", "where"), [
    ({"name": "a", "type": "slack"}, "alerting.receivers[1].webhook_url: required"),
    ({"name": "a", "type": "slack", "webhook_url": "ftp://x/SUPERSECRET"}, "alerting.receivers[1].webhook_url"),
    ({"name": "a", "type": "slack", "webhook_url": HOOK, "colour": "red"}, "alerting.receivers[1].colour: unknown"),
    ({"name": "a", "type": "pager"}, "alerting.receivers[1].type: unknown receiver type 'pager'"),
    ({"type": "slack", "webhook_url": HOOK}, "alerting.receivers[1].name: required"),
    ({"name": "a", "type": "email", "to": ["x@y"], "from": "a@b", "smarthost": "nohost"},
     "alerting.receivers[1].smarthost: expected host:port"),
    ({"name": "a", "type": "slack", "webhook_url": HOOK, "rate_limit_per_min": -1},
     "alerting.receivers[1].rate_limit_per_min"),
    ({"name": "ok", "type": "slack", "webhook_url": HOOK}, "alerting.receivers[1].name: 'ok' is already used"),
])
def test_bad_entries_name_the_field(entry: dict, where: str) -> None:  # type: ignore[type-arg]
    good = {"name": "ok", "type": "webhook", "url": "https://am.example/hook"}
    with pytest.raises(ConfigError) as exc:
        parse_receivers([good, entry])
    assert where in str(exc.value)
    assert "SUPERSECRET" not in str(exc.value)


def test_build_outbox_checks_lease_against_poll(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from aiops.state import StateDB
    from alerting.outbox import build_outbox

    db = StateDB(f"sqlite:///{tmp_path / 's.db'}")
    db.create_all()
    # a receiver slower than the lease is fine (the heartbeat renews it); a lease shorter than
    # three polls is not: a live agent could lose rows between two looks
    build_outbox(AlertingSettings(receivers=[{"name": "a", "type": "webhook", "url": "https://x.example/h",
                                              "timeout_s": "90s"}], delivery={"lease_s": "6s"}), db)
    with pytest.raises(ConfigError, match=r"alerting.delivery.lease_s"):
        build_outbox(AlertingSettings(delivery={"lease_s": "2s", "poll_interval_s": "1s"}), db)
    with pytest.raises(ConfigError, match=r"alerting.delivery.backoff_max_s"):
        build_outbox(AlertingSettings(delivery={"backoff_max_s": "never"}), db)
    box = build_outbox(AlertingSettings(receivers=[{"name": "a", "type": "webhook", "url": "https://x.example/h",
                                                    "rate_limit_per_min": 6, "burst": 2}],
                                        delivery={"backoff_initial_s": "1s"}), db)
    assert box.policies["a"].rate_limit_per_min == 6 and box.policies["a"].burst == 2
    assert box.settings.backoff_initial_s == 1.0
    db.dispose()
