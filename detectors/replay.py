"""Replay history through a detector: what the live agent would have flagged, point by point.

The input is a CSV with a ``timestamp,value`` header (timestamps ISO-8601 or
``YYYY-MM-DD HH:MM:SS``, no zone meaning UTC), a directory searched recursively for such files,
or series read from the store or a Prometheus server (:mod:`detectors.sources`). Each output CSV
has ``timestamp,value,anomaly_score,is_anomaly``: one row per input row, in input order, the
timestamp and value written as they were read, the score in [0, 1] and the detector's own
decision (``score >= threshold``).

Scores come from one fresh detector per file, fed in file order: the batch ``score`` path,
which the detector protocol guarantees equal to point-by-point ``update`` in the live agent.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from aiops.detector import Detector
from aiops.errors import DetectorError, InputError
from aiops.logs import get_logger
from aiops.timeutil import parse_time_ms

__all__ = [
    "InputSeries",
    "ReplayResult",
    "parse_params",
    "make_detector",
    "read_input_csv",
    "score_series",
    "write_output",
    "replay_file",
    "replay_path",
    "OUTPUT_COLUMNS",
    "list_inputs",
    "worker_init",
]

log = get_logger("detectors.replay")

OUTPUT_COLUMNS = ("timestamp", "value", "anomaly_score", "is_anomaly")
_CHUNK = 2048  # points per score() call when a progress bar follows one long file


@dataclass(frozen=True, slots=True)
class InputSeries:
    """One input series: timestamps and values as read, and their parsed forms."""

    path: str
    timestamps: list[str]
    value_texts: list[str]
    ts_ms: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What one replayed series produced."""

    input: str
    output: str
    rows: int
    anomalies: int
    duration_s: float


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs to keyword arguments; values are JSON where they parse, else strings.

    Examples:
        >>> parse_params(["window=30", "robust=true", "mode=max", "members=[\\"zscore\\"]"])
        {'window': 30, 'robust': True, 'mode': 'max', 'members': ['zscore']}

    Raises:
        InputError: a pair without ``=``.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--param {pair!r}: expected KEY=VALUE, e.g. window=30")
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out


def make_detector(name: str, params: dict[str, Any] | None = None, threshold: float | None = None) -> Detector:
    """A fresh detector from the registry; ``threshold`` overrides its own.

    Raises:
        DetectorError: unknown name or bad parameters (from the registry).
    """
    from detectors import registry

    detector = registry.create(name, **(params or {}))
    if threshold is not None:
        if not 0.0 <= threshold <= 1.0:
            raise DetectorError(f"threshold must be in [0, 1], got: {threshold}")
        detector.threshold = float(threshold)
    return detector


def _value_of(text: str) -> float:
    s = text.strip()
    if s == "" or s.lower() in ("nan", "null", "none"):
        return math.nan  # a missing value is a legal NaN sample, not a broken file
    return float(s)


def read_input_csv(path: str | Path, name: str | None = None) -> InputSeries:
    """Read a ``timestamp,value`` CSV; other columns are ignored.

    Raises:
        InputError: naming the file and the row (1 = first data row) at fault.
    """
    p = Path(path)
    label = name or str(p)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise InputError(f"{label}: cannot read: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{label}: not a text CSV file: {str(exc)[:120]}") from exc
    if not rows:
        raise InputError(f"{label}: empty file, expected a header 'timestamp,value'")
    header = [h.strip().lower() for h in rows[0]]
    if "timestamp" not in header or "value" not in header:
        raise InputError(f"{label} row 0 (header): expected columns 'timestamp,value', got {','.join(rows[0])!r}")
    ti, vi = header.index("timestamp"), header.index("value")
    need = max(ti, vi) + 1
    n = len(rows) - 1
    timestamps: list[str] = []
    value_texts: list[str] = []
    ts_ms = np.empty(n, dtype=np.int64)
    values = np.empty(n, dtype=np.float64)
    for i, row in enumerate(rows[1:]):
        if len(row) < need:
            raise InputError(f"{label} row {i + 1} (line {i + 2}): expected {len(header)} fields, got {len(row)}")
        t, v = row[ti], row[vi]
        try:
            ts_ms[i] = parse_time_ms(t)
        except InputError:
            raise InputError(f"{label} row {i + 1} (line {i + 2}): timestamp {t!r} is not ISO-8601 "
                             "or 'YYYY-MM-DD HH:MM:SS'") from None
        try:
            values[i] = _value_of(v)
        except ValueError:
            raise InputError(f"{label} row {i + 1} (line {i + 2}): value {v!r} is not a number") from None
        timestamps.append(t)
        value_texts.append(v)
    return InputSeries(label, timestamps, value_texts, ts_ms, values)


