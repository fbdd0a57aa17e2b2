"""The ``aiops`` command: thin wrappers that parse, load settings and call library code.

Every :class:`~aiops.errors.AiopsError` becomes one red line on stderr and exit code 1;
usage errors exit 2. Commands of the detectors, alerting and remediation areas live in
``app/cli_detect.py``, ``app/cli_alerts.py`` and ``app/cli_actions.py`` and register
on the same :data:`app`.
"""

from __future__ import annotations

import csv
import functools
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from aiops.errors import AiopsError, InputError
from aiops.logs import configure_logging, get_logger
from aiops.model import parse_selector
from aiops.timeutil import format_ts_ms, parse_time_ms
from app.cli_text import clean, markup_safe
from app.settings import EXAMPLE_CONFIG, Settings, load_settings

if TYPE_CHECKING:
    from aiops.state import StateDB  # SQLAlchemy: imported only by the commands that need it

__all__ = ["app", "main", "handle_errors", "settings_from", "open_state_db", "ConfigOption"]

app = typer.Typer(
    name="aiops",
    help="AIOps monitoring and auto-remediation: collect, detect, alert, remediate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)
log = get_logger("app.cli")

F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config file (default: ./aiops.yaml if present, else built-in defaults).",
                 envvar="AIOPS_CONFIG"),
]


def handle_errors(fn: F) -> F:
    """Map :class:`AiopsError` to one red line and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AiopsError as exc:
            err_console.print(f"[red]error:[/red] {markup_safe(exc)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def open_state_db(settings: Settings) -> StateDB:
    """The state database of ``settings``, its SQLite folder made and its schema current.

    Every command that reads or writes alerts, silences, the outbox or action runs opens it
    this way, so a fresh machine gets an empty database rather than "unable to open".
    """
    from aiops.state import StateDB

    url = settings.store.state_db_url()
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    db = StateDB(url)
    db.create_all()
    return db


def settings_from(config: Path | None, **overrides: Any) -> Settings:
    """Load settings from ``config``, or ``./aiops.yaml`` when it exists, else defaults."""
    if config is None and Path("aiops.yaml").is_file():
        config = Path("aiops.yaml")
    return load_settings(config, **overrides)


@app.command()
@handle_errors
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the example config.")] = Path("aiops.yaml"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example configuration file."""
    if path.exists() and not force:
        raise InputError(f"{path} exists; use --force to overwrite")
    path.write_text(EXAMPLE_CONFIG, encoding="utf-8")
    typer.echo(f"wrote {path}; edit it, then: aiops run --config {path}")


@app.command()
@handle_errors
def run(
    config: ConfigOption = None,
    duration_s: Annotated[float | None, typer.Option("--duration-s", help="Stop after this many seconds "
                                                     "(default: run until SIGTERM/Ctrl-C).")] = None,
    port: Annotated[int | None, typer.Option(help="Port of /metrics and the API "
                                             "(overrides agent.listen_port).")] = None,
    store: Annotated[Path | None, typer.Option(help="Store file (overrides store.path).")] = None,
) -> None:
    """Run the agent: collect, store, detect, alert and remediate until stopped.

    Serves /metrics (Prometheus format) and the HTTP API on agent.listen_host:listen_port.
    """
    from app.agent import Agent
    from app.wiring import build_collectors, build_components

    settings = settings_from(config)
    if port is not None:
        settings.agent.listen_port = port
    if store is not None:
        settings.store.path = store
    configure_logging(settings.agent.log_level)
    agent = Agent(settings, build_collectors(settings), build_components(settings))
    raise typer.Exit(agent.run_forever(duration_s))


@app.command()
@handle_errors
def series(
    selector: Annotated[str, typer.Argument(help="PromQL selector, e.g. 'node_load1{instance=~\"a.*\"}'.")],
    config: ConfigOption = None,
) -> None:
    """List the stored series that match a selector.

    Example: aiops series 'aiops_host_cpu_utilisation_ratio{cpu="total"}'
    """
    from aiops.store import SqliteSeriesStore

    settings = settings_from(config)
    with SqliteSeriesStore(settings.store.path, read_only=True) as st:
        found = st.select(parse_selector(selector))
        for s in found:
            typer.echo(clean(s.key))
    if not found:
        err_console.print(f"no series match {markup_safe(selector)} (list them all with '{{__name__=~\".+\"}}')",
                          highlight=False)


