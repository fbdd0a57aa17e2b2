"""The rule packs in deploy/rules load and fire on recorded vLLM, Triton and DCGM /metrics bodies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aiops.model import AlertState, Sample, Series
from aiops.state import StateDB
from alerting.config import load_rule_file
from collectors.exposition import ExpositionParser
from collectors.recording import build_recorder
from tests.alerting.core_support import FakeClock, RecordingSink, make_engine

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "collectors" / "fixtures"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    state = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    state.create_all()
    yield state
    state.dispose()


def _scraped(server: str, clock: FakeClock) -> list[list[Sample]]:
    """Two scrapes 10 s apart, as the scrape collector with ``preset: [server]`` stores them."""
    parser = ExpositionParser({"job": server, "instance": "10.0.0.7:8000"})
    recorder = build_recorder([server], [])
    assert recorder is not None
    out = []
    for i in range(2):
        ts = clock.now + i * 10_000
        samples = parser.parse((FIXTURES / f"{server}_metrics_{i}.txt").read_text(), ts, False)
        out.append(samples + recorder.derive(samples))
    return out


@pytest.mark.parametrize("pack", ["vllm", "triton", "dcgm", "kubernetes", "logs"])
def test_every_pack_loads(pack: str) -> None:
    rules = load_rule_file(REPO / "deploy" / "rules" / f"{pack}.yaml")
    assert rules and all(dict(r.labels).get("pack") == pack for r in rules)


@pytest.mark.parametrize(("pack", "expected"), [
    ("vllm", {"VllmQueueGrowing", "VllmKvCacheSaturated"}),
    ("triton", {"TritonPendingRequests", "TritonRequestFailures"}),
    ("dcgm", {"GpuXidError", "GpuFellOffTheBus", "GpuEccDoubleBit", "GpuRowRemapFailed"}),
])
def test_pack_fires_on_a_saturated_server(db: StateDB, pack: str, expected: set[str]) -> None:
    clock = FakeClock()
    engine = make_engine(db, clock, RecordingSink(), rule_files=[str(REPO / "deploy" / "rules" / f"{pack}.yaml")])
    calm, saturated = _scraped(pack, clock)
    engine.on_samples(calm)
    for _ in range(6):  # hold the saturated scrape for 3 minutes: past every `for`
        clock.advance(30)
        engine.on_samples([Sample(s.series, clock.now, s.value) for s in saturated])
        engine.evaluate()
    firing = {d["alert"].name for d in engine.alerts() if d["alert"].state is AlertState.FIRING}
    assert expected <= firing, firing


@pytest.mark.parametrize(("pack", "series", "value", "alert"), [
    ("kubernetes", Series.of("kube_pod_container_status_waiting_reason", namespace="inference", pod="llm-1",
                             container="vllm", reason="CrashLoopBackOff"), 1.0, "PodCrashLooping"),
    ("kubernetes", Series.of("kube_node_status_condition", node="gpu-1", condition="Ready", status="true"), 0.0,
     "NodeNotReady"),
    ("logs", Series.of("aiops_log_lines_per_second", source="api", level="error"), 12.0, "LogErrorBurst"),
])
def test_state_and_log_packs_fire(db: StateDB, pack: str, series: Series, value: float, alert: str) -> None:
    clock = FakeClock()
    engine = make_engine(db, clock, RecordingSink(), rule_files=[str(REPO / "deploy" / "rules" / f"{pack}.yaml")])
    for _ in range(12):  # six minutes of the same value
        engine.on_samples([Sample(series, clock.now, value)])
        engine.evaluate()
        clock.advance(30)
    firing = {d["alert"].name for d in engine.alerts() if d["alert"].state is AlertState.FIRING}
    assert alert in firing, firing
