"""Import LogQL metric queries from Loki (``/loki/api/v1/query_range``) as series.

Loki answers metric queries (``sum by (app) (count_over_time({app="x"} |= "error" [1m]))``) in
the same matrix shape as Prometheus and takes the same ``start``/``end`` (float seconds) and
``step``, so this is the :mod:`collectors.prometheus` import pointed at Loki's API prefix: a
cursor per query on a fixed grid (no overlap, no gap), partial results kept when one query
fails, and ``X-Scope-OrgID`` for a multi-tenant Loki. Log queries (no range aggregation) are
refused at load: they return streams of lines, not numbers.
"""

from __future__ import annotations

from aiops.logs import url_host
from aiops.promapi import PrometheusClient
from collectors.prometheus import PrometheusCollector
from collectors.settings import LokiSource

__all__ = ["LokiCollector"]


class LokiCollector(PrometheusCollector):
    """Imports the configured LogQL metric queries from one Loki.

    Args:
        settings: Loki's base URL (``http://loki:3100``), queries, step, lookback, tenant, schedule.
        client: a ready client (tests); default: one on ``<url>/loki``.
    """

    name = "loki"

    def __init__(self, settings: LokiSource, client: PrometheusClient | None = None) -> None:
        headers = {"X-Scope-OrgID": settings.tenant} if settings.tenant else None
        client = client or PrometheusClient(settings.url.rstrip("/") + "/loki", settings.timeout_s,
                                            settings.bearer_token, headers=headers,
                                            verify_tls=settings.verify_tls)
        super().__init__(settings, client=client)
        self.target = url_host(settings.url).split("://", 1)[-1]
