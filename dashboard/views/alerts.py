"""Alerts: firing, pending and recently resolved apart; history; silences; notifications.

Filters come from the page or the URL (``?page=alerts&alertname=X&severity=page&label=k=v``),
so a storm summary can link to its alerts. Each alert shows its labels as chips, its summary,
links to its series and its action runs, and (for operators) a Silence button that opens the
silence form with matchers from its labels: two clicks to silence it, with a preview of every
alert the silence would mute.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from aiops.errors import AiopsError, InputError
from aiops.model import Matcher, Series, now_ms, parse_selector
from dashboard import causes, records
from dashboard.access import agent_write, can_write
from dashboard.data import DashboardData
from dashboard.ui import (
    SEVERITY_ORDER,
    ago,
    browser_tz,
    chips_html,
    fmt_time,
    guarded,
    local,
    nav_button,
    severity_icon,
)
from dashboard.views import alert_detail

__all__ = ["render", "silence_matchers", "would_mute", "DURATIONS", "history_table"]

DURATIONS = ["1h", "2h", "4h", "8h", "24h", "7d"]
SILENCE_FOR = "silence_for"  # session key: labels of the alert whose silence form is open


def silence_matchers(labels: dict[str, str]) -> list[str]:
    """Equality matchers for every label of an alert (what the Silence button pre-fills).

    Examples:
        >>> silence_matchers({"alertname": "X", "path": 'a"b'})
        ['alertname="X"', 'path="a\\\\"b"']
    """
    return [f'{k}="{_esc(v)}"' for k, v in sorted(labels.items())]


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"')


def parse_matcher(text: str) -> Matcher:
    """One Alertmanager-style matcher (``name="value"``, ops ``= != =~ !~``), as the agent parses it.

    Raises:
        InputError: naming the text.
    """
    try:
        found = parse_selector("{" + text.strip() + "}")
    except InputError as exc:
        raise InputError(f"matcher {text!r}: expected name=\"value\" with one of = != =~ !~") from exc
    if len(found) != 1:
        raise InputError(f"matcher {text!r}: one matcher per line")
    return found[0]


def would_mute(matcher_texts: list[str], alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The alerts (firing or pending) all ``matcher_texts`` match.

    Raises:
        InputError: a matcher that does not parse, naming it.
    """
    ms = [parse_matcher(t) for t in matcher_texts]
    return [a for a in alerts if a["state"] != "resolved" and all(m.matches(Series.of("alert", a["labels"]))
                                                                  for m in ms)]


def _init(key: str, value: Any) -> None:
    if key not in st.session_state:
        st.session_state[key] = value


def render(data: DashboardData) -> None:
    st.header("Alerts")
    guarded(lambda: _render(data))


def _render(data: DashboardData) -> None:
    qp = st.query_params
    now = now_ms()
    current = records.current_alerts(data, now)
    if qp.get("alert"):
        alert_detail.render(data, qp["alert"], current)
        return
    names = sorted({a["alertname"] for a in current} | ({qp["alertname"]} if qp.get("alertname") else set()))
    severities = sorted({a["severity"] for a in current if a["severity"]} |
                        ({qp["severity"]} if qp.get("severity") else set()), key=lambda s: SEVERITY_ORDER.get(s, 9))
    _init("f_a_name", [qp["alertname"]] if qp.get("alertname") else [])
    _init("f_a_sev", [qp["severity"]] if qp.get("severity") else [])
    _init("f_a_label", qp.get("label", ""))
    c = st.columns([3, 2, 3])
    want_names = c[0].multiselect("Alert name", names, key="f_a_name", placeholder="any")
    want_sev = c[1].multiselect("Severity", severities, key="f_a_sev", placeholder="any")
    label_text = c[2].text_input("Label filter", key="f_a_label", placeholder='instance="127.0.0.1:9100"',
                                 help="One or more label=value, comma separated.")
    label_filters = _label_filters(label_text)
    window = _window(qp)
    shown = [a for a in current if (not want_names or a["alertname"] in want_names)
             and (not want_sev or a["severity"] in want_sev) and records.labels_match(a["labels"], label_filters)
             and _in_window(a, window)]
    if st.session_state.get("flash"):
        st.success(st.session_state.pop("flash"), icon=":material/notifications_off:")
    tabs = st.tabs(["Current", "History", "Silences", "Notifications"])
    with tabs[0]:
        if st.session_state.get(SILENCE_FOR) is not None and can_write():
            _silence_form(data, current)
        _current(data, shown, causes.recent_causes(data))
    with tabs[1]:
        guarded(lambda: _history(data, now, want_names, want_sev, label_filters, window))
    with tabs[2]:
        guarded(lambda: _silences(data, now, current))
    with tabs[3]:
        guarded(lambda: _notifications(data, now))


