"""Log collectors: file tailing (rotation, truncation, restart), Kafka (mockafka), Loki (HTTP)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from aiops.model import Sample
from collectors.logcount import LogCounter
from collectors.logfile import LogFileCollector
from collectors.logsettings import KafkaLogSource, LogFileSource, LogParsing
from collectors.settings import LokiSource

from .helpers import Route, serve_targets


def _values(samples: list[Sample], name: str, key: str) -> dict[str, float]:
    return {s.series.get(key): s.value for s in samples if s.series.name == name}


def _source(tmp_path: Path, **kw: object) -> LogFileSource:
    return LogFileSource.model_validate({
        "name": "api", "paths": [str(tmp_path / "app.log*")] if "paths" not in kw else kw.pop("paths"),
        "state_dir": str(tmp_path / "state"), "start_at": "beginning",
        "parsing": {"patterns": {"timeout": "timed out"}, "templates": False}, **kw})


def _append(path: Path, *lines: str | bytes) -> None:
    with open(path, "ab") as fh:
        for line in lines:
            fh.write((line.encode() if isinstance(line, str) else line) + b"\n")


def _levels(c: LogFileCollector, now_ms: int) -> dict[str, float]:
    out = c.collect(now_ms)
    c.acknowledge()
    return _values(out, "aiops_log_lines_total", "level")


def test_levels_from_json_and_plain_lines(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    _append(log, '{"level": "error", "msg": "db timed out"}', "2026-12-01 WARN slow", "INFO ok",
            '{"severity": 50, "message": "x"}', "no level here")
    c = LogFileCollector(_source(tmp_path, paths=[str(log)]))
    samples = c.collect(1_000)
    assert _values(samples, "aiops_log_lines_total", "level") == {"error": 2, "warning": 1, "info": 1,
                                                                    "unknown": 1}
    assert _values(samples, "aiops_log_pattern_lines_total", "pattern") == {"timeout": 1}


def test_only_new_complete_lines_count_and_rates_follow(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    _append(log, "ERROR a", "ERROR b")
    c = LogFileCollector(_source(tmp_path, paths=[str(log)]))
    assert _levels(c, 1_000)["error"] == 2
    with open(log, "ab") as fh:
        fh.write(b"ERROR c\nERROR partial")  # no newline yet: not a line
    out = c.collect(11_000)
    assert _values(out, "aiops_log_lines_total", "level")["error"] == 3
    assert _values(out, "aiops_log_lines_per_second", "level")["error"] == pytest.approx(0.1)
    with open(log, "ab") as fh:
        fh.write(b" now complete\n")
    assert _levels(c, 21_000)["error"] == 4


def test_rotation_by_rename_reads_the_old_file_to_its_end(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    _append(log, "ERROR 1")
    c = LogFileCollector(_source(tmp_path, paths=[str(log)]))
    assert _levels(c, 1_000)["error"] == 1
    _append(log, "ERROR 2")  # written just before rotation
    os.rename(log, tmp_path / "app.log.1")
    _append(log, "ERROR 3", "ERROR 4")  # the new file
    assert _levels(c, 2_000)["error"] == 4
    assert c.tails[str(log)].rotations == 1


def test_copy_truncate_reads_the_file_again_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    _append(log, "ERROR 1", "ERROR 2", "ERROR 3")
    c = LogFileCollector(_source(tmp_path, paths=[str(log)]))
    assert _levels(c, 1_000)["error"] == 3
    log.write_bytes(b"")  # logrotate copytruncate
    _append(log, "ERROR 4")
    assert _levels(c, 2_000)["error"] == 4
    assert c.tails[str(log)].truncations == 1


def test_restart_neither_skips_nor_double_counts(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    _append(log, *[f"ERROR {i}" for i in range(5)])
    first = LogFileCollector(_source(tmp_path, paths=[str(log)]))
    assert _levels(first, 1_000)["error"] == 5
    _append(log, "ERROR 5", "ERROR 6")
    first.collect(2_000)  # collected but never acknowledged (the agent died before storing)
    first.close()
    _append(log, "ERROR 7")
    second = LogFileCollector(_source(tmp_path, paths=[str(log)]))
    assert _levels(second, 3_000)["error"] == 8  # 5 saved + 3 read once


def test_rotation_while_stopped_finds_the_old_file_by_inode(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    _append(log, "ERROR 1")
    first = LogFileCollector(_source(tmp_path))
    assert _levels(first, 1_000)["error"] == 1
    first.close()
    _append(log, "ERROR 2")  # the last lines before rotation, never read by the first run
    os.rename(log, tmp_path / "app.log.1")
    _append(log, "ERROR 3")
    second = LogFileCollector(_source(tmp_path, paths=[str(log)]))
    assert _levels(second, 2_000)["error"] == 3


def test_bad_lines_are_counted_never_fatal(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    huge = b"ERROR " + b"x" * 200_000
    _append(log, b"\xff\xfe\xfd invalid", b"bin\x00ary", huge, b"ERROR after")
    c = LogFileCollector(_source(tmp_path, paths=[str(log)]))
    samples = c.collect(1_000)
    assert _values(samples, "aiops_log_bad_lines_total", "reason") == {"invalid_utf8": 1, "binary": 1,
                                                                         "too_long": 1}
    assert _values(samples, "aiops_log_lines_total", "level")["error"] == 1


def test_start_at_end_skips_history_of_a_new_file(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    _append(log, "ERROR old")
    c = LogFileCollector(_source(tmp_path, paths=[str(log)], start_at="end"))
    assert _levels(c, 1_000)["error"] == 0
    _append(log, "ERROR new")
    assert _levels(c, 2_000)["error"] == 1


def test_templates_are_mined_and_bounded() -> None:
    c = LogCounter("api", LogParsing(max_templates=2))
    c.feed([f"user {i} logged in from 10.0.0.{i}".encode() for i in range(20)])
    c.feed([b"disk /dev/sda1 full", b"disk /dev/sdb2 full", b"something else entirely"])
    templates = c.totals.templates
    assert sum(templates.values()) == 23
    assert max(templates.values()) == 20 and len(templates) <= 3
    assert "other" in templates


def test_kafka_offsets_are_committed_only_after_storing() -> None:
    mockafka = pytest.importorskip("mockafka", reason="mockafka-py is a test dependency")
    from mockafka.admin_client import FakeAdminClientImpl, NewTopic
    from mockafka.kafka_store import KafkaStore

    from collectors.logkafka import KafkaLogCollector

    KafkaStore.fresh()
    FakeAdminClientImpl().create_topics([NewTopic(topic="logs", num_partitions=1)])
    producer = mockafka.FakeProducer()
    for i in range(3):
        producer.produce("logs", value=json.dumps({"log": f"ERROR failed {i}", "kubernetes": {"pod": "p"}}),
                         partition=0)
    settings = KafkaLogSource(name="fluentbit", bootstrap_servers="kafka:9092", topics=["logs"],
                              parsing=LogParsing(templates=False))
    first = KafkaLogCollector(settings, consumer=mockafka.FakeConsumer())
    assert _values(first.collect(1_000), "aiops_log_lines_total", "level")["error"] == 3
    first.acknowledge()
    producer.produce("logs", value=b"WARN plain record", partition=0)
    assert _values(first.collect(2_000), "aiops_log_lines_total", "level")["warning"] == 1
    first.close()  # dies before the agent stored the second collection: no commit
    second = KafkaLogCollector(settings, consumer=mockafka.FakeConsumer())
    again = _values(second.collect(3_000), "aiops_log_lines_total", "level")
    assert again.get("warning") == 1 and again.get("error", 0) == 0  # redelivered, committed ones not


def test_loki_metric_queries_are_imported_with_tenant() -> None:
    body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"app": "api"}, "values": [[1_700_000_000, "3"], [1_700_000_060, "5"]]}]}})
    settings = LokiSource.model_validate({
        "url": "", "queries": ['sum by (app) (count_over_time({app="api"} |= "error" [1m]))'],
        "names": {'sum by (app) (count_over_time({app="api"} |= "error" [1m]))': "log_errors"},
        "step_s": 60, "lookback_s": 600, "tenant": "team-a"})
    with serve_targets() as srv:
        srv.routes["/loki/api/v1/query_range"] = Route(body=body, content_type="application/json")
        from collectors.loki import LokiCollector

        c = LokiCollector(settings.model_copy(update={"url": srv.url("")}))
        try:
            samples = c.collect(1_700_000_100_000)
        finally:
            c.close()
    assert [(s.series.name, s.series.label_dict, s.value) for s in samples] == [
        ("log_errors", {"app": "api"}, 3.0), ("log_errors", {"app": "api"}, 5.0)]
    path, headers = srv.requests[0]
    assert path.startswith("/loki/api/v1/query_range?") and "count_over_time" in path
    assert {k.lower(): v for k, v in headers.items()}["x-scope-orgid"] == "team-a"


def test_loki_log_queries_are_refused_at_load() -> None:
    with pytest.raises(ValueError, match="log query"):
        LokiSource.model_validate({"url": "http://loki:3100", "queries": ['{app="api"} |= "error"']})
