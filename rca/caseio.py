"""Files of the ``aiops rca --input DIR --graph FILE --output FILE`` contract.

``DIR/data.csv``: a ``timestamp`` column (ISO-8601, ``YYYY-MM-DD HH:MM:SS`` or epoch seconds),
then one column per metric named ``component:metric``; an empty cell is a missing point.
``DIR/info.json``: ``{"alert_time": ..., "symptom": "component:metric"}``, optionally
``"end_time"`` (last instant of the anomaly window; later rows are ignored) and
``"onset_time"`` (a known onset; otherwise found by change-point detection).
``--graph``: ``{"nodes": [...], "edges": [[from, to], ...]}``, cause→effect, over components
or ``component:metric`` names. Every malformed input is one :class:`~aiops.errors.InputError`
naming the file and the field (or row).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aiops.errors import InputError
from aiops.timeutil import format_ts_ms, parse_timestamp_ms
from rca.graph import CausalGraph
from rca.localize import RcaParams, localize
from rca.model import RcaCase, RcaResult, split_name

__all__ = ["read_case", "read_graph", "write_result", "result_records", "unknown_nodes", "localize_case"]


def _time(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InputError(f"{where}: expected ISO-8601 or epoch seconds, got {value!r}")
    try:
        return parse_timestamp_ms(value)
    except InputError as exc:
        raise InputError(f"{where}: expected ISO-8601 or epoch seconds, got {value!r}") from exc


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError as exc:
        raise InputError(f"{path}: file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc.__class__.__name__})") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} line {exc.lineno}: not JSON ({exc.msg})") from exc


def read_case(directory: str | Path) -> RcaCase:
    """Read ``data.csv`` and ``info.json`` of one case directory."""
    d = Path(directory)
    if not d.is_dir():
        raise InputError(f"{d}: not a directory (expected data.csv and info.json in it)")
    data_path, info_path = d / "data.csv", d / "info.json"
    try:
        with data_path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: a spreadsheet's BOM
            rows = list(csv.reader(fh))
    except FileNotFoundError as exc:
        raise InputError(f"{data_path}: file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{data_path}: cannot read ({exc.__class__.__name__})") from exc
    # (line number, fields); blank lines are no rows, and "row N" in errors is line N of the file
    numbered = [(i + 1, r) for i, r in enumerate(rows) if any(c.strip() for c in r)]
    if not numbered:
        raise InputError(f"{data_path}: empty (expected a header 'timestamp,component:metric,...')")
    header = [h.strip() for h in numbered[0][1]]
    if not header or header[0].lower() != "timestamp":
        raise InputError(f"{data_path} field timestamp: the first column must be 'timestamp', got {header[:1]}")
    names = header[1:]
    if not names:
        raise InputError(f"{data_path}: no metric columns after 'timestamp'")
    for n in names:
        if not n or ":" not in n or n.startswith(":"):
            raise InputError(f"{data_path} field {n!r}: a column must be named 'component:metric'")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InputError(f"{data_path} field {dup!r}: column appears twice")
    body = numbered[1:]
    if not body:
        raise InputError(f"{data_path}: no data rows")
    ts = np.empty(len(body), dtype=np.int64)
    values = np.full((len(body), len(names)), np.nan)
    for i, (line, row) in enumerate(body):
        if len(row) != len(header):
            raise InputError(f"{data_path} row {line}: {len(row)} fields, header has {len(header)}")
        ts[i] = _time(row[0].strip(), f"{data_path} row {line} field timestamp")
        for j, cell in enumerate(row[1:]):
            c = cell.strip()
            if not c:
                continue
            try:
                values[i, j] = float(c)
            except ValueError as exc:
                raise InputError(f"{data_path} row {line} field {names[j]!r}: not a number: {c[:40]!r}") from exc
        if i and ts[i] <= ts[i - 1]:
            raise InputError(f"{data_path} row {line} field timestamp: not after the previous row")

    info = _load_json(info_path)
    if not isinstance(info, dict):
        raise InputError(f"{info_path}: expected a JSON object with alert_time and symptom")
    if "alert_time" not in info:
        raise InputError(f"{info_path} field alert_time: missing")
    alert_ms = _time(info["alert_time"], f"{info_path} field alert_time")
    symptom = info.get("symptom")
    if not isinstance(symptom, str) or not symptom:
        raise InputError(f"{info_path} field symptom: expected 'component:metric', got {symptom!r}")
    if symptom not in names:
        raise InputError(f"{info_path} field symptom: {symptom!r} is not a column of {data_path.name}")
    end_ms = _time(info["end_time"], f"{info_path} field end_time") if info.get("end_time") is not None else None
    onset_ms = (
        _time(info["onset_time"], f"{info_path} field onset_time") if info.get("onset_time") is not None else None
    )
    if end_ms is not None and end_ms < alert_ms:
        raise InputError(f"{info_path} field end_time: before alert_time")
    if onset_ms is not None and onset_ms > alert_ms:
        raise InputError(f"{info_path} field onset_time: after alert_time")
    if alert_ms > ts[-1] or alert_ms < ts[0]:
        raise InputError(f"{info_path} field alert_time: outside the rows of {data_path.name}")
    return RcaCase(ts, values, tuple(names), alert_ms=alert_ms, symptom=symptom, end_ms=end_ms, onset_ms=onset_ms)


def read_graph(path: str | Path) -> CausalGraph:
    """Read a ``{"nodes": [...], "edges": [[from, to], ...]}`` graph file."""
    p = Path(path)
    doc = _load_json(p)
    if not isinstance(doc, dict):
        raise InputError(f"{p}: expected a JSON object with nodes and edges")
    nodes = doc.get("nodes", [])
    if not isinstance(nodes, list) or not all(isinstance(n, str) and n for n in nodes):
        raise InputError(f"{p} field nodes: expected a list of names")
    edges = doc.get("edges")
    if not isinstance(edges, list):
        raise InputError(f"{p} field edges: expected a list of [from, to] pairs")
    pairs: list[tuple[str, str]] = []
    for i, e in enumerate(edges):
        if not (isinstance(e, list) and len(e) == 2 and all(isinstance(x, str) and x for x in e)):
            raise InputError(f"{p} field edges[{i}]: expected [from, to] names, got {json.dumps(e)[:60]}")
        pairs.append((e[0], e[1]))
    return CausalGraph.of(pairs, nodes)


def result_records(result: RcaResult) -> list[dict[str, Any]]:
    """The CLI's output: ``{"component", "metric", "score", "evidence"}`` per cause, best first."""
    out: list[dict[str, Any]] = []
    for c in result.causes:
        score = c.score if math.isfinite(c.score) else 0.0
        out.append(
            {
                "component": c.component,
                "metric": c.metric,
                "score": round(score, 6),
                "evidence": {
                    "z": round(c.z, 6),
                    "marginal_z": round(c.marginal_z, 6),
                    "onset_time": format_ts_ms(c.onset_ms) if c.onset_ms is not None else None,
                    "path": list(c.path),
                },
            }
        )
    return out


