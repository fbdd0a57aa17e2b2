"""Untrusted text on the terminal: labels, annotations, authors, remote error bodies.

Alert content comes from scraped targets and webhooks; printed through rich it would be read as
markup (``[/bold]`` crashes the table, ``[link=...]`` forges a link) and raw control characters
would reach the terminal (an ESC sequence can retitle the window or rewrite the screen). Every
user-supplied string the CLI prints goes through :func:`cell` (a rich ``Text``, never parsed as
markup) or :func:`clean` (control characters made visible as ``\\xNN``).

Examples:
    >>> clean("ok\\x1b]0;pwned\\x07 [/bold]")
    'ok\\\\x1b]0;pwned\\\\x07 [/bold]'
    >>> cell("[red]x[/red]").plain
    '[red]x[/red]'
"""

from __future__ import annotations

import re

from rich.markup import escape
from rich.text import Text

__all__ = ["clean", "cell", "markup_safe"]

# C0 controls (newline and tab included: one table cell, one line), DEL, C1 controls, and the
# Unicode bidi overrides that reorder what the reader sees (CVE-2021-42574, "Trojan Source")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean(value: object) -> str:
    """``value`` as text with every control character replaced by a visible ``\\xNN`` / ``\\uNNNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}",
                        str(value))


def cell(value: object) -> Text:
    """A table cell showing ``value`` literally (no markup, no control characters)."""
    return Text(clean(value))


def markup_safe(value: object) -> str:
    """``value`` cleaned and markup-escaped, for interpolation into a rich markup string."""
    return escape(clean(value))
