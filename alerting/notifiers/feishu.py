"""Feishu / Lark custom bots: an interactive card, signed when the bot has a secret.

Signature (Feishu "custom bot" security setting): ``timestamp`` is Unix seconds,
``sign = base64(HmacSHA256(key="<timestamp>\\n<secret>", message=""))``, both added to the
JSON body at send time (Feishu rejects timestamps more than an hour off).

Feishu answers HTTP 200 with ``{"code": 0}`` on success; a non-zero ``code`` is a refusal
(19021: bad signature, 19024: keyword check failed), except 11232 (frequency limited), which
is retried.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import httpx

from aiops.notification import Notification
from alerting.notifiers.base import HttpNotifier, json_code_check
from alerting.notifiers.view import view_of

__all__ = ["FeishuNotifier", "feishu_sign"]

TEMPORARY_CODES = frozenset({11232, 9499})


def feishu_sign(timestamp_s: int, secret: str) -> str:
    """Feishu's bot signature: base64 of HMAC-SHA256 keyed by ``"timestamp\\nsecret"`` over nothing."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", digestmod=hashlib.sha256).digest()).decode()


class FeishuNotifier(HttpNotifier):
    """Posts an interactive card to a Feishu/Lark bot webhook.

    Args:
        name: receiver name.
        url: ``https://open.feishu.cn/open-apis/bot/v2/hook/<token>`` (secret).
        secret: the bot's signing secret, if signature verification is on (secret).
        base_url: dashboard URL for links.
        timeout_s: seconds per attempt.
        clock: seconds since the epoch (tests pin it).
    """

    kind = "feishu"

    def __init__(self, name: str, url: str, *, secret: str = "", base_url: str = "", timeout_s: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(name, url, timeout_s)
        self._secret = secret
        self._secrets.append(secret)
        self.base_url = base_url
        self._clock = clock

    def render(self, n: Notification) -> dict[str, Any]:
        v = view_of(n, self.base_url)
        elements: list[dict[str, Any]] = []
        for line in v.lines:
            icon = "🔴" if line.state == "firing" else "🟢"
            rows = [f"{icon} **{line.name}**" + (f" ({line.severity})" if line.severity else "")]
            rows.extend(b for b in (line.summary, line.description) if b)
            if line.measurement:
                rows.append(f"**{line.measurement}**")
            if line.timing:
                rows.append(line.timing)
            if line.label_text:
                rows.append(f"<font color='grey'>{line.label_text}</font>")
            if line.link:
                rows.append(f"[View series]({line.link})")
            elements.append({"tag": "div", "text": {"tag": "lark_md", "content": "\n".join(rows)}})
            elements.append({"tag": "hr"})
        if elements:
            elements.pop()
        remarks = v.footer_lines
        if remarks:
            elements.append({"tag": "note", "elements": [{"tag": "plain_text", "content": " ".join(remarks)}]})
        buttons = [{"tag": "button", "type": kind, "url": url, "text": {"tag": "plain_text", "content": title}}
                   for title, url, kind in (("Silence", v.silence_url, "default"),
                                            ("Open dashboard", v.external_url, "primary")) if url]
        if buttons:
            elements.append({"tag": "action", "actions": buttons})
        return {
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": True},
                "header": {"template": "red" if v.status == "firing" else "green",
                           "title": {"tag": "plain_text", "content": v.title}},
                "elements": elements,
            },
        }

    def prepare(self, payload: dict[str, Any] | str) -> dict[str, Any] | str:
        if not self._secret or not isinstance(payload, dict):
            return payload
        ts = int(self._clock())
        return {"timestamp": str(ts), "sign": feishu_sign(ts, self._secret), **payload}

    def check_body(self, response: httpx.Response) -> None:
        json_code_check(response, f"feishu receiver {self.name!r} ({self.target})", ("code", "StatusCode"),
                        TEMPORARY_CODES, self._secrets)
