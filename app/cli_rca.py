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
from rich.markup import escape

from aiops.errors import InputError
from app.cli import ConfigOption, app, err_console, handle_errors

__all__ = ["rca"]


def _param_value(key: str, raw: str, kind: str) -> Any:
    """``raw`` as the type of RcaParams field ``key`` (``int``, ``float`` or ``int | None``)."""
    text = raw.strip()
    if "None" in kind and text.lower() in ("null", "none", ""):
        return None
    try:
        if "int" in kind:
            number = float(text)  # '720' or '1e3'; '1.5' is no integer
            if not number.is_integer():
                raise ValueError(text)
            return int(number)
        return float(text)  # also 'nan' and 'inf', which the range checks then refuse by name
    except ValueError:
        expected = "an integer" + (" or null" if "None" in kind else "") if "int" in kind else "a number"
        raise InputError(f"--param {key}={raw!r}: expected {expected}") from None


def _params(pairs: list[str]) -> Any:
    from rca import RcaParams

    kinds = {f.name: str(f.type) for f in dataclasses.fields(RcaParams)}
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or key not in kinds:
            raise InputError(f"--param {pair!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(kinds))}")
        values[key] = _param_value(key, raw, kinds[key])
    return RcaParams(**values)


@app.command()
@handle_errors
def rca(
    input_dir: Annotated[Path | None, typer.Option("--input", "-i", help="Case directory holding data.csv "
                                                    "(timestamp + component:metric columns) and info.json "
                                                    "(alert_time, symptom).")] = None,
    graph: Annotated[Path | None, typer.Option("--graph", "-g", help="Causal graph JSON {nodes, edges: "
                                                "[[\"cause\", \"effect\"], ...]} over components or component:metric "
                                                "names (cause -> effect).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write the ranked causes "
                                                 "(JSON list, best first); default: stdout.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Localiser parameter KEY=VALUE "
                                                    "(e.g. train_points=720, max_hops=3); repeatable.")] = None,
    alert: Annotated[str | None, typer.Option("--alert", help="Fingerprint (or a unique prefix) of a stored alert: "
                                              "localise it over the store's data and store the result.")] = None,
    at: Annotated[str | None, typer.Option("--at", help="With --series: when the trouble was seen (ISO-8601, "
                                           "epoch or -10m).")] = None,
    series: Annotated[str | None, typer.Option("--series", help="With --at: selector of the symptom series.")] = None,
    top: Annotated[int, typer.Option(help="Causes to print on the terminal summary.")] = 5,
    config: ConfigOption = None,
) -> None:
    """Rank the root causes of one incident: which component:metric started it.

    Three forms: a case directory (--input, --graph, --output), a stored alert (--alert), or a
    time and a series (--at, --series) over the store's data and topology.

    Example: aiops rca --at -10m --series 'inference_latency_p99_seconds{deployment="llm"}'
    """
    from rca import CausalGraph
    from rca.caseio import localize_case, read_case, read_graph, result_records, unknown_nodes, write_result

    if alert is not None or at is not None or series is not None:
        _live(alert, at, series, output, top, config)
        return
    params = _params(param or [])
    if input_dir is None:
        raise InputError("give --input DIR (a case directory with data.csv and info.json), --alert FINGERPRINT, "
                         "or --at TIME --series SELECTOR")
    case = read_case(input_dir)
    g = read_graph(graph) if graph is not None else CausalGraph((), ())
    unknown = unknown_nodes(g, case.names)
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        err_console.print(f"[yellow]warning:[/yellow] {escape(str(graph))}: {len(unknown)} of {len(g.nodes)} nodes "
                          f"name no component or column of data.csv (their edges are ignored): {escape(shown)}",
                          highlight=False, soft_wrap=True)
    result = localize_case(input_dir, case, g, params)
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
    learn: Annotated[bool, typer.Option("--learn", help="Add edges learned from the stored series "
                                        "(Granger-style tests over --lookback; marked 'learned', dashed in dot).")]
    = False,
    lookback: Annotated[str, typer.Option(help="History the learned edges are tested on (with --learn).")] = "1h",
    config: ConfigOption = None,
) -> None:
    """Print the service topology: components, their metrics and relations (Kubernetes, labels, config)."""
    import time

    from aiops.config import parse_duration_s
    from aiops.store import SqliteSeriesStore
    from app.cli import settings_from
    from rca.live import RcaService
    from rca.topology_sources import assemble

    if fmt not in ("text", "json", "dot"):
        raise InputError(f"--format: expected text, json or dot, got {fmt!r}")
    try:
        lookback_s = parse_duration_s(lookback)
    except ValueError as exc:
        raise InputError(f"--lookback {lookback!r}: {exc}") from None
    settings = settings_from(config)
    found = []
    if (settings.topology.labels or learn) and settings.store.path.exists():
        with SqliteSeriesStore(settings.store.path, read_only=True) as st:
            found = st.select([])
            if learn:
                now_ms = int(time.time() * 1000)
                service = RcaService(settings.rca, settings.topology, st)
                topo = service.learn_topology(now_ms - int(lookback_s * 1000), now_ms)
    elif learn:
        raise InputError(f"--learn: no store at {settings.store.path} to learn from")
    if not learn:
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


def _live(fingerprint: str | None, at: str | None, selector: str | None, output: Path | None, top: int,
          config: Path | None) -> None:
    from aiops.model import Alert, AlertState, parse_selector
    from aiops.state import StateDB
    from aiops.store import SqliteSeriesStore
    from aiops.timeutil import parse_time_ms
    from alerting.reads import alerts_by_prefix
    from app.cli import settings_from
    from rca.live import RcaService

    settings = settings_from(config)
    if fingerprint is None and (at is None or selector is None):
        raise InputError("--at and --series go together (or give --alert FINGERPRINT)")
    with SqliteSeriesStore(settings.store.path, read_only=True) as store:
        if fingerprint is not None:
            db = StateDB(settings.store.state_db_url())
            db.create_all()
            rows = alerts_by_prefix(db, fingerprint)
            if len(rows) != 1:
                raise InputError(f"--alert {fingerprint!r}: {'no' if not rows else 'several'} stored alerts match "
                                 "(need exactly one)")
            r = rows[0]
            a = Alert.of(dict(r["labels"]), dict(r["annotations"]), state=AlertState.FIRING,
                         starts_at_ms=int(r["starts_at_ms"]), value=r["value"])
            record = RcaService(settings.rca, settings.topology, store, db).analyze(a)
            if record.get("error"):
                raise InputError(f"--alert {fingerprint}: {record['error']}")
            doc: object = record
            causes = record["causes"]
        else:
            assert at is not None and selector is not None
            found = store.select(parse_selector(selector))
            if not found:
                raise InputError(f"--series {selector!r}: no stored series matches")
            if len(found) > 1:
                raise InputError(f"--series {selector!r}: {len(found)} series match; narrow it to one")
            result, topo = RcaService(settings.rca, settings.topology, store).localize_series(
                found[0], parse_time_ms(at))
            causes = RcaService.records(result, topo)
            doc = {"symptom": result.symptom, "onset_ms": result.onset_ms, "causes": causes}
    text = json.dumps(doc, indent=1)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
    summary = "; ".join(f"{c['component']}:{c['metric']} ({float(c['score']):.1f})" for c in causes[:top])
    err_console.print(f"rca: top causes: {summary or 'none'}", highlight=False, soft_wrap=True)
