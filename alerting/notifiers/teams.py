"""Microsoft Teams through a Workflows (Power Automate) webhook, with an Adaptive Card.

The body is the ``message`` envelope Workflows' "When a Teams webhook request is received"
trigger expects: ``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <AdaptiveCard 1.4>}]}``. The card has
a coloured title, one block per alert with a FactSet (value, threshold, since/lasted), the
remarks, and an ``Action.OpenUrl`` to the dashboard. Workflows answer ``202 Accepted``.
"""

from __future__ import annotations

from typing import Any

from aiops.notification import Notification
from alerting.notifiers.base import HttpNotifier
from alerting.notifiers.view import AlertLine, view_of

__all__ = ["TeamsNotifier"]

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"


def _alert_items(line: AlertLine) -> list[dict[str, Any]]:
    colour = "Attention" if line.state == "firing" else "Good"
    items: list[dict[str, Any]] = [{
        "type": "TextBlock", "text": f"**{line.name}**" + (f" ({line.severity})" if line.severity else ""),
        "color": colour, "wrap": True, "separator": True, "spacing": "Medium",
    }]
    # one block per line: a TextBlock does not break lines on "\n" in every Teams client
    items += [{"type": "TextBlock", "text": text, "wrap": True, "spacing": "None"}
              for text in [line.summary, *line.description.splitlines()] if text]
    facts = []
    if line.value:
        facts.append({"title": line.value_title, "value": line.value})
    if line.threshold:
        facts.append({"title": "Threshold", "value": line.threshold})
    if line.state == "resolved" and line.lasted:
        facts.append({"title": "Lasted", "value": f"{line.lasted} ({line.since} → {line.ended})"})
    elif line.since:
        facts.append({"title": "Since", "value": line.since})
    if line.label_text:
        facts.append({"title": "Labels", "value": line.label_text})
    if facts:
        items.append({"type": "FactSet", "facts": facts})
    if line.link:
        items.append({"type": "TextBlock", "text": f"[View series]({line.link})", "wrap": True})
    return items


class TeamsNotifier(HttpNotifier):
    """Posts an Adaptive Card to a Teams Workflows webhook.

    Args:
        name: receiver name.
        url: the Workflows HTTP trigger URL (secret: it carries a signature).
        base_url: dashboard URL for links.
        timeout_s: seconds per attempt.
    """

    kind = "teams"

    def __init__(self, name: str, url: str, *, base_url: str = "", timeout_s: float = 10.0) -> None:
        super().__init__(name, url, timeout_s)
        self.base_url = base_url

    def render(self, n: Notification) -> dict[str, Any]:
        v = view_of(n, self.base_url)
        body: list[dict[str, Any]] = [{
            "type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": True,
            "color": "Attention" if v.status == "firing" else "Good", "text": f"{v.emoji} {v.title}",
        }]
        for line in v.lines:
            body.extend(_alert_items(line))
        for remark in v.footer_lines:
            body.append({"type": "TextBlock", "text": remark, "wrap": True, "isSubtle": True, "spacing": "Medium"})
        card: dict[str, Any] = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "msteams": {"width": "Full"},
            "body": body,
        }
        actions = [{"type": "Action.OpenUrl", "title": title, "url": url}
                   for title, url in (("Silence", v.silence_url), ("Open dashboard", v.external_url)) if url]
        if actions:
            card["actions"] = actions
        return {"type": "message", "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}]}
