"""Serving profiles: which models babelcap serves, and with which vLLM arguments.

A profile is validated data: built-in ones below, or a user's JSON file (``--config FILE``) of
the same shape. Every vLLM argument a model needs comes from here, never from code paths.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from babelcap.core import defaults
from babelcap.core.errors import ConfigurationError
from babelcap.server.translation.engine import TranslationSettings
from babelcap.server.vllm_process import VllmBackend

__all__ = [
    "BUILTIN_PROFILES",
    "DEFAULT_PROFILE",
    "PROFILE_NAMES",
    "Hardware",
    "MediaHints",
    "MediaLimits",
    "Profile",
    "ServedModel",
    "TranslationBackend",
    "load_profile",
]

#: The profile ``babelcap serve`` starts when given neither ``--profile`` nor ``--config``.
DEFAULT_PROFILE = "tiny-cpu"


class TranslationBackend(TranslationSettings):
    """The CTranslate2 NLLB model the gateway hosts in-process: the translator's own settings
    (:class:`TranslationSettings`), plus the id it is listed under."""

    name: str = Field(defaults.TRANSLATION_MODEL_ID, description="id listed by /v1/models")
    download_gb: float = Field(
        0.0, ge=0, description="what `babelcap models pull` downloads for it, in GB"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only what the profile says: a profile is data, not read from the environment."""
        return (init_settings,)

    def engine_settings(self, folder: Path | None = None) -> TranslationSettings:
        """The engine's settings: what the profile sets, the rest from the environment
        (``BABELCAP_TRANSLATION_<FIELD>``) or the defaults, as for ``translation-server``;
        ``folder`` is the converted model where ``model`` names a hub id."""
        chosen = self.model_dump(exclude={"name", "download_gb"}, exclude_unset=True)
        if folder is not None:
            chosen["model"] = folder
        return TranslationSettings(**chosen)


class MediaHints(BaseModel):
    """What the model's processor really uses, so clients send no more pixels than it sees.

    Listed by ``/v1/models`` (under ``babelcap.media``); ``babelcap caption`` follows them.
    """

    model_config = ConfigDict(extra="forbid")

    tile_size: int = Field(
        defaults.IMAGE_TILE_SIZE, gt=0, description="image tile side in pixels (Mllama: 560)"
    )
    max_tiles: int = Field(
        defaults.IMAGE_MAX_TILES, gt=0, description="most tiles per image (Mllama: 4)"
    )
    frames: int = Field(
        defaults.VIDEO_FRAMES, gt=0, description="video frames per clip (LLaVA-NeXT-Video: 8)"
    )
    frame_size: int = Field(
        defaults.VIDEO_FRAME_SIZE, gt=0, description="video frame short side (LLaVA-NeXT: 336)"
    )


class MediaLimits(BaseModel):
    """How much media the gateway lets one request send the model, checked from headers before
    anything is decoded; a limit left unset is derived from the media hints (16 times the
    pixels an image's tiles hold, 4 times the frames, 32 times a frame's pixels)."""

    model_config = ConfigDict(extra="forbid")

    max_image_pixels: int | None = Field(None, gt=0, description="pixels (w x h) per image")
    max_video_frames: int | None = Field(None, gt=0, description="frames per video")
    max_frame_pixels: int | None = Field(None, gt=0, description="pixels (w x h) per frame")
    max_request_pixels: int | None = Field(
        None, gt=0, description="pixels of all images and frames in one request"
    )


