"""Parameter sweeps over labelled history: which settings (and threshold) catch the incidents best.

``aiops tune`` replays every labelled file through a detector once per parameter combination
(a full grid, or ``N`` combinations drawn at random from it), scores each combination over the
whole set (the NAB standard score at its best single threshold, as NAB optimises, or the best
window-level F1), and prints the winner as a YAML snippet for the config's ``detect`` section.

Examples:
    >>> parse_grid(["window=30,60", "robust=true,false"])
    {'window': [30, 60], 'robust': [True, False]}
    >>> parse_grid(['members=[["zscore"], ["zscore", "seasonal"]]'])
    {'members': [['zscore'], ['zscore', 'seasonal']]}
    >>> len(combinations({"window": [30, 60], "robust": [True, False]}))
    4
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from aiops.errors import AiopsError, InputError
from detectors import nab
from detectors.evaluate import load_labels
from detectors.replay import list_inputs, make_detector, parse_params, read_input_csv, worker_init

__all__ = ["TuneResult", "parse_grid", "combinations", "tune", "yaml_snippet", "METRICS"]

METRICS = ("nab", "f1")


@dataclass(frozen=True, slots=True)
class TuneResult:
    """One parameter combination's figures over the whole labelled set."""

    params: dict[str, Any]
    metric: float  # the value the sweep ranks by
    threshold: float | None  # the threshold at which the metric was reached
    nab_score: float | None = None
    f1: float | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``key=v1,v2,...`` items to ``{key: [values]}``; each value parsed as JSON where it can be.

    A JSON array (``key=[v1, v2]``) gives the values directly, so values that hold commas
    themselves (lists, objects: ensemble ``members``) can be swept too.

    Raises:
        InputError: an item without ``=`` or without values.
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise InputError(f"--grid {item!r}: expected key=v1,v2,... e.g. window=30,60,120")
        whole = parse_params([f"v={text.strip()}"])["v"]
        if isinstance(whole, list):
            grid[key.strip()] = whole
        else:
            grid[key.strip()] = [parse_params([f"v={v.strip()}"])["v"] for v in text.split(",")]
    return grid


def combinations(grid: Mapping[str, Sequence[Any]], random_n: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """Every combination of the grid, or ``random_n`` of them drawn without replacement."""
    keys = list(grid)
    combos = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]
    if random_n is not None and random_n < len(combos):
        combos = random.Random(seed).sample(combos, random_n)  # nosec B311 - a seeded parameter sample
    return combos


_DATA: list[tuple[nab.NabFile, npt.NDArray[np.float64]]] = []  # set before forking the workers


def _load(input_path: Path, labels_path: Path) -> list[tuple[nab.NabFile, npt.NDArray[np.float64]]]:
    labels = load_labels(labels_path)
    base = input_path if input_path.is_dir() else input_path.parent
    out = []
    for p in list_inputs(input_path):
        key = p.relative_to(base).as_posix()
        if key not in labels:
            continue
        series = read_input_csv(p)
        out.append((nab.prepare_file(key, series.ts_ms, labels[key]), series.values))
    if not out:
        raise InputError(f"--input {input_path}: no file matches a key of {labels_path} "
                         "(keys are paths relative to --input)")
    return out


def _best_f1(files: Sequence[nab.NabFile], scores: Sequence[npt.NDArray[np.float64]]) -> tuple[float, float]:
    """Highest window-level F1 over candidate thresholds (quantiles of the upper scores)."""
    pooled = np.concatenate([s[f.scorable] for f, s in zip(files, scores, strict=True)])
    candidates = np.unique(np.quantile(pooled, np.linspace(0.9, 1.0, 101))) if pooled.size else np.array([1.0])
    best = (0.0, float(candidates[-1]))
    for t in candidates:
        detected = fps = windows = 0
        for f, s in zip(files, scores, strict=True):
            hit = (s >= t) & f.scorable
            fps += int((hit & (f.window_of < 0)).sum())
            windows += f.n_windows
            detected += sum(1 for k in f.counted if (hit & (f.window_of == k)).any())
        if detected:
            p, r = detected / (detected + fps), detected / windows
            f1 = 2 * p * r / (p + r)
            if f1 > best[0]:
                best = (f1, float(t))
    return best


