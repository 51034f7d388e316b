"""The original pipeline's quantized loading paths on CPU with the committed Mllama stand-in:
a compressed-tensors FP8-dynamic checkpoint built here from the stand-in, and bitsandbytes NF4,
each loaded through OriginalPipeline._load and answering. Where a library is missing, the test
first shows transformers' own failure, then skips with it."""

from __future__ import annotations

import importlib.util
import shutil

import pytest
from PIL import Image

from babelcap.benchmarks import original_pipeline
from babelcap.benchmarks.baseline_compare import answer_correct
from babelcap.benchmarks.original_pipeline import OriginalPipeline, PipelineConfig, load_options
from babelcap.core.artifacts import STAND_IN_COLOURS, stand_in
from babelcap.core.errors import ConfigurationError

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture
def red_image(tmp_path):
    path = tmp_path / "red.jpg"
    Image.new("RGB", (320, 240), STAND_IN_COLOURS["red"]).save(path, "JPEG", quality=90)
    return path


@pytest.fixture(scope="module")
def fp8_stand_in(tmp_path_factory):
    """The Mllama stand-in as RedHatAI's Llama-3.2-Vision FP8-dynamic checkpoints are made:
    the language model's Linear layers FP8 (E4M3) weights with a per-channel scale, activations
    quantized per token at run time; vision tower, projector and lm_head left alone."""
    pytest.importorskip("compressed_tensors")
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import (
        QuantizationConfig,
        apply_quantization_config,
        preset_name_to_scheme,
    )

    source = stand_in("mllama")
    folder = tmp_path_factory.mktemp("fp8") / "mllama-fp8-dynamic"
    model = transformers.MllamaForConditionalGeneration.from_pretrained(
        source, torch_dtype=torch.float32
    )
    scheme = preset_name_to_scheme("FP8_DYNAMIC", ["Linear"])
    ignore = ["re:.*lm_head", "re:.*multi_modal_projector.*", "re:.*vision_model.*"]
    apply_quantization_config(
        model, QuantizationConfig(config_groups={"group_0": scheme}, ignore=ignore)
    )
    fp8_max = torch.finfo(torch.float8_e4m3fn).max
    quantized = 0
    for module in model.modules():
        if getattr(module, "quantization_scheme", None) is not None:
            # what llm-compressor's min-max observer computes for symmetric per-channel weights
            amax = module.weight.detach().abs().amax(dim=1, keepdim=True).clamp(min=1e-12)
            module.weight_scale.data.copy_(amax / fp8_max)
            quantized += 1
    assert quantized > 0
    compressor = ModelCompressor.from_pretrained_model(model, quantization_format="float-quantized")
    compressor.compress_model(model)
    model.save_pretrained(folder)
    compressor.update_config(str(folder))
    for path in source.iterdir():
        if not (folder / path.name).exists() and path.name != "BUILD.json":
            shutil.copy(path, folder / path.name)
    return folder


def _transformers_refuses_without_accelerate(folder, **options):
    """transformers' own failure to load a quantized checkpoint without accelerate."""
    with pytest.raises(ImportError) as error:
        transformers.MllamaForConditionalGeneration.from_pretrained(str(folder), **options)
    assert "accelerate" in str(error.value).lower(), error.value
    return f"{type(error.value).__name__}: {error.value}"


def test_fp8_compressed_tensors_stand_in_loads_and_answers_on_cpu(fp8_stand_in, red_image):
    config = original_pipeline._checkpoint_quantization(fp8_stand_in)
    assert config == "compressed-tensors"
    if importlib.util.find_spec("accelerate") is None:
        with pytest.raises(ConfigurationError, match="needs accelerate"):
            load_options("fp8", "cpu", fp8_stand_in)
        reason = _transformers_refuses_without_accelerate(fp8_stand_in, torch_dtype="auto")
        pytest.skip(f"transformers cannot load the FP8 checkpoint without accelerate: {reason}")
    pipeline = OriginalPipeline(PipelineConfig(fp8_stand_in, None, None, quantization="fp8"))
    model, _ = pipeline._load("image")
    layer = model.language_model.layers[0].self_attn.q_proj
    assert type(layer).__name__ == "CompressedLinear"
    assert layer.weight.dtype == torch.float8_e4m3fn  # kept compressed until first use
    vision = model.vision_model.transformer.layers[0].self_attn.q_proj
    assert type(vision) is torch.nn.Linear and vision.weight.dtype == torch.float32
    assert pipeline.attention == "sdpa"
    answer = pipeline.caption(red_image)
    assert answer.output_tokens > 0
    assert answer_correct("image", answer.texts["description"], ["red"]), answer.texts
    assert layer.weight.dtype == torch.float32  # decompressed by compressed-tensors on CPU


def test_nf4_stand_in_loads_and_answers_on_cpu(red_image):
    bnb = pytest.importorskip(
        "bitsandbytes", reason="bitsandbytes is not installed (pip install 'babelcap[baseline]')"
    )
    if importlib.util.find_spec("accelerate") is None:
        with pytest.raises(ConfigurationError, match="needs accelerate"):
            load_options("nf4", "cpu", stand_in("mllama"))
        reason = _transformers_refuses_without_accelerate(
            stand_in("mllama"), quantization_config=original_pipeline.nf4_config(),
            torch_dtype=torch.bfloat16, device_map={"": "cpu"},
        )  # fmt: skip
        pytest.skip(f"transformers cannot load NF4 without accelerate: {reason}")
    if not original_pipeline._bitsandbytes_runs_on_cpu():
        with pytest.raises(ConfigurationError, match=r"bitsandbytes >= 0\.46"):
            load_options("nf4", "cpu", stand_in("mllama"))
        pytest.skip(f"bitsandbytes {bnb.__version__} has no CPU backend (0.46 added it)")
    config = PipelineConfig(stand_in("mllama"), None, None, quantization="nf4")
    pipeline = OriginalPipeline(config)
    model, _ = pipeline._load("image")
    layer = model.language_model.layers[0].self_attn.q_proj
    assert isinstance(layer, bnb.nn.Linear4bit)
    assert layer.weight.dtype == torch.uint8 and layer.weight.quant_state.quant_type == "nf4"
    assert layer.weight.quant_state.nested  # double quantization, as the article
    answer = pipeline.caption(red_image)
    assert answer.output_tokens > 0
    assert answer_correct("image", answer.texts["description"], ["red"]), answer.texts


@pytest.mark.parametrize(
    ("version", "runs"),
    [("0.45.5", False), ("0.46.0", True), ("0.50.2", True), ("1.0.0+cpu", True),
     ("not installed", False)],
)  # fmt: skip
def test_nf4_on_cpu_needs_bitsandbytes_with_a_cpu_backend(monkeypatch, version, runs):
    monkeypatch.setattr(original_pipeline, "_version", lambda package: version)
    assert original_pipeline._bitsandbytes_runs_on_cpu() is runs


def test_quantized_loading_says_when_accelerate_is_missing(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "accelerate" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigurationError, match=r"fp8 needs accelerate.*babelcap\[baseline\]"):
        original_pipeline._need_accelerate("fp8")


def test_narrow_nf4_layers_keep_the_generic_cpu_kernel():
    class State:
        blocksize = 64

    class Weight:
        quant_state = State()

    class Layer(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.in_features, self.weight, self.support_avx512bf16_for_cpu = width, Weight(), True

    model = torch.nn.Sequential(Layer(32), Layer(4096), torch.nn.Linear(2, 2))
    assert original_pipeline._nf4_cpu_generic_kernel(model) == 1
    assert [m.support_avx512bf16_for_cpu for m in model[:2]] == [False, True]
