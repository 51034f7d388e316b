"""The original pipeline's loading paths on CPU with the committed stand-ins: fp32 and bf16
loaded and generating through sdpa, the NF4 and FP8 choices refused with what to do where this
machine cannot run them, and the attention choice."""

from __future__ import annotations

import importlib.util
import json
import shutil
from types import SimpleNamespace

import pytest
from PIL import Image

from babelcap.benchmarks.baseline_compare import (
    answer_correct,
    baseline_config,
    baseline_media,
    compare,
    run_original,
    wrong_answers,
)
from babelcap.benchmarks.bench import BenchSettings, _answers
from babelcap.benchmarks.original_pipeline import (
    OriginalPipeline,
    PipelineConfig,
    attention_implementation,
    load_options,
    nf4_config,
)
from babelcap.benchmarks.report import markdown, table
from babelcap.benchmarks.workload import Workload, synthetic_colours
from babelcap.core.artifacts import STAND_IN_COLOURS, stand_in
from babelcap.core.errors import ConfigurationError

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture
def red_image(tmp_path):
    path = tmp_path / "red.jpg"
    Image.new("RGB", (320, 240), STAND_IN_COLOURS["red"]).save(path, "JPEG", quality=90)
    return path


@pytest.fixture
def fake_flash_attn(tmp_path, monkeypatch):
    """An importable ``flash_attn`` package (the real one needs CUDA to build)."""
    (tmp_path / "flash_attn").mkdir()
    (tmp_path / "flash_attn" / "__init__.py").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))


def _pipeline(quantization, languages=()):
    config = PipelineConfig(stand_in("mllama"), stand_in("llava-next-video"), stand_in("nllb"),
                            quantization=quantization, frames=4, languages=languages)  # fmt: skip
    return OriginalPipeline(config)


@pytest.mark.parametrize("quantization", ["fp32", "bf16"])
def test_the_image_model_loads_and_answers_through_sdpa(quantization, red_image):
    pipeline = _pipeline(quantization)
    model, _ = pipeline._load("image")
    want = torch.float32 if quantization == "fp32" else torch.bfloat16
    assert model.dtype == want
    assert model.config._attn_implementation == "sdpa" == pipeline.attention
    answer = pipeline.caption(red_image)
    assert answer.kind == "image" and answer.output_tokens > 0
    assert answer_correct("image", answer.texts["description"], ["red"])


def test_fp32_translates_each_language_with_the_transformers_pipeline(red_image):
    answer = _pipeline("fp32", languages=("fra_Latn", "spa_Latn")).caption(red_image)
    assert answer.texts["description"] == "The image is mostly red."
    assert set(answer.translations) == {"fra_Latn", "spa_Latn"}
    assert "rouge" in answer.translations["fra_Latn"].lower()
    assert answer.translation_s > 0


def test_attention_is_sdpa_without_flash_attn():
    import importlib.util

    if importlib.util.find_spec("flash_attn") is not None:
        pytest.skip("flash_attn is installed here")
    choice, why = attention_implementation("cuda")
    assert choice == "sdpa" and "flash_attn is not installed" in why


def test_attention_is_flash_attention_2_with_flash_attn_on_cuda_only(fake_flash_attn):
    assert attention_implementation("cuda")[0] == "flash_attention_2"
    choice, why = attention_implementation("cpu")
    assert choice == "sdpa" and "needs CUDA" in why


def test_fp32_and_bf16_options():
    assert load_options("fp32", "cpu", stand_in("mllama")) == {"torch_dtype": torch.float32}
    assert load_options("bf16", "cpu", stand_in("mllama")) == {"torch_dtype": torch.bfloat16}


def test_nf4_says_what_is_missing():
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        with pytest.raises(ConfigurationError, match=r"bitsandbytes.*babelcap\[baseline\]"):
            load_options("nf4", "cuda", stand_in("mllama"))
        return
    config = nf4_config()
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_use_double_quant and config.bnb_4bit_compute_dtype == torch.bfloat16
    if importlib.util.find_spec("accelerate") is None:
        with pytest.raises(ConfigurationError, match="needs accelerate"):
            load_options("nf4", "cpu", stand_in("mllama"))
    elif not torch.cuda.is_available():
        with pytest.raises(ConfigurationError, match="torch sees no CUDA GPU"):
            load_options("nf4", "cuda", stand_in("mllama"))


