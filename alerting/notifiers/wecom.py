"""WeCom (企业微信) group robots: a markdown message.

WeCom's markdown knows ``<font color="warning|info|comment">``; content is capped at 4,096
bytes, so the message is cut at a line boundary (the remarks say how many alerts were left
out). WeCom answers HTTP 200 with ``{"errcode": 0}``; 45009 (frequency limit) and -1
(system busy) are retried, other codes (93000: bad key, 40058: bad content) are final.
"""

from __future__ import annotations

from typing import Any

import httpx

from aiops.notification import Notification
from alerting.notifiers.base import HttpNotifier, json_code_check
from alerting.notifiers.view import view_of

__all__ = ["WeComNotifier"]

TEMPORARY_CODES = frozenset({45009, -1})
MAX_BYTES = 4096


class WeComNotifier(HttpNotifier):
    """Posts markdown to a WeCom group robot.

    Args:
        name: receiver name.
        url: ``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<key>`` (secret).
        base_url: dashboard URL for links.
        timeout_s: seconds per attempt.
    """

    kind = "wecom"

    def __init__(self, name: str, url: str, *, base_url: str = "", timeout_s: float = 10.0) -> None:
        super().__init__(name, url, timeout_s)
        self.base_url = base_url

    def render(self, n: Notification) -> dict[str, Any]:
        v = view_of(n, self.base_url)
        colour = "warning" if v.status == "firing" else "info"
        head = f"## <font color=\"{colour}\">{v.emoji} {v.title}</font>"
        blocks = []
        for line in v.lines:
            rows = [f"**{line.name}**" + (f" ({line.severity})" if line.severity else "") + f" — {line.state}"]
            for bit in (line.summary, line.description, line.measurement, line.timing):
                rows += [f"> {row}" for row in bit.splitlines() if row]  # a bare line would end the quote
            if line.label_text:
                rows.append(f"> <font color=\"comment\">{line.label_text}</font>")
            if line.link:
                rows.append(f"> [View series]({line.link})")
            blocks.append("\n".join(rows))
        tail = [f"<font color=\"comment\">{r}</font>" for r in v.footer_lines]
        if v.silence_url:
            tail.append(f"[Silence]({v.silence_url})")
        if v.external_url:
            tail.append(f"[Open dashboard]({v.external_url})")
        content = "\n\n".join([head, *blocks, *tail])
        while len(content.encode()) > MAX_BYTES and blocks:
            blocks.pop()
            left_out = len(v.lines) - len(blocks)
            content = "\n\n".join([head, *blocks, f"…{left_out} alerts not shown (message size limit).", *tail])
        if len(content.encode()) > MAX_BYTES:
            content = content.encode()[:MAX_BYTES].decode(errors="ignore")
        return {"msgtype": "markdown", "markdown": {"content": content}}

    def check_body(self, response: httpx.Response) -> None:
        json_code_check(response, f"wecom receiver {self.name!r} ({self.target})", ("errcode",),
                        TEMPORARY_CODES, self._secrets)
