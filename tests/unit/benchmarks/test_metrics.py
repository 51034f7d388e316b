"""Benchmark figures: definitions that can be checked by hand."""

from __future__ import annotations

import pytest

from babelcap.benchmarks.load import redact
from babelcap.benchmarks.metrics import LevelMetrics, RequestSample, distribution, prometheus_values
from babelcap.client.records import RecordError, ResultRecord
from babelcap.client.requests import Completion


def _completion(ttft, latency, tokens, chunks):
    return Completion(text="x", prompt_tokens=100, completion_tokens=tokens, ttft_s=ttft,
                      latency_s=latency, finish_reason="stop", server="s", attempts=1,
                      chunk_times_s=tuple(chunks))  # fmt: skip


def test_tpot_excludes_the_first_token_and_itl_is_the_chunk_gaps():
    sample = RequestSample.from_completion(
        "a", "t", "m", _completion(0.1, 0.5, 5, [0.1, 0.2, 0.3, 0.45, 0.5])
    )
    assert sample.tpot_s == pytest.approx(0.1)  # (0.5 - 0.1) / (5 - 1)
    assert sample.itl_s == pytest.approx((0.1, 0.1, 0.15, 0.05))
    single = RequestSample.from_completion("a", "t", "m", _completion(0.2, 0.2, 1, [0.2]))
    assert single.tpot_s is None and single.itl_s == ()


def test_distribution_uses_nearest_rank_and_is_ordered():
    values = list(range(1, 101))
    d = distribution(values)
    assert (d.p50, d.p90, d.p99, d.min, d.max, d.count) == (50, 90, 99, 1, 100, 100)
    assert d.mean == 50.5
    assert distribution([]).p50 is None
    assert distribution([3.0]).p99 == 3.0


def test_level_summary_counts_throughput_over_wall_time():
    level = LevelMetrics(wall_s=2.0)
    for i in range(4):
        level.requests.append(
            RequestSample.from_completion(
                f"a{i}", "d", "m", _completion(0.1, 0.3, 3, [0.1, 0.2, 0.3])
            )
        )
    level.assets = [
        ResultRecord(path="a", kind="image", seconds=0.5,
                     timings={"prepare_s": 0.1, "inference_s": 0.3}),
        ResultRecord(path="b", kind="image", status="error", seconds=0.1, timings={},
                     error=RecordError(kind="decode", message="bad")),
    ]  # fmt: skip
    summary = level.summary()
    assert summary["output_tokens_per_s"] == 6.0 and summary["requests_per_s"] == 2.0
    assert summary["assets_per_min"] == 60.0 and summary["error_rate"] == 0.5
    assert summary["ttft_s"]["p50"] <= summary["e2e_s"]["p50"]
    assert summary["asset_prepare_s"]["count"] == 1


def test_prometheus_text_is_summed_by_name():
    text = (
        "# HELP x\n"
        'vllm:prompt_tokens_total{model_name="a"} 10.0\n'
        'vllm:prompt_tokens_total{model_name="b"} 5.0\n'
        "vllm:gpu_cache_usage_perc 0.25\n"
    )
    assert prometheus_values(text) == {"vllm:prompt_tokens_total": 15.0,
                                       "vllm:gpu_cache_usage_perc": 0.25}  # fmt: skip


def test_secrets_are_redacted_from_the_saved_config():
    clean = redact({"api_key": "sk-123", "server": "http://x", "media": None})
    assert clean == {"api_key": "***", "server": "http://x", "media": None}