@app.command()
@handle_errors
def query(
    selector: Annotated[str, typer.Argument(help="PromQL selector of the series to print.")],
    start: Annotated[str, typer.Option(help="Start: 'now', '-1h', ISO-8601 or epoch.")] = "-1h",
    end: Annotated[str, typer.Option(help="End: 'now', '-5m', ISO-8601 or epoch.")] = "now",
    step: Annotated[str | None, typer.Option(help="Downsample to one point per step (e.g. 60s, 5m).")] = None,
    agg: Annotated[str, typer.Option(help="Aggregation per step: avg, min, max, last, sum, count.")] = "avg",
    fmt: Annotated[str, typer.Option("--format", help="table or csv.")] = "table",
    limit: Annotated[int, typer.Option(help="Most rows per series in table format.")] = 50,
    config: ConfigOption = None,
) -> None:
    """Print a range of stored samples as a table or CSV.

    Example: aiops query 'aiops_host_cpu_utilisation_ratio{cpu="total"}' --start -6h --step 5m --agg max
    """
    from aiops.config import parse_duration_s
    from aiops.store import SqliteSeriesStore

    if fmt not in ("table", "csv"):
        raise InputError(f"--format {fmt!r}: expected table or csv")
    settings = settings_from(config)
    start_ms, end_ms = parse_time_ms(start), parse_time_ms(end)
    with SqliteSeriesStore(settings.store.path, read_only=True) as st:
        found = st.select(parse_selector(selector))
        if fmt == "csv":
            w = csv.writer(sys.stdout)
            w.writerow(["series", "timestamp", "value"])
        for s in found:
            if step is not None:
                try:
                    step_ms = int(parse_duration_s(step) * 1000)
                except ValueError as exc:
                    raise InputError(f"--step {step!r}: {exc}") from exc
                data = st.downsample(s, start_ms, end_ms, step_ms, agg)  # type: ignore[arg-type]
            else:
                data = st.read(s, start_ms, end_ms)
            if fmt == "csv":
                for t, v in zip(data.ts_ms.tolist(), data.values.tolist(), strict=True):
                    w.writerow([s.key, format_ts_ms(t), repr(v)])
                continue
            typer.echo(f"{clean(s.key)}  ({len(data)} points{', last ' + str(limit) if len(data) > limit else ''})")
            table = Table()
            table.add_column("timestamp (UTC)")
            table.add_column("value", justify="right")
            rows = list(zip(data.ts_ms.tolist(), data.values.tolist(), strict=True))
            for t, v in rows[-limit:]:
                table.add_row(format_ts_ms(t), f"{v:.6g}")
            Console().print(table)
        if not found:
            err_console.print(f"no series match {markup_safe(selector)}", highlight=False)


@app.command()
@handle_errors
def dashboard(
    config: ConfigOption = None,
    port: Annotated[int | None, typer.Option(help="Port to serve on (overrides dashboard.port).")] = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
) -> None:
    """Serve the Streamlit dashboard: overview, metrics, GPUs, alerts, remediation and tuning.

    SIGTERM/SIGINT are forwarded to Streamlit; the command exits when it does.
    """
    from dashboard.serve import serve

    settings = settings_from(config)
    raise typer.Exit(serve(host, port or settings.dashboard.port, config))


AREA_MODULES = ("app.cli_detect", "app.cli_alerts", "app.cli_actions", "app.cli_misc", "app.cli_rca",
                "app.cli_quota")
# commands of this module: `aiops query ...` run from a shell need none of the area modules
# (which import SQLAlchemy, httpx, Celery, the Kubernetes client); 2 s of start-up otherwise
CORE_COMMANDS = frozenset({"init", "run", "series", "query", "dashboard"})


def register_areas() -> None:
    """Import the area command modules; each registers its commands on :data:`app`."""
    for module in AREA_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def _core_command_from_shell(argv: list[str]) -> bool:
    """True when this process is the ``aiops`` command running one of the core commands."""
    prog = Path(argv[0]).name if argv else ""
    return prog in ("aiops", "__main__.py") and len(argv) > 1 and argv[1] in CORE_COMMANDS


# Area commands register themselves on `app` when imported (library use, tests, `--help`).
if not _core_command_from_shell(sys.argv):
    register_areas()


def main() -> None:
    """Entry point of the ``aiops`` console script."""
    app()
