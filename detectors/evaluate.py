"""Score replay outputs against labelled anomaly windows: precision, recall, F1, delay and NAB.

Reads the CSVs ``aiops replay`` writes (``timestamp,value,anomaly_score,is_anomaly``) and a labels
file in NAB's ``combined_windows.json`` shape (``{"relative/path.csv": [["start", "end"], ...]}``).

Definitions (all after NAB's probationary period, the first 15% of each file, at most 750 points):

- a window is *detected* when at least one point inside it is flagged; recall is detected windows
  over windows;
- a *false positive* is a flagged point outside every window; precision is detected windows over
  detected windows plus false positives (so a detector that raises one alarm per incident and stays
  quiet otherwise scores high); F1 their harmonic mean;
- the *detection delay* of a detected window is the time from its start to its first flagged point;
- the NAB score follows :mod:`detectors.nab` (standard profile unless told otherwise).

A point is flagged by the detector's own ``is_anomaly`` decision, by ``anomaly_score >= T`` for a
given threshold, or by the single threshold over the whole set that maximises the NAB score.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from aiops.errors import InputError
from aiops.logs import get_logger
from aiops.timeutil import parse_timestamp_ms
from detectors import nab

__all__ = [
    "ScoredSeries",
    "FileReport",
    "EvaluationReport",
    "load_labels",
    "read_scored_csv",
    "load_scored_dir",
    "evaluate",
    "render_report",
]

log = get_logger("detectors.evaluate")


@dataclass(frozen=True, slots=True)
class ScoredSeries:
    """One replay output: timestamps (UTC ms), scores in [0, 1] and the detector's decisions."""

    path: str
    ts_ms: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float64]
    is_anomaly: npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class FileReport:
    """Figures of one file, or of the whole set (``path == "ALL"``)."""

    path: str
    rows: int
    windows: int
    detected: int
    false_positives: int
    precision: float | None
    recall: float | None
    f1: float | None
    mean_delay_s: float | None
    nab_raw: float
    nab_score: float | None  # normalised 0 (never fires) .. 100 (perfect); None without windows


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """The result of :func:`evaluate`."""

    files: tuple[FileReport, ...]
    overall: FileReport
    profile: str
    decision: str  # "is_anomaly", "threshold" or "optimized"
    threshold: float | None
    missing: tuple[str, ...]  # labelled files without a replay output
    unlabelled: tuple[str, ...]  # replay outputs without labels (not scored)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "decision": self.decision,
            "threshold": self.threshold,
            "overall": asdict(self.overall),
            "files": [asdict(f) for f in self.files],
            "missing": list(self.missing),
            "unlabelled": list(self.unlabelled),
        }


def load_labels(path: str | Path) -> dict[str, list[tuple[int, int]]]:
    """Read a NAB-style windows file into ``{relative path: [(start_ms, end_ms), ...]}``.

    Raises:
        InputError: naming the file and the key that is malformed.
    """
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{p}: cannot read labels: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{p} line {exc.lineno}: not valid JSON: {exc.msg}") from exc
    if not isinstance(raw, dict):
        raise InputError(f"{p}: expected an object of {{\"file.csv\": [[start, end], ...]}}")
    out: dict[str, list[tuple[int, int]]] = {}
    for key, windows in raw.items():
        if not isinstance(windows, list):
            raise InputError(f"{p}: {key!r}: expected a list of [start, end] windows")
        parsed = []
        for j, w in enumerate(windows):
            if not (isinstance(w, (list, tuple)) and len(w) == 2):
                raise InputError(f"{p}: {key!r} window {j}: expected [start, end], got {w!r}")
            try:
                start, end = parse_timestamp_ms(w[0]), parse_timestamp_ms(w[1])
            except InputError as exc:
                raise InputError(f"{p}: {key!r} window {j}: {exc}") from exc
            if end < start:
                raise InputError(f"{p}: {key!r} window {j}: ends before it starts")
            parsed.append((start, end))
        out[str(key).replace("\\", "/").removeprefix("./")] = parsed  # keys as load_scored_dir writes them
    return out