def _window(qp: Any) -> tuple[int, int] | None:
    """``since_ms`` / ``until_ms`` from a link (a storm summary's), shown as a banner with a reset."""
    since, until = qp.get("since_ms", ""), qp.get("until_ms", "")
    if not since.isdigit() and not until.isdigit():
        return None
    lo = int(since) if since.isdigit() else 0
    hi = int(until) if until.isdigit() else now_ms()
    c = st.columns([6, 1])
    c[0].info(f"Alerts active between {fmt_time(records.to_time(lo) or 0)} and {fmt_time(records.to_time(hi))} "
              "(from a link).", icon=":material/schedule:")
    with c[1]:
        nav_button("show all", "alerts", "clear_window")
    return lo, hi


def _in_window(a: dict[str, Any], window: tuple[int, int] | None) -> bool:
    if window is None:
        return True
    starts = a["starts"].value // 1_000_000 if a["starts"] is not None else 0
    ends = a["ends"].value // 1_000_000 if a["ends"] is not None else None
    return starts <= window[1] and (ends is None or ends >= window[0])


def _label_filters(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in [p for p in text.split(",") if p.strip()]:
        k, sep, v = part.partition("=")
        if not sep:
            st.warning(f"label filter {part!r}: expected label=value")
            continue
        out[k.strip()] = v.strip().strip('"')
    return out


def _current(data: DashboardData, shown: list[dict[str, Any]], ranked: dict[tuple[str, int], dict[str, Any]]) -> None:
    groups = [("firing", ":red[:material/local_fire_department:] Firing"),
              ("pending", ":orange[:material/hourglass_top:] Pending"),
              ("resolved", ":green[:material/check_circle:] Resolved in the last hour")]
    if not shown:
        st.success("No alerts match." if st.session_state.get("f_a_name") or st.session_state.get("f_a_sev")
                   else "No alerts: nothing firing or pending, nothing resolved in the last hour.",
                   icon=":material/check_circle:")
    for state, title in groups:
        group = sorted([a for a in shown if a["state"] == state],
                       key=lambda a: (SEVERITY_ORDER.get(a["severity"], 9), a["alertname"]))
        if not group:
            continue
        st.subheader(f"{title} ({len(group)})")
        for a in group:
            _card(data, a, ranked)


def _top_cause(a: dict[str, Any], ranked: dict[tuple[str, int], dict[str, Any]]) -> str:
    """``Likely cause: <where> · <metric>`` of this episode, when the rca component ranked it."""
    starts = a["starts"].value // 1_000_000 if a["starts"] is not None else None
    record = ranked.get((a["fingerprint"], starts)) if starts is not None else None
    if not record or not record.get("causes"):
        return ""
    top = record["causes"][0]
    return f":material/troubleshoot: Likely cause: **{causes.cause_title(top)}** · `{top['metric']}`"


def _card(data: DashboardData, a: dict[str, Any], ranked: dict[tuple[str, int], dict[str, Any]]) -> None:
    fp = a["fingerprint"]
    with st.container(border=True):
        head, buttons = st.columns([9, 7])
        since = f"since {ago(a['starts'])}" if a["state"] != "resolved" else f"resolved {ago(a['ends'])}"
        value = f" · value **{a['value']:.4g}**" if isinstance(a["value"], float) else ""
        muted = f" · :material/notifications_off: silenced by `{a['silenced_by']}`" if a.get("silenced_by") else ""
        head.markdown(f"{severity_icon(a['severity'])} **{a['alertname']}** · {a['severity'] or 'no severity'} · "
                      f"{since}{value}{muted}")
        cause = _top_cause(a, ranked)
        if cause:
            head.markdown(cause)  # the first question on call: where did it start?
        head.markdown(chips_html(a["labels"], skip=("alertname",)), unsafe_allow_html=True)
        if a["summary"]:
            head.caption(a["summary"])
        runs = records.run_rows(data, fingerprint=fp, limit=20)
        # a row of buttons at their natural width (even columns cut "Silence" to "Si…")
        with buttons.container(horizontal=True, horizontal_alignment="right", gap="small"):
            nav_button(":material/info: Details", "alerts", f"detail_{fp}", alert=fp)
            if a["selector"]:
                nav_button(":material/show_chart: Series", "metrics", f"series_{fp}", series=a["selector"], range="6h")
            nav_button(f":material/build: Runs ({len(runs)})", "remediation", f"runs_{fp}", alert=fp)
            if can_write() and a["state"] != "resolved":
                st.button("Silence", icon=":material/notifications_off:", key=f"sil_{fp}", on_click=_open_silence,
                          args=(a["labels"],))


def _open_silence(labels: dict[str, str]) -> None:
    st.session_state[SILENCE_FOR] = dict(labels)
    st.session_state["sil_matchers"] = "\n".join(silence_matchers(labels))


def _silence_form(data: DashboardData, current: list[dict[str, Any]]) -> None:
    with st.container(border=True):
        st.subheader(":material/notifications_off: New silence")
        left, right = st.columns([3, 2])
        text = left.text_area("Matchers (one per line; edit to widen, e.g. drop a label or use =~)",
                              key="sil_matchers", height=170)
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        try:
            muted = would_mute(lines, current)
            right.markdown(f"**Would mute {len(muted)} current alert{'s' if len(muted) != 1 else ''}:**")
            for m in muted[:10]:
                right.markdown(f"- {severity_icon(m['severity'])} {m['alertname']} "
                               + chips_html(m["labels"], skip=("alertname", "severity")), unsafe_allow_html=True)
            if len(muted) > 10:
                right.caption(f"and {len(muted) - 10} more")
        except InputError as exc:
            right.error(str(exc))
            muted = []
        with st.form("silence_form", border=False):
            c = st.columns([1, 2, 2])
            duration = c[0].selectbox("For", DURATIONS, index=1)
            who = c[1].text_input("Your name", key="sil_who")
            comment = c[2].text_input("Comment", key="sil_comment", placeholder="why (shown to the team)")
            ok, cancel = st.columns([1, 6])
            submitted = ok.form_submit_button("Create silence", type="primary")
            cancelled = cancel.form_submit_button("Cancel")
        if cancelled:
            st.session_state.pop(SILENCE_FOR, None)
            st.rerun()
        if submitted:
            try:
                answer = agent_write(data, "POST", "/api/v1/silences",
                                     {"matchers": lines, "duration": duration, "comment": comment}, actor=who)
                st.session_state.pop(SILENCE_FOR, None)
                st.session_state["flash"] = f"Silence {answer.get('silenceID', '')} created for {duration}."
                st.rerun()
            except AiopsError as exc:
                st.error(str(exc))


def _history(data: DashboardData, now: int, names: list[str], sev: list[str], labels: dict[str, str],
             window: tuple[int, int] | None) -> None:
    c = st.columns([2, 2, 4])
    state = c[1].selectbox("State", ["any", "pending", "firing", "resolved"], key="h_state")
    if window is None:
        hours = c[0].selectbox("Since", [1, 6, 24, 72, 168], index=2, format_func=lambda h: f"{h} h ago",
                               key="h_since")
        window = (now - hours * 3_600_000, now)
    frame = records.alert_history(data, window[0], alertname=names[0] if len(names) == 1 else "",
                                  severity=sev[0] if len(sev) == 1 else "", state="" if state == "any" else state,
                                  until_ms=window[1])
    if not frame.empty:
        frame = frame[frame["alertname"].isin(names) if names else frame["alertname"].notna()]
        if labels:
            frame = frame[frame["labels"].map(lambda chips: all(f"{k}={v}" in chips for k, v in labels.items()))]
    if frame.empty:
        st.info("No recorded state changes in this window.")
        return
    st.dataframe(history_table(frame), hide_index=True, width="stretch", column_config={
        "labels": st.column_config.ListColumn("labels", width="large"),
        "time": st.column_config.DatetimeColumn("time", format="YYYY-MM-DD HH:mm:ss"),
        "fingerprint": None})
    st.caption(f"Times in your browser's zone ({browser_tz()}).")


def history_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The history's rows as shown: chips without the rule's labels (alertname and severity have
    their own columns; repeated, they pushed the series' labels off screen), and no "silenced by"
    or "note" column when no row has one."""
    out = frame.copy()
    out["time"] = local(out["time"])
    out["labels"] = out["labels"].map(lambda chips: [c for c in chips if c.split("=", 1)[0] not in records.RULE_LABELS])
    return out.drop(columns=[c for c in ("silenced by", "note") if c in out and not out[c].astype(bool).any()])


def _silences(data: DashboardData, now: int, current: list[dict[str, Any]]) -> None:
    rows = records.silence_rows(data, now)
    if not rows:
        st.info("No silences. Create one from an alert's Silence button.")
        return
    active = [r for r in rows if r["status"] != "expired"]
    st.markdown(f"**{len(active)} active or pending**, {len(rows) - len(active)} expired")
    if not active:
        st.caption("Nothing is muted now."
                   + (" Create a silence from an alert's Silence button." if can_write() else ""))
    for r in active:
        with st.container(border=True):
            c = st.columns([5, 2, 1])
            try:
                muted = would_mute(records.matcher_lines(r["raw_matchers"]), current)
            except InputError:
                muted = []
            c[0].markdown(f"`{r['matchers']}`  \n{r['status']} until {fmt_time(r['ends'])} · by {r['created_by']}"
                          f"{' · ' + r['comment'] if r['comment'] else ''} · mutes {len(muted)} now")
            c[1].caption(f"id {r['id']}")
            if can_write() and c[2].button("Expire", key=f"exp_{r['id']}"):
                try:
                    agent_write(data, "DELETE", f"/api/v1/silences/{r['id']}")
                    st.rerun()
                except AiopsError as exc:
                    st.error(str(exc))
    expired = pd.DataFrame([{k: v for k, v in r.items() if k != "raw_matchers"} for r in rows
                            if r["status"] == "expired"])
    if not expired.empty:
        with st.expander(f"Expired silences ({len(expired)})"):
            expired["starts"], expired["ends"] = local(expired["starts"]), local(expired["ends"])
            st.dataframe(expired, hide_index=True, width="stretch")


def _notifications(data: DashboardData, now: int) -> None:
    frame = records.notification_rows(data, now - 7 * 86_400_000)
    if frame.empty:
        st.info("No notifications in the last 7 days (no receiver configured, or nothing was routed).")
        return
    receivers = sorted(frame["receiver"].unique())
    c = st.columns([3, 3])
    want = c[0].multiselect("Receiver", receivers, key="n_recv", placeholder="any")
    outcome = c[1].multiselect("Outcome", sorted(frame["outcome"].unique()), key="n_out", placeholder="any")
    if want:
        frame = frame[frame["receiver"].isin(want)]
    if outcome:
        frame = frame[frame["outcome"].isin(outcome)]
    summary = frame.groupby(["receiver", "outcome"]).size().unstack(fill_value=0)
    st.dataframe(summary, width="stretch")
    frame["created"] = local(frame["created"])
    # text, not a time: a notification not delivered (yet) showed a grey "None" there
    frame["sent"] = frame["sent"].map(lambda t: "not sent" if t is None or t is pd.NaT else fmt_time(t))
    st.dataframe(frame, hide_index=True, width="stretch", column_config={
        "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm:ss")})
    st.caption(f"Times in your browser's zone ({browser_tz()}).")
