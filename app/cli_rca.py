"""Root-cause commands: ``aiops rca`` and ``aiops topology``.

``aiops rca --input DIR --graph FILE --output FILE`` is a contract (external benchmarks call it):
see docs/rca.md for the file formats.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from aiops.errors import InputError
from app.cli import ConfigOption, app, err_console, handle_errors

__all__ = ["rca"]


def _params(pairs: list[str]) -> Any:
    from rca import RcaParams

    known = {f.name for f in dataclasses.fields(RcaParams)}
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in known:
            raise InputError(f"--param {pair!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(known))}")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    try:
        return RcaParams(**values)
    except TypeError as exc:
        raise InputError(f"--param: {exc}") from exc


@app.command()
@handle_errors
def rca(
    input_dir: Annotated[Path | None, typer.Option("--input", "-i", help="Case directory holding data.csv "
                                                    "(timestamp + component:metric columns) and info.json "
                                                    "(alert_time, symptom).")] = None,
    graph: Annotated[Path | None, typer.Option("--graph", "-g", help="Causal graph JSON {nodes, edges: "
                                                "[[from, to], ...]} over components or component:metric "
                                                "names (cause -> effect).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write the ranked causes "
                                                 "(JSON list, best first); default: stdout.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Localiser parameter KEY=VALUE "
                                                    "(e.g. train_points=720, max_hops=3); repeatable.")] = None,
    top: Annotated[int, typer.Option(help="Causes to print on the terminal summary.")] = 5,
    config: ConfigOption = None,
) -> None:
    """Rank the root causes of one incident: which component:metric started it."""
    from rca import CausalGraph, localize
    from rca.caseio import read_case, read_graph, result_records, write_result

    params = _params(param or [])
    if input_dir is None:
        raise InputError("give --input DIR (a case directory with data.csv and info.json)")
    case = read_case(input_dir)
    g = read_graph(graph) if graph is not None else CausalGraph((), ())
    result = localize(case, g, params)
    if output is None:
        typer.echo(json.dumps(result_records(result), indent=1))
    else:
        write_result(result, output)
    summary = ", ".join(f"{c.name} ({c.score:.1f})" for c in result.top(top))
    err_console.print(f"rca: {len(result.causes)} candidates in {result.duration_s * 1000:.0f} ms; top: {summary}",
                      highlight=False, soft_wrap=True)


@app.command()
@handle_errors
def topology(
    fmt: Annotated[str, typer.Option("--format", "-f", help="text, json or dot (Graphviz).")] = "text",
    config: ConfigOption = None,
) -> None:
    """Print the service topology: components, their metrics and relations (Kubernetes, labels, config)."""
    from aiops.store import SqliteSeriesStore
    from app.cli import settings_from
    from rca.topology_sources import assemble

    if fmt not in ("text", "json", "dot"):
        raise InputError(f"--format: expected text, json or dot, got {fmt!r}")
    settings = settings_from(config)
    found = []
    if settings.topology.labels and settings.store.path.exists():
        with SqliteSeriesStore(settings.store.path, read_only=True) as st:
            found = st.select([])
    topo = assemble(settings.topology, found)
    if fmt == "json":
        typer.echo(json.dumps(topo.to_json(), indent=1))
        return
    if fmt == "dot":
        typer.echo(topo.to_dot(), nl=False)
        return
    for c in sorted(topo.components.values(), key=lambda c: c.id):
        metrics = sorted(topo.metrics.get(c.id, {}))
        typer.echo(f"{c.id}  [{c.kind}]" + (f"  {len(metrics)} metrics" if metrics else ""))
        for m in metrics:
            typer.echo(f"    {m}")
    for r in topo.relations:
        typer.echo(f"{r.src} --{r.kind}--> {r.dst}  ({r.source})")