def write_result(result: RcaResult, path: str | Path) -> None:
    """Write :func:`result_records` as a JSON list, atomically (a temp file, then rename).

    Raises:
        InputError: the file cannot be written (naming it); nothing is left behind.
    """
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(result_records(result), indent=1) + "\n", encoding="utf-8")
        tmp.replace(p)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise InputError(f"{p}: cannot write: {exc.strerror or exc}") from exc


def unknown_nodes(graph: CausalGraph, names: Sequence[str]) -> list[str]:
    """Graph nodes that are neither a column of ``names`` nor a component of one (ignored by the ranking)."""
    columns = set(names)
    components = {split_name(n)[0] for n in names}
    return [n for n in graph.nodes if n not in columns and n not in components]


def localize_case(directory: str | Path, case: RcaCase, graph: CausalGraph, params: RcaParams) -> RcaResult:
    """:func:`rca.localize` on a case read from ``directory``; its errors name the case's file and field.

    Raises:
        InputError: e.g. ``case/info.json field alert_time: only 4 rows of normal history ...``.
    """
    try:
        return localize(case, graph, params)
    except InputError as exc:
        field = "onset_time" if case.onset_ms is not None else "alert_time"
        raise InputError(f"{Path(directory) / 'info.json'} field {field}: {exc}") from exc