class ServedModel(BaseModel):
    """A vision model: the vLLM backend and the media kind it takes."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["image", "video"] = Field(description="images go to Mllama, videos to LLaVA")
    backend: VllmBackend
    media: MediaHints = Field(default_factory=MediaHints)
    limits: MediaLimits = Field(default_factory=MediaLimits)
    weights_gb: float = Field(
        0.0, ge=0, description="GPU memory its weights take once loaded, in GB (1e9 bytes)"
    )
    download_gb: float = Field(
        0.0, ge=0, description="what `babelcap models pull` downloads for it, in GB"
    )


class Hardware(BaseModel):
    """What a profile needs to run: checked by `babelcap serve --check` (and before serve)."""

    model_config = ConfigDict(extra="forbid")

    gpu: bool = Field(True, description="needs an NVIDIA GPU (false: the CPU vLLM build)")
    vllm: str = Field("0.10.2", description="the vLLM release the profile was made for")
    min_gpu_memory_gb: float = Field(
        0.0, ge=0, description="the smallest GPU it fits, in GB (1e9 bytes, as cards are sold)"
    )
    min_compute_capability: float = Field(
        0.0, ge=0, description="the oldest GPU generation it runs on (8.0: Ampere)"
    )


class Profile(BaseModel):
    """Everything `babelcap serve` starts."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    models: list[ServedModel] = Field(min_length=1)
    translation: TranslationBackend | None = None
    allowed_media_domains: list[str] = Field(
        default_factory=list,
        description="hosts whose http(s) media URLs requests may name; empty = data: URLs only",
    )
    allowed_request_fields: list[str] = Field(
        default_factory=list,
        description="chat fields the gateway refuses by default (chat_template, "
        "prompt_logprobs, guided_json, ...: see the README) that it relays anyway",
    )
    startup_timeout_s: float = Field(
        defaults.STARTUP_TIMEOUT_S, gt=0, description="per backend, to /health"
    )
    hardware: Hardware = Field(default_factory=Hardware)

    def starts_one_by_one(self) -> bool:
        """Whether backends start one after another, each healthy before the next.

        vLLM measures GPU memory over the whole device while it starts, so two engines starting
        on one GPU count each other's weights: only a CPU profile with no GPU share set may
        start its backends together.
        """
        return self.hardware.gpu or self.gpu_memory_fraction() > 0

    def gpu_memory_fraction(self) -> float:
        """The share of GPU memory the vLLM backends will claim together."""
        total = 0.0
        for served in self.models:
            args = list(served.backend.extra_args)
            if "--gpu-memory-utilization" in args:
                total += float(args[args.index("--gpu-memory-utilization") + 1])
        return total

    @model_validator(mode="after")
    def _fits_one_gpu(self) -> Profile:
        if self.gpu_memory_fraction() > 0.95:
            raise ValueError(
                f"the models' --gpu-memory-utilization values add up to "
                f"{self.gpu_memory_fraction():.2f}; keep the sum at 0.95 or less on one GPU"
            )
        if self.allowed_request_fields:
            from babelcap.server.gateway.validation import REFUSED_UNLESS_ALLOWED

            unknown = sorted(set(self.allowed_request_fields) - REFUSED_UNLESS_ALLOWED.keys())
            if unknown:
                raise ValueError(
                    f"allowed_request_fields: {unknown} are not fields the gateway refuses; "
                    f"choose from {sorted(REFUSED_UNLESS_ALLOWED)}"
                )
        names = [m.backend.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique: {names}")
        return self


# What the gateway derives for Llama 3.2 Vision and LLaVA-NeXT-Video from their media hints
# (MediaLimits): 16 times an image's four 560 px tiles, 32 times a 336 px frame, and per request
# 32 times the larger of an image's tiles and a video's frames.
_REAL_MODEL_LIMITS = MediaLimits(
    max_image_pixels=16 * 4 * 560 * 560,
    max_frame_pixels=32 * 336 * 336,
    max_request_pixels=32 * 4 * 560 * 560,
)


def _tiny_cpu(dtype: str = "float32") -> Profile:
    from babelcap.core.artifacts import stand_in
    from babelcap.server.vllm_process import tiny_cpu_backends

    image, video = tiny_cpu_backends(dtype)
    suffix = "" if dtype == "float32" else "-bf16"
    return Profile(
        name=f"tiny-cpu{suffix}",
        description=f"the committed tiny stand-ins on the CPU vLLM build in {dtype} "
        + ("(tests, CI, demo)" if not suffix else "(compare with tiny-cpu)"),
        models=[
            # The stand-ins' processors: 56 px tiles (at most 4); 2-4 frames of 64 px. Their media
            # limits are the real models' (derived from 560 px tiles and 336 px frames), not
            # ones derived from these tiny hints (0.2 MP an image would refuse every photo), so
            # that what tiny-cpu accepts and refuses is what a GPU profile does.
            ServedModel(
                role="image",
                backend=image,
                media=MediaHints(tile_size=56),
                limits=_REAL_MODEL_LIMITS,
            ),
            ServedModel(
                role="video",
                backend=video,
                media=MediaHints(frames=4, frame_size=64),
                limits=_REAL_MODEL_LIMITS,
            ),
        ],
        translation=TranslationBackend(name="tiny-nllb", model=stand_in("nllb-ct2")),
        hardware=Hardware(gpu=False, vllm="0.9.2"),
    )


# The engine each model runs on in vLLM 0.10.2, and what it costs (shared/FACTS.md).
_MLLAMA_ENGINE = (
    "Mllama runs on vLLM's V0 engine (SupportsV0Only; VLLM_USE_V1=0 is set for it): CUDA graphs "
    "are off here (--enforce-eager), and V0 encoder-decoder has no prefix caching and no chunked "
    "prefill, so prompts that share an image still pay for it each time"
)
_LLAVA_ENGINE = (
    "LLaVA-NeXT-Video runs on the V1 engine (prefix caching, chunked prefill, CUDA graphs)"
)


def _mllama(
    name: str,
    model: str,
    memory: float,
    *,
    weights_gb: float,
    download_gb: float,
    extra: tuple[str, ...] = (),
) -> ServedModel:
    # vLLM 0.10.2 + Mllama: one leading image per prompt, small batches, eager mode. Mllama is
    # V0-only there; the env pins it so a VLLM_USE_V1=1 in the user's environment (which makes
    # vLLM refuse the model) never reaches the process.
    return ServedModel(
        role="image",
        backend=VllmBackend.model_validate(
            {
                "name": name,
                "model": model,
                "dtype": "bfloat16",
                "max_model_len": 8192,
                "max_num_seqs": 16,
                "enforce_eager": True,
                "limit_mm_per_prompt": '{"image": 1}',
                "extra_args": ("--gpu-memory-utilization", str(memory), *extra),
                "env": {"VLLM_USE_V1": "0"},
            }
        ),
        weights_gb=weights_gb,
        download_gb=download_gb,
    )


def _llava_video(memory: float, max_model_len: int = 8192) -> ServedModel:
    # 144 tokens a frame: 8 frames and a prompt need about 1,400 tokens; 4096 still holds ~27.
    return ServedModel(
        role="video",
        backend=VllmBackend.model_validate(
            {
                "name": "llava-next-video-7b",
                "model": "llava-hf/LLaVA-NeXT-Video-7B-hf",
                "dtype": "bfloat16",
                "max_model_len": max_model_len,
                "max_num_seqs": 32,
                "enforce_eager": False,
                "limit_mm_per_prompt": '{"video": 1}',
                "extra_args": ("--gpu-memory-utilization", str(memory)),
            }
        ),
        weights_gb=14.1,
        download_gb=14.1,
    )


# Hub ids (or local folders in a --config profile); `babelcap models pull PROFILE` fills the
# Hugging Face cache, and serve reads them from there.
_FP8 = "RedHatAI/Llama-3.2-11B-Vision-Instruct-FP8-dynamic"
_BF16 = "meta-llama/Llama-3.2-11B-Vision-Instruct"  # gated: HF_TOKEN for the download


def _fp8(memory: float) -> ServedModel:
    # compressed-tensors FP8-dynamic: W8A8 from compute capability 8.9, Marlin W8A16 on 8.0-8.6.
    return _mllama("llama-3.2-11b-vision-fp8", _FP8, memory, weights_gb=11.9, download_gb=11.9)


def _nllb_gpu() -> TranslationBackend:
    # Converted to CTranslate2 once, on pull; int8 weights, float16 compute (compute
    # capability 7.0 or newer, and libcublas.so.12: see `babelcap serve --check`).
    return TranslationBackend(
        model=Path("facebook/nllb-200-distilled-600M"),
        device="cuda",
        compute_type="int8_float16",
        download_gb=2.5,
    )


BUILTIN_PROFILES: dict[str, Profile] = {
    "h100-80gb": Profile(
        name="h100-80gb",
        description=f"FP8-dynamic Llama 3.2 11B Vision (45%) + LLaVA-NeXT-Video 7B (40%) + NLLB "
        f"on one 80 GB GPU, started one after another. {_MLLAMA_ENGINE}. {_LLAVA_ENGINE}.",
        models=[_fp8(0.45), _llava_video(0.40)],
        translation=_nllb_gpu(),
        hardware=Hardware(min_gpu_memory_gb=80, min_compute_capability=8.0),
    ),
    "gpu-24gb-image": Profile(
        name="gpu-24gb-image",
        description=f"FP8-dynamic Llama 3.2 11B Vision + NLLB on a 24 GB card (native FP8 "
        f"from compute capability 8.9; Marlin weight-only FP8 on 8.0-8.6). {_MLLAMA_ENGINE}.",
        models=[_fp8(0.85)],
        translation=_nllb_gpu(),
        hardware=Hardware(min_gpu_memory_gb=24, min_compute_capability=8.0),
    ),
    "gpu-24gb-video": Profile(
        name="gpu-24gb-video",
        description=f"LLaVA-NeXT-Video 7B (bf16, --max-model-len 4096 so its KV cache fits "
        f"beside 14 GB of weights) + NLLB on a 24 GB card. {_LLAVA_ENGINE}.",
        models=[_llava_video(0.85, max_model_len=4096)],
        translation=_nllb_gpu(),
        hardware=Hardware(min_gpu_memory_gb=24, min_compute_capability=8.0),
    ),
    "llama-vision-fp8": Profile(
        name="llama-vision-fp8",
        description=f"FP8-dynamic Llama 3.2 11B Vision alone, for quantization comparisons "
        f"(as llama-vision-nf4 and llama-vision-bf16). {_MLLAMA_ENGINE}.",
        models=[_fp8(0.85)],
        hardware=Hardware(min_gpu_memory_gb=24, min_compute_capability=8.0),
    ),
    "llama-vision-nf4": Profile(
        name="llama-vision-nf4",
        description=f"Llama 3.2 11B Vision quantized to bitsandbytes NF4 while it loads (from "
        f"the bf16 checkpoint: a 21 GB download, about 7 GB on the GPU; needs bitsandbytes>="
        f"0.46.1), for quantization comparisons. {_MLLAMA_ENGINE}.",
        models=[
            _mllama(
                "llama-3.2-11b-vision-nf4",
                _BF16,
                0.85,
                weights_gb=7.5,
                download_gb=21.3,
                extra=("--quantization", "bitsandbytes"),
            )
        ],
        hardware=Hardware(min_gpu_memory_gb=16, min_compute_capability=8.0),
    ),
    "llama-vision-bf16": Profile(
        name="llama-vision-bf16",
        description=f"bf16 Llama 3.2 11B Vision, the reference: 21 GB of weights, so a 40 GB "
        f"or larger GPU (not a 24 GB card). {_MLLAMA_ENGINE}.",
        models=[
            _mllama("llama-3.2-11b-vision-bf16", _BF16, 0.90, weights_gb=21.3, download_gb=21.3)
        ],
        hardware=Hardware(min_gpu_memory_gb=40, min_compute_capability=8.0),
    ),
}
#: Every built-in profile's name; the tiny ones are built on demand (their models are found
#: where the package is installed).
PROFILE_NAMES = ("tiny-cpu", "tiny-cpu-bf16", *BUILTIN_PROFILES)


def load_profile(name: str | None = None, config: Path | None = None) -> Profile:
    """A built-in profile by name, or a JSON profile file; clear errors for either."""
    if config is not None:
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise ConfigurationError(f"cannot read profile {config}: {error}") from error
        try:
            return Profile.model_validate(data)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'profile'}: {e['msg']}"
                for e in error.errors()
            )
            raise ConfigurationError(f"profile {config} is invalid: {problems}") from error
    chosen = name or DEFAULT_PROFILE
    if chosen == "tiny-cpu":
        return _tiny_cpu()
    if chosen == "tiny-cpu-bf16":
        return _tiny_cpu("bfloat16")
    if chosen not in BUILTIN_PROFILES:
        known = ", ".join(PROFILE_NAMES)
        raise ConfigurationError(f"unknown profile {chosen!r}: choose one of {known}")
    return BUILTIN_PROFILES[chosen]
