"""Read-only import from an existing Prometheus through its HTTP API (``query_range``).

For each configured query, each collection imports the range from just after the last
imported evaluation (or ``now - lookback_s`` the first time) up to now, at ``step_s``. The
cursor is per query and kept in memory: a restarted agent re-imports at most ``lookback_s``.
Series keep exactly the labels Prometheus returns, so imported data lines up with what a
scrape of the same target stores (results without ``__name__``, such as ``rate(...)``, are
named by ``names`` or after the query).

One failing query does not lose the others: their samples travel on the
:class:`~aiops.errors.CollectError` (``samples``) and their cursors advance; the failed one is
retried from where it stopped.
"""

from __future__ import annotations

import time

from aiops.errors import AiopsError, CollectError
from aiops.logs import url_host
from aiops.model import Sample
from aiops.promapi import PrometheusClient
from collectors.settings import PrometheusSource

__all__ = ["PrometheusCollector"]


class PrometheusCollector:
    """Imports the configured queries from one Prometheus server.

    Args:
        settings: server URL, queries, step, lookback, token, schedule.
        client: a ready client (tests); default: one built from ``settings``.
    """

    name = "prometheus"

    def __init__(self, settings: PrometheusSource, client: PrometheusClient | None = None) -> None:
        self.settings = settings
        self.target = url_host(settings.url).split("://", 1)[-1]
        self.interval_s = settings.interval_s
        self.timeout_s = settings.timeout_s
        self.jitter_s = settings.jitter_s
        self.step_ms = max(1, round(settings.step_s * 1000))
        self.client = client or PrometheusClient(settings.url, settings.timeout_s, settings.bearer_token,
                                                 verify_tls=settings.verify_tls)
        self.cursor_ms: dict[str, int] = {}
        """Query -> last imported evaluation time (UTC ms)."""

    def collect(self, now_ms: int) -> list[Sample]:
        """Import what is new for every query.

        Raises:
            CollectError: when a query failed (the others' samples ride on the error).
        """
        deadline = time.monotonic() + self.timeout_s
        out: list[Sample] = []
        errors: list[str] = []
        for expr in self.settings.queries:
            last = self.cursor_ms.get(expr)
            start = now_ms - round(self.settings.lookback_s * 1000) if last is None else last + self.step_ms
            # evaluate on a fixed grid so that successive imports neither overlap nor leave gaps
            end = start + (now_ms - start) // self.step_ms * self.step_ms
            if end < start:
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                errors.append(f"query {expr!r}: not run, collection past its {self.timeout_s:g}s timeout")
                continue
            try:
                got = self.client.query_range(expr, start, end, self.settings.step_s,
                                              name=self.settings.names.get(expr), timeout_s=remaining)
            except AiopsError as exc:  # InputError (bad query) or CollectError (server)
                errors.append(str(exc))
                continue
            out.extend(got)
            self.cursor_ms[expr] = end
        if errors:
            raise CollectError("; ".join(errors), samples=out)
        return out

    def close(self) -> None:
        self.client.close()
