"""An alert's root causes for the pages: read through the rca package, and the paths drawn as a graph.

The ranking comes from :func:`rca.tables.read_alert_rca` / :func:`rca.tables.latest_alert_rca`
(the rca package's read functions; the dashboard never reads ``alert_rca`` itself). Each stored
cause carries its path over the topology's cause→effect edges to the symptom
(``component:metric`` names); :func:`path_dot` draws the paths of the best causes as one
Graphviz graph, components as boxes around their metrics, so the person on call sees where the
trouble started and how it reached the alerting series.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from aiops.errors import StoreError
from dashboard.data import DashboardData
from rca import split_name
from rca.tables import latest_alert_rca, read_alert_rca

__all__ = ["alert_causes", "recent_causes", "cause_rows", "cause_title", "path_dot", "TOP_DRAWN"]

TOP_DRAWN = 3  # causes whose paths are drawn (the chat message names the same three)
_CAUSE_FILL = ("#f8c4b4", "#fbd9c9", "#fde8dc")  # rank 1..3: light fills, so black text reads in dark mode too
_SYMPTOM_FILL = "#ffe08a"
_MUTED = "#8a8a8a"  # cluster borders, edges, captions: readable on white and on dark backgrounds


def _no_table(exc: StoreError) -> bool:
    # a state database the rca component never ran on has no alert_rca table: no ranking, not an error
    return "no such table" in str(exc).lower() and "alert_rca" in str(exc)


def alert_causes(data: DashboardData, fingerprint: str, starts_at_ms: int | None = None) -> dict[str, Any] | None:
    """The stored localisation of one alert episode (its latest when ``starts_at_ms`` is None or unknown).

    Raises:
        DataUnavailable: the state database is missing, locked or from another version.
    """
    try:
        found = data.read(read_alert_rca, fingerprint, starts_at_ms)
        if found is None and starts_at_ms is not None:
            found = data.read(read_alert_rca, fingerprint)
        return found
    except StoreError as exc:
        if _no_table(exc):
            return None
        raise


def recent_causes(data: DashboardData, limit: int = 200) -> dict[tuple[str, int], dict[str, Any]]:
    """The recent localisations by (fingerprint, episode start): one query for a page of alert cards."""
    try:
        rows = data.read(latest_alert_rca, limit)
    except StoreError as exc:
        if _no_table(exc):
            return {}
        raise
    return {(r["fingerprint"], int(r["starts_at_ms"])): r for r in rows}


def cause_title(cause: Mapping[str, Any]) -> str:
    """Where the cause lives: its workload (Deployment/StatefulSet), with the component when it differs."""
    component, workload = str(cause["component"]), cause.get("workload")
    return f"{workload} ({component})" if workload and workload != component else component


def _split(name: str, known: Sequence[str] = ()) -> tuple[str, str]:
    """``component:metric`` split after a known component (whose id may hold a colon), else at the first colon."""
    for component in sorted(known, key=len, reverse=True):
        if name.startswith(component + ":"):
            return component, name[len(component) + 1:]
    return split_name(name)


def _metric_of(name: str, known: Sequence[str] = ()) -> str:
    return _split(name, known)[1] or name


FLAT_BEFORE_SIGMA = 1_000.0  # beyond this a change is "from flat": the metric barely moved before the onset


def change_text(z: float) -> str:
    """A change in robust sigmas, readable: ``24.4``; ``> 1000 (flat)`` for a metric that did
    not move in the normal period (its scale is then a tiny floor, and the figure itself means nothing).

    Examples:
        >>> change_text(24.44), change_text(-3.0), change_text(5.95e7)
        ('24.4', '-3.0', '> 1000 (flat)')
    """
    return f"{z:.1f}" if abs(z) < FLAT_BEFORE_SIGMA else f"{'> ' if z > 0 else '< -'}1000 (flat)"


def cause_rows(record: Mapping[str, Any], limit: int = 10) -> pd.DataFrame:
    """The ranked causes as a table: rank, metric, component, workload, score, z, onset (UTC), path to the symptom."""
    rows = []
    for i, c in enumerate(record.get("causes") or [], 1):
        if i > limit:
            break
        path = [str(p) for p in c.get("path") or []]
        onset = c.get("onset_ms")
        rows.append({"rank": i, "metric": c["metric"], "component": c["component"],
                     "workload": c.get("workload") or "", "score": float(c["score"]),
                     "z (σ)": change_text(float(c["z"])),
                     "onset": pd.Timestamp(int(onset), unit="ms", tz="UTC") if onset is not None else None,
                     "path to the symptom": " → ".join(path[1:]) if len(path) > 1
                     else "same component, no edge in the topology"})
    return pd.DataFrame(rows)


def _q(text: str) -> str:
    """A DOT double-quoted string (backslashes and quotes escaped; newlines become centred breaks)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def path_dot(record: Mapping[str, Any], top: int = TOP_DRAWN) -> str:
    """DOT source of the paths from the ``top`` causes to the symptom, left to right.

    Metrics are nodes inside one box per component (titled with its workload); the ranked causes
    are filled by rank, the symptom is yellow with a double border. A cause with no path that is
    a metric of the symptom's own component gets a dotted line marked "same component" (the
    topology has no edge between a component's own metrics); other causes without a path stand
    alone in their box.
    """
    symptom = str(record.get("symptom") or "")
    causes: Sequence[Mapping[str, Any]] = (record.get("causes") or [])[:top]
    ids: dict[str, str] = {}
    rank: dict[str, int] = {}
    workload: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    same: list[str] = []

    def node(name: str) -> str:
        return ids.setdefault(name, f"n{len(ids)}")

    for i, c in enumerate(causes, 1):
        name = f"{c['component']}:{c['metric']}" if c["metric"] else str(c["component"])
        rank.setdefault(name, i)
        node(name)
        if c.get("workload"):
            workload[str(c["component"])] = str(c["workload"])
        path = [str(p) for p in c.get("path") or []]
        for a, b in zip(path, path[1:], strict=False):
            edges.append((node(a), node(b)))
        if not path and symptom and name != symptom and symptom.startswith(f"{c['component']}:"):
            same.append(node(name))  # no topology edge, but it lives where the symptom does
    if symptom:
        node(symptom)
    known = sorted({str(c["component"]) for c in causes})
    by_component: dict[str, list[str]] = {}
    for name in ids:
        by_component.setdefault(_split(name, known)[0], []).append(name)
    lines = ["digraph rca {", "  rankdir=LR; bgcolor=transparent; nodesep=0.25; ranksep=0.6;",
             '  node [shape=box, style="rounded,filled", fillcolor="#eeeeee", fontname="sans-serif", fontsize=11];',
             f'  edge [color="{_MUTED}", penwidth=1.6, arrowsize=0.8];']
    for k, (component, names) in enumerate(by_component.items()):
        title = component if component not in workload or workload[component] == component \
            else f"{component}\n({workload[component]})"
        lines.append(f"  subgraph cluster_{k} {{ label={_q(title)}; fontname=\"sans-serif\"; fontsize=10; "
                     f'fontcolor="{_MUTED}"; color="{_MUTED}"; style="rounded,dashed";')
        for name in names:
            metric = _metric_of(name, known)
            if name == symptom:
                attrs = f'label={_q("symptom: " + metric)}, fillcolor="{_SYMPTOM_FILL}", peripheries=2'
            elif name in rank:
                r = rank[name]
                attrs = f'label={_q(f"#{r} {metric}")}, fillcolor="{_CAUSE_FILL[min(r, len(_CAUSE_FILL)) - 1]}"'
            else:
                attrs = f"label={_q(metric)}"
            lines.append(f"    {ids[name]} [{attrs}];")
        lines.append("  }")
    for a, b in dict.fromkeys(edges):
        lines.append(f"  {a} -> {b};")
    for a in dict.fromkeys(same):
        lines.append(f'  {a} -> {ids[symptom]} [style=dotted, arrowhead=none, label="same component", '
                     f'fontsize=9, fontcolor="{_MUTED}"];')
    lines.append("}")
    return "\n".join(lines)
