"""Where the dashboard's data comes from: settings, the store, the state database.

The dashboard reads the store read-only (SQLite WAL lets it read while the agent writes) and
the state database without creating anything: started where no agent ran, it says so instead of
creating empty files or showing a traceback. Every failure to read (missing, empty, locked,
written by another version) becomes a :class:`DataUnavailable` whose message tells the person on
call what is wrong and what to do; the pages show that message.

Relative paths in the config file resolve relative to that file, so
``aiops dashboard -c other/aiops.yaml`` shows ``other/``'s store wherever it is started.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.exc import SQLAlchemyError

from aiops.config import CoreSettings, load_settings
from aiops.errors import AiopsError, StoreError
from aiops.state import StateDB
from aiops.store import SqliteSeriesStore
from dashboard.settings import DashboardConfig

__all__ = ["DataUnavailable", "DashboardData", "load_dashboard_settings", "resolve_paths"]


S = TypeVar("S", bound=CoreSettings)
_T = TypeVar("_T")


class DataUnavailable(StoreError):
    """The store or the state database cannot be read now; the message says why and what to do.

    Attributes:
        kind: ``missing``, ``empty``, ``locked``, ``version`` or ``broken``; pages show ``missing``
            and ``empty`` as information, the others as errors.
    """

    def __init__(self, message: str, kind: str = "broken") -> None:
        super().__init__(message)
        self.kind = kind


def resolve_paths(settings: S, config_path: Path | None) -> S:
    """``settings`` with a relative store path made relative to the config file's folder.

    Without a config file, paths stay relative to the current directory (as the agent reads them).
    """
    if config_path is None or settings.store.path.is_absolute():
        return settings
    store = settings.store.model_copy(update={"path": (config_path.parent / settings.store.path).resolve()})
    return settings.model_copy(update={"store": store})


def _query_rows(db: StateDB, query: Select[Any]) -> list[dict[str, Any]]:
    with db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def load_dashboard_settings(config: str | Path | None) -> tuple[DashboardConfig, Path | None]:
    """The settings the dashboard runs with, and the config file they came from (if any).

    Args:
        config: the ``--config`` file; ``None`` uses ``./aiops.yaml`` when there is one.

    Raises:
        ConfigError: naming the file and key.
    """
    path = Path(config) if config else (Path("aiops.yaml") if Path("aiops.yaml").is_file() else None)
    if path is not None:
        path = path.resolve()
    return resolve_paths(load_settings(path, model=DashboardConfig), path), path


def _sqlite_message(exc: BaseException, what: str, path: object) -> DataUnavailable:
    text = str(exc)
    low = text.lower()
    if "locked" in low or "busy" in low:
        return DataUnavailable(f"The {what} {path} is locked by another process (a long write or a "
                               "maintenance run). Retry in a few seconds.", "locked")
    if "no such table" in low or "no such column" in low or "has no column" in low:
        return DataUnavailable(f"The {what} {path} was written by another version of aiops ({text}). "
                               "Run this version's agent once on it, or point --config at a matching one.",
                               "version")
    if "not a database" in low or "malformed" in low:
        return DataUnavailable(f"The {what} {path} is not a readable aiops database ({text}).", "broken")
    return DataUnavailable(f"The {what} {path} cannot be read: {text[:256]}", "broken")


@dataclass
class DashboardData:
    """What the pages read. One per Streamlit session; opens and closes connections per use."""

    settings: DashboardConfig  # or the application's Settings, which has every section it reads
    config_path: Path | None = None
    _state: StateDB | None = field(default=None, repr=False)

    @property
    def run_hint(self) -> str:
        return f"`aiops run -c {self.config_path}`" if self.config_path else "`aiops run`"

    # --- the time-series store ----------------------------------------------------------------

    @contextmanager
    def store(self) -> Iterator[SqliteSeriesStore]:
        """The store, open for reading, closed afterwards: the agent's file, or Prometheus with
        ``store.read.prometheus_url`` (a dashboard in a pod of its own: the ``ha`` overlay).

        Raises:
            DataUnavailable: missing, empty, locked or from another version.
        """
        if self.settings.store.read.prometheus_url is not None:
            yield from self._prometheus_store()
            return
        path = self.settings.store.path
        if not path.exists():
            raise DataUnavailable(f"No store at {path}: no agent has written here yet. Start one with "
                                  f"{self.run_hint}, or give the dashboard the agent's config (--config).",
                                  "missing")
        try:
            st = SqliteSeriesStore(path, read_only=True)
        except (StoreError, sqlite3.Error) as exc:
            raise _sqlite_message(exc.__cause__ or exc, "store", path) from exc
        try:
            if st.series_count() == 0:
                raise DataUnavailable(f"The store {path} is empty: the agent has not written a sample yet.",
                                      "empty")
            yield st
        except sqlite3.Error as exc:
            raise _sqlite_message(exc, "store", path) from exc
        finally:
            st.close()

    def _prometheus_store(self) -> Iterator[Any]:
        """``store.read.prometheus_url``: the series the agents remote-write, read back from Prometheus."""
        from aiops.promstore import open_series_reader

        url = self.settings.store.read.prometheus_url
        reader: Any = open_series_reader(self.settings.store.read, None)
        try:
            try:
                reader.client.query("vector(1)")  # reachable? (an empty Prometheus shows empty pages)
            except AiopsError as exc:
                raise DataUnavailable(f"Prometheus at {url} cannot be read ({exc}).", "broken") from exc
            yield reader
        finally:
            reader.close()

    def store_size_bytes(self) -> int:
        path = self.settings.store.path
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file()) \
            if path.exists() else 0

    # --- the state database -------------------------------------------------------------------

    def state(self) -> StateDB:
        """The state database (shared engine), never created here.

        Raises:
            DataUnavailable: a SQLite file that does not exist yet.
        """
        url = self.settings.store.state_db_url()
        if url.startswith("sqlite:///"):
            file = Path(url.removeprefix("sqlite:///"))
            if not file.exists():
                raise DataUnavailable(f"No state database at {file}: no agent has run with this config yet. "
                                      f"Start one with {self.run_hint}.", "missing")
        if self._state is None:
            self._state = StateDB(url)
        return self._state

    def rows(self, query: Select[Any]) -> list[dict[str, Any]]:
        """The rows of ``query`` as dicts.

        Raises:
            DataUnavailable: missing, locked or another version of the schema.
        """
        return self.read(_query_rows, query)

    def read(self, reader: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        """``reader(state_db, *args, **kwargs)``: a feature package's read function (``alerting.reads``).

        Raises:
            DataUnavailable: missing, locked or another version of the schema.
        """
        db = self.state()
        try:
            return reader(db, *args, **kwargs)
        except SQLAlchemyError as exc:
            raise _sqlite_message(getattr(exc, "orig", None) or exc, "state database", db.safe_url) from exc

    def kv(self, key: str) -> bytes | None:
        try:
            return self.state().kv_get(key)
        except DataUnavailable:
            raise
        except AiopsError as exc:
            raise _sqlite_message(exc.__cause__ or exc, "state database", self.state().safe_url) from exc

    def close(self) -> None:
        if self._state is not None:
            self._state.dispose()
            self._state = None
