"""The original article's pipeline, reimplemented in-process as the baseline ``babelcap bench
baseline`` measures babelcap against.

What the article ran, one asset at a time: Hugging Face transformers ``generate`` on
``MllamaForConditionalGeneration`` (Llama 3.2 Vision, bitsandbytes NF4 or a compressed-tensors
FP8 checkpoint) for images and ``LlavaNextVideoForConditionalGeneration`` (Flash Attention 2)
for videos, frames read by decoding every frame up to the last one wanted
(:func:`babelcap.benchmarks.baseline.decode_everything`), then NLLB through the transformers
translation pipeline, one language per call. The prompts and token limits are babelcap's own
(prompts/builtin), so both sides are asked the same thing. Written here, not copied.

torch and transformers are imported when a pipeline is built, never at import time.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from babelcap.core.errors import ConfigurationError

__all__ = [
    "QUANTIZATIONS",
    "AssetAnswer",
    "OriginalPipeline",
    "PipelineConfig",
    "Quantization",
    "attention_implementation",
    "load_options",
    "nf4_config",
]

log = logging.getLogger(__name__)

Quantization = Literal["fp32", "bf16", "nf4", "fp8"]
QUANTIZATIONS: tuple[Quantization, ...] = ("fp32", "bf16", "nf4", "fp8")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".ts")
SOURCE_LANGUAGE = "eng_Latn"
TRANSLATION_MAX_LENGTH = 512  # NLLB's training limit (shared/FACTS.md)


def attention_implementation(device: str) -> tuple[str, str]:
    """(``attn_implementation``, why): ``flash_attention_2`` when ``flash_attn`` is importable
    and the models run on CUDA (as the article ran LLaVA-NeXT-Video), else ``sdpa``."""
    if importlib.util.find_spec("flash_attn") is None:
        return "sdpa", "flash_attn is not installed (pip install 'babelcap[baseline]')"
    if not device.startswith("cuda"):
        return "sdpa", f"flash_attn needs CUDA; the models run on {device}"
    return "flash_attention_2", "flash_attn is installed and the models run on CUDA"


def nf4_config() -> Any:
    """The article's bitsandbytes NF4 quantization (4-bit NF4, double quantization, bf16
    compute). Raises ConfigurationError when bitsandbytes is missing."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigurationError(
            "quantization nf4 needs bitsandbytes: pip install 'babelcap[baseline]' "
            "(on a CUDA machine)"
        )
    import torch

    return _transformers().BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


BNB_CPU_SINCE = (0, 46)  # bitsandbytes' first release with a CPU backend for 4-bit layers


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _bitsandbytes_runs_on_cpu() -> bool:
    """bitsandbytes >= 0.46 quantizes and runs 4-bit layers on CPU (older releases need CUDA)."""
    release = _version("bitsandbytes").split("+")[0].split(".")
    try:
        return tuple(int(part) for part in release[:2]) >= BNB_CPU_SINCE
    except ValueError:
        return False


def _need_accelerate(quantization: str) -> None:
    """transformers' quantizers (bitsandbytes and compressed-tensors alike) import accelerate
    while loading; without it from_pretrained fails with ``No module named 'accelerate'``."""
    if importlib.util.find_spec("accelerate") is None:
        raise ConfigurationError(
            f"quantization {quantization} needs accelerate (transformers' quantizers import "
            "it while loading): pip install 'babelcap[baseline]' or pip install accelerate"
        )


def _checkpoint_quantization(model: str | Path) -> str | None:
    """``quant_method`` of a local checkpoint's config.json, or None (hub ids are not read)."""
    config = Path(model) / "config.json"
    if not config.is_file():
        return None
    data = json.loads(config.read_text(encoding="utf-8"))
    method = (data.get("quantization_config") or {}).get("quant_method")
    return str(method) if method else None