def _evaluate_combo(args: tuple[str, dict[str, Any], str]) -> TuneResult:
    detector, params, metric = args
    try:
        scores = []
        for _, values in _DATA:
            det = make_detector(detector, params)
            scores.append(np.clip(np.nan_to_num(np.asarray(det.score(values), dtype=np.float64)), 0.0, 1.0))
    except AiopsError as exc:
        return TuneResult(params, float("-inf"), None, error=str(exc))
    files = [f for f, _ in _DATA]
    threshold, raw = nab.best_threshold(files, scores)
    nab_score = nab.normalised_score(raw, files)
    if metric == "nab":
        return TuneResult(params, nab_score if nab_score is not None else float("-inf"), threshold, nab_score=nab_score)
    f1, f1_threshold = _best_f1(files, scores)
    return TuneResult(params, f1, f1_threshold, nab_score=nab_score, f1=f1)


def tune(input_path: str | Path, labels_path: str | Path, detector: str, grid: Mapping[str, Sequence[Any]],
         random_n: int | None = None, metric: str = "nab", base_params: Mapping[str, Any] | None = None,
         workers: int = 2, seed: int = 0, progress: Callable[[int], None] | None = None) -> list[TuneResult]:
    """Score every combination; best first.

    Args:
        input_path: labelled CSVs (a directory, keys relative to it, or one file).
        labels_path: windows JSON (NAB's ``combined_windows.json`` shape).
        detector: registry name; ``base_params`` are fixed, ``grid`` swept over them.
        random_n: try only this many combinations, drawn at random (``seed``).
        metric: ``nab`` (NAB standard score at the best single threshold) or ``f1``.
        workers: processes (one combination each at a time).
        progress: called with 1 as each combination is scored (a progress bar's ``advance``).

    Raises:
        InputError: bad metric, no labelled input, or a parameter every combination rejects.
    """
    global _DATA
    if metric not in METRICS:
        raise InputError(f"--metric {metric!r}: expected one of {', '.join(METRICS)}")
    combos = [{**(base_params or {}), **c} for c in combinations(grid, random_n, seed)]
    make_detector(detector, combos[0] if combos else dict(base_params or {}))  # a bad name fails now
    _DATA = _load(Path(input_path), Path(labels_path))
    jobs = [(detector, c, metric) for c in combos]
    done = progress or (lambda n: None)
    results: list[TuneResult] = []
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), initializer=worker_init) as pool:
            for r in pool.map(_evaluate_combo, jobs):
                results.append(r)
                done(1)
    else:
        for j in jobs:
            results.append(_evaluate_combo(j))
            done(1)
    if all(r.error for r in results):
        raise InputError(f"every combination failed; first: {results[0].error}")
    return sorted(results, key=lambda r: -r.metric)


def yaml_snippet(detector: str, best: TuneResult, metric: str, n_files: int, n_tried: int) -> str:
    """The ``detect`` section to paste into ``aiops.yaml`` for the best combination."""
    figure = f"NAB standard {best.nab_score:.1f}" if metric == "nab" and best.nab_score is not None else (
        f"F1 {best.f1:.3f}" if best.f1 is not None else f"{metric} {best.metric:.3f}")
    entry: dict[str, Any] = {"name": f"{detector}-tuned", "detector": detector, "selector": "REPLACE_ME",
                             "params": best.params}
    if best.threshold is not None and np.isfinite(best.threshold):
        entry["threshold"] = round(float(best.threshold), 6)
    body = yaml.safe_dump({"detect": {"detectors": [entry]}}, sort_keys=False, default_flow_style=False)
    body = body.replace("REPLACE_ME", "'your_metric{job=\"...\"}'  # the series to watch")
    return f"# best of {n_tried} settings by {metric} over {n_files} labelled files: {figure}\n{body}"
