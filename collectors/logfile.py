"""Tail log files into counts, like ``tail -F`` with a memory of where it stopped.

Per file the collector keeps ``(device, inode, offset)``. Each collection:

- a file whose inode changed was **rotated by rename**: the old file is read to its end (the
  open handle still reaches it; after a restart it is found again by inode among ``path*``
  siblings such as ``app.log.1``), then the new file is read from its start;
- a file shorter than the offset was **truncated** (copy-truncate rotation): it is read again
  from the start;
- only complete lines count; a partial last line waits for its newline (its bytes are not
  consumed, so a restart reads it again whole). A line longer than ``max_line_bytes`` counts
  once as ``too_long`` and is skipped up to its newline.

Offsets and the running totals are saved together (write to a temporary file, fsync, rename)
after the agent has stored the collection (:meth:`LogFileCollector.acknowledge`). A restart
therefore resumes at the saved offset with the saved totals: lines are neither skipped nor
counted twice; a crash between storing and saving re-reads that one collection's lines and
re-derives the same totals, because the totals and the offsets travel together.
"""

from __future__ import annotations

import glob
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from aiops.logs import get_logger
from aiops.model import Sample
from collectors.logcount import LogCounter
from collectors.logsettings import LogFileSource

__all__ = ["LogFileCollector", "FileTail"]

log = get_logger("collectors.logfile")

_CHUNK = 1 << 16


@dataclass(slots=True)
class _Position:
    dev: int
    ino: int
    offset: int


