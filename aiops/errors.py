"""One exception tree for the whole platform.

Shaped like httpx's ``_exceptions.py``: a docstring per class, grouped by cause.
Packages may subclass these in their own ``errors.py``; they never invent a new root.

Retryable failures are split from final ones, as kopf splits ``TemporaryError`` from
``PermanentError``: Celery tasks retry only :class:`TemporaryError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiops.model import Sample

__all__ = [
    "AiopsError",
    "ConfigError",
    "InputError",
    "StoreError",
    "CollectError",
    "DetectorError",
    "NotifyError",
    "RemediationError",
    "TemporaryError",
    "PermanentError",
    "trim",
]

FOREIGN_BODY_LIMIT = 256  # like kopf: enough to see the cause, never a whole HTML page


def trim(text: object, limit: int = FOREIGN_BODY_LIMIT) -> str:
    """Shorten a foreign body (an HTTP response, a stack of text) for an error message."""
    s = str(text)
    return s if len(s) <= limit else s[: limit - 3] + "..."


class AiopsError(Exception):
    """Base of every error the platform raises on purpose."""


# --- bad input from people -------------------------------------------------------------


class ConfigError(AiopsError):
    """A configuration file or variable is malformed; the message names file and key."""


class InputError(AiopsError):
    """A data file or payload is malformed; the message names the file and the row."""


# --- our own machinery -------------------------------------------------------------------


class StoreError(AiopsError):
    """The time-series or state store could not read or write."""


class CollectError(AiopsError):
    """A collector could not read its source (target down, garbage body, timeout).

    Args:
        message: what failed, naming the target (never a secret-bearing URL).
        samples: what the collector still has to deliver although the collection failed:
            staleness markers (NaN) for the series the target no longer reports, or the
            results of the queries that did succeed. The agent stores them and still records
            the collection as failed (``up=0``).
    """

    def __init__(self, message: str, samples: Sequence[Sample] = ()) -> None:
        super().__init__(message)
        self.samples: tuple[Sample, ...] = tuple(samples)


class DetectorError(AiopsError):
    """A detector was misconfigured or misused (bad parameter, wrong state)."""


class NotifyError(AiopsError):
    """A notification could not be rendered or delivered."""


class RemediationError(AiopsError):
    """A playbook or action failed to load, plan or run."""


# --- retry semantics (mixed into the above) ----------------------------------------------


class TemporaryError(AiopsError):
    """A failure worth retrying later (network error, 5xx, 429, conflict).

    Args:
        message: what failed.
        delay_s: how long the caller should wait before the next attempt, if known
            (for example from a ``Retry-After`` header).
    """

    def __init__(self, message: str, delay_s: float | None = None) -> None:
        super().__init__(message)
        self.delay_s = delay_s


class PermanentError(AiopsError):
    """A failure that retrying cannot fix (4xx other than 429, forbidden, invalid)."""
