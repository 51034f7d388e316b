"""The original pipeline's loading paths on CPU with the committed stand-ins: fp32 and bf16
loaded and generating through sdpa, the NF4 and FP8 choices refused with what to do where this
machine cannot run them, and the attention choice."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from babelcap.benchmarks.baseline_compare import answer_correct, baseline_config
from babelcap.benchmarks.bench import BenchSettings
from babelcap.benchmarks.original_pipeline import (
    OriginalPipeline,
    PipelineConfig,
    attention_implementation,
    load_options,
    nf4_config,
)
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
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    if not torch.cuda.is_available():
        with pytest.raises(ConfigurationError, match="needs a CUDA GPU"):
            load_options("nf4", "cpu", stand_in("mllama"))


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