class FileTail:
    """Reads one path's complete new lines, following rotation and truncation.

    Args:
        path: the file (it may not exist yet).
        position: where a previous run stopped (``None``: a new file).
        start_at_end: for a file never seen before, skip what it already holds.
        max_line_bytes: longer lines are reported as ``None`` entries (too long) and skipped.
    """

    def __init__(self, path: str, position: _Position | None, start_at_end: bool, max_line_bytes: int) -> None:
        self.path = path
        self.max_line_bytes = max_line_bytes
        self._fh: BinaryIO | None = None
        self._pos: _Position | None = position
        self._new_file_at_end = start_at_end and position is None
        self._skipping = False  # inside a too-long line: drop bytes up to the next newline
        self.truncations = 0
        self.rotations = 0

    @property
    def position(self) -> _Position | None:
        """Where the next read starts (the start of the first unconsumed byte)."""
        return self._pos

    def read(self, budget_bytes: int) -> list[bytes | None]:
        """New complete lines (``None`` for each too-long line), at most about ``budget_bytes``."""
        out: list[bytes | None] = []
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._fh is not None:  # deleted or renamed away with no successor yet: finish it
                out.extend(self._drain(self._fh, budget_bytes))
            return out
        ident = (st.st_dev, st.st_ino)
        if self._fh is None and self._pos is not None and (self._pos.dev, self._pos.ino) != ident:
            # rotated while we were not running: finish the old file if it is still around
            old = self._find_by_inode(self._pos.dev, self._pos.ino)
            if old is not None:
                with open(old, "rb") as fh:
                    fh.seek(self._pos.offset)
                    out.extend(self._drain(fh, budget_bytes))
            self.rotations += 1
            self._pos = None
        elif self._fh is not None and self._pos is not None and (self._pos.dev, self._pos.ino) != ident:
            out.extend(self._drain(self._fh, budget_bytes))  # the open handle still reads the old file
            self._fh.close()
            self._fh = None
            self.rotations += 1
            self._pos = None
        if self._fh is None:
            self._fh = open(self.path, "rb")  # noqa: SIM115 - kept open across collections, closed in close()
            if self._pos is None:
                start = st.st_size if self._new_file_at_end else 0
                self._new_file_at_end = False
                self._pos = _Position(st.st_dev, st.st_ino, start)
        pos = self._pos
        if pos is None:  # unreachable: set above whenever a handle is open
            return out
        if st.st_size < pos.offset:
            self.truncations += 1
            pos.offset = 0
            self._skipping = False
        self._fh.seek(pos.offset)
        out.extend(self._drain(self._fh, max(0, budget_bytes - sum(len(x or b"") for x in out))))
        return out

    def _drain(self, fh: BinaryIO, budget_bytes: int) -> list[bytes | None]:
        """Complete lines from ``fh``'s current position; advances ``self._pos.offset``."""
        out: list[bytes | None] = []
        start = fh.tell()
        consumed = 0
        pending = b""
        while consumed < budget_bytes:
            chunk = fh.read(_CHUNK)
            if not chunk:
                break
            data = pending + chunk
            lines = data.split(b"\n")
            pending = lines.pop()
            for line in lines:
                consumed += len(line) + 1
                if self._skipping:
                    self._skipping = False  # the rest of a too-long line ends here
                    continue
                out.append(line if len(line) <= self.max_line_bytes else None)
            if len(pending) > self.max_line_bytes:
                if not self._skipping:
                    out.append(None)
                    self._skipping = True
                consumed += len(pending)
                pending = b""
        if self._pos is not None:
            self._pos.offset = start + consumed
        fh.seek(start + consumed)
        return out

    def _find_by_inode(self, dev: int, ino: int) -> str | None:
        for candidate in sorted(glob.glob(glob.escape(self.path) + "*")):
            try:
                st = os.stat(candidate)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (dev, ino):
                return candidate
        return None

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class LogFileCollector:
    """Counts the lines of the files one ``collect.logs`` entry names.

    Args:
        settings: paths (globs), parsing, labels, state directory, schedule.
    """

    name = "logs"

    def __init__(self, settings: LogFileSource) -> None:
        self.settings = settings
        self.target = settings.name
        self.interval_s = settings.interval_s
        self.timeout_s = settings.timeout_s
        self.jitter_s = settings.jitter_s
        self.state_path = Path(settings.state_dir) / f"{_safe(settings.name)}.json"
        saved = self._load_state()
        self.counter = LogCounter(settings.name, settings.parsing, settings.labels, saved.get("totals"))
        self._saved_positions: dict[str, _Position] = {
            p: _Position(int(v["dev"]), int(v["ino"]), int(v["offset"]))
            for p, v in (saved.get("files") or {}).items()
            if isinstance(v, dict) and {"dev", "ino", "offset"} <= v.keys()
        }
        self.tails: dict[str, FileTail] = {}
        self.lines_read = 0

    def collect(self, now_ms: int) -> list[Sample]:
        """Read every file's new lines and return the running counts."""
        deadline = time.monotonic() + self.timeout_s
        paths = sorted({p for pattern in self.settings.paths for p in glob.glob(pattern)} | set(self.tails))
        for path in paths:
            if time.monotonic() > deadline:
                break  # the rest waits for the next collection; nothing is lost
            tail = self.tails.get(path)
            if tail is None:
                tail = FileTail(path, self._saved_positions.pop(path, None),
                                self.settings.start_at == "end", self.settings.parsing.max_line_bytes)
                self.tails[path] = tail
            try:
                lines = tail.read(self.settings.max_bytes_per_collection)
            except OSError as exc:
                log.warning("log_read_failed", source=self.settings.name, error=f"{path}: {exc.strerror}")
                continue
            for line in lines:
                if line is None:
                    self.counter.count_bad("too_long")
                else:
                    self.counter.feed_one(line)
            self.lines_read += len(lines)
        return self.counter.samples(now_ms)

    def acknowledge(self) -> None:
        """The agent stored the last collection: save offsets and totals together."""
        files = {p: {"dev": t.position.dev, "ino": t.position.ino, "offset": t.position.offset}
                 for p, t in self.tails.items() if t.position is not None}
        files.update({p: {"dev": v.dev, "ino": v.ino, "offset": v.offset} for p, v in self._saved_positions.items()})
        state = {"version": 1, "files": files, "totals": self.counter.state()}
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.state_path)

    def _load_state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("log_state_unreadable", source=self.settings.name, error=str(exc))
            return {}
        return data if isinstance(data, dict) else {}

    def close(self) -> None:
        for t in self.tails.values():
            t.close()


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "source"
