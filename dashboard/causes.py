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

__all__ = ["alert_causes", "recent_causes", "cause_rows", "cause_details", "cause_title", "path_dot", "TOP_DRAWN",
           "short_path", "short_metric", "abbreviate"]

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


def abbreviate(text: str, limit: int) -> str:
    """``text`` cut in the middle to at most ``limit`` characters, both ends kept (the end of a metric
    or pod name is what tells two of them apart).

    Examples:
        >>> abbreviate("vllm:num_requests_running{model='llama'}", 24)
        "vllm:num_req…el='llama'}"
        >>> abbreviate("node_load1", 24)
        'node_load1'
    """
    if len(text) <= limit:
        return text
    keep = max(limit - 1, 2)
    head = (keep + 1) // 2
    return text[:head] + "…" + text[len(text) - (keep - head):]


def short_metric(metric: str, limit: int) -> str:
    """A metric name within ``limit`` characters: a label set is shortened first (``{…}`` or cut in
    its middle), so two metrics with the same labels still read apart; a bare name over the limit
    is cut in its middle.

    Examples:
        >>> short_metric("vllm:num_requests_running{model_name='meta-llama/Llama-3.1-8B'}", 32)
        'vllm:num_requests_running{…}'
        >>> short_metric("up{job='api'}", 32)
        "up{job='api'}"
    """
    if len(metric) <= limit:
        return metric
    name, brace, labels = metric.partition("{")
    if not brace:
        return abbreviate(metric, limit)
    if len(name) + 3 > limit:
        return abbreviate(name, limit - 3) + "{…}"
    room = limit - len(name) - 2
    inner = labels[:-1] if labels.endswith("}") else labels
    return name + "{" + (abbreviate(inner, room) if room >= 8 else "…") + "}"


def short_component(component: str) -> str:
    """A component without its namespace: ``pod/inference/llm-0`` -> ``pod/llm-0`` (kind and name)."""
    parts = component.split("/")
    return f"{parts[0]}/{parts[-1]}" if len(parts) > 2 else component


def short_path(path: Sequence[str], component: str, symptom: str, known: Sequence[str] = ()) -> str:
    """Where a cause sits relative to the symptom, short enough for a table cell.

    The hops after the cause as their components (namespace left out; a metric of the same
    component as the hop before is not a new place), the last one ``symptom``: ``→ symptom`` for
    a direct edge, ``→ pod/llm-0 → symptom`` over a pod; a path longer than ``PATH_CHARS`` keeps
    the first hop and the end (``→ pod/llm-0 → … → symptom``). A cause without a path says whether it
    lives in the symptom's own component (the topology has no edge between a component's metrics).

    Examples:
        >>> sym = "deployment/inference/llm:lat"
        >>> short_path(["node/n1:load", "pod/inference/llm-0:queue", sym], "node/n1", sym)
        '→ pod/llm-0 → symptom'
        >>> short_path([], "deployment/inference/llm", "deployment/inference/llm:lat")
        'same component, no edge'
    """
    if len(path) < 2:
        same = bool(symptom) and symptom.startswith(component + ":")
        return "same component, no edge" if same else "no edge to the symptom"
    hops: list[str] = []
    here = component
    for hop in path[1:-1]:
        where = _split(hop, known)[0] or hop
        if where != here:
            hops.append(abbreviate(short_component(where), PATH_HOP_CHARS))
            here = where
    text = " → ".join(["", *hops, "symptom"]).strip()
    if len(text) > PATH_CHARS and len(hops) > 1:  # keep the first hop (next to the cause) and the end
        text = " → ".join(["", hops[0], "…", "symptom"]).strip()
    return text


def full_path(path: Sequence[str], symptom: str) -> str:
    """A cause's whole path as markdown, every hop's ``component:metric`` in full (it wraps)."""
    return " → ".join(f"`{p}`" + (" (symptom)" if p == symptom else "") for p in path)


METRIC_CHARS = 32  # the table cells' budgets (characters), so the table fits the page's width
COMPONENT_CHARS = 22
WORKLOAD_CHARS = 16
PATH_HOP_CHARS = 16
PATH_CHARS = 30


def cause_rows(record: Mapping[str, Any], limit: int = 10) -> pd.DataFrame:
    """The ranked causes as a table: rank, metric, component, workload, score, z, onset (UTC), path to the symptom.

    The cells are short so the table fits the page: names over their budget are cut in the middle,
    components and workloads without their namespace, the path as :func:`short_path`.
    :func:`cause_details` has every name and path in full.
    """
    symptom = str(record.get("symptom") or "")
    known = [str(c["component"]) for c in record.get("causes") or []]
    rows = []
    for i, c in enumerate(record.get("causes") or [], 1):
        if i > limit:
            break
        path = [str(p) for p in c.get("path") or []]
        onset = c.get("onset_ms")
        rows.append({"rank": i, "metric": short_metric(str(c["metric"]), METRIC_CHARS),
                     "component": abbreviate(short_component(str(c["component"])), COMPONENT_CHARS),
                     "workload": abbreviate(short_component(str(c.get("workload") or "")), WORKLOAD_CHARS),
                     "score": float(c["score"]),
                     "z (σ)": change_text(float(c["z"])),
                     "onset": pd.Timestamp(int(onset), unit="ms", tz="UTC") if onset is not None else None,
                     "path to the symptom": short_path(path, str(c["component"]), symptom, known)})
    return pd.DataFrame(rows)


def cause_details(record: Mapping[str, Any], limit: int = 10) -> list[str]:
    """One markdown line per ranked cause with its full names: component (workload), metric, path."""
    symptom = str(record.get("symptom") or "")
    lines = []
    for i, c in enumerate((record.get("causes") or [])[:limit], 1):
        path = [str(p) for p in c.get("path") or []]
        where = f"`{c['component']}`" + (f" ({c['workload']})" if c.get("workload")
                                         and c["workload"] != c["component"] else "")
        lines.append(f"**#{i}** `{c['metric']}` in {where}: "
                     + (full_path(path, symptom) if len(path) > 1 else short_path(path, str(c["component"]),
                                                                                  symptom)))
    return lines


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