def load_options(quantization: Quantization, device: str, model: str | Path) -> dict[str, Any]:
    """The ``from_pretrained`` keyword arguments of one quantization choice, checked against what
    this machine has; ConfigurationError says what is missing and what to do."""
    import torch

    if quantization == "fp32":
        return {"torch_dtype": torch.float32}
    if quantization == "bf16":
        return {"torch_dtype": torch.bfloat16}
    if quantization == "nf4":
        config = nf4_config()
        _need_accelerate(quantization)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigurationError(
                f"quantization nf4: device is {device} but torch sees no CUDA GPU"
            )
        if not device.startswith("cuda") and not _bitsandbytes_runs_on_cpu():
            raise ConfigurationError(
                f"quantization nf4 on {device} needs bitsandbytes >= "
                f"{'.'.join(map(str, BNB_CPU_SINCE))} (its CPU backend); this is "
                f"{_version('bitsandbytes')}: use a CUDA GPU, upgrade bitsandbytes, or "
                "--baseline-quantization fp32 or bf16 here"
            )
        return {"torch_dtype": torch.bfloat16, "quantization_config": config,
                "device_map": {"": device}}  # fmt: skip
    if quantization == "fp8":
        if importlib.util.find_spec("compressed_tensors") is None:
            raise ConfigurationError(
                "quantization fp8 loads a compressed-tensors checkpoint: pip install "
                "compressed-tensors"
            )
        method = _checkpoint_quantization(model)
        if method is not None and method != "compressed-tensors":
            raise ConfigurationError(
                f"quantization fp8 needs a compressed-tensors checkpoint; {model} is "
                f"{method}-quantized"
            )
        if method is None and Path(model).is_dir():
            raise ConfigurationError(
                f"quantization fp8 needs a compressed-tensors checkpoint (e.g. RedHatAI/"
                f"Llama-3.2-11B-Vision-Instruct-FP8-dynamic); {model} is not quantized"
            )
        _need_accelerate(quantization)
        # The checkpoint carries its own quantization_config; transformers reads it and keeps
        # the FP8 weights compressed (CompressedLinear), decompressing them on first use; the
        # activations are quantized per token at run time. This runs on CPU too.
        return {"torch_dtype": "auto"}
    raise ConfigurationError(f"unknown quantization {quantization!r}; use {QUANTIZATIONS}")


@dataclass(frozen=True)
class PipelineConfig:
    """Which models, how loaded, and what to ask."""

    image_model: str | Path | None
    video_model: str | Path | None
    translation_model: str | Path | None
    quantization: Quantization = "fp32"
    device: str = "cpu"
    frames: int = 8
    tasks: tuple[str, ...] = ("description",)
    languages: tuple[str, ...] = ()


@dataclass
class AssetAnswer:
    """One asset through the original pipeline: its answers and where the time went."""

    path: str
    kind: str
    texts: dict[str, str] = field(default_factory=dict)
    translations: dict[str, str] = field(default_factory=dict)
    output_tokens: int = 0
    prepare_s: float = 0.0
    inference_s: float = 0.0
    translation_s: float = 0.0
    seconds: float = 0.0


