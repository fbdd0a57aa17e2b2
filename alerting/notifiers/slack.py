"""Slack incoming webhooks with Block Kit.

One header block (the title), one section per alert (mrkdwn: what fired, value against
threshold, since when or how long it lasted, a link to the series on the dashboard), a
context block for the remarks, and a button to the dashboard. ``text`` is the fallback shown
in notifications. Slack's limits are kept: header text 150 characters, section text 3,000,
50 blocks.

Slack answers ``200 ok``; ``400 invalid_payload``, ``403``/``404``/``410`` (revoked hook)
are final, ``429`` carries ``Retry-After``.
"""

from __future__ import annotations

from typing import Any

from aiops.notification import Notification
from alerting.notifiers.base import HttpNotifier
from alerting.notifiers.view import AlertLine, view_of

__all__ = ["SlackNotifier"]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(line: AlertLine) -> dict[str, Any]:
    icon = ":red_circle:" if line.state == "firing" else ":large_green_circle:"
    head = f"{icon} *{_esc(line.name)}*" + (f" `{_esc(line.severity)}`" if line.severity else "")
    if line.link:
        head = f"{head}  <{line.link}|view series>"
    rows = [head]
    for bit in (line.summary, line.description):
        if bit:
            rows.append(_esc(bit))
    if line.measurement:
        rows.append(f"*{_esc(line.measurement)}*")
    if line.timing:
        rows.append(_esc(line.timing))
    if line.label_text:
        rows.append(f"_{_esc(line.label_text)}_")
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut("\n".join(rows), 3000)}}


class SlackNotifier(HttpNotifier):
    """Posts Block Kit messages to a Slack incoming webhook.

    Args:
        name: receiver name.
        url: the ``https://hooks.slack.com/services/...`` webhook (secret).
        channel: optional channel override (legacy webhooks only).
        username: optional sender name override.
        base_url: dashboard URL for links when the notification has no ``external_url``.
        timeout_s: seconds per attempt.
    """

    kind = "slack"

    def __init__(self, name: str, url: str, *, channel: str = "", username: str = "",
                 base_url: str = "", timeout_s: float = 10.0) -> None:
        super().__init__(name, url, timeout_s)
        self.channel = channel
        self.username = username
        self.base_url = base_url

    def render(self, n: Notification) -> dict[str, Any]:
        v = view_of(n, self.base_url)
        blocks: list[dict[str, Any]] = [
            {"type": "header",
             "text": {"type": "plain_text", "text": _cut(f"{v.emoji} {v.title}", 150), "emoji": True}},
        ]
        blocks.extend(_section(line) for line in v.lines[:45])
        remarks = v.footer_lines
        if remarks:
            text = _cut(_esc(" ".join(remarks)), 3000)
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
        buttons = [{"type": "button", "text": {"type": "plain_text", "text": title}, "url": url}
                   for title, url in (("Silence", v.silence_url), ("Open dashboard", v.external_url)) if url]
        if buttons:
            blocks.append({"type": "actions", "elements": buttons})
        # the fallback text is mrkdwn too: escaped like the sections, so no <!here> gets through
        payload: dict[str, Any] = {"text": _cut(_esc(v.title), 3000), "blocks": blocks}
        if self.channel:
            payload["channel"] = self.channel
        if self.username:
            payload["username"] = self.username
        return payload
