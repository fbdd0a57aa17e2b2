"""Score replay outputs against per-row labels: point-wise and point-adjusted F1 (SMD's convention).

Labels are CSVs ``timestamp,label`` (1 = anomalous row): one file for one replay output, or a
directory in which each replay output ``a/b.csv`` finds the first of ``a/b_label.csv``, ``a/b.csv``
and ``a/test_label.csv`` (optionally ``.gz``) with a ``label`` column. Rows are matched by
timestamp; a scored row without a label counts as normal. Figures per file and overall (all
rows pooled): precision, recall and F1 of the detector's own decisions (``is_anomaly``), plain
and point-adjusted; the best point-wise and point-adjusted F1 over thresholds of
``anomaly_score`` (and the threshold); and the precision of the alarms (alarm runs overlapping
a labelled segment / all alarm runs).
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from aiops.errors import InputError

from . import pointwise as pw
from .evaluate import ScoredSeries, _parse_timestamps

__all__ = ["RowReport", "evaluate_rows", "find_row_labels", "read_row_labels", "render_rows"]


@dataclass(frozen=True, slots=True)
class RowReport:
    """Figures of one file, or of all rows pooled (``path == "ALL"``)."""

    path: str
    rows: int
    anomalous_rows: int
    precision: float
    recall: float
    f1: float
    adjusted_f1: float
    best_f1: float
    best_threshold: float | None
    best_adjusted_f1: float
    alarm_precision: float | None


def read_row_labels(path: str | Path) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """``(ts_ms, label)`` of a ``timestamp,label`` CSV.

    Raises:
        InputError: naming the file when it cannot be read or lacks the columns.
    """
    p = Path(path)
    try:
        frame = pd.read_csv(p, dtype={"timestamp": str, "label": str}, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read labels: {str(exc)[:200]}") from exc
    if "timestamp" not in frame.columns or "label" not in frame.columns:
        raise InputError(f"{p}: expected columns 'timestamp,label', got {','.join(map(str, frame.columns))}")
    lab = pd.to_numeric(frame["label"], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isin(lab, (0.0, 1.0)))
    if bad.size:
        raise InputError(f"{p} row {int(bad[0]) + 1}: label {frame['label'].iloc[int(bad[0])]!r} must be 0 or 1")
    return _parse_timestamps(frame["timestamp"], p), lab > 0


def find_row_labels(root: str | Path, key: str) -> Path | None:
    """The labels file of replay output ``key`` under a labels directory (see the module docstring).

    Only a file with a ``label`` column counts: in SMD's layout ``test.csv.gz`` beside
    ``test_label.csv.gz`` is the data the output ``test.csv`` was replayed from, not its labels.
    """
    base = Path(root)
    rel = Path(key)
    for cand in (rel.with_name(rel.stem + "_label.csv"), rel, rel.with_name("test_label.csv")):
        for p in (base / cand, base / (str(cand) + ".gz")):
            if p.is_file() and _has_label_column(p):
                return p
    return None


def _has_label_column(path: Path) -> bool:
    try:
        opened = gzip.open(path, "rt", encoding="utf-8-sig") if path.name.endswith(".gz") else \
            path.open(encoding="utf-8-sig")
        with opened as fh:
            header = fh.readline()
    except (OSError, UnicodeDecodeError, EOFError):
        return True  # unreadable: let read_row_labels name the file and the reason
    return "label" in (c.strip() for c in header.strip().split(","))


def _report(path: str, scores: npt.NDArray[np.float64], flags: npt.NDArray[np.bool_],
            labels: npt.NDArray[np.bool_]) -> RowReport:
    p, r, f1 = pw.f1_of(flags, labels)
    best, thr = pw.best_f1(scores, labels)
    return RowReport(path, int(scores.size), int(labels.sum()), p, r, f1, pw.f1_of(flags, labels, adjusted=True)[2],
                     best, thr if np.isfinite(thr) else None, pw.adjusted_best_f1(scores, labels),
                     pw.alarm_precision(flags, labels))


def evaluate_rows(scored: Mapping[str, ScoredSeries], labels: str | Path) -> list[RowReport]:
    """Per-file reports and an ``ALL`` report last.

    Raises:
        InputError: no replay output has labels.
    """
    src = Path(labels)
    reports, all_s, all_f, all_y = [], [], [], []
    for key in sorted(scored):
        lp = src if src.is_file() else find_row_labels(src, key)
        if lp is None:
            continue
        ts, lab = read_row_labels(lp)
        s = scored[key]
        order = np.argsort(ts, kind="stable")
        idx = np.searchsorted(ts[order], s.ts_ms)
        idx = np.minimum(idx, max(ts.size - 1, 0))
        y = (ts[order][idx] == s.ts_ms) & lab[order][idx] if ts.size else np.zeros(s.ts_ms.size, dtype=bool)
        reports.append(_report(key, s.scores, s.is_anomaly, y))
        all_s.append(s.scores)
        all_f.append(s.is_anomaly)
        all_y.append(y)
    if not reports:
        raise InputError(f"--labels {src}: no replay output has per-row labels there")
    reports.append(_report("ALL", np.concatenate(all_s), np.concatenate(all_f), np.concatenate(all_y)))
    return reports


def render_rows(reports: list[RowReport], title: str) -> Any:
    """A rich table of the reports."""
    from rich.table import Table

    t = Table(title=f"{title}: per-row labels (point-wise; adjusted = point adjustment)", title_justify="left")
    cols = ("file", "rows", "anomalous", "precision", "recall", "F1", "adjusted F1", "best F1", "best thr",
            "best adjusted F1", "alarm precision")
    for c in cols:
        t.add_column(c, justify="left" if c == "file" else "right")
    for r in reports:
        d = asdict(r)

        def f(v: Any) -> str:
            return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

        t.add_row(*(f(d[k]) for k in ("path", "rows", "anomalous_rows", "precision", "recall", "f1", "adjusted_f1",
                                      "best_f1", "best_threshold", "best_adjusted_f1", "alarm_precision")))
    return t
