"""Discord webhooks with embeds.

One embed per alert (title linking to the series, colour by state, fields for value,
threshold and since/lasted, ``timestamp`` = startsAt), at most 10 embeds per message as
Discord allows; ``content`` carries the title and the remarks. Field values are capped at
1,024 characters, descriptions at 4,096, the whole message at 6,000.
Discord answers ``204``; ``429`` carries ``Retry-After``.
"""

from __future__ import annotations

from typing import Any

from aiops.notification import Notification
from alerting.notifiers.base import HttpNotifier
from alerting.notifiers.view import AlertLine, view_of

__all__ = ["DiscordNotifier"]

RED, GREEN = 0xE01E5A, 0x2EB67D


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _embed(line: AlertLine) -> dict[str, Any]:
    fields = []
    if line.value:
        fields.append({"name": line.value_title, "value": line.value, "inline": True})
    if line.threshold:
        fields.append({"name": "Threshold", "value": line.threshold, "inline": True})
    if line.state == "resolved" and line.lasted:
        fields.append({"name": "Lasted", "value": f"{line.lasted} ({line.since} → {line.ended})", "inline": False})
    elif line.since:
        fields.append({"name": "Since", "value": line.since, "inline": True})
    if line.label_text:
        fields.append({"name": "Labels", "value": _cut(line.label_text, 1024), "inline": False})
    embed: dict[str, Any] = {
        "title": _cut(f"[{line.state.upper()}] {line.name}" + (f" ({line.severity})" if line.severity else ""), 256),
        "description": _cut("\n".join(b for b in (line.summary, line.description) if b), 4096),
        "color": RED if line.state == "firing" else GREEN,
        "fields": fields,
    }
    if line.link.startswith(("http://", "https://")):
        embed["url"] = line.link
    if line.since:
        embed["timestamp"] = line.since
    return embed


class DiscordNotifier(HttpNotifier):
    """Posts embeds to a Discord channel webhook.

    Args:
        name: receiver name.
        url: ``https://discord.com/api/webhooks/<id>/<token>`` (secret).
        username: optional sender name override.
        base_url: dashboard URL for links.
        timeout_s: seconds per attempt.
    """

    kind = "discord"

    def __init__(self, name: str, url: str, *, username: str = "", base_url: str = "",
                 timeout_s: float = 10.0) -> None:
        super().__init__(name, url, timeout_s)
        self.username = username
        self.base_url = base_url

    def render(self, n: Notification) -> dict[str, Any]:
        v = view_of(n, self.base_url)
        embeds = [_embed(line) for line in v.lines[:10]]
        remarks = v.footer_lines
        if len(v.lines) > 10:
            remarks.insert(0, f"…{len(v.lines) - 10} more listed alerts not shown.")
        content = f"{v.emoji} **{v.title}**"
        if remarks:
            content += "\n" + "\n".join(remarks)
        if v.silence_url:
            content += f"\nSilence: <{v.silence_url}>"
        if v.external_url:
            content += f"\n<{v.external_url}>"
        payload: dict[str, Any] = {"content": _cut(content, 2000), "embeds": embeds,
                                   "allowed_mentions": {"parse": []}}
        total = sum(len(e["title"]) + len(e["description"]) + sum(len(f["name"]) + len(f["value"])
                                                                    for f in e["fields"]) for e in embeds)
        while total > 5500 and len(payload["embeds"]) > 1:  # Discord rejects messages over 6,000 characters
            dropped = payload["embeds"].pop()
            total -= len(dropped["title"]) + len(dropped["description"])
            total -= sum(len(f["name"]) + len(f["value"]) for f in dropped["fields"])
        if self.username:
            payload["username"] = self.username
        return payload
