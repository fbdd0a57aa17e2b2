"""E-mail over SMTP (smtplib): a plain-text and an HTML part.

Failures map like the HTTP notifiers: connection errors, timeouts and 4xx SMTP replies
(greylisting, mailbox busy) are retried; 5xx replies (recipient refused, authentication
failed) are final.
"""

from __future__ import annotations

import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from aiops.errors import trim
from aiops.notification import Notification
from alerting.notifiers.base import DeliveryPermanentError, DeliveryTemporaryError, mask
from alerting.notifiers.view import MessageView, view_of

__all__ = ["SmtpNotifier"]


def _html(v: MessageView) -> str:
    colour = v.colour_hex
    out = [f'<h2 style="color:{colour}">{html.escape(v.emoji + " " + v.title)}</h2>']
    for line in v.lines:
        c = "#E01E5A" if line.state == "firing" else "#2EB67D"
        out.append(f'<div style="border-left:4px solid {c};padding-left:8px;margin:8px 0">')
        out.append(f"<b>{html.escape(line.name)}</b>" + (f" ({html.escape(line.severity)})" if line.severity else ""))
        for bit in (line.summary, line.description, line.measurement, line.timing, line.label_text):
            out += [f"<br>{html.escape(row)}" for row in bit.splitlines() if row]
        if line.link:
            out.append(f'<br><a href="{html.escape(line.link, quote=True)}">View series</a>')
        out.append("</div>")
    for remark in v.footer_lines:
        out.append(f"<p><i>{html.escape(remark)}</i></p>")
    if v.silence_url:
        out.append(f'<p><a href="{html.escape(v.silence_url, quote=True)}">Silence</a></p>')
    if v.external_url:
        out.append(f'<p><a href="{html.escape(v.external_url, quote=True)}">Open dashboard</a></p>')
    head = '<html><head><meta charset="utf-8"></head><body style="font-family:sans-serif;max-width:640px">'
    return head + "\n".join(out) + "</body></html>"


class SmtpNotifier:
    """Sends a multipart e-mail through an SMTP server.

    Args:
        name: receiver name.
        host: SMTP server host.
        port: SMTP port (25, 587 with ``starttls``, 465 with ``use_ssl``).
        sender: the From address.
        to: recipient addresses.
        username: login user, if the server needs one.
        password: login password (secret).
        starttls: upgrade with STARTTLS after connecting.
        use_ssl: connect with implicit TLS (port 465).
        subject_prefix: text before the title in the Subject.
        base_url: dashboard URL for links.
        timeout_s: seconds per attempt (connect and each reply).
    """

    kind = "email"

    def __init__(self, name: str, *, host: str, port: int = 25, sender: str, to: tuple[str, ...],
                 username: str = "", password: str = "", starttls: bool = False, use_ssl: bool = False,
                 subject_prefix: str = "[aiops] ", base_url: str = "", timeout_s: float = 10.0) -> None:
        self.name = name
        self.host, self.port = host, port
        self.target = f"smtp://{host}:{port}"
        self.sender, self.to = sender, tuple(to)
        self.username, self._password = username, password
        self.starttls, self.use_ssl = starttls, use_ssl
        self.subject_prefix = subject_prefix
        self.base_url = base_url
        self.timeout_s = timeout_s

    def render(self, n: Notification) -> dict[str, Any]:
        v = view_of(n, self.base_url)
        return {"subject": f"{self.subject_prefix}{v.title}", "from": self.sender, "to": list(self.to),
                "text": v.plain_text(), "html": _html(v)}

    def send(self, payload: dict[str, Any] | str) -> None:
        if not isinstance(payload, dict):
            raise DeliveryPermanentError(f"email receiver {self.name!r}: payload must be a rendered dict", "render")
        msg = EmailMessage()
        msg["Subject"] = str(payload["subject"]).replace("\n", " ")
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = make_msgid(domain="aiops")
        msg.set_content(str(payload["text"]))
        msg.add_alternative(str(payload["html"]), subtype="html")
        where = f"email receiver {self.name!r} ({self.target})"
        try:
            cls = smtplib.SMTP_SSL if self.use_ssl else smtplib.SMTP
            with cls(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls and not self.use_ssl:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self._password)
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            self._raise(where, min(codes) if codes else 550, "recipients refused", exc)
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            self._raise(where, exc.smtp_code, text, exc)
        except TimeoutError as exc:
            raise DeliveryTemporaryError(f"{where}: timed out after {self.timeout_s:g}s", "timeout") from exc
        except (smtplib.SMTPException, OSError) as exc:
            detail = mask(trim(f"{exc.__class__.__name__}: {exc}"), [self._password])
            raise DeliveryTemporaryError(f"{where}: {detail}", "network") from exc

    def _raise(self, where: str, code: int, text: str, exc: Exception) -> None:
        msg = f"{where}: SMTP {code}: {mask(trim(text), [self._password])}"
        if 400 <= code < 500:
            raise DeliveryTemporaryError(msg, f"smtp_{code}") from exc
        raise DeliveryPermanentError(msg, f"smtp_{code}") from exc

    def close(self) -> None:
        """Nothing to close: one connection per message."""

    def __repr__(self) -> str:
        return f"SmtpNotifier(name={self.name!r}, target={self.target!r})"
