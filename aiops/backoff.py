"""The one retry backoff: exponential from a first delay, capped, with "equal jitter".

Used by the notification outbox (``alerting/outbox.py``), remote-write (``aiops/remotewrite.py``)
and the remediation executor and tasks (``remediation/executor.py``), like Celery's
``retry_backoff`` + ``retry_jitter``. Half of
each delay is fixed and half random, so the retries of many rows or runs spread out but a delay
never collapses to 0 (full jitter would let a storm of retries hit a recovering service at once).

Examples:
    >>> [backoff_s(n, initial_s=1, max_s=5, rng=lambda: 1.0) for n in range(5)]
    [1.0, 2.0, 4.0, 5.0, 5.0]
    >>> backoff_s(0, initial_s=2, max_s=60, rng=lambda: 0.0)
    1.0
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["backoff_s"]


def backoff_s(retry: int, *, initial_s: float, max_s: float, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number ``retry + 1`` (``retry`` 0 is the first retry).

    Args:
        retry: retries made so far (0-based); values past 30 count as 30 (the cap is long reached).
        initial_s: the first delay's ceiling; each retry doubles it.
        max_s: the longest ceiling.
        rng: uniform in [0, 1): the jitter (seed it for reproducible tests).

    Returns:
        A delay in ``[cap / 2, cap]`` where ``cap = min(max_s, initial_s * 2 ** retry)``.
    """
    cap = min(max_s, initial_s * 2 ** min(max(retry, 0), 30))
    return float(cap / 2 + cap / 2 * rng())
