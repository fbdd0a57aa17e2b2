"""Render one fixed example notification with every notifier: ``python -m alerting.notifiers.samples``.

Prints Markdown to stdout, or with ``--update docs/notifications.md`` replaces the part of
that file between ``<!-- samples:begin -->`` and ``<!-- samples:end -->``. Nothing is sent:
URLs are placeholders and the clock is pinned, so the output is the same on every run (the
Feishu and DingTalk signatures included).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from aiops.annotations import register_annotator, unregister_annotator
from aiops.model import Alert, AlertState
from aiops.notification import Notification, encode_notification

__all__ = ["example_notification", "render_samples", "splice"]

T0_MS = 1_714_564_800_000  # 2024-05-01T12:00:00Z
PINNED_CLOCK_S = 1_714_565_100.0  # when the example is "sent"
DASHBOARD = "http://aiops.example.internal:8501"


# What root-cause localisation adds to a firing alert (``rca.live.format_causes`` writes this
# form); notifiers may not import rca, so the sample states it and registers it as rca would.
EXAMPLE_RCA = ("Likely causes: 1. deployment/inference/llm: inference_offered_load_rps (z 9.1); "
               "2. node/gpu-node-7: gpu_power_watts (z 4.2)")


def _example_rca(alert: Alert) -> dict[str, str]:
    return {"rca": EXAMPLE_RCA}


def example_notification(resolved: bool = False) -> Notification:
    """Two GPUs of one inference node running hot (or, resolved, back under the threshold)."""
    alerts = []
    for gpu, value in ((0, 79.0), (1, 80.5)) if resolved else ((0, 91.5), (1, 88.25)):
        alerts.append(Alert.of(
            {"alertname": "HighGpuTemp", "severity": "critical", "instance": "gpu-node-7:9400", "gpu": str(gpu)},
            {"summary": f"GPU {gpu} on gpu-node-7 is running hot",
             "description": "gpu_temperature_celsius above 85 for 5m", "threshold": "85",
             "series": f'gpu_temperature_celsius{{gpu="{gpu}",instance="gpu-node-7:9400"}}'},
            state=AlertState.RESOLVED if resolved else AlertState.FIRING, starts_at_ms=T0_MS,
            ends_at_ms=T0_MS + 1_325_000 if resolved else 0, value=value,
        ))
    return Notification(receiver="oncall", group_key='{}:{alertname="HighGpuTemp"}',
                        group_labels=(("alertname", "HighGpuTemp"),), alerts=tuple(alerts), external_url=DASHBOARD)


def _notifiers() -> list[object]:
    from alerting.notifiers.apprise_url import AppriseNotifier
    from alerting.notifiers.dingtalk import DingTalkNotifier
    from alerting.notifiers.discord import DiscordNotifier
    from alerting.notifiers.feishu import FeishuNotifier
    from alerting.notifiers.mattermost import MattermostNotifier
    from alerting.notifiers.slack import SlackNotifier
    from alerting.notifiers.smtp import SmtpNotifier
    from alerting.notifiers.teams import TeamsNotifier
    from alerting.notifiers.webhook import WebhookNotifier
    from alerting.notifiers.wecom import WeComNotifier

    clock = lambda: PINNED_CLOCK_S  # noqa: E731
    return [
        SlackNotifier("oncall", "https://hooks.slack.com/services/T000/B000/XXXX"),
        TeamsNotifier("oncall", "https://prod.westeurope.logic.azure.com/workflows/abc/triggers/manual/run?sig=XXXX"),
        DiscordNotifier("oncall", "https://discord.com/api/webhooks/000/XXXX"),
        MattermostNotifier("oncall", "https://mattermost.example/hooks/XXXX"),
        FeishuNotifier("oncall", "https://open.feishu.cn/open-apis/bot/v2/hook/XXXX", secret="example-secret",  # nosec B106 - a documentation sample
                       clock=clock),
        DingTalkNotifier("oncall", "https://oapi.dingtalk.com/robot/send?access_token=XXXX", secret="SECexample",  # nosec B106 - a documentation sample
                         clock=clock),
        WeComNotifier("oncall", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=XXXX"),
        WebhookNotifier("oncall", "https://alert-handler.example/hook"),
        SmtpNotifier("oncall", host="smtp.example.org", port=587, sender="aiops@example.org",
                     to=("oncall@example.org",)),
        AppriseNotifier("oncall", "json://alert-handler.example/apprise"),
    ]


def render_samples() -> str:
    """The Markdown of every format for the firing example, plus the plain-text look and a resolved one."""
    register_annotator(_example_rca)
    try:
        return _render_samples()
    finally:
        unregister_annotator(_example_rca)


def _storm_rows() -> list[dict[str, object]]:
    """Outbox rows a rate limit folded: 30 more HighGpuTemp notifications and 7 PodCrashLooping."""
    rows: list[dict[str, object]] = []
    for name, severity, count, group in (("HighGpuTemp", "critical", 30, ("instance", "gpu-node-7:9400")),
                                         ("PodCrashLooping", "warning", 7, ("namespace", "inference"))):
        n = Notification(receiver="oncall", group_key=f'{{}}:{{{group[0]}="{group[1]}"}}', group_labels=(group,),
                         alerts=(Alert.of({"alertname": name, "severity": severity, group[0]: group[1]}),))
        rows += [{"group_key": n.group_key, "payload": encode_notification(n)}] * count
    return rows


def _render_samples() -> str:
    from alerting.notifiers.dingtalk import DingTalkNotifier
    from alerting.notifiers.view import view_of
    from alerting.outbox_lane import alerts_view_url, held_back_summary

    firing = example_notification()
    link = alerts_view_url(DASHBOARD, since_ms=T0_MS, until_ms=int(PINNED_CLOCK_S * 1000))
    summary, _ = held_back_summary(_storm_rows(), link)
    stormy = dataclasses.replace(firing, held_back=37, extra={"held_back_summary": summary})
    out = ["<!-- generated by `python -m alerting.notifiers.samples --update docs/notifications.md`;"
           " do not edit by hand -->", "", "## Sample payloads", "",
           "Every format, rendered from one fixed example: two GPUs of `gpu-node-7` above the 85 °C threshold "
           "since 2024-05-01T12:00:00Z, with the likely causes root-cause localisation adds. "
           "Signed bodies (Feishu) and URLs (DingTalk) are shown as sent at "
           "2024-05-01T12:05:00Z with example secrets.", "",
           "### How it reads (plain text: e-mail body, fallbacks)", "", "```text",
           view_of(firing).plain_text().rstrip(), "```", "",
           "Resolved, and with a rate limit's summary line:", "", "```text",
           view_of(example_notification(resolved=True)).plain_text().rstrip(), "", "---", "",
           view_of(stormy).plain_text().rstrip(), "```", ""]
    for notifier in _notifiers():
        kind = getattr(notifier, "kind", "?")
        payload = notifier.render(firing)  # type: ignore[attr-defined]
        prepare = getattr(notifier, "prepare", None)
        if callable(prepare):
            payload = prepare(payload)
        out += [f"### {kind}", ""]
        if isinstance(notifier, DingTalkNotifier):
            sent_to = notifier.url_for(payload).replace("XXXX", "<token>")
            out += [f"POST `{sent_to}`", ""]
        if kind == "email":
            out += ["```text", f"Subject: {payload['subject']}", "", payload["text"].rstrip(), "```", "",
                    "HTML part:", "", "```html", payload["html"], "```", ""]
            continue
        out += ["```json", json.dumps(payload, indent=2, ensure_ascii=False), "```", ""]
        close = getattr(notifier, "close", None)
        if callable(close):
            close()
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", type=Path, help="replace the samples section of this Markdown file")
    args = parser.parse_args(argv)
    text = render_samples()
    if args.update:
        args.update.write_text(splice(args.update.read_text(encoding="utf-8"), text), encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


BEGIN, END = "<!-- samples:begin -->", "<!-- samples:end -->"


def splice(document: str, samples: str) -> str:
    """``document`` with the text between the sample markers replaced by ``samples``."""
    head, sep, rest = document.partition(BEGIN)
    if not sep:
        return f"{document.rstrip()}\n\n{BEGIN}\n{samples}\n{END}\n"
    _, sep2, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{samples}\n{END}{tail if sep2 else chr(10)}"


if __name__ == "__main__":
    raise SystemExit(main())
