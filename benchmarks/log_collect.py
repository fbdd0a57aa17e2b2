"""Log collector throughput: lines per second tailed and counted, beside a bare line split.

Writes ``--lines`` log lines (half JSON objects, half plain text, 5 % errors, templated messages
with varying ids) to a temporary file, then times in one run:

- baseline: read the file and split it into lines (the floor any tailer pays);
- ``logs`` collector, levels and two regex patterns, templates off;
- ``logs`` collector with drain3 template mining on (the default).

Each figure is CPU time of this process (``time.process_time``), best of ``--repeats``. The last
line is one JSON object: ``baseline_lines_per_s``, ``levels_lines_per_s``,
``templates_lines_per_s``, ``cpu_us_per_line``.

    python benchmarks/log_collect.py [--lines 200000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.logfile import LogFileCollector  # noqa: E402
from collectors.logsettings import LogFileSource  # noqa: E402

MESSAGES = [
    "request {id} served in {ms} ms",
    "user {id} logged in from 10.0.{a}.{b}",
    "cache miss for key session:{id}",
    "upstream timed out after {ms} ms calling feature-store",
    "GPU {a} memory at {ms} MiB",
]


def write_log(path: Path, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            msg = rng.choice(MESSAGES).format(id=rng.randrange(10**6), ms=rng.randrange(2000),
                                              a=rng.randrange(256), b=rng.randrange(256))
            level = "ERROR" if rng.random() < 0.05 else "INFO"
            if i % 2:
                fh.write(json.dumps({"ts": i, "level": level.lower(), "msg": msg}) + "\n")
            else:
                fh.write(f"2026-12-01T10:00:{i % 60:02d}Z {level} {msg}\n")


def time_collector(path: Path, state: Path, templates: bool) -> float:
    src = LogFileSource.model_validate({
        "name": "bench", "paths": [str(path)], "state_dir": str(state), "start_at": "beginning",
        "max_bytes_per_collection": 1 << 34, "timeout_s": 3600,
        "parsing": {"templates": templates, "patterns": {"timeout": "timed out", "gpu": r"GPU \d+"}}})
    c = LogFileCollector(src)
    t0 = time.process_time()
    c.collect(0)
    took = time.process_time() - t0
    c.close()
    return took


def time_baseline(path: Path) -> float:
    t0 = time.process_time()
    with open(path, "rb") as fh:
        n = sum(len(chunk.split(b"\n")) for chunk in iter(lambda: fh.read(1 << 16), b""))
    assert n > 0
    return time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=200_000, help="log lines written and counted")
    ap.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "app.log"
        write_log(log, args.lines)
        base = min(time_baseline(log) for _ in range(args.repeats))
        levels = min(time_collector(log, Path(tmp) / f"s{i}", False) for i in range(args.repeats))
        mined = min(time_collector(log, Path(tmp) / f"m{i}", True) for i in range(args.repeats))
    n = args.lines
    rows = [("baseline: read + split lines", base), ("logs: levels + 2 patterns", levels),
            ("logs: + drain3 templates (default)", mined)]
    print(f"{'what':40s} {'CPU s':>8s} {'lines/s':>12s} {'µs/line':>8s}")
    for what, s in rows:
        print(f"{what:40s} {s:8.3f} {n / s:12,.0f} {s / n * 1e6:8.2f}")
    print(json.dumps({"lines": n, "baseline_lines_per_s": round(n / base), "levels_lines_per_s": round(n / levels),
                      "templates_lines_per_s": round(n / mined), "cpu_us_per_line": round(mined / n * 1e6, 2)}))


if __name__ == "__main__":
    main()
