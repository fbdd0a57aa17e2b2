"""DingTalk custom robots: a markdown message, signed when the robot has a secret.

Signature ("加签" security setting): ``timestamp`` is Unix milliseconds,
``sign = urlencode(base64(HmacSHA256(key=secret, message="<timestamp>\\n<secret>")))``, both
appended to the webhook URL as ``&timestamp=...&sign=...`` at send time.

DingTalk answers HTTP 200 with ``{"errcode": 0}``; 130101 ("send too fast") is retried,
other codes (310000: signature or keyword check failed, 300001: bad token) are final.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

import httpx

from aiops.notification import Notification
from alerting.notifiers.base import HttpNotifier, json_code_check
from alerting.notifiers.view import view_of

__all__ = ["DingTalkNotifier", "dingtalk_sign"]

TEMPORARY_CODES = frozenset({130101, -1})


def dingtalk_sign(timestamp_ms: int, secret: str) -> str:
    """DingTalk's robot signature, URL-encoded, ready for the query string."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), digestmod=hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


class DingTalkNotifier(HttpNotifier):
    """Posts a markdown message to a DingTalk robot webhook.

    Args:
        name: receiver name.
        url: ``https://oapi.dingtalk.com/robot/send?access_token=<token>`` (secret).
        secret: the robot's ``SEC...`` signing secret, if signing is on (secret).
        at_mobiles: phone numbers to @-mention on firing alerts.
        base_url: dashboard URL for links.
        timeout_s: seconds per attempt.
        clock: seconds since the epoch (tests pin it).
    """

    kind = "dingtalk"

    def __init__(self, name: str, url: str, *, secret: str = "", at_mobiles: tuple[str, ...] = (),
                 base_url: str = "", timeout_s: float = 10.0, clock: Callable[[], float] = time.time) -> None:
        super().__init__(name, url, timeout_s)
        self._secret = secret
        self._secrets.append(secret)
        self.at_mobiles = tuple(at_mobiles)
        self.base_url = base_url
        self._clock = clock

    def render(self, n: Notification) -> dict[str, Any]:
        v = view_of(n, self.base_url)
        colour = "#E01E5A" if v.status == "firing" else "#2EB67D"
        rows = [f"### <font color='{colour}'>{v.emoji} {v.title}</font>", ""]
        for line in v.lines:
            rows.append(f"**{line.name}**" + (f" ({line.severity})" if line.severity else "") + f" — {line.state}")
            for bit in (line.summary, line.description, f"**{line.measurement}**" if line.measurement else "",
                        line.timing, line.label_text):
                rows += [f"> {row}" for row in bit.splitlines() if row]  # a bare line would end the quote
            if line.link:
                rows.append(f"> [View series]({line.link})")
            rows.append("")
        rows.extend(f"*{r}*" for r in v.footer_lines)
        if v.silence_url:
            rows.append(f"[Silence]({v.silence_url})")
        if v.external_url:
            rows.append(f"[Open dashboard]({v.external_url})")
        if v.status == "firing" and self.at_mobiles:
            rows.append(" ".join(f"@{m}" for m in self.at_mobiles))
        return {
            "msgtype": "markdown",
            "markdown": {"title": v.title[:64], "text": "\n".join(rows)},
            "at": {"atMobiles": list(self.at_mobiles) if v.status == "firing" else [], "isAtAll": False},
        }

    def url_for(self, payload: dict[str, Any] | str) -> str:
        if not self._secret:
            return self._url
        ts = int(self._clock() * 1000)
        sep = "&" if "?" in self._url else "?"
        return f"{self._url}{sep}timestamp={ts}&sign={dingtalk_sign(ts, self._secret)}"

    def check_body(self, response: httpx.Response) -> None:
        json_code_check(response, f"dingtalk receiver {self.name!r} ({self.target})", ("errcode",),
                        TEMPORARY_CODES, self._secrets)
