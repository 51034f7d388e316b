"""`babelcap bench baseline` on the tiny CPU stack: the original pipeline (transformers, fp32,
in-process) and babelcap (`babelcap serve --profile tiny-cpu`) on the same files, one run, with
the ratio and both sides' answers checked against the media's colours."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.vllm

SMALL = ["--images", "3", "--videos", "2", "--image-size", "320x240", "--video-size", "160x120",
         "--tasks", "description", "--languages", "fra_Latn", "--warmup", "1",
         "--concurrency", "1,4", "--skip-sequential"]  # fmt: skip


def test_bench_baseline_reports_the_ratio_with_both_sides_correct(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "babelcap", "bench", "baseline", "--output-dir", str(tmp_path),
         *SMALL],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads((tmp_path / "bench.json").read_text("utf-8"))
    assert result["benchmark"] == "babelcap bench baseline"
    baseline = result["baseline"]
    assert baseline["same_assets"] and len(baseline["assets"]) == 5
    original, mine = baseline["original"], baseline["babelcap"]
    assert original["quantization"] == "fp32" and original["device"] == "cpu"
    assert original["attention"] == "sdpa" and "flash_attn" in original["attention_reason"]
    for side in (original, mine):
        assert side["correctness"] == {"checked": 5, "correct": 5, "all_correct": True,
                                       "wrong": []}, side["correctness"]  # fmt: skip
        assert side["assets_per_min"] > 0 and side["output_tokens_per_s"] > 0
        assert side["asset_latency_s"]["count"] == 5
    assert baseline["both_correct"]
    ratio = baseline["ratio"]["assets_per_min"]
    assert ratio == pytest.approx(mine["assets_per_min"] / original["assets_per_min"])
    answers = {a["path"].rsplit("/", 1)[-1]: a for a in original["per_asset"]}
    assert answers["image-0000.jpg"]["texts"]["description"] == "The image is mostly red."
    assert answers["video-0000.mp4"]["texts"]["description"].startswith("The video shows red")
    assert answers["image-0000.jpg"]["translations"]["fra_Latn"]
    summary = (tmp_path / "bench.md").read_text("utf-8")
    assert "Original pipeline vs babelcap" in summary and "ratio babelcap / original" in summary
    assert "ratio babelcap / original" in run.stdout
    assert (tmp_path / "baseline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
