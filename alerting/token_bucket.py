"""A token bucket: at most ``per_min`` messages a minute, ``burst`` at once.

Examples:
    >>> t = [0.0]
    >>> b = TokenBucket(per_min=60, burst=2, clock=lambda: t[0])
    >>> b.take(), b.take(), b.take()
    (True, True, False)
    >>> round(b.wait_s(), 3)
    1.0
    >>> t[0] = 1.0; b.take()
    True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """Tokens refill continuously at ``per_min / 60`` per second up to ``burst``.

    Args:
        per_min: refill rate in tokens per minute; 0 means unlimited.
        burst: bucket size (default: ``per_min``, at least 1).
        clock: seconds (monotonic or wall).
    """

    def __init__(self, per_min: float, burst: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_s = per_min / 60.0
        self.capacity = float(max(1, burst if burst is not None else int(per_min) or 1))
        self._clock = clock
        self._tokens = self.capacity
        self._at = clock()
        self._lock = threading.Lock()

    @property
    def unlimited(self) -> bool:
        return self.per_s <= 0

    def _refill(self) -> None:
        now = self._clock()
        if now > self._at:
            self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.per_s)
        self._at = now

    def available(self) -> float:
        """Tokens available now (infinite when unlimited)."""
        if self.unlimited:
            return float("inf")
        with self._lock:
            self._refill()
            return self._tokens

    def take(self) -> bool:
        """Take one token if there is one."""
        if self.unlimited:
            return True
        with self._lock:
            self._refill()
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False

    def give_back(self) -> None:
        """Return a token that was taken but not used."""
        if not self.unlimited:
            with self._lock:
                self._tokens = min(self.capacity, self._tokens + 1.0)

    def wait_s(self) -> float:
        """Seconds until one token is available (0 if one is)."""
        if self.unlimited:
            return 0.0
        with self._lock:
            self._refill()
            return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.per_s
