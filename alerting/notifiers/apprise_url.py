"""Any service Apprise supports (Telegram, Pushover, ntfy, Matrix, Signal, ...) through an Apprise URL.

The message is the plain markdown view; Apprise converts it for the service. Apprise reports
only success or failure, so every failure is retried (the outbox's backoff and its give-up
age bound it). Apprise URLs often carry tokens in the host part (``tgram://<bot-token>/...``),
so only the scheme is logged, and Apprise's own logger is kept quiet.
"""

from __future__ import annotations

import logging
from typing import Any

from aiops.notification import Notification
from alerting.notifiers.base import DeliveryPermanentError, DeliveryTemporaryError
from alerting.notifiers.view import view_of

__all__ = ["AppriseNotifier"]


def _markdown(n: Notification, base_url: str) -> tuple[str, str, str]:
    v = view_of(n, base_url)
    rows = []
    for line in v.lines:
        rows.append(f"**{line.name}** ({line.state}" + (f", {line.severity}" if line.severity else "") + ")")
        for bit in (line.summary, line.description, line.measurement, line.timing, line.label_text):
            rows += [f"- {row}" for row in bit.splitlines() if row]
        if line.link:
            rows.append(f"- [View series]({line.link})")
        rows.append("")
    rows.extend(v.footer_lines)
    if v.silence_url:
        rows.append(f"[Silence]({v.silence_url})")
    if v.external_url:
        rows.append(f"[Open dashboard]({v.external_url})")
    return v.title, "\n".join(rows).strip(), v.status


class AppriseNotifier:
    """Sends through one Apprise URL.

    Args:
        name: receiver name.
        url: an Apprise URL such as ``tgram://token/chat`` or ``json://host:port/path`` (secret).
        base_url: dashboard URL for links.
        timeout_s: seconds per attempt (passed to Apprise).
    """

    kind = "apprise"

    def __init__(self, name: str, url: str, *, base_url: str = "", timeout_s: float = 10.0) -> None:
        import apprise  # imported here: it loads ~100 plugins, which only Apprise receivers need

        self.name = name
        self._url = url
        scheme = url.split("://", 1)[0] if "://" in url else "?"
        self.target = f"{scheme}://"
        self.base_url = base_url
        self.timeout_s = timeout_s
        logging.getLogger("apprise").setLevel(logging.CRITICAL)  # its messages may name token-bearing hosts
        self._apprise = apprise.Apprise()
        if not self._apprise.add(url):
            raise DeliveryPermanentError(f"apprise receiver {name!r}: not a valid Apprise URL ({self.target})",
                                         "config")
        for server in self._apprise:
            server.socket_connect_timeout = timeout_s  # what the URL's cto/rto options set
            server.socket_read_timeout = timeout_s

    def render(self, n: Notification) -> dict[str, Any]:
        title, body, status = _markdown(n, self.base_url)
        return {"title": title, "body": body, "type": "failure" if status == "firing" else "success"}

    def send(self, payload: dict[str, Any] | str) -> None:
        import apprise

        if isinstance(payload, str):
            payload = {"title": "", "body": payload, "type": "info"}
        ok = self._apprise.notify(body=payload["body"], title=payload["title"], notify_type=payload["type"],
                                  body_format=apprise.NotifyFormat.MARKDOWN)
        if not ok:
            raise DeliveryTemporaryError(f"apprise receiver {self.name!r} ({self.target}): delivery failed",
                                         "apprise")

    def close(self) -> None:
        self._apprise.clear()

    def __repr__(self) -> str:
        return f"AppriseNotifier(name={self.name!r}, target={self.target!r})"