def test_fp8_needs_a_compressed_tensors_checkpoint(tmp_path):
    pytest.importorskip("compressed_tensors")
    with pytest.raises(ConfigurationError, match="not quantized"):
        load_options("fp8", "cpu", stand_in("mllama"))
    folder = tmp_path / "model"
    shutil.copytree(stand_in("mllama"), folder)
    config = json.loads((folder / "config.json").read_text("utf-8"))
    config["quantization_config"] = {"quant_method": "bitsandbytes"}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(ConfigurationError, match="bitsandbytes-quantized"):
        load_options("fp8", "cpu", folder)
    config["quantization_config"] = {"quant_method": "compressed-tensors"}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    if importlib.util.find_spec("accelerate") is None:
        with pytest.raises(ConfigurationError, match="needs accelerate"):
            load_options("fp8", "cuda", folder)
        return
    assert load_options("fp8", "cuda", folder) == {"torch_dtype": "auto"}
    # A hub id is not read here: transformers reads its quantization_config on load.
    assert load_options("fp8", "cuda", "RedHatAI/Llama-3.2-11B-Vision-Instruct-FP8-dynamic")


@pytest.mark.parametrize(
    ("profile", "quantization", "device"),
    [("tiny-cpu", "fp32", "cpu"), ("tiny-cpu-bf16", "bf16", "cpu"),
     ("llama-vision-nf4", "nf4", "cuda"), ("llama-vision-fp8", "fp8", "cuda"),
     ("llama-vision-bf16", "bf16", "cuda")],
)  # fmt: skip
def test_the_baseline_follows_the_profile(profile, quantization, device):
    config = baseline_config(BenchSettings(profile=profile, tasks=["description"]), 8)
    assert (config.quantization, config.device) == (quantization, device)
    if profile.startswith("tiny"):
        assert config.image_model == stand_in("mllama")
        assert config.translation_model == stand_in("nllb")


def test_explicit_baseline_settings_win():
    settings = BenchSettings(baseline_quantization="bf16", baseline_device="cuda:1",
                             baseline_image_model="/models/mllama")  # fmt: skip
    config = baseline_config(settings, 4)
    assert (config.quantization, config.device, config.image_model) == (
        "bf16", "cuda:1", "/models/mllama")  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "text", "colours", "ok"),
    [("image", "The image is mostly red.", ["red"], True),
     ("image", "The image is mostly blue.", ["red"], False),
     ("image", "Red and green.", ["red"], False),
     ("video", "The video shows red, green, blue, yellow.", ["red", "green", "blue", "yellow"],
      True),
     ("video", "The video shows green, red, blue, yellow.", ["red", "green", "blue", "yellow"],
      False)],
)  # fmt: skip
def test_answers_are_checked_by_their_colours(kind, text, colours, ok):
    assert answer_correct(kind, text, colours) is ok


def test_synthetic_colours_name_every_file():
    colours = synthetic_colours(Workload(images=2, videos=1, seed=1))
    assert colours == {"image-0000.jpg": ["green"], "image-0001.jpg": ["blue"],
                       "video-0000.mp4": ["green", "blue", "yellow", "orange"]}  # fmt: skip


def _level(answers, concurrency=1):
    latency = {"p50": 0.5, "p90": 0.6, "count": len(answers)}
    client = {"assets": len(answers), "errors": 0, "assets_per_min": 120.0,
              "output_tokens_per_s": 40.0, "asset_latency_s": latency}  # fmt: skip
    return {"concurrency": concurrency, "rate": None, "client": client, "answers": answers}


def _original(texts, folder, attention=("sdpa", "flash_attn is not installed")):
    per_asset = [{"path": str(folder / name), "kind": kind, "texts": {"description": text},
                  "seconds": 2.0} for name, (kind, text) in texts.items()]  # fmt: skip
    latency = {"p50": 2.0, "p90": 2.0, "count": len(texts)}
    return {"quantization": "fp32", "device": "cpu", "attention": attention[0],
            "attention_reason": attention[1], "frames_per_video": 4, "load_s": 1.0,
            "assets": len(texts), "assets_per_min": 30.0, "output_tokens_per_s": 10.0,
            "asset_latency_s": latency, "per_asset": per_asset}  # fmt: skip


SYNTHETIC = {"image-0000.jpg": ["red"], "video-0000.mp4": ["red", "green", "blue", "yellow"]}
RIGHT = {"image-0000.jpg": ("image", "The image is mostly red."),
         "video-0000.mp4": ("video", "The video shows red, green, blue, yellow.")}  # fmt: skip


def _section(tmp_path, original_texts, babelcap_texts):
    profile = {"name": "tiny-cpu", "levels": [_level(dict(babelcap_texts))]}
    return compare(_original(original_texts, tmp_path), profile, SYNTHETIC, tmp_path)


