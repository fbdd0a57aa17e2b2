"""The ground floor: data model, errors, logs, bus, time-series and state stores, settings, HTTP base.

It imports nothing else of ours. Collectors, detectors, alerting and remediation import only
this package; they meet in its types (:class:`Series`, :class:`Sample`, :class:`Anomaly`,
:class:`Alert`, :class:`ActionRun`).
"""

from aiops.errors import (
    AiopsError,
    CollectError,
    ConfigError,
    DetectorError,
    InputError,
    NotifyError,
    PermanentError,
    RemediationError,
    StoreError,
    TemporaryError,
)
from aiops.model import (
    ActionRun,
    ActionRunId,
    ActionStatus,
    Alert,
    AlertState,
    Anomaly,
    Fingerprint,
    Matcher,
    MatchOp,
    Sample,
    Series,
    fingerprint_of,
    now_ms,
    parse_selector,
    parse_series,
)

__all__ = [
    "AiopsError",
    "CollectError",
    "ConfigError",
    "DetectorError",
    "InputError",
    "NotifyError",
    "PermanentError",
    "RemediationError",
    "StoreError",
    "TemporaryError",
    "ActionRun",
    "ActionRunId",
    "ActionStatus",
    "Alert",
    "AlertState",
    "Anomaly",
    "Fingerprint",
    "Matcher",
    "MatchOp",
    "Sample",
    "Series",
    "fingerprint_of",
    "now_ms",
    "parse_selector",
    "parse_series",
]

__version__ = "0.1.0"