def score_series(detector: Detector, values: npt.NDArray[np.float64],
                 progress: Callable[[int], None] | None = None
                 ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Scores in [0, 1] and the detector's decisions for ``values``, in order.

    With ``progress``, the values go through ``score`` in chunks (the protocol's ``score``
    advances the state, so chunks give the same scores as one call) and ``progress(n)`` is
    told after each chunk.
    """
    if progress is None or len(values) <= _CHUNK:
        scores = np.asarray(detector.score(values), dtype=np.float64)
        if progress is not None:
            progress(len(values))
    else:
        parts = []
        for i in range(0, len(values), _CHUNK):
            parts.append(np.asarray(detector.score(values[i:i + _CHUNK]), dtype=np.float64))
            progress(len(parts[-1]))
        scores = np.concatenate(parts)
    if scores.shape != values.shape:
        raise DetectorError(f"detector {detector.name!r} returned {scores.shape} scores for {values.shape} values")
    # The protocol promises [0, 1]; guard the file format against a detector that slips.
    scores = np.clip(np.nan_to_num(scores, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    return scores, scores >= detector.threshold


def write_output(path: str | Path, timestamps: Sequence[str], value_texts: Sequence[str],
                 scores: npt.NDArray[np.float64], flags: npt.NDArray[np.bool_]) -> None:
    """Write ``timestamp,value,anomaly_score,is_anomaly`` rows (atomically: temp file, rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(OUTPUT_COLUMNS)
        w.writerows(zip(timestamps, value_texts, map(repr, scores.tolist()),
                        flags.astype(np.int8).tolist(), strict=True))
    tmp.replace(p)


def replay_file(input_path: str | Path, output_path: str | Path, detector: str, params: dict[str, Any] | None = None,
                threshold: float | None = None, name: str | None = None,
                progress: Callable[[int], None] | None = None) -> ReplayResult:
    """Replay one CSV through a fresh detector and write its output CSV."""
    started = time.perf_counter()
    series = read_input_csv(input_path, name)
    det = make_detector(detector, params, threshold)
    scores, flags = score_series(det, series.values, progress)
    write_output(output_path, series.timestamps, series.value_texts, scores, flags)
    return ReplayResult(series.path, str(output_path), len(scores), int(flags.sum()), time.perf_counter() - started)


def worker_init() -> None:
    """Initializer of replay worker processes: one thread each (torch/BLAS would oversubscribe)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _replay_job(args: tuple[Path, Path, str, dict[str, Any], float | None, str]) -> ReplayResult:
    src, dst, detector, params, threshold, name = args
    return replay_file(src, dst, detector, params, threshold, name)


def list_inputs(input_path: str | Path) -> list[Path]:
    """The CSV files under a directory (sorted, recursively), or the file itself."""
    p = Path(input_path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise InputError(f"--input {p}: no such file or directory")
    found = sorted(q for q in p.rglob("*.csv") if q.is_file())
    if not found:
        raise InputError(f"--input {p}: no .csv files found (searched recursively)")
    return found


def replay_path(input_path: str | Path, output_path: str | Path, detector: str, params: dict[str, Any] | None = None,
                threshold: float | None = None, workers: int = 2,
                show_progress: bool | None = None) -> list[ReplayResult]:
    """Replay a file, or every CSV under a directory into a mirrored output directory.

    Args:
        input_path: a CSV file or a directory searched recursively.
        output_path: for a file input, the output file (or an existing directory to write
            into); for a directory, the output directory (relative paths mirrored).
        detector: registry name; ``params`` its constructor parameters; ``threshold``
            overrides its own threshold.
        workers: processes for a directory (one file per task).
        show_progress: progress bar on stderr; ``None``: only when stderr is a terminal.

    Raises:
        InputError: naming the first bad file and row. DetectorError: bad name or parameters.
    """
    from tqdm import tqdm

    src = Path(input_path)
    dst = Path(output_path)
    params = dict(params or {})
    make_detector(detector, params, threshold)  # fail fast on a bad name or parameter, before any work
    disable = None if show_progress is None else not show_progress
    if src.is_file():
        out = dst / src.name if dst.is_dir() else dst
        if out.resolve() == src.resolve():
            raise InputError(f"--output {out}: is the input file; write the scores elsewhere")
        with src.open("rb") as fh:
            n_rows = sum(1 for _ in fh) - 1
        with tqdm(total=max(n_rows, 0), unit="pt", desc=src.name, file=sys.stderr, disable=disable,
                  leave=False) as bar:
            return [replay_file(src, out, detector, params, threshold, str(src), bar.update)]
    files = list_inputs(src)
    if dst.exists() and not dst.is_dir():
        raise InputError(f"--output {dst}: is a file; a directory input needs an output directory")
    if dst.resolve().is_relative_to(src.resolve()):
        raise InputError(f"--output {dst}: lies inside --input {src}; the next replay would read its outputs as input")
    jobs = [(f, dst / f.relative_to(src), detector, params, threshold, str(f)) for f in files]
    results: list[ReplayResult] = []
    with tqdm(total=len(jobs), unit="file", desc=f"replay {detector}", file=sys.stderr, disable=disable) as bar:
        if workers <= 1 or len(jobs) == 1:
            for job in jobs:
                results.append(_replay_job(job))
                bar.update(1)
        else:
            # Longest files first, so the last worker does not run alone on a big file.
            jobs.sort(key=lambda j: -j[0].stat().st_size)
            with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), initializer=worker_init) as pool:
                for res in pool.map(_replay_job, jobs):
                    results.append(res)
                    bar.update(1)
    return sorted(results, key=lambda r: r.input)
