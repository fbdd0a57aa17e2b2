"""Detector commands: ``aiops replay``, ``aiops evaluate`` and ``aiops tune``.

Thin wrappers over :mod:`detectors.replay`, :mod:`detectors.evaluate` and :mod:`detectors.tune`;
the forms of ``replay`` and ``evaluate`` are a contract (benchmarks call them).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from aiops.errors import InputError
from app.cli import ConfigOption, app, err_console, handle_errors, settings_from

__all__ = ["replay", "evaluate", "tune"]


@app.command()
@handle_errors
def replay(
    output: Annotated[Path, typer.Option("--output", "-o", help="Output CSV file, or a directory mirroring the "
                                         "input's relative paths (one file per series).")],
    detector: Annotated[str, typer.Option("--detector", "-d", help="Registry name: profile, zscore, iforest, "
                                          "lstm, seasonal, forecast, ensemble.")],
    input_path: Annotated[Path | None, typer.Option("--input", "-i", help="CSV file with header 'timestamp,value' "
                                                     "(or 'timestamp' and several value columns), or a directory "
                                                     "searched recursively for such files.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Detector parameter KEY=VALUE (value "
                                                    "parsed as JSON when it can be); repeatable.")] = None,
    threshold: Annotated[float | None, typer.Option(help="Override the detector's own threshold for "
                                                    "is_anomaly (score in [0, 1]).")] = None,
    selector: Annotated[str | None, typer.Option(help="Replay stored series matching this PromQL selector "
                                                 "(store from the config) instead of --input.")] = None,
    prometheus: Annotated[str | None, typer.Option(help="Replay from this Prometheus server (base URL), "
                                                   "with --query.")] = None,
    query: Annotated[str | None, typer.Option(help="PromQL expression for --prometheus.")] = None,
    start: Annotated[str, typer.Option(help="Start of --selector/--prometheus range: ISO-8601, epoch or -1h.")] = "-1d",
    end: Annotated[str, typer.Option(help="End of the range: 'now', ISO-8601, epoch or -5m.")] = "now",
    step: Annotated[str, typer.Option(help="Resolution of --prometheus samples (e.g. 15s, 1m).")] = "60s",
    train: Annotated[Path | None, typer.Option("--train", help="History to fit each detector on before it scores "
                                               "the input: a CSV with the input's columns, or a directory "
                                               "mirroring --input.")] = None,
    workers: Annotated[int, typer.Option(help="Processes for a directory input (one file at a time each).")] = 2,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bar on stderr "
                                                  "(default: when stderr is a terminal).")] = None,
    config: ConfigOption = None,
) -> None:
    """Replay history through a detector and write per-point scores and decisions as CSV.

    Output columns: timestamp, the input's value columns, anomaly_score, is_anomaly, warm (0 while the
    detector was warming up) and score_<column> per value column (one row per input row, input order).

    Example: aiops replay -i data/cpu.csv -d zscore -p window=60 -o scores.csv
    """
    from detectors.replay import parse_params, replay_path

    params = parse_params(param or [])
    sources = sum(x is not None for x in (input_path, selector, prometheus))
    if sources != 1:
        raise InputError("give exactly one source: --input PATH, --selector SELECTOR or --prometheus URL --query Q")
    started = time.perf_counter()
    if input_path is not None:
        results = replay_path(input_path, output, detector, params, threshold, workers, progress, train)
    else:
        from detectors.sources import read_prometheus, read_store, replay_series

        if train is not None:
            raise InputError("--train goes with --input (stored and Prometheus series are replayed from their start)")
        if selector is not None:
            settings = settings_from(config)
            found = read_store(settings.store.path, selector, start, end)
        else:
            if not query:
                raise InputError("--prometheus needs --query, e.g. --query 'rate(http_requests_total[5m])'")
            found = read_prometheus(str(prometheus), query, start, end, step)
        results = replay_series(found, output, detector, params, threshold)
    for warning in (w for r in results for w in r.warnings):
        err_console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)
    rows = sum(r.rows for r in results)
    flagged = sum(r.anomalies for r in results)
    err_console.print(f"replayed {len(results)} series, {rows} points through {detector} in "
                      f"{time.perf_counter() - started:.1f}s: {flagged} anomalous points -> {escape(str(output))}",
                      highlight=False, soft_wrap=True)


@app.command()
@handle_errors
def evaluate(
    scores: Annotated[Path, typer.Option("--scores", "-s", help="Directory of replay outputs (or one file).")],
    labels: Annotated[Path, typer.Option("--labels", "-l", help="Windows JSON: {\"rel/path.csv\": "
                                         "[[\"start\", \"end\"], ...]} (NAB's combined_windows.json); or "
                                         "per-row labels: a CSV 'timestamp,label' or a directory of them "
                                         "mirroring --scores (point-wise and point-adjusted F1).")],
    threshold: Annotated[float | None, typer.Option(help="Flag anomaly_score >= T instead of is_anomaly.")] = None,
    optimize_threshold: Annotated[bool, typer.Option("--optimize-threshold", help="Flag by the single threshold "
                                                     "over the whole set that maximises the NAB score (as NAB "
                                                     "does), and report it.")] = False,
    profile: Annotated[str, typer.Option(help="NAB cost profile: standard, reward_low_fp, "
                                         "reward_low_fn.")] = "standard",
    fmt: Annotated[str, typer.Option("--format", help="table or json (to stdout).")] = "table",
    json_path: Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON here.")] = None,
) -> None:
    """Score replay outputs against labelled windows: precision, recall, F1, delay, NAB score.

    Example: aiops evaluate -s scores/ -l labels/combined_windows.json --optimize-threshold
    """
    from detectors.evaluate import evaluate as run_evaluation
    from detectors.evaluate import load_labels, load_scored_dir, render_report

    if fmt not in ("table", "json"):
        raise InputError(f"--format {fmt!r}: expected table or json")
    if threshold is not None and optimize_threshold:
        raise InputError("--threshold and --optimize-threshold exclude each other")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise InputError(f"--threshold {threshold}: expected a score in [0, 1]")
    if labels.is_dir() or labels.name.endswith((".csv", ".csv.gz")):
        from dataclasses import asdict

        from detectors.evaluate_rows import evaluate_rows, render_rows

        rows = evaluate_rows(load_scored_dir(scores), labels)
        rows_data = {"labels": "rows", "files": [asdict(r) for r in rows[:-1]], "overall": asdict(rows[-1])}
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(rows_data, indent=2), encoding="utf-8")
        if fmt == "json":
            typer.echo(json.dumps(rows_data))
        else:
            Console(width=max(Console().width, 160)).print(render_rows(rows, str(scores)))
        return
    report = run_evaluation(load_scored_dir(scores), load_labels(labels), threshold=threshold,
                            optimize_threshold=optimize_threshold, profile=profile)
    data = report.to_dict()
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    if fmt == "json":
        typer.echo(json.dumps(data))
        return
    console = Console(width=max(Console().width, 160))
    console.print(render_report(report, title=str(scores)))
    o = report.overall
    summary = (f"NAB {report.profile} score {o.nab_score:.1f}" if o.nab_score is not None else "NAB score: no windows")
    if report.threshold is not None:
        summary += f" at threshold {report.threshold!r}"
    console.print(summary, highlight=False)
    if len(report.missing) > 5:  # e.g. one file scored against a whole benchmark's labels
        err_console.print(f"[yellow]warning:[/yellow] {len(report.missing)} labelled files have no replay output "
                          f"(not scored), e.g. {report.missing[0]}", highlight=False)
    for key in report.missing if len(report.missing) <= 5 else ():
        err_console.print(f"[yellow]warning:[/yellow] labelled file has no replay output: {key}", highlight=False)
    for key in report.unlabelled:
        err_console.print(f"[yellow]warning:[/yellow] replay output has no labels (not scored): {key}", highlight=False)


@app.command()
@handle_errors
def tune(
    input_path: Annotated[Path, typer.Option("--input", "-i", help="Labelled history: a directory of "
                                             "'timestamp,value' CSVs (keys relative to it) or one CSV.")],
    labels: Annotated[Path, typer.Option("--labels", "-l", help="Windows JSON, as for evaluate.")],
    detector: Annotated[str, typer.Option("--detector", "-d", help="Registry name of the detector to tune.")],
    grid: Annotated[list[str] | None, typer.Option("--grid", "-g", help="Parameter and the values to try, "
                                                   "key=v1,v2,... (JSON values); repeatable.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Fixed parameter KEY=VALUE; "
                                                    "repeatable.")] = None,
    random_n: Annotated[int | None, typer.Option("--random", help="Try only N combinations drawn at random "
                                                 "from the grid.")] = None,
    metric: Annotated[str, typer.Option(help="Rank by 'nab' (NAB standard score at the best single "
                                        "threshold) or 'f1' (window-level F1 at its best threshold).")] = "nab",
    seed: Annotated[int, typer.Option(help="Seed of --random.")] = 0,
    workers: Annotated[int, typer.Option(help="Processes (one combination at a time each).")] = 2,
    top: Annotated[int, typer.Option(help="Rows of the ranking to print.")] = 10,
    progress: Annotated[bool | None, typer.Option("--progress/--no-progress", help="Progress bar on stderr, one "
                                                  "step per combination (default: when stderr is a terminal).")] = None,
) -> None:
    """Sweep detector parameters over labelled history; print the best as a config snippet.

    Example: aiops tune -i data/ -l labels/combined_windows.json -d zscore -g window=30,60,120
    """
    from rich.table import Table

    from detectors.replay import parse_params, progress_bar
    from detectors.tune import combinations, parse_grid, yaml_snippet
    from detectors.tune import tune as run_tune

    if random_n is not None and random_n < 1:
        raise InputError(f"--random {random_n}: expected a positive number of combinations")
    swept = parse_grid(grid or [])
    started = time.perf_counter()
    total = len(combinations(swept, random_n, seed))
    with progress_bar(total, f"tune {detector}", None if progress is None else not progress, transient=True) as advance:
        results = run_tune(input_path, labels, detector, swept, random_n, metric, parse_params(param or []), workers,
                           seed, progress=advance)
    table = Table(title=f"{detector}: {len(results)} settings by {metric} "
                  f"({time.perf_counter() - started:.0f}s)", title_justify="left")
    for col in ("#", "parameters", metric, "threshold", "NAB standard"):
        table.add_column(col, justify="left" if col == "parameters" else "right")
    for i, r in enumerate(results[:top], 1):
        shown = {k: v for k, v in r.params.items() if k in swept} or r.params
        table.add_row(str(i), r.error or json.dumps(shown), f"{r.metric:.3f}",
                      "-" if r.threshold is None else f"{r.threshold:.6g}",
                      "-" if r.nab_score is None else f"{r.nab_score:.1f}")
    err_console.print(table)
    n_files = len(list(input_path.rglob("*.csv"))) if input_path.is_dir() else 1
    typer.echo(yaml_snippet(detector, results[0], metric, n_files, len(results)))