def _exit_code(monkeypatch, tmp_path, section):
    """``babelcap bench baseline``'s exit code for a run whose comparison is ``section``."""
    import babelcap.benchmarks.bench as bench
    from babelcap.cli import main

    result = {"profiles": [{"levels": [{"client": {"errors": 0}}]}], "baseline": section}
    monkeypatch.setattr(bench, "run_bench", lambda settings, compare, baseline: result)
    return main(["bench", "baseline", "--output-dir", str(tmp_path)])


@pytest.mark.parametrize("wrong_side", ["babelcap", "original", None])
def test_bench_baseline_fails_when_either_side_answers_wrongly(
    tmp_path, monkeypatch, capsys, wrong_side
):
    from babelcap.core.errors import EXIT_FAILED, EXIT_OK

    wrong = {**RIGHT, "image-0000.jpg": ("image", "The image is mostly blue.")}
    section = _section(tmp_path, wrong if wrong_side == "original" else RIGHT,
                       wrong if wrong_side == "babelcap" else RIGHT)  # fmt: skip
    assert section["same_assets"]
    for side in ("original", "babelcap"):
        assert section[side]["correctness"]["wrong"] == (
            ["image-0000.jpg"] if side == wrong_side else []
        )
    assert section["both_correct"] is (wrong_side is None)
    code = _exit_code(monkeypatch, tmp_path, section)
    if wrong_side is None:
        assert code == EXIT_OK and wrong_answers(section) is None
        return
    assert code == EXIT_FAILED
    assert f"wrong answers: {wrong_side} image-0000.jpg" in capsys.readouterr().err


def test_the_report_says_which_attention_the_original_ran(tmp_path, fake_flash_attn):
    config = PipelineConfig(stand_in("mllama"), None, None, device="cuda")
    pipeline = OriginalPipeline(config)  # nothing loaded: the choice is made up front
    assert (pipeline.attention, pipeline.attention_reason) == (
        "flash_attention_2", "flash_attn is installed and the models run on CUDA")  # fmt: skip
    section = _section(tmp_path, RIGHT, RIGHT)
    section["original"].update(attention=pipeline.attention,
                               attention_reason=pipeline.attention_reason)  # fmt: skip
    result = {"profiles": [], "hardware": {"cpu": "x", "cpus_available": 1, "memory_gib": 1,
              "gpu": None}, "versions": {}, "timestamp": "t", "workload_summary": "w",
              "baseline": section}  # fmt: skip
    summary = markdown(result)
    assert "original (fp32, flash_attention_2, cpu, one at a time)" in summary
    assert ("attention flash_attention_2 (flash_attn is installed and the models run on CUDA)"
            in summary)  # fmt: skip
    assert "flash_attention_2" in table(result)


def test_your_media_in_subfolders_goes_to_both_sides_unchecked(tmp_path):
    """``--media DIR``: babelcap's answers are keyed by path under DIR, the original pipeline
    gets exactly those files (subfolders and same-named files included), and with nothing to
    check against, neither side can be wrong, so the run does not fail on answers."""
    media = tmp_path / "mine"
    colours = {"a/photo.jpg": "red", "b/photo.jpg": "blue", "b/c/deep.png": "green"}
    for name, colour in colours.items():
        (media / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (320, 240), STAND_IN_COLOURS[colour]).save(media / name)
    (media / "notes.txt").write_text("not media", encoding="utf-8")
    # what babelcap's level recorded for each asset it captioned (client/runner's metrics)
    assets = [SimpleNamespace(path=str(media / name), kind="image",
                              tasks={"description": SimpleNamespace(text=f"mostly {colour}")})
              for name, colour in colours.items()]  # fmt: skip
    answers = _answers(SimpleNamespace(assets=assets), media)
    assert sorted(answers) == ["a/photo.jpg", "b/c/deep.png", "b/photo.jpg"]
    paths = baseline_media(media, list(answers))
    assert paths == [media / "a/photo.jpg", media / "b/c/deep.png", media / "b/photo.jpg"]
    with pytest.raises(ConfigurationError, match="cannot find"):
        baseline_media(media, ["a/gone.jpg"])
    config = PipelineConfig(stand_in("mllama"), None, None, frames=4)
    original = run_original(config, paths, warmup=0)
    assert original["attention"] == "sdpa" and original["attention_reason"]
    said = {a["path"]: a["texts"]["description"] for a in original["per_asset"]}
    for name, colour in colours.items():
        assert answer_correct("image", said[str(media / name)], [colour]), said
    section = compare(original, {"name": "tiny-cpu", "levels": [_level(answers)]}, None, media)
    assert section["same_assets"] and section["assets"] == sorted(colours)
    unchecked = {"checked": 0, "correct": None, "all_correct": None, "wrong": []}
    assert section["original"]["correctness"] == unchecked
    assert section["babelcap"]["correctness"] == unchecked
    assert not section["both_correct"] and wrong_answers(section) is None