class OriginalPipeline:
    """The article's models, loaded once, run one asset, one task, one language at a time."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self.attention, self.attention_reason = attention_implementation(config.device)
        self.loaded: dict[str, Any] = {}
        self.load_s = 0.0

    def _load(self, kind: str) -> tuple[Any, Any]:
        if kind in self.loaded:
            return self.loaded[kind]  # type: ignore[no-any-return]
        import torch

        transformers = _transformers()
        started = time.perf_counter()
        config = self.config
        model_id = config.image_model if kind == "image" else config.video_model
        if model_id is None:
            raise ConfigurationError(f"the baseline has no {kind} model")
        # The article quantized Llama 3.2 Vision; LLaVA-NeXT-Video ran in half precision.
        quantization = config.quantization if kind == "image" else (
            "fp32" if config.quantization == "fp32" else "bf16"
        )  # fmt: skip
        options = load_options(quantization, config.device, model_id)
        cls = transformers.MllamaForConditionalGeneration if kind == "image" else (
            transformers.LlavaNextVideoForConditionalGeneration
        )  # fmt: skip
        model = cls.from_pretrained(str(model_id), attn_implementation=self.attention, **options)
        if "device_map" not in options:
            model = model.to(config.device)
        if quantization == "nf4" and not config.device.startswith("cuda"):
            _nf4_cpu_generic_kernel(model)
        model.eval()
        processor = transformers.AutoProcessor.from_pretrained(str(model_id))
        dtype = torch.bfloat16 if quantization in ("nf4", "bf16") else model.dtype
        self.loaded[kind] = (model, processor)
        self.loaded[f"{kind}-dtype"] = dtype
        self.load_s += time.perf_counter() - started
        log.info("baseline: %s model %s loaded (%s, %s)", kind, model_id, quantization,
                 self.attention)  # fmt: skip
        return self.loaded[kind]  # type: ignore[no-any-return]

    def _translator(self) -> Any:
        if "translation" not in self.loaded:
            if self.config.translation_model is None:
                raise ConfigurationError("the baseline has no translation model")
            started = time.perf_counter()
            device = self.config.device
            self.loaded["translation"] = _transformers().pipeline(
                "translation", model=str(self.config.translation_model), device=device,
                src_lang=SOURCE_LANGUAGE, tgt_lang=SOURCE_LANGUAGE,
            )  # fmt: skip
            self.load_s += time.perf_counter() - started
        return self.loaded["translation"]

    def load(self, kinds: tuple[str, ...] = ("image", "video")) -> float:
        """Load the models ``kinds`` need (and the translator when languages are asked for);
        returns the seconds spent loading so far."""
        for kind in kinds:
            self._load(kind)
        if self.config.languages:
            self._translator()
        return self.load_s

    def _generate(self, kind: str, media: Any, task: str, variables: dict[str, Any]) -> tuple[
        str, int
    ]:  # fmt: skip
        import numpy as np
        import torch

        from babelcap.prompts import load_prompts

        prompt = load_prompts()[task]
        model, processor = self._load(kind)
        messages = prompt.messages(kind, {"type": kind}, variables)
        text = processor.apply_chat_template(messages, add_generation_prompt=True)
        if kind == "image":
            inputs = processor(images=media, text=text, add_special_tokens=False,
                               return_tensors="pt")  # fmt: skip
        else:
            video = np.stack([np.asarray(frame.convert("RGB")) for frame in media])
            inputs = processor(text=text, videos=[video], return_tensors="pt")
        inputs = inputs.to(model.device, dtype=self.loaded[f"{kind}-dtype"])
        sampling: dict[str, Any] = {"do_sample": False}
        if prompt.temperature > 0:
            sampling = {"do_sample": True, "temperature": prompt.temperature}
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=prompt.max_tokens, **sampling)
        new = output[0, inputs["input_ids"].shape[1] :]
        return processor.decode(new, skip_special_tokens=True).strip(), int(new.numel())

    def caption(self, path: Path) -> AssetAnswer:
        """Every task on one asset, then the description translated into each language."""
        from PIL import Image

        from babelcap.benchmarks.baseline import decode_everything

        started = time.perf_counter()
        kind = "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"
        answer = AssetAnswer(path=str(path), kind=kind)
        if kind == "image":
            media: Any = Image.open(path).convert("RGB")
            variables: dict[str, Any] = {}
        else:
            media = decode_everything(path, self.config.frames)
            variables = {"frames": len(media), "duration": _duration_s(path)}
        answer.prepare_s = time.perf_counter() - started
        for task in self.config.tasks:
            begun = time.perf_counter()
            text, tokens = self._generate(kind, media, task, variables)
            answer.inference_s += time.perf_counter() - begun
            answer.texts[task] = text
            answer.output_tokens += tokens
        description = answer.texts.get("description")
        if description and self.config.languages:
            translator = self._translator()
            begun = time.perf_counter()
            for language in self.config.languages:
                result = translator(description, src_lang=SOURCE_LANGUAGE, tgt_lang=language,
                                    max_length=TRANSLATION_MAX_LENGTH)  # fmt: skip
                answer.translations[language] = result[0]["translation_text"]
            answer.translation_s = time.perf_counter() - begun
        answer.seconds = time.perf_counter() - started
        return answer


def _nf4_cpu_generic_kernel(model: Any) -> int:
    """On CPUs with AVX512-BF16, bitsandbytes (0.46 to 0.50 at least) repacks a 4-bit layer's
    weights for its fast kernel on first use, reshaping the absmax to (out, in // blocksize):
    a layer narrower than a block (the stand-ins' 32-wide layers, blocksize 64) fails there
    with ``shape '[32, 0]' is invalid``. Such layers keep bitsandbytes' generic CPU path
    (dequantize, then matmul); the article's 4096-wide layers are unaffected. Returns how many
    layers were switched."""
    switched = 0
    for module in model.modules():
        state = getattr(getattr(module, "weight", None), "quant_state", None)
        if not getattr(module, "support_avx512bf16_for_cpu", False) or state is None:
            continue
        if module.in_features % state.blocksize:
            module.support_avx512bf16_for_cpu = False
            switched += 1
    return switched


def _transformers() -> Any:
    """transformers, imported on first use (its constructors are untyped)."""
    return importlib.import_module("transformers")


def _duration_s(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        return (container.duration or 0) / 1_000_000
