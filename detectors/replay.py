"""Replay history through a detector: what the live agent would have flagged, point by point.

The input is a CSV with a ``timestamp`` column (ISO-8601 or ``YYYY-MM-DD HH:MM:SS``, no zone
meaning UTC) and value columns: ``timestamp,value`` (one series; other columns are ignored), or
``timestamp`` and any number of other columns (``timestamp,cpu,mem,...``: one host's metrics,
every column a value); or a directory searched recursively for such files, or series read from
the store or a Prometheus server (:mod:`detectors.sources`). Each output CSV has
``timestamp,<value columns>,anomaly_score,is_anomaly,warm,score_<column>...``: one row per input
row, in input order, the timestamp and values written as they were read, the score in [0, 1],
the detector's own decision, whether the detector was warm (1) or still in its warm-up (0), and
per value column its own score (the column's contribution: see :mod:`detectors.multi`).

``train`` (``--train``): a file (or a directory mirroring ``--input``) of history with the same
columns that each fresh detector is fitted on before it scores the input. Parameters given as
durations (``window=6h``) are converted to points with the series' median sampling interval.

Scores come from one fresh detector per file (per column for a univariate detector on several
columns), fed in file order: the batch ``detect`` path, which the detector protocol guarantees
equal to point-by-point ``update`` in the live agent.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from aiops.detector import Detector
from aiops.errors import DetectorError, InputError
from aiops.logs import get_logger
from aiops.timeutil import parse_timestamp_ms

__all__ = [
    "InputSeries",
    "median_interval_s",
    "output_columns",
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
    "output_name",
]

log = get_logger("detectors.replay")

OUTPUT_COLUMNS = ("timestamp", "value", "anomaly_score", "is_anomaly")  # the first columns of a one-series file
_CHUNK = 2048  # points per score() call when a progress bar follows one long file


@dataclass(frozen=True, slots=True)
class InputSeries:
    """One input file: timestamps and values as read, and their parsed forms.

    ``values`` is the first value column (n,); ``matrix`` every value column (n, k).
    """

    path: str
    timestamps: list[str]
    value_texts: list[str]
    ts_ms: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    columns: tuple[str, ...] = ("value",)
    texts: tuple[list[str], ...] = ()
    matrix: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 1)))

    @property
    def interval_s(self) -> float | None:
        """The median step between timestamps in seconds (None with fewer than two rows)."""
        return median_interval_s(self.ts_ms)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What one replayed series produced."""

    input: str
    output: str
    rows: int
    anomalies: int
    duration_s: float
    warnings: tuple[str, ...] = ()


