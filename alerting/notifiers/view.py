"""What every message says, independent of the service: the view notifiers format.

A notification becomes a :class:`MessageView`: a title (``[FIRING:2] HighGpuTemp``), one
:class:`AlertLine` per alert saying what fired, the value against the threshold, since when,
how long a resolved alert lasted and a link to the dashboard's view of the series, plus a
line for alerts left out of a storm and for notifications a rate limit held back.

Links: an alert's ``generator_url`` wins; otherwise ``<dashboard>/?series=<selector>``, where
the dashboard is the notifier's ``base_url`` (``dashboard.base_url``) or else the
notification's ``external_url``, and the selector is the ``series`` annotation, or the alert's
labels without ``alertname`` and ``severity`` (the labels rules add).

Values and thresholds carry their unit: the ``unit`` annotation, or else the one the series
name ends in, as Prometheus names them (``_celsius`` °C, ``_seconds`` s, ``_bytes`` B, ...).
A resolved alert's value is the last one seen, the one that ended it, so it reads "last value".

A firing alert's description also carries the ``rca`` annotation of
:func:`aiops.annotations.extra_annotations` (the likely root causes), when one is registered.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from aiops.annotations import extra_annotations
from aiops.model import Alert, AlertState
from aiops.notification import Notification

__all__ = ["MessageView", "AlertLine", "view_of", "format_duration", "format_value", "format_time", "unit_of",
           "with_unit"]

MAX_LINES = 10  # alerts listed one by one; the rest is counted ("and 12 more")
_HIDDEN_LABELS = {"alertname"}
_RULE_LABELS = {"alertname", "severity"}  # added by rules, not on the series: left out of a derived selector


@dataclass(frozen=True, slots=True)
class AlertLine:
    """One alert as a message shows it."""

    name: str
    state: str  # firing | resolved
    severity: str
    summary: str
    description: str
    value: str  # "93.2 °C" or "" when the alert carries no value
    threshold: str  # "90 °C", as the rule's ``threshold`` annotation says, with the unit when it is a number
    since: str  # startsAt, ISO-8601 UTC
    ended: str  # endsAt for resolved alerts, else ""
    lasted: str  # "12m 5s" for resolved alerts, else ""
    link: str
    labels: tuple[tuple[str, str], ...]

    @property
    def value_title(self) -> str:
        """``Value``, or ``Last value`` for a resolved alert (the value that ended it)."""
        return "Last value" if self.state == "resolved" else "Value"

    @property
    def measurement(self) -> str:
        """``value 93.2 °C (threshold 90 °C)``, ``last value 71 °C (...)`` when resolved, or ``""``."""
        if not self.value:
            return f"threshold {self.threshold}" if self.threshold else ""
        return (f"{self.value_title.lower()} {self.value}"
                + (f" (threshold {self.threshold})" if self.threshold else ""))

    @property
    def timing(self) -> str:
        """``since 2024-05-01T12:00:00Z`` or ``lasted 12m 5s (… → …)`` for resolved alerts."""
        if self.state == "resolved" and self.lasted:
            return f"lasted {self.lasted} ({self.since} → {self.ended})"
        return f"since {self.since}" if self.since else ""

    @property
    def label_text(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.labels if k not in _HIDDEN_LABELS)


@dataclass(frozen=True, slots=True)
class MessageView:
    """A notification as every notifier shows it."""

    status: str  # firing | resolved
    title: str
    receiver: str
    group_key: str
    group_text: str
    firing: int
    resolved: int
    lines: tuple[AlertLine, ...]
    more: int  # alerts in the group not listed (MAX_LINES) plus truncated_alerts
    held_back: int
    held_back_summary: str
    external_url: str
    silence_url: str = ""  # the dashboard's alert view of these alerts, where each has a Silence button

    @property
    def colour_hex(self) -> str:
        return "#E01E5A" if self.status == "firing" else "#2EB67D"

    @property
    def emoji(self) -> str:
        return "🔥" if self.status == "firing" else "✅"

    @property
    def footer_lines(self) -> list[str]:
        """The "and N more" and "held back" remarks, each a sentence."""
        out = []
        if self.more:
            out.append(f"…and {self.more} more alert{'s' if self.more != 1 else ''} in this group.")
        if self.held_back:
            s = "s" if self.held_back != 1 else ""
            text = f"⚠ {self.held_back} more notification{s} held back by the rate limit"
            # no full stop after the summary: it may end in a link, and phones would take the dot along
            out.append(text + (f": {self.held_back_summary}" if self.held_back_summary else "."))
        return out

    def plain_text(self) -> str:
        """The whole message as plain text (e-mail body, fallbacks, Apprise)."""
        parts = [self.title, ""]
        for line in self.lines:
            parts.append(f"[{line.state.upper()}] {line.name}" + (f" ({line.severity})" if line.severity else ""))
            for bit in (line.summary, line.description, line.measurement, line.timing, line.label_text):
                parts += [f"  {row}" for row in bit.splitlines() if row]  # the description may hold the causes too
            if line.link:
                parts.append(f"  series: {line.link}")
            parts.append("")
        parts.extend(self.footer_lines)
        if self.silence_url:
            parts.append(f"Silence: {self.silence_url}")
        if self.external_url:
            parts.append(f"Dashboard: {self.external_url}")
        return "\n".join(parts).strip() + "\n"


def format_value(value: float | None) -> str:
    """A number for people: 4 significant digits; NaN and ±Inf spelled out."""
    if value is None:
        return ""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.4g}"


# Prometheus base units, by the suffix of a metric's name (prometheus.io/docs/practices/naming)
_UNIT_SUFFIXES = {"celsius": "°C", "seconds": "s", "bytes": "B", "percent": "%", "watts": "W",
                  "joules": "J", "volts": "V", "amperes": "A", "hertz": "Hz"}
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def unit_of(series: str) -> str:
    """The unit a series name ends in: ``gpu_temperature_celsius{gpu="0"}`` -> ``°C``; else ``""``.

    Examples:
        >>> unit_of('node_memory_MemFree_bytes{instance="a"}')
        'B'
        >>> unit_of("http_requests_total")
        ''
    """
    name = series.split("{", 1)[0].strip()
    return _UNIT_SUFFIXES.get(name.rsplit("_", 1)[-1], "") if "_" in name else ""


def with_unit(number: str, unit: str) -> str:
    """``number`` (a formatted value) followed by ``unit``; bytes in binary multiples.

    Text that is not a plain number (``"85 °C"``, ``"NaN"``) is left as it is.

    Examples:
        >>> with_unit("91.5", "°C")
        '91.5 °C'
        >>> with_unit("3221225472", "B")
        '3 GiB'
        >>> with_unit("0.25", "")
        '0.25'
    """
    try:
        x = float(number)
    except ValueError:
        return number
    if not unit or not math.isfinite(x):
        return number
    if unit == "B":
        i = 0
        while abs(x) >= 1024 and i < len(_BINARY) - 1:
            x /= 1024
            i += 1
        return f"{format_value(x)} {_BINARY[i]}"
    return f"{number}{'' if unit == '%' else ' '}{unit}"


def format_time(ts_ms: int) -> str:
    """UTC ISO-8601 to the second, with a ``Z``; empty for 0."""
    if ts_ms <= 0:
        return ""
    t = dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_duration(seconds: float) -> str:
    """``1h 2m``, ``12m 5s``, ``40s``.

    Examples:
        >>> format_duration(3725)
        '1h 2m'
        >>> format_duration(725)
        '12m 5s'
    """
    s = max(0, int(round(seconds)))
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m}m"
    if m:
        return f"{m}m {sec}s"
    return f"{sec}s"


def series_link(alert: Alert, base_url: str) -> str:
    """The alert's own link, or the dashboard's view of its series under ``base_url``."""
    if alert.generator_url:
        return alert.generator_url
    if not base_url:
        return ""
    ann = alert.annotation_dict
    selector = ann.get("series", "")
    if not selector:
        inner = ",".join(f'{k}="{v}"' for k, v in alert.labels if k not in _RULE_LABELS)
        selector = f"{{{inner}}}" if inner else ""
    if not selector:
        return base_url
    return f"{base_url.rstrip('/')}/?series={quote(selector, safe='')}"


# @everyone / @here / @channel / @all notify a whole channel in Slack, Discord, Mattermost and Teams;
# <!here>, <!channel>, <@U123>, <#C1> are Slack's mention syntax and <at user_id="all"> Feishu's.
_BROADCAST = re.compile(r"@(?=(everyone|here|channel|all|room)\b)", re.IGNORECASE)
_ANGLE_MENTION = re.compile(r"<(?=[!@#]|at\b)", re.IGNORECASE)


def defang(text: str) -> str:
    """Alert content with every chat mention broken by a zero-width space (it still reads the same).

    Labels and annotations come from scraped targets and webhooks: they must not page a whole
    channel. Every text field of a message view goes through this, in every format.

    Examples:
        >>> defang("disk full <!here> @everyone")
        'disk full <\u200b!here> @\u200beveryone'
    """
    return _ANGLE_MENTION.sub("<\u200b", _BROADCAST.sub("@\u200b", text))


def _line(alert: Alert, base_url: str) -> AlertLine:
    # what other packages know about the alert (likely root causes), through the kernel contract
    extra = extra_annotations(alert) if alert.state is AlertState.FIRING else {}
    ann = {**extra, **alert.annotation_dict}
    labels = alert.label_dict
    resolved = alert.state is AlertState.RESOLVED or (alert.ends_at_ms > 0 and alert.state is not AlertState.FIRING)
    lasted = ""
    if resolved and alert.ends_at_ms and alert.starts_at_ms:
        lasted = format_duration((alert.ends_at_ms - alert.starts_at_ms) / 1000)
    value = format_value(alert.value)
    if not value and ann.get("value"):
        value = ann["value"]
    unit = ann.get("unit", "") or unit_of(ann.get("series", ""))
    return AlertLine(
        name=defang(alert.name or "alert"),
        state="resolved" if resolved else "firing",
        severity=defang(labels.get("severity", "")),
        summary=defang(ann.get("summary", "")),
        description=defang("\n".join(t for t in (ann.get("description", ""), extra.get("rca", "")) if t)),
        value=defang(with_unit(value, unit)),
        threshold=defang(with_unit(ann.get("threshold", "").strip(), unit)),
        since=format_time(alert.starts_at_ms),
        ended=format_time(alert.ends_at_ms) if resolved else "",
        lasted=lasted,
        link=series_link(alert, base_url),
        labels=tuple((defang(k), defang(v)) for k, v in alert.labels),
    )


def silence_link(alerts: list[Alert], group_labels: tuple[tuple[str, str], ...], base_url: str) -> str:
    """The dashboard's alert view filtered to ``alerts``: ``<base>/?page=alerts&alertname=...&label=...``.

    Only for one alert name (the page filters by one); the group's other labels narrow it
    further unless a value holds a comma (the page's label filter is comma-separated).

    Examples:
        >>> silence_link([Alert.of({"alertname": "Hot", "gpu": "0"})], (("alertname", "Hot"), ("gpu", "0")),
        ...              "http://dash:8501")
        'http://dash:8501/?page=alerts&alertname=Hot&label=gpu%3D0'
    """
    names = {a.name for a in alerts if a.name}
    if not base_url or len(names) != 1:
        return ""
    query = {"page": "alerts", "alertname": next(iter(names))}
    labels = [(k, v) for k, v in group_labels if k != "alertname"]
    if labels and not any("," in v or "," in k for k, v in labels):
        query["label"] = ",".join(f"{k}={v}" for k, v in labels)
    return f"{base_url.rstrip('/')}/?{urlencode(query)}"


def view_of(n: Notification, base_url: str = "") -> MessageView:
    """Build the view of ``n``; links go to ``base_url`` (the dashboard), else to ``n.external_url``."""
    url = base_url or n.external_url
    firing = [a for a in n.alerts if a.state is AlertState.FIRING]
    resolved = [a for a in n.alerts if a.state is not AlertState.FIRING]
    ordered = firing + resolved
    lines = tuple(_line(a, url) for a in ordered[:MAX_LINES])
    more = max(0, len(ordered) - MAX_LINES) + max(0, n.truncated_alerts)
    names = sorted({defang(a.name) for a in n.alerts if a.name}) or ["alert"]
    group = defang(", ".join(f"{k}={v}" for k, v in n.group_labels if k != "alertname"))
    status = n.status
    count = len(firing) if status == "firing" else len(resolved)
    title = f"[{status.upper()}:{count + (n.truncated_alerts if status == 'firing' else 0)}] {', '.join(names[:3])}"
    if len(names) > 3:
        title += f" +{len(names) - 3}"
    if group:
        title += f" ({group})"
    return MessageView(
        status=status,
        title=title,
        receiver=n.receiver,
        group_key=n.group_key,
        group_text=group,
        firing=len(firing),
        resolved=len(resolved),
        lines=lines,
        more=more,
        held_back=n.held_back,
        held_back_summary=defang(str(n.extra.get("held_back_summary", ""))),
        external_url=url,
        silence_url=silence_link(firing, n.group_labels, url) if status == "firing" else "",
    )