def _parse_timestamps(texts: pd.Series, path: Path) -> npt.NDArray[np.int64]:
    # pandas reads '20240101' as a date where replay reads epoch seconds: numbers take the slow
    # path, so that evaluate and replay read every timestamp alike
    numeric = texts.astype(str).str.fullmatch(r"\s*\d+(\.\d*)?\s*").any()
    try:
        if numeric:
            raise ValueError("epoch timestamps")
        parsed = pd.to_datetime(texts, utc=True, format="ISO8601")
        ms: npt.NDArray[np.int64] = (parsed.astype("datetime64[ns, UTC]").astype("int64") // 1_000_000).to_numpy(
            dtype=np.int64)
        return ms
    except (ValueError, TypeError):
        pass
    out = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts.tolist()):  # slow path: find the row to name it
        try:
            out[i] = parse_timestamp_ms(str(text))
        except InputError as exc:
            raise InputError(f"{path} row {i + 1}: {exc}") from exc
    return out


def read_scored_csv(path: str | Path, key: str | None = None) -> ScoredSeries:
    """Read one replay output file.

    Raises:
        InputError: naming the file (and the row where one is at fault).
    """
    p = Path(path)
    try:
        frame = pd.read_csv(p, dtype={"timestamp": str}, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read replay output: {str(exc)[:200]}") from exc
    need = ["timestamp", "anomaly_score", "is_anomaly"]
    lacking = [c for c in need if c not in frame.columns]
    if lacking:
        raise InputError(f"{p}: not a replay output, lacks column(s) {', '.join(lacking)} "
                         f"(expected timestamp,value,anomaly_score,is_anomaly)")
    scores = pd.to_numeric(frame["anomaly_score"], errors="coerce").to_numpy(dtype=np.float64)
    flags = pd.to_numeric(frame["is_anomaly"], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(scores) | (scores < 0) | (scores > 1) | ~np.isin(flags, (0.0, 1.0)))
    if len(bad):
        i = int(bad[0])
        raise InputError(f"{p} row {i + 1}: anomaly_score {frame['anomaly_score'].iloc[i]!r} must be in [0, 1] "
                         f"and is_anomaly {frame['is_anomaly'].iloc[i]!r} 0 or 1")
    ts = _parse_timestamps(frame["timestamp"], p)
    return ScoredSeries(key or p.name, ts, scores, flags.astype(bool))


def load_scored_dir(root: str | Path) -> dict[str, ScoredSeries]:
    """Every ``*.csv`` under ``root`` (recursively), keyed by its relative POSIX path."""
    base = Path(root)
    if base.is_file():
        return {base.name: read_scored_csv(base, base.name)}
    if not base.is_dir():
        raise InputError(f"--scores {base}: no such file or directory")
    found = {}
    for p in sorted(base.rglob("*.csv")):
        key = p.relative_to(base).as_posix()
        found[key] = read_scored_csv(p, key)
    if not found:
        raise InputError(f"--scores {base}: no .csv files found")
    return found


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _file_report(f: nab.NabFile, s: ScoredSeries, flagged: npt.NDArray[np.bool_],
                 profile: nab.CostProfile) -> FileReport:
    hit = flagged & f.scorable
    detected, delays = 0, []
    for k in f.counted:
        inside = np.flatnonzero(hit & (f.window_of == k))
        if len(inside):
            detected += 1
            start_ms = int(f.ts_ms[f.windows[k][0]])
            delays.append((int(f.ts_ms[inside[0]]) - start_ms) / 1000.0)
    fps = int((hit & (f.window_of < 0)).sum())
    precision = _ratio(detected, detected + fps)
    recall = _ratio(detected, f.n_windows)
    raw = nab.raw_score(f, flagged, profile)
    return FileReport(s.path, len(s.ts_ms), f.n_windows, detected, fps, precision, recall,
                      _f1(precision, recall), float(np.mean(delays)) if delays else None, raw,
                      nab.normalised_score(raw, [f], profile))


def _f1(precision: float | None, recall: float | None) -> float | None:
    if precision is None or recall is None:
        return None
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def evaluate(scored: Mapping[str, ScoredSeries], labels: Mapping[str, Sequence[tuple[int, int]]], *,
             threshold: float | None = None, optimize_threshold: bool = False,
             profile: str = "standard") -> EvaluationReport:
    """Score replay outputs against labelled windows.

    Args:
        scored: replay outputs keyed by relative path (as the labels are).
        labels: windows per relative path, UTC ms.
        threshold: flag ``anomaly_score >= threshold`` instead of ``is_anomaly``.
        optimize_threshold: flag by the single threshold over the whole set that maximises the
            NAB score under ``profile`` (NAB's own procedure); reported in the result.
        profile: NAB cost profile: standard, reward_low_fp or reward_low_fn.

    Raises:
        InputError: an unknown profile, or no labelled file among the outputs.
    """
    if profile not in nab.PROFILES:
        raise InputError(f"--profile {profile!r}: expected one of {', '.join(nab.PROFILES)}")
    cost = nab.PROFILES[profile]
    scored = _match_single_file(scored, labels)
    keys = [k for k in sorted(scored) if k in labels]
    if not keys:
        raise InputError("no replay output matches a labelled file (keys are paths relative to --scores, "
                         f"e.g. {next(iter(labels), 'realKnownCause/nyc_taxi.csv')!r})")
    files = [nab.prepare_file(k, scored[k].ts_ms, labels[k]) for k in keys]
    decision = "is_anomaly"
    if optimize_threshold:
        threshold, _ = nab.best_threshold(files, [scored[k].scores for k in keys], cost)
        decision = "optimized"
    elif threshold is not None:
        decision = "threshold"
    flags = [scored[k].is_anomaly if threshold is None else scored[k].scores >= threshold for k in keys]
    reports = tuple(_file_report(f, scored[k], fl, cost) for f, k, fl in zip(files, keys, flags, strict=True))
    overall = _overall(reports, files, cost)
    return EvaluationReport(reports, overall, profile, decision,
                            None if threshold is None or not math.isfinite(threshold) else float(threshold),
                            tuple(sorted(set(labels) - set(scored))), tuple(sorted(set(scored) - set(labels))))


def _match_single_file(scored: Mapping[str, ScoredSeries],
                       labels: Mapping[str, Sequence[tuple[int, int]]]) -> Mapping[str, ScoredSeries]:
    """One scored file (``--scores out/nyc_taxi.csv``) takes the one labels key with its name
    (``realKnownCause/nyc_taxi.csv``): a file has no path relative to a directory to match by."""
    if len(scored) != 1:
        return scored
    (key, series), = scored.items()
    if key in labels:
        return scored
    named = [k for k in labels if k.rsplit("/", 1)[-1] == key]
    if len(named) != 1:
        return scored
    return {named[0]: replace(series, path=named[0])}


def _overall(reports: Sequence[FileReport], files: Sequence[nab.NabFile], cost: nab.CostProfile) -> FileReport:
    windows = sum(r.windows for r in reports)
    detected = sum(r.detected for r in reports)
    fps = sum(r.false_positives for r in reports)
    delays = [r.mean_delay_s * r.detected for r in reports if r.mean_delay_s is not None]
    precision, recall = _ratio(detected, detected + fps), _ratio(detected, windows)
    raw = sum(r.nab_raw for r in reports)
    return FileReport("ALL", sum(r.rows for r in reports), windows, detected, fps, precision, recall,
                      _f1(precision, recall), sum(delays) / detected if detected else None, raw,
                      nab.normalised_score(raw, files, cost))


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def render_report(report: EvaluationReport, title: str = "evaluation") -> Any:
    """A rich table: one row per file and a total row."""
    from rich.table import Table

    how = {"is_anomaly": "detector's own is_anomaly", "threshold": f"anomaly_score >= {_fmt(report.threshold, '.4g')}",
           "optimized": f"optimized threshold {_fmt(report.threshold, '.4g')}"}[report.decision]
    table = Table(title=f"{title}: {how}, NAB {report.profile} profile", title_justify="left")
    for col in ("file", "rows", "windows", "detected", "FP", "precision", "recall", "F1", "delay (s)",
                "NAB raw", "NAB score"):
        if col == "file":
            table.add_column(col, overflow="fold")
        else:
            table.add_column(col, justify="right", no_wrap=True)
    for r in (*report.files, report.overall):
        table.add_row(r.path, str(r.rows), str(r.windows), str(r.detected), str(r.false_positives),
                      _fmt(r.precision), _fmt(r.recall), _fmt(r.f1), _fmt(r.mean_delay_s, ".0f"),
                      _fmt(r.nab_raw, ".2f"), _fmt(r.nab_score, ".1f"), end_section=r is report.files[-1])
    return table
