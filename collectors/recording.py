"""Derived series recorded at scrape time: rates, ratios and histogram quantiles.

Alert rules and detectors take plain series, not PromQL, so what Prometheus users write as
``rate(x[1m])`` or ``histogram_quantile(0.95, ...)`` is recorded here from two consecutive
scrapes of the same target, like a Prometheus recording rule evaluated once per scrape:

- ``rate``: per-second increase of a counter (``vllm:generation_tokens_total`` →
  tokens/s); a counter that went down was reset, and that interval records nothing;
- ``delta_ratio``: increase of one counter over the increase of another
  (``nv_inference_count`` / ``nv_inference_exec_count`` = average batch size; queue µs per
  request); no requests in the interval records nothing;
- ``ratio``: one gauge over another, or over the sum of two (``FB_USED / (FB_USED + FB_FREE)``);
- ``quantile``: ``histogram_quantile`` over the buckets' increase since the previous scrape
  (``vllm:time_to_first_token_seconds`` → its p95 over the last interval), linear inside a
  bucket as Prometheus interpolates.

Series are joined on their labels (without ``le`` for buckets). A derived series is named by
its rule's ``record`` and keeps the source's labels. Presets for vLLM, Triton and the DCGM
exporter live in ``collectors/presets/*.yaml`` and are named on a scrape target
(``preset: [vllm]``); a target's own ``recording`` list adds rules of the same shape.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aiops.errors import ConfigError
from aiops.model import Labels, Sample, Series

__all__ = ["RecordingRule", "Recorder", "load_preset", "PRESETS", "histogram_quantile"]

PRESETS = ("vllm", "triton", "dcgm")


class RecordingRule(BaseModel):
    """One derived series (see the module docstring for the kinds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    record: str = Field(min_length=1, description="Name of the derived series.")
    kind: Literal["rate", "delta_ratio", "ratio", "quantile"]
    metric: str = Field(min_length=1, description="The source series (a histogram's base name for quantile).")
    over: str | None = Field(None, description="delta_ratio / ratio: the denominator series.")
    plus: str | None = Field(None, description="ratio: added to the denominator (used / (used + free)).")
    quantile: float | None = Field(None, gt=0, lt=1, description="quantile: which one, e.g. 0.95.")
    scale: float = Field(1.0, description="Multiplies the result (1e-6: microseconds to seconds).")

    @model_validator(mode="after")
    def _fields_of_kind(self) -> RecordingRule:
        if self.kind in ("delta_ratio", "ratio") and not self.over:
            raise ValueError(f"{self.kind} needs 'over' (the denominator)")
        if self.kind == "quantile" and self.quantile is None:
            raise ValueError("quantile needs 'quantile' (e.g. 0.95)")
        return self


def load_preset(name: str) -> list[RecordingRule]:
    """The recording rules of a packaged preset (``vllm``, ``triton``, ``dcgm``).

    Raises:
        ConfigError: unknown preset name.
    """
    if name not in PRESETS:
        raise ConfigError(f"scrape preset {name!r}: expected one of {', '.join(PRESETS)}")
    text = resources.files("collectors").joinpath("presets", f"{name}.yaml").read_text(encoding="utf-8")
    raw = yaml.safe_load(text) or {}
    try:
        return [RecordingRule.model_validate(r) for r in raw.get("recording", [])]
    except ValidationError as exc:  # a packaging bug, but say where
        raise ConfigError(f"collectors/presets/{name}.yaml: {exc}") from None


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus' ``histogram_quantile`` over cumulative ``(le, count)`` buckets.

    Examples:
        >>> round(histogram_quantile(0.5, [(0.1, 0), (0.2, 10), (float("inf"), 10)]), 6)
        0.15
    """
    bs = sorted(buckets)
    if len(bs) < 2 or not math.isinf(bs[-1][0]):
        return math.nan
    total = bs[-1][1]
    if total <= 0:
        return math.nan
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in bs:
        if count >= rank:
            if math.isinf(le):
                return prev_le  # in the +Inf bucket: the highest finite bound, as Prometheus does
            if count == prev_count:
                return le
            lower = prev_le if prev_le > 0 or le <= 0 else 0.0
            return lower + (le - lower) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return bs[-2][0]


@dataclass(slots=True)
class _Snapshot:
    ts_ms: int
    values: dict[tuple[str, Labels], float]


def _without(labels: Labels, drop: str) -> Labels:
    return tuple(kv for kv in labels if kv[0] != drop)


class Recorder:
    """Derives the rules' series from consecutive scrapes of one target.

    Args:
        rules: the recording rules (presets expanded).

    Examples:
        >>> r = Recorder([RecordingRule(record="tok_per_s", kind="rate", metric="tok_total")])
        >>> s = Series.of("tok_total", {"pod": "a"})
        >>> r.derive([Sample(s, 0, 100.0)]), [x.value for x in r.derive([Sample(s, 10_000, 150.0)])]
        ([], [5.0])
    """

    def __init__(self, rules: Iterable[RecordingRule]) -> None:
        self.rules = list(rules)
        self._names = {r.metric for r in self.rules} | {r.over for r in self.rules if r.over} | {
            r.plus for r in self.rules if r.plus} | {f"{r.metric}_bucket" for r in self.rules if r.kind == "quantile"}
        self._prev: _Snapshot | None = None

    def derive(self, samples: Sequence[Sample]) -> list[Sample]:
        """The derived samples for this scrape (timestamped like the scrape)."""
        if not self.rules or not len(samples):
            return []
        # imported here, not at the top: settings import this module, and fast CLIs need no numpy
        from aiops.columns import SampleColumns

        names = self._names
        if isinstance(samples, SampleColumns):  # the scrape path: no Sample object per series
            rows: Iterable[tuple[Series, int, float]] = (
                (s, int(t), float(v)) for s, t, v in zip(samples.series, samples.ts_ms, samples.values, strict=True)
                if s.name in names)
        else:
            rows = ((s.series, s.ts_ms, float(s.value)) for s in samples if s.series.name in names)
        kept = [r for r in rows if math.isfinite(r[2])]
        if not kept:
            return []
        now = max(t for _, t, _ in kept)
        cur = _Snapshot(now, {(s.name, s.labels): v for s, _, v in kept})
        prev, self._prev = self._prev, cur
        out: list[Sample] = []
        for rule in self.rules:
            if rule.kind == "ratio":
                out.extend(self._ratio(rule, cur))
            elif prev is not None and cur.ts_ms > prev.ts_ms:
                if rule.kind == "rate":
                    out.extend(self._rate(rule, prev, cur))
                elif rule.kind == "delta_ratio":
                    out.extend(self._delta_ratio(rule, prev, cur))
                else:
                    out.extend(self._quantile(rule, prev, cur))
        return out

    @staticmethod
    def _of(snap: _Snapshot, name: str) -> dict[Labels, float]:
        return {labels: v for (n, labels), v in snap.values.items() if n == name}

    def _increase(self, name: str, prev: _Snapshot, cur: _Snapshot) -> dict[Labels, float]:
        before = self._of(prev, name)
        out: dict[Labels, float] = {}
        for labels, v in self._of(cur, name).items():
            old = before.get(labels)
            if old is not None and v >= old:  # a counter going down was reset: no figure this time
                out[labels] = v - old
        return out

    def _rate(self, rule: RecordingRule, prev: _Snapshot, cur: _Snapshot) -> list[Sample]:
        dt_s = (cur.ts_ms - prev.ts_ms) / 1000
        return [Sample(Series(rule.record, labels), cur.ts_ms, d / dt_s * rule.scale)
                for labels, d in self._increase(rule.metric, prev, cur).items()]

    def _delta_ratio(self, rule: RecordingRule, prev: _Snapshot, cur: _Snapshot) -> list[Sample]:
        num = self._increase(rule.metric, prev, cur)
        den = self._increase(str(rule.over), prev, cur)
        return [Sample(Series(rule.record, labels), cur.ts_ms, n / den[labels] * rule.scale)
                for labels, n in num.items() if den.get(labels, 0.0) > 0]

    def _ratio(self, rule: RecordingRule, cur: _Snapshot) -> list[Sample]:
        den = self._of(cur, str(rule.over))
        plus = self._of(cur, rule.plus) if rule.plus else {}
        out = []
        for labels, n in self._of(cur, rule.metric).items():
            if labels not in den or (rule.plus and labels not in plus):
                continue
            d = den[labels] + plus.get(labels, 0.0)
            if d > 0:
                out.append(Sample(Series(rule.record, labels), cur.ts_ms, n / d * rule.scale))
        return out

    def _quantile(self, rule: RecordingRule, prev: _Snapshot, cur: _Snapshot) -> list[Sample]:
        groups: dict[Labels, list[tuple[float, float]]] = {}
        for labels, d in self._increase(f"{rule.metric}_bucket", prev, cur).items():
            le = dict(labels).get("le")
            try:
                bound = float(le) if le is not None else math.nan
            except ValueError:
                continue
            if not math.isnan(bound):
                groups.setdefault(_without(labels, "le"), []).append((bound, d))
        out = []
        for labels, buckets in groups.items():
            v = histogram_quantile(float(rule.quantile or 0.5), buckets)
            if not math.isnan(v):
                out.append(Sample(Series(rule.record, labels), cur.ts_ms, v * rule.scale))
        return out


def build_recorder(presets: Sequence[str], rules: Sequence[Mapping[str, Any] | RecordingRule]) -> Recorder | None:
    """A recorder for a target's presets plus its own rules, or None when it has neither."""
    expanded: list[RecordingRule] = []
    for name in presets:
        expanded.extend(load_preset(name))
    for r in rules:
        expanded.append(r if isinstance(r, RecordingRule) else RecordingRule.model_validate(r))
    return Recorder(expanded) if expanded else None
