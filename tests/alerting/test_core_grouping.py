"""Routing tree and aggregation groups, driven by an explicit clock (no sleeps)."""

from __future__ import annotations

from aiops.model import Alert, AlertState
from aiops.notification import Notification
from alerting.config import parse_route
from alerting.grouping import Dispatcher

ROUTE = {
    "receiver": "default",
    "group_by": ["alertname"],
    "group_wait": "30s",
    "group_interval": "5m",
    "repeat_interval": "4h",
    "routes": [
        {"matchers": ['severity="critical"'], "receiver": "pager", "continue": True, "group_wait": 0},
        {"matchers": ['team="db"'], "receiver": "db-chat", "group_by": ["alertname", "instance"],
         "routes": [{"matchers": ['env="staging"'], "receiver": "db-staging"}]},
        {"matchers": ['team=~"db|web"'], "receiver": "web-chat"},
    ],
}


def alert(name: str, state: AlertState = AlertState.FIRING, **labels: str) -> Alert:
    return Alert.of({"alertname": name, **labels}, state=state, starts_at_ms=1)


def test_routing_tree_matchers_children_and_continue() -> None:
    tree = parse_route(ROUTE, "test.yaml")

    def receivers(**labels: str) -> list[str]:
        return [r.receiver or "" for r in tree.match({"alertname": "X", **labels})]

    assert receivers() == ["default"]
    # a matching child (even one with continue) means the parent is not a match itself: Alertmanager's rule
    assert receivers(severity="critical") == ["pager"]
    assert receivers(severity="critical", team="web") == ["pager", "web-chat"]
    assert receivers(severity="critical", team="db") == ["pager", "db-chat"]  # first non-continue match ends it
    assert receivers(team="db", env="staging") == ["db-staging"]  # deepest match wins
    assert receivers(team="web") == ["web-chat"]
    db = tree.match({"team": "db"})[0]
    assert db.group_by == ("alertname", "instance") and db.group_wait_s == 30 and db.repeat_interval_s == 4 * 3600
    staging = tree.match({"team": "db", "env": "staging"})[0]
    assert staging.group_by == ("alertname", "instance")  # inherited from its parent


def test_group_wait_then_group_interval_then_repeat_interval() -> None:
    sent: list[Notification] = []
    d = Dispatcher(parse_route(ROUTE, "t"), sent.append)
    d.insert(alert("HighCPU", instance="a"), 0)
    d.insert(alert("HighCPU", instance="b"), 10_000)  # same group: waits with the first
    d.tick(29_999)
    assert sent == []
    d.tick(30_000)
    assert [(n.receiver, len(n.alerts), dict(n.group_labels)) for n in sent] == [
        ("default", 2, {"alertname": "HighCPU"})]
    # a third alert joins: it waits for the group_interval, not a new group_wait
    d.insert(alert("HighCPU", instance="c"), 40_000)
    d.tick(329_999)
    assert len(sent) == 1
    d.tick(330_000)
    assert len(sent) == 2 and len(sent[1].alerts) == 3
    # nothing changes: no message at each interval (dedup) ...
    for minute in range(6, 240, 5):
        d.tick(minute * 60_000 + 30_000)
    assert len(sent) == 2
    # ... until repeat_interval has passed since the last one
    d.tick(330_000 + 4 * 3600_000)
    assert len(sent) == 3 and sent[2].status == "firing"


def test_resolved_alerts_are_announced_once_and_leave_the_group() -> None:
    sent: list[Notification] = []
    d = Dispatcher(parse_route({"receiver": "chat", "group_by": ["alertname"], "group_wait": 0,
                                "group_interval": "1m"}, "t"), sent.append)
    d.insert(alert("Down", instance="a"), 0)  # group_wait 0: sent at once
    assert len(sent) == 1
    d.insert(alert("Down", AlertState.RESOLVED, instance="a"), 5_000)
    d.tick(59_999)
    assert len(sent) == 1
    d.tick(60_000)
    assert len(sent) == 2 and sent[1].status == "resolved"
    assert d.groups == {}  # an empty group is dropped
    d.tick(200_000)
    assert len(sent) == 2


def test_critical_goes_to_two_receivers_with_continue() -> None:
    sent: list[Notification] = []
    d = Dispatcher(parse_route(ROUTE, "t"), sent.append)
    d.insert(alert("Disk", severity="critical", team="web"), 0)
    assert [n.receiver for n in sent] == ["pager"]  # its own group_wait: 0
    d.tick(30_000)
    assert [n.receiver for n in sent] == ["pager", "web-chat"]
    assert sent[0].group_key != sent[1].group_key


def test_a_storm_makes_one_bounded_notification() -> None:
    sent: list[Notification] = []
    d = Dispatcher(parse_route({"receiver": "chat", "group_by": ["alertname"], "group_wait": "10s"}, "t"),
                   sent.append, max_alerts=50)
    for i in range(10_000):
        d.insert(alert("Storm", instance=str(i)), i)
    d.tick(20_000)
    assert len(sent) == 1
    assert len(sent[0].alerts) == 50 and sent[0].truncated_alerts == 9_950


def test_muted_alerts_are_left_out_and_notified_once_unmuted() -> None:
    sent: list[Notification] = []
    muted = {"a"}
    d = Dispatcher(parse_route({"receiver": "chat", "group_by": ["alertname"], "group_wait": 0,
                                "group_interval": "1m"}, "t"), sent.append,
                   is_muted=lambda a: a.label_dict.get("instance") in muted)
    d.insert(alert("Down", instance="a"), 0)
    assert sent == []  # everything muted: nothing to say
    d.insert(alert("Down", instance="b"), 1_000)
    d.tick(60_000)
    assert [[x.label_dict["instance"] for x in n.alerts] for n in sent] == [["b"]]
    muted.clear()
    d.tick(120_000)
    assert [x.label_dict["instance"] for x in sent[-1].alerts] == ["a", "b"]