def median_interval_s(ts_ms: npt.NDArray[np.int64]) -> float | None:
    """Median positive step of ``ts_ms`` in seconds; None when there is none."""
    d = np.diff(np.asarray(ts_ms, dtype=np.int64))
    d = d[d > 0]
    return float(np.median(d)) / 1000.0 if d.size else None


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
    """Read a ``timestamp,value`` CSV (other columns ignored) or a ``timestamp,<col>,<col>...`` CSV
    (``.csv.gz`` too).

    Raises:
        InputError: naming the file and the row (1 = first data row) at fault.
    """
    p = Path(path)
    label = name or str(p)
    try:
        opened = (gzip.open(p, "rt", newline="", encoding="utf-8-sig") if p.name.endswith(".gz")
                  else p.open(newline="", encoding="utf-8-sig"))
        with opened as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise InputError(f"{label}: cannot read: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, csv.Error, EOFError) as exc:
        raise InputError(f"{label}: not a text CSV file: {str(exc)[:120]}") from exc
    if not rows:
        raise InputError(f"{label}: empty file, expected a header 'timestamp,value'")
    header = [h.strip() for h in rows[0]]
    lower = [h.lower() for h in header]
    if "timestamp" not in lower or len(header) < 2:
        raise InputError(f"{label} row 0 (header): expected columns 'timestamp,value' (or 'timestamp' and "
                         f"several value columns), got {','.join(rows[0])!r}")
    if lower.count("timestamp") > 1:
        raise InputError(f"{label} row 0 (header): column 'timestamp' appears twice in {','.join(rows[0])!r}")
    ti = lower.index("timestamp")
    vis = [lower.index("value")] if "value" in lower else [i for i in range(len(header)) if i != ti]
    # 'Value' is the one-series form too; its output column is spelled as the contract says
    names = ("value",) if "value" in lower else tuple(header[i] for i in vis)
    if len(set(names)) != len(names):
        raise InputError(f"{label} row 0 (header): duplicate column names in {','.join(rows[0])!r}")
    out_cols = output_columns(names)
    clash = next((c for c in names if out_cols.count(c) > 1), None)
    if clash is not None:
        raise InputError(f"{label} row 0 (header): column {clash!r} would clash with an output column of the "
                         "same name (anomaly_score, is_anomaly, warm, score_<column>); rename it")
    need = max([ti, *vis]) + 1
    # (line number, fields) of each data row; blank lines are no rows (a trailing newline too many)
    body = [(i + 2, row) for i, row in enumerate(rows[1:]) if any(c.strip() for c in row)]
    n = len(body)
    k = len(vis)
    timestamps: list[str] = []
    texts: tuple[list[str], ...] = tuple([] for _ in vis)
    ts_ms = np.empty(n, dtype=np.int64)
    matrix = np.empty((n, k), dtype=np.float64)
    for i, (line, row) in enumerate(body):
        if len(row) < need:
            raise InputError(f"{label} row {i + 1} (line {line}): expected {len(header)} fields, got {len(row)}")
        t = row[ti]
        try:
            ts_ms[i] = parse_timestamp_ms(t)
        except InputError:
            raise InputError(f"{label} row {i + 1} (line {line}): timestamp {t!r} is not ISO-8601, "
                             "'YYYY-MM-DD HH:MM:SS' or epoch seconds") from None
        for j, vi in enumerate(vis):
            v = row[vi]
            try:
                matrix[i, j] = _value_of(v)
            except ValueError:
                col = "" if k == 1 else f" in column {names[j]!r}"
                raise InputError(f"{label} row {i + 1} (line {line}): value {v!r}{col} is not a number") from None
            texts[j].append(v)
        timestamps.append(t)
    return InputSeries(label, timestamps, texts[0], ts_ms, matrix[:, 0].copy(), names, texts, matrix)


def score_series(detector: Detector, values: npt.NDArray[np.float64],
                 progress: Callable[[int], None] | None = None
                 ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Scores in [0, 1] and the detector's decisions for ``values``, in order.

    With ``progress``, the values go through ``score`` in chunks (the protocol's ``score``
    advances the state, so chunks give the same scores as one call) and ``progress(n)`` is
    told after each chunk.
    """
    detect = getattr(detector, "detect", None)

    def run(part: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        if detect is not None:  # our detectors: decisions after the refractory
            s, f = detect(part)
            return np.asarray(s, dtype=np.float64), np.asarray(f, dtype=bool)
        s = np.asarray(detector.score(part), dtype=np.float64)
        return s, s >= detector.threshold

    if progress is None or len(values) <= _CHUNK:
        scores, flags = run(values)
        if progress is not None:
            progress(len(values))
    else:
        parts = []
        for i in range(0, len(values), _CHUNK):
            parts.append(run(values[i:i + _CHUNK]))
            progress(len(parts[-1][0]))
        scores = np.concatenate([q[0] for q in parts])
        flags = np.concatenate([q[1] for q in parts])
    if scores.shape != values.shape:
        raise DetectorError(f"detector {detector.name!r} returned {scores.shape} scores for {values.shape} values")
    # The protocol promises [0, 1]; guard the file format against a detector that slips.
    scores = np.clip(np.nan_to_num(scores, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    return scores, flags


def output_columns(columns: Sequence[str]) -> list[str]:
    """The header of an output file for input value ``columns``."""
    return ["timestamp", *columns, "anomaly_score", "is_anomaly", "warm", *(f"score_{c}" for c in columns)]


def write_output(path: str | Path, timestamps: Sequence[str], value_texts: Sequence[str],
                 scores: npt.NDArray[np.float64], flags: npt.NDArray[np.bool_], *,
                 columns: Sequence[str] = ("value",), texts: Sequence[Sequence[str]] | None = None,
                 warm: npt.NDArray[np.bool_] | None = None,
                 column_scores: npt.NDArray[np.float64] | None = None) -> None:
    """Write the output rows (see the module docstring), atomically: temp file, then rename.

    Raises:
        InputError: the file cannot be written (naming it); nothing is left behind.
    """
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    n = len(timestamps)
    cols_texts = list(texts) if texts is not None else [list(value_texts)]
    warm_col = (np.ones(n, dtype=np.int8) if warm is None else warm.astype(np.int8)).tolist()
    per = column_scores if column_scores is not None else scores.reshape(-1, 1)
    per_cols = [list(map(repr, np.clip(np.nan_to_num(per[:, j]), 0.0, 1.0).tolist())) for j in range(per.shape[1])]
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        # an output named .gz is compressed, as its name says (pandas and evaluate read it so)
        opened = (gzip.open(tmp, "wt", newline="", encoding="utf-8") if p.name.endswith(".gz")
                  else tmp.open("w", newline="", encoding="utf-8"))
        with opened as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(output_columns(columns))
            w.writerows(zip(timestamps, *cols_texts, map(repr, scores.tolist()), flags.astype(np.int8).tolist(),
                            warm_col, *per_cols, strict=True))
        tmp.replace(p)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise InputError(f"--output {p}: cannot write: {exc.strerror or exc}") from exc


def _warm(finite: npt.NDArray[np.bool_], before: int, warmup: int) -> npt.NDArray[np.bool_]:
    """Per row: had the detector learned ``warmup`` finite points before it (``before`` from training)?"""
    seen_before = before + np.concatenate([[0], np.cumsum(finite)[:-1]]) if finite.size else np.zeros(0)
    out: npt.NDArray[np.bool_] = seen_before >= warmup
    return out


def _order_warnings(series: InputSeries) -> tuple[str, ...]:
    """A warning when timestamps do not increase: rows are replayed in file order all the same."""
    steps = np.diff(series.ts_ms)
    bad = np.flatnonzero(steps <= 0)
    if not bad.size:
        return ()
    i = int(bad[0]) + 1
    how = "repeats" if steps[i - 1] == 0 else "goes back"
    log.warning("replay_timestamps_not_increasing", series=series.path, row=i + 1, rows=int(bad.size))
    return (f"{series.path} row {i + 1}: timestamp {series.timestamps[i]!r} {how} ({bad.size} such rows); "
            "rows are replayed in file order",)


def replay_file(input_path: str | Path, output_path: str | Path, detector: str, params: dict[str, Any] | None = None,
                threshold: float | None = None, name: str | None = None,
                progress: Callable[[int], None] | None = None,
                train_path: str | Path | None = None) -> ReplayResult:
    """Replay one CSV through a fresh detector (fitted on ``train_path`` first) and write its output CSV."""
    from detectors.multi import ColumnSet
    from detectors.params import resolve_durations
    from detectors.registry import get

    started = time.perf_counter()
    series = read_input_csv(input_path, name)
    train = read_input_csv(train_path) if train_path is not None else None
    if train is not None and train.columns != series.columns:
        if sorted(train.columns) != sorted(series.columns):
            raise InputError(f"--train {train.path}: columns {','.join(train.columns)} differ from "
                             f"{series.path}'s {','.join(series.columns)}")
        # the same columns in another order: fit each column's detector on its own column
        train = replace(train, matrix=train.matrix[:, [train.columns.index(c) for c in series.columns]],
                        columns=series.columns)
    steps = np.concatenate([train.ts_ms, series.ts_ms]) if train is not None else series.ts_ms
    try:
        resolved = resolve_durations(get(detector), dict(params or {}), median_interval_s(steps))
    except (DetectorError, InputError) as exc:  # e.g. window=6h on a file of one row: name the file
        raise type(exc)(f"{series.path}: {exc}") from exc
    cset = ColumnSet(lambda: make_detector(detector, resolved, threshold), len(series.columns))
    before = 0
    if train is not None:
        cset.fit(train.matrix)
        before = int(np.isfinite(train.matrix).all(axis=1).sum())
    parts = []
    step = _CHUNK if progress is not None else max(series.matrix.shape[0], 1)
    for lo in range(0, max(series.matrix.shape[0], 1), step):
        parts.append(cset.detect(series.matrix[lo: lo + step]))
        if progress is not None:
            progress(parts[-1][0].shape[0])
    scores = np.concatenate([q[0] for q in parts])
    flags = np.concatenate([q[1] for q in parts])
    per = np.concatenate([q[2] for q in parts])
    scores = np.clip(np.nan_to_num(scores, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    warm = _warm(np.asarray(np.isfinite(series.matrix).all(axis=1), dtype=bool), before, cset.warmup_points)
    warnings: tuple[str, ...] = _order_warnings(series)
    if series.matrix.shape[0] and not warm[-1]:
        warnings += (f"{series.path}: {series.matrix.shape[0]} rows, fewer than the detector's warm-up of "
                    f"{cset.warmup_points} points: every row scored 0 (give --train history)",)
        log.warning("replay_shorter_than_warmup", series=series.path, detector=detector,
                    rows=int(series.matrix.shape[0]), warmup_points=cset.warmup_points)
    write_output(output_path, series.timestamps, series.value_texts, scores, flags, columns=series.columns,
                 texts=series.texts, warm=warm, column_scores=per)
    return ReplayResult(series.path, str(output_path), len(scores), int(flags.sum()), time.perf_counter() - started,
                        warnings)


def worker_init() -> None:
    """Initializer of replay worker processes: one thread each (torch/BLAS would oversubscribe)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _replay_job(args: tuple[Path, Path, str, dict[str, Any], float | None, str, Path | None]) -> ReplayResult:
    src, dst, detector, params, threshold, name, train = args
    return replay_file(src, dst, detector, params, threshold, name, train_path=train)


def output_name(input_name: str) -> str:
    """The output file name of an input file: ``x.csv.gz`` is written as plain ``x.csv``."""
    return input_name[:-3] if input_name.endswith(".csv.gz") else input_name


def _move_into(staged: Path, stage: Path, dst: Path) -> Path:
    target = dst / staged.relative_to(stage)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged.replace(target)
    return target


def list_inputs(input_path: str | Path) -> list[Path]:
    """The CSV files under a directory (sorted, recursively), or the file itself."""
    p = Path(input_path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise InputError(f"--input {p}: no such file or directory")
    found = sorted(q for q in p.rglob("*.csv") if q.is_file())
    if not found:
        gz = next((q for q in sorted(p.rglob("*.csv.gz")) if q.is_file()), None)
        hint = f"; a .csv.gz is read when named as --input FILE, e.g. --input {gz}" if gz is not None else ""
        raise InputError(f"--input {p}: no .csv files found (searched recursively){hint}")
    return found


def _train_for(train_path: str | Path | None, src: Path, f: Path) -> Path | None:
    if train_path is None:
        return None
    t = Path(train_path)
    if t.is_file():
        return t
    mirrored = t / f.relative_to(src)
    if not mirrored.is_file():
        raise InputError(f"--train {t}: lacks {f.relative_to(src).as_posix()} (it must mirror --input {src})")
    return mirrored


@contextmanager
def progress_bar(total: int, description: str, disable: bool | None,
                 transient: bool = False) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n)``. ``disable=None``: only on a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if disable is None:
        disable = not console.is_terminal
    if disable:
        yield lambda n: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=transient) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def replay_path(input_path: str | Path, output_path: str | Path, detector: str, params: dict[str, Any] | None = None,
                threshold: float | None = None, workers: int = 2,
                show_progress: bool | None = None, train_path: str | Path | None = None) -> list[ReplayResult]:
    """Replay a file, or every CSV under a directory into a mirrored output directory.

    Args:
        input_path: a CSV file or a directory searched recursively.
        output_path: for a file input, the output file (or an existing directory to write
            into); for a directory, the output directory (relative paths mirrored).
        detector: registry name; ``params`` its constructor parameters; ``threshold``
            overrides its own threshold.
        workers: processes for a directory (one file per task).
        train_path: history to fit each detector on first: a file (for a file input, or for
            every file of a directory) or a directory mirroring ``input_path``.
        show_progress: progress bar on stderr; ``None``: only when stderr is a terminal.

    Raises:
        InputError: naming the first bad file and row. DetectorError: bad name or parameters.
    """
    src = Path(input_path)
    dst = Path(output_path)
    params = dict(params or {})
    from detectors.params import resolve_durations
    from detectors.registry import get

    # fail fast on a bad name or parameter, before any work (durations at any interval will do)
    make_detector(detector, resolve_durations(get(detector), params, 60.0), threshold)
    disable = None if show_progress is None else not show_progress
    if src.is_file():
        out = dst / output_name(src.name) if dst.is_dir() else dst
        if out.resolve() == src.resolve():
            raise InputError(f"--output {out}: is the input file; write the scores elsewhere")
        with src.open("rb") as fh:
            n_rows = sum(1 for _ in fh) - 1
        with progress_bar(max(n_rows, 0), src.name, disable, transient=True) as advance:
            train = Path(train_path) if train_path is not None else None
            if train is not None and train.is_dir():
                train = train / src.name
            if train is not None and not train.is_file():
                raise InputError(f"--train {train}: no such file")
            return [replay_file(src, out, detector, params, threshold, str(src), advance, train)]
    files = list_inputs(src)
    if dst.exists() and not dst.is_dir():
        raise InputError(f"--output {dst}: is a file; a directory input needs an output directory")
    if dst.resolve().is_relative_to(src.resolve()):
        raise InputError(f"--output {dst}: lies inside --input {src}; the next replay would read its outputs as input")
    # Outputs go to a staging directory beside --output and move into place only when every file
    # replayed: a bad file fails the run without leaving a half-written set that looks complete.
    stage = dst.parent / f".{dst.name}.replay-{os.getpid()}"
    try:
        stage.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--output {dst}: cannot write: {exc.strerror or exc}") from exc
    jobs = [(f, stage / f.relative_to(src), detector, params, threshold, str(f), _train_for(train_path, src, f))
            for f in files]
    results: list[ReplayResult] = []
    try:
        with progress_bar(len(jobs), f"replay {detector}", disable) as advance:
            if workers <= 1 or len(jobs) == 1:
                for job in jobs:
                    results.append(_replay_job(job))
                    advance(1)
            else:
                # Longest files first, so the last worker does not run alone on a big file.
                jobs.sort(key=lambda j: -j[0].stat().st_size)
                with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), initializer=worker_init) as pool:
                    for res in pool.map(_replay_job, jobs):
                        results.append(res)
                        advance(1)
        results = [replace(r, output=str(_move_into(Path(r.output), stage, dst))) for r in results]
    except OSError as exc:
        raise InputError(f"--output {dst}: cannot write: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return sorted(results, key=lambda r: r.input)
