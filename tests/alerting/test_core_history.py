"""History and silences in the state DB, on SQLite and PostgreSQL (the state_db fixture)."""

from __future__ import annotations

import pytest

from aiops.errors import InputError
from aiops.model import Alert, AlertState
from aiops.state import StateDB
from alerting.history import AlertHistory, Event
from alerting.matchers import parse_matchers
from alerting.silences import SilenceNotFound, SilenceStore
from tests.alerting.core_support import T0_MS


def a(name: str, state: AlertState, value: float | None = 1.0, **labels: str) -> Alert:
    return Alert.of({"alertname": name, **labels}, {"summary": name}, state=state, starts_at_ms=T0_MS, value=value)


def test_history_filters_and_current_rows(state_db: StateDB) -> None:
    h = AlertHistory(state_db)
    h.record([Event("HighCPU", a("HighCPU", AlertState.PENDING, instance="a", severity="warning"), T0_MS),
              Event("HighCPU", a("HighCPU", AlertState.FIRING, instance="a", severity="warning"), T0_MS + 1000),
              Event("DiskFull", a("DiskFull", AlertState.FIRING, float("nan"), instance="b"), T0_MS + 2000)])
    h.record([Event("HighCPU", a("HighCPU", AlertState.RESOLVED, instance="a", severity="warning"),
                    T0_MS + 90 * 86400_000, silenced_by="s1")])  # long after: still there
    everything = h.query()
    assert [(e["alertname"], e["state"]) for e in everything] == [
        ("HighCPU", "resolved"), ("DiskFull", "firing"), ("HighCPU", "firing"), ("HighCPU", "pending")]
    assert everything[0]["silenced_by"] == "s1" and everything[0]["severity"] == "warning"
    assert everything[1]["value"] is None  # NaN is stored as NULL, never crashes PostgreSQL's JSON
    assert [e["state"] for e in h.query(state="firing")] == ["firing", "firing"]
    assert [e["alertname"] for e in h.query(labels={"instance": "b"})] == ["DiskFull"]
    assert [e["state"] for e in h.query(name="HighCPU", since_ms=T0_MS + 500)] == ["resolved", "firing"]
    assert len(h.query(limit=2)) == 2
    current = {r["labels"]["alertname"]: r["state"] for r in h.current()}
    assert current == {"HighCPU": "resolved", "DiskFull": "firing"}
    assert AlertHistory.to_alert(h.current(state="firing")[0]).name == "DiskFull"


def test_history_records_a_burst_in_one_call(state_db: StateDB) -> None:
    h = AlertHistory(state_db)
    events = [Event("Storm", a("Storm", AlertState.FIRING, instance=str(i)), T0_MS) for i in range(2_000)]
    assert h.record(events) == 2_000
    assert h.record([Event("Storm", a("Storm", AlertState.RESOLVED, instance=str(i)), T0_MS + 1)
                     for i in range(2_000)]) == 2_000
    assert len(h.current(state="resolved")) == 2_000
    assert len(h.query(name="Storm", limit=10_000)) == 4_000


def test_silences_lifecycle(state_db: StateDB) -> None:
    store = SilenceStore(state_db, refresh_s=0)
    s = store.add(parse_matchers(['alertname="HighCPU"', 'instance=~"a|b"']), T0_MS + 60_000, T0_MS + 3600_000,
                  "ana", "deploy", now_ms=T0_MS)
    labels = (("alertname", "HighCPU"), ("instance", "a"))
    assert s.state(T0_MS) == "pending" and store.silencing(labels, T0_MS) is None
    assert store.silencing(labels, T0_MS + 60_000) == s.id
    assert store.silencing((("alertname", "HighCPU"), ("instance", "c")), T0_MS + 60_000) is None
    assert [x.id for x in store.find(T0_MS + 60_000, "active")] == [s.id]
    assert store.get(s.id).to_json(T0_MS)["matchersText"] == 'alertname="HighCPU",instance=~"a|b"'
    store.expire(s.id, T0_MS + 120_000)
    assert store.silencing(labels, T0_MS + 120_000) is None
    assert store.find(T0_MS + 120_000, "expired")[0].expired_ms == T0_MS + 120_000
    with pytest.raises(SilenceNotFound):
        store.expire("nope", T0_MS)
    with pytest.raises(InputError, match="ends .* before it starts"):
        store.add(parse_matchers(['a="1"']), T0_MS, T0_MS, "ana")
    with pytest.raises(InputError, match="at least one matcher"):
        store.add([], T0_MS, T0_MS + 1, "ana")
