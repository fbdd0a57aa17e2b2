"""Mattermost incoming webhooks with (Slack-compatible) message attachments.

``text`` carries the title; one attachment per alert, coloured by state, with ``title_link``
to the series on the dashboard and short ``fields`` for value, threshold and since/lasted.
Mattermost answers ``200 ok``; a bad payload gets ``400``.
"""

from __future__ import annotations

from typing import Any

from aiops.notification import Notification
from alerting.notifiers.base import HttpNotifier
from alerting.notifiers.view import AlertLine, view_of

__all__ = ["MattermostNotifier"]


def _attachment(line: AlertLine) -> dict[str, Any]:
    fields = []
    if line.value:
        fields.append({"short": True, "title": line.value_title, "value": line.value})
    if line.threshold:
        fields.append({"short": True, "title": "Threshold", "value": line.threshold})
    if line.state == "resolved" and line.lasted:
        fields.append({"short": False, "title": "Lasted", "value": f"{line.lasted} ({line.since} → {line.ended})"})
    elif line.since:
        fields.append({"short": True, "title": "Since", "value": line.since})
    if line.label_text:
        fields.append({"short": False, "title": "Labels", "value": line.label_text})
    att: dict[str, Any] = {
        "fallback": f"[{line.state.upper()}] {line.name} {line.measurement}".strip(),
        "color": "#E01E5A" if line.state == "firing" else "#2EB67D",
        "title": f"[{line.state.upper()}] {line.name}" + (f" ({line.severity})" if line.severity else ""),
        "text": "\n".join(b for b in (line.summary, line.description) if b),
        "fields": fields,
    }
    if line.link:
        att["title_link"] = line.link
    return att


class MattermostNotifier(HttpNotifier):
    """Posts attachments to a Mattermost incoming webhook.

    Args:
        name: receiver name.
        url: ``https://mattermost.example/hooks/<key>`` (secret).
        channel: optional channel override.
        username: optional sender name override.
        base_url: dashboard URL for links.
        timeout_s: seconds per attempt.
    """

    kind = "mattermost"

    def __init__(self, name: str, url: str, *, channel: str = "", username: str = "",
                 base_url: str = "", timeout_s: float = 10.0) -> None:
        super().__init__(name, url, timeout_s)
        self.channel = channel
        self.username = username
        self.base_url = base_url

    def render(self, n: Notification) -> dict[str, Any]:
        v = view_of(n, self.base_url)
        text = f"{v.emoji} **{v.title}**"
        remarks = v.footer_lines
        if remarks:
            text += "\n" + "\n".join(remarks)
        if v.silence_url:
            text += f"\n[Silence]({v.silence_url})"
        if v.external_url:
            text += f"\n[Open dashboard]({v.external_url})"
        payload: dict[str, Any] = {"text": text, "attachments": [_attachment(line) for line in v.lines]}
        if self.channel:
            payload["channel"] = self.channel
        if self.username:
            payload["username"] = self.username
        return payload
