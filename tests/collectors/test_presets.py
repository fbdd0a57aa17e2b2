"""Inference-server presets on recorded /metrics bodies of vLLM, Triton and the DCGM exporter."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiops.errors import ConfigError
from aiops.model import Sample
from collectors.exposition import ExpositionParser
from collectors.recording import Recorder, RecordingRule, build_recorder, load_preset

FIXTURES = Path(__file__).parent / "fixtures"


def _scrapes(server: str) -> list[list[Sample]]:
    parser = ExpositionParser({"job": server, "instance": "10.0.0.7:8000"})
    return [parser.parse((FIXTURES / f"{server}_metrics_{i}.txt").read_text(), ts, False)
            for i, ts in enumerate((1_000_000, 1_010_000))]


def _derived(server: str) -> dict[str, list[Sample]]:
    recorder = build_recorder([server], [])
    assert recorder is not None
    first, second = _scrapes(server)
    assert [s.series.name for s in recorder.derive(first) if "RATIO" not in s.series.name] == []
    out: dict[str, list[Sample]] = {}
    for s in recorder.derive(second):
        out.setdefault(s.series.name, []).append(s)
    return out


def test_vllm_tokens_per_second_and_ttft_p95() -> None:
    d = _derived("vllm")
    assert d["vllm:generation_tokens_per_second"][0].value == pytest.approx(850.0)
    # 100 first tokens in the interval, cumulative: 80 by 0.75 s, 95 by 1.0 s: the 95th is at 1.0 s
    p95 = d["vllm:time_to_first_token_seconds:p95"][0]
    assert p95.value == pytest.approx(1.0)
    assert p95.series.get("model_name") == "meta-llama/Llama-3.1-8B-Instruct" and p95.series.get("le") == ""
    # e2e: 90 by 5 s, 100 by 10 s: the 95th lies halfway, linear inside the bucket
    assert d["vllm:e2e_request_latency_seconds:p95"][0].value == pytest.approx(7.5)


def test_triton_queue_time_per_request_and_batch_size() -> None:
    d = _derived("triton")
    assert d["nv_inference_queue_duration_seconds:avg"][0].value == pytest.approx(24.0 / 400)
    assert d["nv_inference_batch_size:avg"][0].value == pytest.approx(8.0)
    assert d["nv_inference_request_failures_per_second"][0].value == pytest.approx(2.0)


def test_dcgm_memory_ratio_and_double_bit_ecc_rate() -> None:
    d = _derived("dcgm")
    ratios = {s.series.get("gpu"): s.value for s in d["DCGM_FI_DEV_FB_USED_RATIO"]}
    assert ratios["1"] == pytest.approx(80584 / (80584 + 512))
    dbe = {s.series.get("gpu"): s.value for s in d["DCGM_FI_DEV_ECC_DBE_VOL_PER_SECOND"]}
    assert dbe == {"0": 0.0, "1": pytest.approx(0.2)}


def test_counter_reset_records_nothing_for_that_interval() -> None:
    from aiops.model import Series

    r = Recorder([RecordingRule(record="r", kind="rate", metric="c_total")])
    s = Series.of("c_total", {"a": "1"})
    r.derive([Sample(s, 0, 100.0)])
    assert r.derive([Sample(s, 10_000, 5.0)]) == []
    assert [x.value for x in r.derive([Sample(s, 20_000, 25.0)])] == [2.0]


def test_unknown_preset_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="expected one of vllm, triton, dcgm"):
        load_preset("tgi")


def test_rule_kinds_check_their_fields() -> None:
    with pytest.raises(ValueError, match="needs 'over'"):
        RecordingRule(record="x", kind="ratio", metric="a")


def test_scrape_target_with_a_preset_records_derived_series() -> None:
    from collectors.scrape import ScrapeCollector
    from collectors.settings import ScrapeTarget

    from .helpers import Route, serve_targets

    bodies = [(FIXTURES / f"vllm_metrics_{i}.txt").read_text() for i in range(2)]
    with serve_targets() as srv:
        srv.routes["/metrics"] = Route(body=bodies[0])
        c = ScrapeCollector(ScrapeTarget(url=srv.url("/metrics"), job="vllm", preset=["vllm"]))
        try:
            first = list(c.collect(1_000_000))
            srv.routes["/metrics"] = Route(body=bodies[1])
            second = list(c.collect(1_010_000))
        finally:
            c.close()
    assert not any(s.series.name == "vllm:generation_tokens_per_second" for s in first)
    rate = [s for s in second if s.series.name == "vllm:generation_tokens_per_second"]
    assert [s.value for s in rate] == [pytest.approx(850.0)] and rate[0].series.get("job") == "vllm"


def test_unknown_preset_on_a_scrape_target_fails_at_load() -> None:
    from pydantic import ValidationError

    from collectors.settings import ScrapeTarget

    with pytest.raises(ValidationError, match="vllm"):
        ScrapeTarget(url="http://x:1/metrics", preset=["tgi"])  # type: ignore[list-item]
